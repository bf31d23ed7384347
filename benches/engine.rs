//! Engine send+check on the in-memory store, and route planning.
//!
//! `cargo bench --bench engine`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchboard::clock::ManualClock;
use switchboard::phone::NumberType;
use switchboard::providers::{Channel, ConsoleProvider};
use switchboard::routing::{PlanRequest, RouteTable, plan};
use switchboard::{CheckRequest, CheckStatus, Config, EngineBuilder, SendRequest};

fn route_planning(c: &mut Criterion) {
    let table = RouteTable::embedded();
    let mut g = c.benchmark_group("route_plan");
    g.throughput(Throughput::Elements(1));
    for (cc, nt) in [
        ("BR", NumberType::Mobile),
        ("US", NumberType::FixedLineOrMobile),
        ("DE", NumberType::FixedLine),
        ("ZZ", NumberType::Mobile),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(cc), &(cc, nt), |b, (cc, nt)| {
            b.iter(|| {
                plan(
                    &table,
                    black_box(&PlanRequest {
                        country: Some(cc),
                        number_type: *nt,
                        pinned: None,
                        preferred: Some(Channel::Sms),
                        workflow_preference: None,
                    }),
                )
            })
        });
    }
    g.finish();
}

/// One send followed by one check of the delivered code, on a fresh number each time (the
/// numbers cycle through a large block so the resend limit is never hit).
fn send_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_send_check");
    g.throughput(Throughput::Elements(1));
    for (name, hashing) in [
        ("hmac-sha256", "{ scheme = \"hmac-sha256\" }"),
        ("argon2id-default", "{ scheme = \"argon2id\" }"),
    ] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = Config::from_toml(&format!(
            "pepper = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n[code]\nhashing = {hashing}\n"
        ))
        .unwrap();
        let console = Arc::new(ConsoleProvider::new());
        let clock = ManualClock::default();
        let engine = EngineBuilder::new(config)
            .provider(console.clone())
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        let mut n: u64 = 0;
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                n += 1;
                // Spanish mobile block 600 000 000 - 699 999 999.
                let number = format!("+346{:08}", n % 100_000_000);
                rt.block_on(async {
                    engine.send(SendRequest::new(number.clone())).await.unwrap();
                    let code = console.last_code(&number).unwrap();
                    let mut check = CheckRequest::new(number, "");
                    check.code = code;
                    let out = engine.check(check).await.unwrap();
                    assert_eq!(out.status, CheckStatus::Approved);
                });
                if n.is_multiple_of(100_000) {
                    // Move past the resend window so numbers can be reused.
                    clock.advance_secs(86_400);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, route_planning, send_check);
criterion_main!(benches);
