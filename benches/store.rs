//! Redis store throughput against raw Redis, in the same run.
//!
//! `cargo bench --bench store` starts its own `redis-server` (or uses
//! `SWITCHBOARD_BENCH_REDIS_URL`), then measures:
//! 1. store send+check pairs per second — `reserve_send` then `check` of the right digest,
//!    on distinct numbers, `CONCURRENCY` pairs in flight over one multiplexed connection;
//! 2. `redis-benchmark` running an EVALSHA of similar size (the check script itself, on keys
//!    that do not exist) with the same number of clients;
//!
//! and reports our pairs/s as a number of raw EVALSHA round trips per pair
//! (target: a pair costs no more than 3).

#[path = "../tests/it/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::process::Command;
use std::time::{Duration, Instant};

use futures::future::join_all;
use switchboard::code::CodeDigest;
use switchboard::providers::Channel;
use switchboard::store::{
    CheckInput, CheckVerdict, NumberKey, RedisSettings, RedisStore, Reservation, ReserveSend,
    SendLimits, Store,
};

const CONCURRENCY: usize = 64;
const PAIRS: usize = 100_000;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: keep it short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let pairs = if quick { 2_000 } else { PAIRS };
    let server;
    let (url, port) = match std::env::var("SWITCHBOARD_BENCH_REDIS_URL") {
        Ok(url) => {
            let port = url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(6379);
            (url, port)
        }
        Err(_) => {
            server = redis_server::RedisServer::start();
            (server.url(), server.port)
        }
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (elapsed, approved) = rt.block_on(store_pairs(&url, pairs));
    assert_eq!(approved, pairs, "every right code is approved exactly once");
    let ours = pairs as f64 / elapsed.as_secs_f64();

    let raw = raw_evalsha(port, if quick { 20_000 } else { 400_000 });
    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!("| store send+check pairs/s ({CONCURRENCY} in flight) | {ours:.0} |");
    println!("| raw EVALSHA/s (redis-benchmark, {CONCURRENCY} clients) | {raw:.0} |");
    println!(
        "| cost of one pair in raw EVALSHA round trips | {:.2} (target ≤ 3) |",
        raw / ours
    );
}

async fn store_pairs(url: &str, pairs: usize) -> (Duration, usize) {
    let store = Store::Redis(
        RedisStore::new(&RedisSettings {
            url: url.to_owned(),
            key_prefix: format!("bench{}", std::process::id()),
            command_timeout: Duration::from_secs(5),
        })
        .unwrap(),
    );
    let limits = SendLimits {
        validity_ms: 300_000,
        max_resends: 2,
        window_ms: 86_400_000,
        cooldown_ms: 0,
        exempt: false,
    };
    // Warm up: load the scripts and open the connection.
    let warm = NumberKey::new("bench", "+34699999999");
    let _ = store
        .reserve_send(
            &warm,
            ReserveSend {
                route: "sms\tconsole\t0",
                now: 0,
                digest: CodeDigest::from_bytes([0; 32]),
                channel: Channel::Sms,
                vendor_data: None,
                refuse_duplicate: false,
                limits,
                ids_ttl_ms: 86_400_000,
            },
        )
        .await;
    let _ = store.check(&warm, check_input(0, 0)).await;

    let started = Instant::now();
    let per_task = pairs / CONCURRENCY;
    let tasks = (0..CONCURRENCY).map(|t| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut approved = 0;
            for i in 0..per_task {
                let n = t * per_task + i;
                let key = NumberKey::new("bench", format!("+346{n:08}"));
                let digest = CodeDigest::from_bytes([(n % 251) as u8; 32]);
                let now = 1_767_225_600_000 + n as i64;
                let r = store
                    .reserve_send(
                        &key,
                        ReserveSend {
                            route: "sms\tconsole\t0",
                            now,
                            digest,
                            channel: Channel::Sms,
                            vendor_data: None,
                            refuse_duplicate: false,
                            limits,
                            ids_ttl_ms: 86_400_000,
                        },
                    )
                    .await
                    .unwrap();
                assert!(matches!(r, Reservation::Reserved(_)));
                let c = store
                    .check(&key, check_input(now + 1, (n % 251) as u8))
                    .await
                    .unwrap();
                if c.verdict == CheckVerdict::Approved {
                    approved += 1;
                }
            }
            approved
        })
    });
    let approved: usize = join_all(tasks).await.into_iter().map(Result::unwrap).sum();
    (started.elapsed(), approved + pairs - per_task * CONCURRENCY)
}

fn check_input(now: i64, d: u8) -> CheckInput<'static> {
    CheckInput {
        now,
        candidate: Some(CodeDigest::from_bytes([d; 32])),
        max_attempts: 2,
        vendor_data: None,
        refuse_duplicate: false,
        verified_ttl_ms: 86_400_000,
    }
}

/// Requests per second of `redis-benchmark` running EVALSHA of the check script.
fn raw_evalsha(port: u16, requests: usize) -> f64 {
    let port_s = port.to_string();
    let load = Command::new("redis-cli")
        .args([
            "-p",
            &port_s,
            "SCRIPT",
            "LOAD",
            include_str!("../src/store/lua/check.lua"),
        ])
        .output()
        .expect("redis-cli");
    let sha = String::from_utf8_lossy(&load.stdout).trim().to_owned();
    let digest = "ab".repeat(32);
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port_s,
            "-c",
            &CONCURRENCY.to_string(),
            "-n",
            &requests.to_string(),
            "-q",
            "EVALSHA",
            &sha,
            "3",
            "bench:{x}:v",
            "bench:{x}:b",
            "bench:{x}:vf",
            "1767225600000",
            &digest,
            "2",
            "",
            "0",
            "86400000",
        ])
        .output()
        .expect("redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    // Progress lines end in '\r'; the last one reads
    // "EVALSHA ...: 98449.41 requests per second, p50=0.343 msec".
    let last = text
        .rsplit('\r')
        .find(|l| l.contains("requests per second"))
        .unwrap_or("");
    last.split(" requests per second")
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("could not read redis-benchmark output: {last}"))
}
