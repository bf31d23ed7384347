//! Phone parsing throughput: switchboard's `phone::parse` (rlibphonenumber + carrier
//! and country lookups) against raw rlibphonenumber and the `phonenumber` crate, on
//! the same ~1000 inputs from the oracle corpus, single-threaded and on 2 threads.
//!
//! Run: `cargo bench --bench phone -- --warm-up-time 1 --measurement-time 3`
//!
//! Before the benches it prints the one-time cost of each library's lazy
//! initialisation (first parse latency and resident memory growth); after them, a
//! scaling report with each thread's on-CPU time per number, which unlike wall time
//! does not depend on the machine having idle cores.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use rlibphonenumber::{PHONE_NUMBER_UTIL, enums::Region};

const CORPUS: &str = include_str!("../tests/data/phone_oracle.jsonl");
const MIX_SIZE: usize = 1000;

/// One way of parsing an input; true when it yields a valid number.
type ParseFn = fn(&Input) -> bool;

struct Input {
    text: String,
    region: Option<String>,
    rl_region: Option<Region>,
    pn_region: Option<phonenumber::country::Id>,
}

/// Every k-th valid corpus entry: E.164, formatted international, national with a
/// region, IDD-prefixed, across all regions and number types.
fn mix() -> Vec<Input> {
    let valid: Vec<serde_json::Value> = CORPUS
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["valid"] == true)
        .collect();
    let step = (valid.len() / MIX_SIZE).max(1);
    valid
        .iter()
        .step_by(step)
        .take(MIX_SIZE)
        .filter_map(|v| {
            let text = v["input"].as_str()?.to_owned();
            let region = v["default_region"].as_str().map(str::to_owned);
            let rl_region = match &region {
                Some(r) => Some(Region::from_code(&r.to_ascii_uppercase()).ok()?),
                None => None,
            };
            let pn_region = match &region {
                Some(r) => Some(r.to_ascii_uppercase().parse().ok()?),
                None => None,
            };
            Some(Input {
                text,
                region,
                rl_region,
                pn_region,
            })
        })
        .collect()
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn report_first_use(name: &str, first: impl FnOnce() -> bool, again: impl Fn() -> bool) {
    let rss0 = resident_bytes();
    let t = Instant::now();
    let ok = first();
    let init = t.elapsed();
    let rss1 = resident_bytes();
    let t = Instant::now();
    let ok2 = again();
    let warm = t.elapsed();
    let rss = match (rss0, rss1) {
        (Some(a), Some(b)) => format!("{:.1} MiB", (b.saturating_sub(a)) as f64 / 1048576.0),
        _ => "n/a".into(),
    };
    println!(
        "first use of {name}: {:.2} ms (then {:.2} us), resident memory +{rss} (valid: {ok}/{ok2})",
        init.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e6,
    );
}

fn rl_parse(input: &Input) -> bool {
    PHONE_NUMBER_UTIL
        .parse(&input.text, input.rl_region)
        .is_ok_and(|n| PHONE_NUMBER_UTIL.is_valid_number(&n))
}

fn pn_parse(input: &Input) -> bool {
    phonenumber::parse(input.pn_region, &input.text).is_ok_and(|n| phonenumber::is_valid(&n))
}

fn sb_parse(input: &Input) -> bool {
    switchboard::phone::parse(&input.text, input.region.as_deref()).is_ok()
}

