//! `switchboard-load soak`: the mixed load at a steady pace against one sidecar and one Redis
//! for N minutes, with the sidecar's RSS, open file descriptors and threads, Redis's memory
//! and keys, and the latency percentiles of the minute sampled once per sample period; then a
//! verdict on growth: the last samples against the steady state after the warm-up.
//!
//! Every piece of state the load leaves has a lifetime shorter than the warm-up (resend
//! window, verification records, fraud counters: `--state-ttl-secs`), so a steady state
//! exists: after it, any growth is a leak.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::client::{self, Client};
use crate::harness::{Common, Rig};
use crate::procstat;
use crate::redis;
use crate::sidecar::{Sidecar, Tuning};
use crate::stats::{Op, Stats};
use crate::workload::{self, Stop};

#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    #[command(flatten)]
    pub common: Common,
    /// Length of the soak.
    #[arg(long, default_value_t = 60)]
    pub minutes: u64,
    /// Seconds per sample (60: one per minute; shorter for a smoke run).
    #[arg(long, default_value_t = 60)]
    pub sample_secs: u64,
    /// Samples before the steady state is taken as reached.
    #[arg(long, default_value_t = 5)]
    pub warmup_samples: usize,
    /// Lifetime of the load's state: resend window, verification records, fraud windows.
    #[arg(long, default_value_t = 240)]
    pub state_ttl_secs: u64,
}

