//! A fixed number of send+check pairs through the engine on the memory store (HMAC hashing,
//! console provider), for instruction-level profiling of the request path:
//!
//! ```text
//! cargo build --release --example pair_profile
//! valgrind --tool=callgrind --callgrind-out-file=pairs.cg target/release/examples/pair_profile 2000
//! callgrind_annotate --inclusive=yes pairs.cg | head -60
//! ```
//!
//! Instruction counts do not depend on what else the machine runs, unlike timings; warm-up
//! (config, phone metadata of the region) is done before the counted loop, which prints the
//! instructions' share to look for in the profile: everything under `run_pairs`.

use std::sync::Arc;

use switchboard::clock::ManualClock;
use switchboard::providers::ConsoleProvider;
use switchboard::{CheckRequest, CheckStatus, Config, EngineBuilder, SendRequest};

fn main() {
    let pairs: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config::from_toml(
        "pepper = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n\
         [code]\nhashing = { scheme = \"hmac-sha256\" }\n",
    )
    .expect("config");
    let console = Arc::new(ConsoleProvider::new());
    let engine = EngineBuilder::new(config)
        .provider(console.clone())
        .clock(Arc::new(ManualClock::default()))
        .build()
        .expect("engine");
    rt.block_on(run_pairs(&engine, &console, 0, 10));
    rt.block_on(run_pairs(&engine, &console, 10, pairs));
    println!("{pairs} pairs");
}

#[inline(never)]
async fn run_pairs(engine: &switchboard::Engine, console: &ConsoleProvider, from: u64, n: u64) {
    for i in from..from + n {
        // Spanish mobile block 600 000 000 - 699 999 999: a fresh number per pair.
        let number = format!("+346{:08}", i);
        engine
            .send(SendRequest::new(number.clone()))
            .await
            .expect("send");
        let mut check = CheckRequest::new(number.clone(), "");
        check.code = console.last_code(&number).expect("a code");
        let out = engine.check(check).await.expect("check");
        assert_eq!(out.status, CheckStatus::Approved);
    }
}