/// Runs `f` over the whole mix `iters` times on each of `threads` threads; returns
/// the wall-clock time.
fn on_threads(inputs: &[Input], threads: usize, iters: u64, f: ParseFn) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..iters {
                    for input in inputs {
                        black_box(f(black_box(input)));
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn main() {
    // Measure lazy initialisation before anything else touches the libraries.
    let probe = Input {
        text: "+34600600600".into(),
        region: None,
        rl_region: None,
        pn_region: None,
    };
    report_first_use(
        "rlibphonenumber PHONE_NUMBER_UTIL",
        || rl_parse(&probe),
        || rl_parse(&probe),
    );
    let rss0 = resident_bytes();
    let t = Instant::now();
    let parsed = switchboard::phone::warm_up();
    let warm_up = t.elapsed();
    let grown = match (rss0, resident_bytes()) {
        (Some(a), Some(b)) => format!("{:.1} MiB", b.saturating_sub(a) as f64 / 1048576.0),
        _ => "n/a".into(),
    };
    println!(
        "switchboard::phone::warm_up() (all regions' regexes, {parsed} example parses): {:.1} ms, resident memory +{grown}",
        warm_up.as_secs_f64() * 1e3
    );
    report_first_use(
        "phonenumber 0.3 DATABASE",
        || pn_parse(&probe),
        || pn_parse(&probe),
    );

    let inputs = mix();
    let n = inputs.len() as u64;
    // Sanity: all three agree these are valid numbers (phonenumber's metadata is
    // older, 9.0.33, so a few may differ).
    let sb_ok = inputs.iter().filter(|i| sb_parse(i)).count();
    let rl_ok = inputs.iter().filter(|i| rl_parse(i)).count();
    let pn_ok = inputs.iter().filter(|i| pn_parse(i)).count();
    println!(
        "mix: {n} inputs; valid per switchboard {sb_ok}, rlibphonenumber {rl_ok}, phonenumber {pn_ok}"
    );

    // 30 samples keep the slow `phonenumber` runs (~0.5 s per pass over the mix) short.
    let mut c = Criterion::default().sample_size(30).configure_from_args();

    let mut g = c.benchmark_group("phone_parse");
    g.throughput(Throughput::Elements(n));
    let libs: [(&str, ParseFn); 3] = [
        ("switchboard", sb_parse),
        ("rlibphonenumber", rl_parse),
        ("phonenumber", pn_parse),
    ];
    for (name, f) in libs {
        g.bench_function(name, |b| {
            b.iter(|| {
                for input in &inputs {
                    black_box(f(black_box(input)));
                }
            })
        });
    }
    g.finish();

    // Where switchboard's time goes, step by step, over the same mix.
    let mut g = c.benchmark_group("phone_parse_breakdown");
    g.throughput(Throughput::Elements(n));
    let steps: [(&str, ParseFn); 3] = [
        ("rl_parse_only", |i| {
            PHONE_NUMBER_UTIL.parse(&i.text, i.rl_region).is_ok()
        }),
        ("rl_parse_type", |i| {
            PHONE_NUMBER_UTIL
                .parse(&i.text, i.rl_region)
                .is_ok_and(|n| {
                    PHONE_NUMBER_UTIL.get_number_type(&n)
                        != rlibphonenumber::PhoneNumberType::Unknown
                })
        }),
        ("rl_parse_type_region", |i| {
            PHONE_NUMBER_UTIL
                .parse(&i.text, i.rl_region)
                .is_ok_and(|n| {
                    PHONE_NUMBER_UTIL.get_number_type(&n)
                        != rlibphonenumber::PhoneNumberType::Unknown
                        && PHONE_NUMBER_UTIL.get_region_for_number(&n).is_some()
                })
        }),
    ];
    for (name, f) in steps {
        g.bench_function(name, |b| {
            b.iter(|| {
                for input in &inputs {
                    black_box(f(black_box(input)));
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("phone_parse_threads");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(n * threads as u64));
        for (name, f) in libs {
            g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
                b.iter_custom(|iters| on_threads(&inputs, threads, iters, f))
            });
        }
    }
    g.finish();

    c.final_summary();

    // Criterion's wall-clock numbers for 2 threads depend on the machine having 2 idle
    // cores. On-CPU time per number and thread does not: if it stays flat from 1 to 2
    // threads, parsing scales (no lock or cache-line contention inside the library).
    for (name, f) in libs {
        for threads in [1usize, 2] {
            scaling_report(name, &inputs, threads, f);
        }
    }
}

/// Nanoseconds this thread has spent on a CPU (Linux `schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn scaling_report(name: &str, inputs: &[Input], threads: usize, f: ParseFn) {
    // About 0.3 s of work per thread.
    let t = Instant::now();
    for input in inputs {
        black_box(f(input));
    }
    let passes = ((0.3 / t.elapsed().as_secs_f64()) as usize).clamp(1, 1000);
    let start = Instant::now();
    let cpu: Vec<Option<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    // Unmeasured pass: a thread's first use of each regex allocates
                    // that thread's matching cache for it.
                    for input in inputs {
                        black_box(f(black_box(input)));
                    }
                    let c0 = thread_cpu_ns();
                    for _ in 0..passes {
                        for input in inputs {
                            black_box(f(black_box(input)));
                        }
                    }
                    Some(thread_cpu_ns()? - c0?)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let per_thread = (passes * inputs.len()) as f64;
    let cpu_ns: Vec<String> = cpu
        .iter()
        .map(|c| c.map_or("n/a".into(), |c| format!("{:.0}", c as f64 / per_thread)))
        .collect();
    println!(
        "scaling {name} x{threads}: wall {:.0} ns/number overall ({:.0} numbers/s); on-CPU ns/number per thread: {}",
        wall * 1e9 / (per_thread * threads as f64),
        per_thread * threads as f64 / wall,
        cpu_ns.join(", ")
    );
}