/// One sample period.
#[derive(Clone, Debug)]
struct Sample {
    index: usize,
    sessions_per_s: f64,
    calls_per_s: f64,
    send_p50: f64,
    send_p99: f64,
    check_p50: f64,
    check_p99: f64,
    errors: u64,
    violations: u64,
    rss_mib: f64,
    fds: u64,
    threads: u64,
    redis_mib: f64,
    redis_keys: u64,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let rig = Rig::new(&args.common).await?;
    let server = redis::start_server();
    let endpoint = redis::Endpoint::from_url(&server.url())?;
    let ttl = args.state_ttl_secs;
    let tuning = Tuning {
        resend_window_secs: ttl,
        record_ttl_secs: ttl,
        fraud_window_secs: Some(ttl),
        provider_timeout_ms: None,
        command_timeout_ms: None,
    };
    let spec = rig.spec("soak", &endpoint.url, tuning);
    let sidecar = Sidecar::start(&spec)?;
    eprintln!(
        "soak: sidecar pid {}, redis {}, {} min × {} s samples, {} clients at {}/s",
        sidecar.pid,
        endpoint.url,
        args.minutes,
        args.sample_secs,
        args.common.concurrency,
        args.common.rate
    );
    let channels = client::connect(sidecar.grpc_addr, 2).await?;
    let clients = channels
        .iter()
        .map(|c| Client::grpc(c.clone(), &rig.api_key))
        .collect::<Result<Vec<_>, _>>()?;
    let window = Some(Duration::from_secs(ttl));
    let ctx = rig.ctx(clients, window)?;
    let probe_pool = rig.probe_pool(window);
    let expiry_client = Client::grpc(channels[0].clone(), &rig.expiry_api_key)?;
    let period = Duration::from_secs(args.sample_secs.max(1));
    let count = (args.minutes * 60).div_ceil(args.sample_secs.max(1)) as usize;
    let started = Instant::now();
    let mut samples = Vec::with_capacity(count);
    let mut total = Stats::default();
    println!("{}", header());
    for index in 1..=count {
        let probes = tokio::spawn(workload::expiry_probes(
            expiry_client.clone(),
            rig.emu.clone(),
            probe_pool.clone(),
            Duration::from_secs(args.common.expiry_validity),
            Instant::now() + period,
            args.common.expiry_probes,
        ));
        let (mut stats, wall) =
            workload::run_level(ctx.clone(), args.common.concurrency, Stop::After(period)).await;
        if let Ok(p) = probes.await {
            stats.merge(&p);
        }
        if !sidecar.alive() {
            bail!(
                "the sidecar died during sample {index}; its log ({}):\n{}",
                sidecar.log_path.display(),
                sidecar.log_tail(40)
            );
        }
        let s = sample(index, &stats, wall, &sidecar, &endpoint);
        println!("{}", row(&s));
        total.merge(&stats);
        samples.push(s);
    }
    let verdict = verdict(&samples, args.warmup_samples);
    let md = report(&args, &samples, &total, &verdict, started.elapsed());
    let path = args.common.out.join("soak.md");
    std::fs::write(&path, &md)?;
    println!("{md}");
    eprintln!("soak report in {}", path.display());
    drop(channels);
    sidecar.stop();
    let violations = total.total_violations();
    let grown: Vec<&Growth> = verdict.iter().filter(|g| !g.ok).collect();
    if violations > 0 || !grown.is_empty() {
        bail!(
            "soak failed: {violations} correctness violations, growth in {}",
            grown
                .iter()
                .map(|g| g.metric)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn sample(
    index: usize,
    stats: &Stats,
    wall: Duration,
    sidecar: &Sidecar,
    redis: &redis::Endpoint,
) -> Sample {
    let secs = wall.as_secs_f64().max(1e-9);
    let send = stats.summary(Op::Send);
    let check = stats.summary(Op::Check);
    let mem = redis.info("memory").unwrap_or_default();
    Sample {
        index,
        sessions_per_s: stats.sessions as f64 / secs,
        calls_per_s: stats.calls as f64 / secs,
        send_p50: send.p50,
        send_p99: send.p99,
        check_p50: check.p50,
        check_p99: check.p99,
        errors: stats.total_errors(),
        violations: stats.total_violations(),
        rss_mib: procstat::rss_mib(sidecar.pid).unwrap_or(0.0),
        fds: sidecar.open_fds().unwrap_or(0),
        threads: procstat::threads(sidecar.pid).unwrap_or(0),
        redis_mib: mem
            .get("used_memory")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / (1024.0 * 1024.0),
        redis_keys: redis.dbsize().unwrap_or(0),
    }
}

fn header() -> String {
    "| sample | sessions/s | calls/s | send p50 / p99 ms | check p50 / p99 ms | errors | violations | sidecar RSS MiB | fds | threads | Redis used_memory MiB | Redis keys |\n\
     |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        .to_owned()
}

fn row(s: &Sample) -> String {
    format!(
        "| {} | {:.0} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {} | {:.1} | {} | {} | {:.2} | {} |",
        s.index,
        s.sessions_per_s,
        s.calls_per_s,
        s.send_p50,
        s.send_p99,
        s.check_p50,
        s.check_p99,
        s.errors,
        s.violations,
        s.rss_mib,
        s.fds,
        s.threads,
        s.redis_mib,
        s.redis_keys
    )
}

/// One metric's verdict: the mean of the last samples against the largest steady-state
/// sample plus a tolerance.
#[derive(Debug)]
struct Growth {
    metric: &'static str,
    steady_max: f64,
    last_mean: f64,
    allowed: f64,
    ok: bool,
}

/// The steady state: the samples after the warm-up, up to 5 of them and at most the first
/// half of what follows the warm-up; the last: the final 5 samples (at most the second half).
fn windows(samples: &[Sample], warmup: usize) -> Option<(&[Sample], &[Sample])> {
    let after = samples.get(warmup..)?;
    if after.len() < 2 {
        return None;
    }
    let half = after.len() / 2;
    let steady = &after[..half.min(5)];
    let last = &after[after.len() - (after.len() - half).min(5)..];
    Some((steady, last))
}

fn verdict(samples: &[Sample], warmup: usize) -> Vec<Growth> {
    let Some((steady, last)) = windows(samples, warmup) else {
        return Vec::new();
    };
    // (metric, value, relative tolerance, absolute tolerance)
    type Metric = (&'static str, fn(&Sample) -> f64, f64, f64);
    let metrics: [Metric; 6] = [
        ("sidecar RSS", |s| s.rss_mib, 0.10, 4.0),
        ("sidecar fds", |s| s.fds as f64, 0.0, 4.0),
        ("sidecar threads", |s| s.threads as f64, 0.0, 2.0),
        ("Redis used_memory", |s| s.redis_mib, 0.10, 1.0),
        ("send p99", |s| s.send_p99, 1.0, 5.0),
        ("check p99", |s| s.check_p99, 1.0, 5.0),
    ];
    metrics
        .iter()
        .map(|&(metric, f, rel, abs)| {
            let steady_max = steady.iter().map(f).fold(f64::MIN, f64::max);
            let last_mean = last.iter().map(f).sum::<f64>() / last.len() as f64;
            let allowed = steady_max * (1.0 + rel) + abs;
            Growth {
                metric,
                steady_max,
                last_mean,
                allowed,
                ok: last_mean <= allowed,
            }
        })
        .collect()
}

fn report(
    args: &SoakArgs,
    samples: &[Sample],
    total: &Stats,
    verdict: &[Growth],
    elapsed: Duration,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Soak: {} samples of {} s ({:.1} min), {} clients at {}/s\n",
        samples.len(),
        args.sample_secs,
        elapsed.as_secs_f64() / 60.0,
        args.common.concurrency,
        args.common.rate
    );
    let _ = writeln!(
        md,
        "Mix `{}`, providers `{}` (failures `{}`), validity {} s, state lifetime {} s, hashing {}; load average at the end {}.\n",
        args.common.mix,
        args.common.latency,
        args.common.fail,
        args.common.validity_secs,
        args.state_ttl_secs,
        args.common.hashing,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(md, "{}", header());
    for s in samples {
        let _ = writeln!(md, "{}", row(s));
    }
    let _ = writeln!(
        md,
        "\nTotals: {} sessions, {} calls, {} approvals, {} errors {:?}, {} expected refusals, {} violations {:?}.\n",
        total.sessions,
        total.calls,
        total.counter("approved"),
        total.total_errors(),
        total.errors,
        total.total_expected(),
        total.total_violations(),
        total
            .violations
            .iter()
            .map(|(v, n)| (v.name(), *n))
            .collect::<Vec<_>>()
    );
    match windows(samples, args.warmup_samples) {
        None => {
            let _ = writeln!(
                md,
                "Too few samples after the warm-up for a growth verdict."
            );
        }
        Some((steady, last)) => {
            let _ = writeln!(
                md,
                "Growth verdict: mean of samples {}-{} against the largest of samples {}-{} (steady state after a warm-up of {} samples) plus a tolerance.\n",
                last[0].index,
                last[last.len() - 1].index,
                steady[0].index,
                steady[steady.len() - 1].index,
                args.warmup_samples
            );
            let _ = writeln!(
                md,
                "| metric | steady max | last mean | allowed | verdict |\n|---|---:|---:|---:|---|"
            );
            for g in verdict {
                let _ = writeln!(
                    md,
                    "| {} | {:.2} | {:.2} | {:.2} | {} |",
                    g.metric,
                    g.steady_max,
                    g.last_mean,
                    g.allowed,
                    if g.ok { "no growth" } else { "GROWTH" }
                );
            }
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(index: usize, rss: f64) -> Sample {
        Sample {
            index,
            sessions_per_s: 100.0,
            calls_per_s: 200.0,
            send_p50: 1.0,
            send_p99: 5.0,
            check_p50: 1.0,
            check_p99: 5.0,
            errors: 0,
            violations: 0,
            rss_mib: rss,
            fds: 40,
            threads: 8,
            redis_mib: 3.0,
            redis_keys: 1000,
        }
    }

    #[test]
    fn a_flat_run_passes_and_a_leak_is_growth() {
        let flat: Vec<Sample> = (1..=20).map(|i| s(i, 30.0)).collect();
        assert!(verdict(&flat, 5).iter().all(|g| g.ok));
        let leak: Vec<Sample> = (1..=20).map(|i| s(i, 30.0 + i as f64 * 2.0)).collect();
        let v = verdict(&leak, 5);
        assert!(!v.iter().find(|g| g.metric == "sidecar RSS").unwrap().ok);
        let (steady, last) = windows(&leak, 5).unwrap();
        assert_eq!((steady[0].index, steady.len()), (6, 5));
        assert_eq!((last[0].index, last.len()), (16, 5));
        assert!(windows(&leak[..6], 5).is_none());
    }
}
