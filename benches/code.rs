//! Cost of one code digest per scheme and argon2id parameter set, and of a full async check.
//!
//! Quick run: `cargo bench --bench code -- --warm-up-time 1 --measurement-time 3`.
//! The results and the reasoning behind the default are in `docs/code-hashing.md`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchboard::code::{CodeHasher, DEFAULT_ARGON2, HashScheme, Pepper, Salt};
use switchboard::providers::OneTimeCode;

const PEPPER: [u8; 32] = [0x5a; 32];

fn argon2(memory_kib: u32, iterations: u32) -> HashScheme {
    HashScheme::Argon2id {
        memory_kib,
        iterations,
        parallelism: 1,
    }
}

fn label(scheme: &HashScheme) -> String {
    match scheme {
        HashScheme::Argon2id {
            memory_kib,
            iterations,
            parallelism,
        } => format!("argon2id/m={memory_kib},t={iterations},p={parallelism}"),
        HashScheme::HmacSha256 => "hmac-sha256".to_owned(),
    }
}

fn hasher(scheme: HashScheme, max_concurrency: usize) -> CodeHasher {
    CodeHasher::new(
        Pepper::new(PEPPER.to_vec()).unwrap(),
        scheme,
        max_concurrency,
    )
    .unwrap()
}

/// One digest on the calling thread, per scheme.
fn digest(c: &mut Criterion) {
    let schemes = [
        HashScheme::HmacSha256,
        argon2(19_456, 2), // OWASP password-storage minimum
        argon2(4_096, 1),
        argon2(1_024, 1),
        argon2(512, 1),
        argon2(256, 2),
        argon2(256, 1),
        argon2(128, 2),
        argon2(64, 3),
    ];
    let code = OneTimeCode::new("482913");
    let salt = Salt::random().unwrap();
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Elements(1));
    for scheme in schemes {
        let h = hasher(scheme, 1);
        group.bench_with_input(BenchmarkId::from_parameter(label(&scheme)), &h, |b, h| {
            b.iter(|| h.digest_blocking(black_box(&code), black_box(&salt)))
        });
    }
    group.finish();
}

/// A full check through the async path (permit, hop to a hashing thread, one hash, 3 constant-time
/// comparisons), to show the pool's overhead next to the bare hash.
fn find_match(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let salt = Salt::random().unwrap();
    let mut group = c.benchmark_group("find_match");
    group.throughput(Throughput::Elements(1));
    for scheme in [HashScheme::HmacSha256, DEFAULT_ARGON2] {
        let h = hasher(scheme, 2);
        let digests: Vec<_> = ["111111", "222222", "482913"]
            .iter()
            .map(|c| h.digest_blocking(&OneTimeCode::new(*c), &salt))
            .collect();
        let candidate = OneTimeCode::new("482913");
        group.bench_with_input(BenchmarkId::from_parameter(label(&scheme)), &h, |b, h| {
            b.iter(|| {
                rt.block_on(h.find_match(black_box(&candidate), &salt, &digests))
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// 64 concurrent checks through a hasher with 2 permits: the sustained checks/s of this box.
fn burst(c: &mut Criterion) {
    const BURST: usize = 64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let salt = Salt::random().unwrap();
    let mut group = c.benchmark_group("burst64");
    group.throughput(Throughput::Elements(BURST as u64));
    for scheme in [HashScheme::HmacSha256, DEFAULT_ARGON2] {
        let h = hasher(scheme, 2);
        let digests: Vec<_> = ["111111", "222222", "482913"]
            .iter()
            .map(|c| h.digest_blocking(&OneTimeCode::new(*c), &salt))
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(label(&scheme)), &h, |b, h| {
            b.iter(|| {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..BURST)
                        .map(|i| {
                            let (h, digests) = (h.clone(), digests.clone());
                            tokio::spawn(async move {
                                let candidate = OneTimeCode::new(format!("{:06}", 482_900 + i));
                                h.find_match(&candidate, &salt, &digests).await.unwrap()
                            })
                        })
                        .collect();
                    for t in tasks {
                        black_box(t.await.unwrap());
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, digest, find_match, burst);
criterion_main!(benches);
