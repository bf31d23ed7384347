//! `switchboard-load`: drives a real `switchboard serve` process over gRPC with N concurrent
//! clients, with the providers emulated in-process and the state in a real Redis, and measures,
//! in the same run, the limits that bound the numbers: an empty gRPC service, raw Redis EVALSHA,
//! and the provider emulator's own latency. See `docs/performance.md`.

mod chaos;
mod client;
mod drill;
mod empty;
mod emulator;
mod harness;
mod ledger;
mod numbers;
mod prefill;
mod procstat;
mod redis;
mod report;
mod sidecar;
mod soak;
mod stats;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::client::Client;
use crate::emulator::{Behaviour, Emulator};
use crate::harness::random_hex;
use crate::report::{Level, RunInfo};
use crate::sidecar::{Hashing, Sidecar, Spec, Tuning};
use crate::stats::{Op, Stats};
use crate::workload::{Ctx, Limits, Mix, Pool, Stop};

#[derive(Parser)]
#[command(
    name = "switchboard-load",
    version,
    about = "Load generator and performance report for the switchboard sidecar"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole measurement: Redis, provider emulator, sidecar(s), references, sweep, report.
    Run(Box<RunArgs>),
    /// The empty gRPC reference service (started by `run` as its own process).
    EmptyServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: String,
    },
    /// The fraud drill: normal traffic and two kinds of SMS pumping against a sidecar on its
    /// embedded defaults, over HTTP; exits non-zero when a target is missed.
    Drill(DrillArgs),
    /// The chaos run: steady load through two sidecars on a Redis Cluster with replicas while
    /// a master is killed, a sidecar is killed, Redis is paused and the providers fail; exits
    /// non-zero on a double approval, an approval past expiry or the attempt budget, a resend
    /// budget exceeded, a lost verification, or a phase that does not recover.
    Chaos(Box<chaos::ChaosArgs>),
    /// The soak: the mixed load at a steady pace for `--minutes` against one sidecar and one
    /// Redis, sampling RSS, file descriptors, Redis memory and latency percentiles each
    /// minute; exits non-zero on a correctness violation or on growth after the steady state.
    Soak(Box<soak::SoakArgs>),
    /// Only the provider emulator, for trying it by hand (`curl`). Stops on Ctrl-C.
    Emulator {
        /// Per-channel latency: `sms=fixed:0,whatsapp=lognormal:40:0.5`.
        #[arg(long, default_value = "")]
        latency: String,
        /// Per-channel failures: `whatsapp=0.10:131026`.
        #[arg(long, default_value = "")]
        fail: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    Grpc,
    Http,
}

#[derive(Parser, Clone, Debug)]
struct DrillArgs {
    /// Sends of normal traffic (ES, BR, GB, DE, MX, IN; 70% checked with the right code).
    #[arg(long, default_value_t = 2_000)]
    normal: usize,
    /// Sends of concentrated pumping (one prefix of FR, 500 rotating IPs, never checked).
    #[arg(long, default_value_t = 10_000)]
    concentrated: usize,
    /// Sends of spread pumping (500 prefixes of IT, 2,000 rotating IPs, never checked).
    #[arg(long, default_value_t = 10_000)]
    spread: usize,
    /// Fraud mode of the sidecar; several (`enforce,shadow`) run one drill each.
    #[arg(long, default_value = "enforce", value_delimiter = ',')]
    mode: Vec<String>,
    /// The `switchboard` binary (default: next to this one, i.e. target/release/switchboard).
    #[arg(long)]
    sidecar_bin: Option<PathBuf>,
    /// Seconds over which each class's sends are spread, interleaved.
    #[arg(long, default_value_t = 120.0)]
    duration: f64,
    /// Seconds between a normal send's answer and its check.
    #[arg(long, default_value_t = 3.0)]
    check_delay: f64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Parser, Clone, Debug)]
struct RunArgs {
    /// The API the clients use (the empty reference is always gRPC).
    #[arg(long, value_enum, default_value = "grpc")]
    api: Api,
    /// The `switchboard` binary (default: next to this one, i.e. target/release/switchboard).
    #[arg(long)]
    sidecar_bin: Option<PathBuf>,
    /// Use this Redis (`redis://host:port`) instead of starting one.
    #[arg(long)]
    redis_url: Option<String>,
    /// Pairs in flight (concurrent clients) of the sweep.
    #[arg(long, default_value = "1,8,32,64,128", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Seconds per sweep level.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Sessions per sweep level instead of a duration (`--duration` then caps the level).
    #[arg(long)]
    count: Option<u64>,
    /// Seconds of unmeasured warm-up before each sidecar's sweep.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Session mix of the sweep (pair, wrong, exhaust, resend, double, concurrent, lookup,
    /// overlimit).
    #[arg(long, default_value = "pair=100")]
    mix: String,
    /// Session mix of the mixed phase.
    #[arg(
        long,
        default_value = "pair=56,wrong=8,exhaust=4,resend=8,double=6,concurrent=4,lookup=10,overlimit=4"
    )]
    mixed_mix: String,
    #[arg(long, default_value_t = 64)]
    mixed_concurrency: usize,
    /// Seconds of the mixed phase (0: skip it).
    #[arg(long, default_value_t = 30.0)]
    mixed_duration: f64,
    /// Expiry probes in flight during the mixed phase (short-validity application).
    #[arg(long, default_value_t = 4)]
    expiry_probes: usize,
    /// Validity of the expiry application's codes, seconds.
    #[arg(long, default_value_t = 2)]
    expiry_validity: u64,
    /// Code hashing schemes, one sidecar run each.
    #[arg(long, default_value = "argon2id,hmac-sha256", value_delimiter = ',')]
    hashing: Vec<String>,
    /// Distinct numbers of the load (each allows 1 + max_resends sends).
    #[arg(long, default_value_t = 400_000)]
    population: usize,
    /// Country weights of the population.
    #[arg(long, default_value = "ES=20,BR=20,GB=15,DE=15,MX=15,IN=15")]
    countries: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Provider latency per channel: fixed:MS, uniform:LO:HI, lognormal:MEDIAN:SIGMA.
    #[arg(long, default_value = "sms=fixed:0,whatsapp=fixed:0")]
    latency: String,
    /// Provider failures per channel, RATE:CODE (131026: not on WhatsApp → fallback to SMS).
    #[arg(long, default_value = "whatsapp=0.10:131026")]
    fail: String,
    /// Also run a phase with this provider latency ("" to skip): engine-added latency when the
    /// provider, not the CPU, is the slow part.
    #[arg(long, default_value = "sms=lognormal:40:0.5,whatsapp=lognormal:60:0.5")]
    provider_latency: String,
    #[arg(long, default_value = "64,256", value_delimiter = ',')]
    provider_latency_concurrency: Vec<usize>,
    #[arg(long, default_value_t = 15.0)]
    provider_latency_duration: f64,
    /// Numbers whose verification state is pre-filled in Redis before the load (0: none).
    #[arg(long, default_value_t = 1_000_000)]
    prefill: usize,
    #[arg(long, default_value_t = 256)]
    prefill_in_flight: usize,
    /// HTTP/2 connections the clients share (and the empty reference's).
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Seconds per level of the empty-service reference (0: skip).
    #[arg(long, default_value_t = 8.0)]
    empty_duration: f64,
    /// Requests of the redis-benchmark EVALSHA reference (0: skip).
    #[arg(long, default_value_t = 300_000)]
    redis_bench_requests: usize,
    #[arg(long, default_value_t = 64)]
    redis_bench_clients: usize,
    /// `RUST_LOG` of the sidecar.
    #[arg(long, default_value = "warn")]
    sidecar_log: String,
    /// Extra environment of the sidecar process, `KEY=VALUE` (repeatable), e.g. for diagnosis.
    #[arg(long)]
    sidecar_env: Vec<String>,
    #[arg(long, default_value_t = 300)]
    validity_secs: u64,
    #[arg(long, default_value_t = 2)]
    max_attempts: u32,
    #[arg(long, default_value_t = 2)]
    max_resends: u32,
    /// Directory of results.csv, counts.csv, results.md and the plot.
    #[arg(long, default_value = "load/results")]
    out: PathBuf,
    /// TrueType font for the plot's text.
    #[arg(long)]
    font: Option<PathBuf>,
    /// Where the generated sidecar configs and logs go (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// A short smoke run: 3 levels of 3 s, small population and pre-fill.
    #[arg(long)]
    quick: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::EmptyServer { addr } => empty::serve(&addr),
        Command::Emulator { latency, fail } => {
            let mut b = Behaviour::default();
            b.set_latency(&latency)?;
            b.set_failures(&fail)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let emu = Emulator::new(b.clone());
                let addr = emu.serve().await?;
                println!("provider emulator on http://{addr} — {}", b.describe());
                println!(
                    "twilio: POST /2010-04-01/Accounts/{}/Messages.json; meta: POST /v23.0/{}/messages",
                    emulator::TWILIO_SID,
                    emulator::META_PHONE_NUMBER_ID
                );
                tokio::signal::ctrl_c().await?;
                Ok(())
            })
        }
        Command::Chaos(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(chaos::run(*args))
        }
        Command::Soak(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(soak::run(*args))
        }
        Command::Drill(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(drill_command(args))
        }
        Command::Run(args) => {
            let mut args = *args;
            if args.quick {
                args.concurrency = vec![1, 8, 64];
                args.duration = 3.0;
                args.warmup = 1.0;
                args.mixed_duration = 6.0;
                args.population = 60_000;
                args.prefill = args.prefill.min(20_000);
                args.empty_duration = 2.0;
                args.redis_bench_requests = args.redis_bench_requests.min(50_000);
                args.provider_latency_duration = 3.0;
            }
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()?;
            rt.block_on(run(args))
        }
    }
}

async fn drill_command(args: DrillArgs) -> anyhow::Result<()> {
    let bin = harness::sidecar_bin(args.sidecar_bin.as_ref())?;
    let mut missed = 0;
    for mode in &args.mode {
        let opts = drill::Options {
            bin: bin.clone(),
            mode: drill::Mode::parse(mode)?,
            normal: args.normal,
            concentrated: args.concentrated,
            spread: args.spread,
            duration: Duration::from_secs_f64(args.duration),
            check_delay: Duration::from_secs_f64(args.check_delay),
            concurrency: args.concurrency,
            seed: args.seed,
        };
        let report = drill::run(&opts).await?;
        println!("{}", report.render());
        missed += report.misses().len();
    }
    if missed > 0 {
        bail!("{missed} drill targets missed");
    }
    Ok(())
}

fn machine_info(info: &mut RunInfo) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("?", |(_, m)| m.trim())
        .to_owned();
    let mhz = cpu
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split_once(':'))
        .map_or(String::new(), |(_, m)| format!(" @ {} MHz", m.trim()));
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or("?".to_owned(), |k| {
            format!("{:.1} GiB", k / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    info.add(
        "machine",
        format!(
            "{nproc} cores (nproc), {model}{mhz}, {mem} RAM, Linux {}",
            kernel.trim()
        ),
    );
    info.add("load average at start", loadavg());
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counters read before a level, to take differences after it.
struct Before {
    server_cpu: Option<f64>,
    redis_cpu: Option<f64>,
    evalsha: Option<u64>,
    set: Option<u64>,
    redis_commands: Option<u64>,
    generator_cpu: f64,
    machine: Option<(f64, f64)>,
}

fn before(server: Option<u32>, redis: &redis::Endpoint) -> Before {
    if let Some(pid) = server {
        procstat::reset_peak_rss(pid);
    }
    let calls = redis.command_calls().ok();
    Before {
        server_cpu: server.and_then(procstat::cpu_seconds),
        redis_cpu: redis.cpu_seconds().ok(),
        evalsha: calls
            .as_ref()
            .map(|c| c.get("evalsha").copied().unwrap_or(0)),
        set: calls.as_ref().map(|c| c.get("set").copied().unwrap_or(0)),
        redis_commands: redis.total_commands().ok(),
        generator_cpu: procstat::self_cpu_seconds(),
        machine: procstat::machine_cpu_seconds(),
    }
}

#[allow(clippy::too_many_arguments)]
fn after(
    b: Before,
    server: Option<u32>,
    redis: &redis::Endpoint,
    phase: &str,
    hashing: &str,
    concurrency: usize,
    stats: Stats,
    wall: Duration,
) -> Level {
    let server_cpu_s = server
        .and_then(procstat::cpu_seconds)
        .zip(b.server_cpu)
        .map(|(a, b)| a - b);
    let redis_cpu_s = redis
        .cpu_seconds()
        .ok()
        .zip(b.redis_cpu)
        .map(|(a, b)| a - b);
    let calls = redis.command_calls().ok();
    let delta = |name: &str, before: Option<u64>| {
        calls
            .as_ref()
            .map(|c| c.get(name).copied().unwrap_or(0))
            .zip(before)
            .map(|(a, b)| a.saturating_sub(b))
    };
    let evalsha = delta("evalsha", b.evalsha);
    let set = delta("set", b.set);
    let redis_commands = redis
        .total_commands()
        .ok()
        .zip(b.redis_commands)
        .map(|(a, b)| a.saturating_sub(b));
    let generator_cpu_s = procstat::self_cpu_seconds() - b.generator_cpu;
    let machine = procstat::machine_cpu_seconds()
        .zip(b.machine)
        .map(|((busy, steal), (busy0, steal0))| (busy - busy0, steal - steal0));
    let other_cpu_s = machine.map(|(busy, _)| {
        (busy - server_cpu_s.unwrap_or(0.0) - redis_cpu_s.unwrap_or(0.0) - generator_cpu_s).max(0.0)
    });
    Level {
        phase: phase.to_owned(),
        hashing: hashing.to_owned(),
        concurrency,
        wall,
        stats,
        server_cpu_s,
        server_peak_rss_mib: server.and_then(procstat::peak_rss_mib),
        redis_cpu_s,
        generator_cpu_s,
        evalsha,
        set,
        redis_commands,
        other_cpu_s,
        steal_s: machine.map(|(_, s)| s),
        server_threads: server.and_then(procstat::threads),
        handler_mean_ms: Default::default(),
    }
}

fn progress(l: &Level) {
    let send = l.stats.summary(Op::Send);
    let check = l.stats.summary(Op::Check);
    let call = l.stats.summary(Op::Call);
    if l.phase.starts_with("empty") || l.phase == "sidecar-health" {
        eprintln!(
            "  {:<16} ×{:<4} {:>8.0} RPC/s  p50 {:.2} ms  p99 {:.2} ms  server {:.2} cores  other {:.2} cores",
            l.phase,
            l.concurrency,
            l.rpc_per_s(),
            call.p50,
            call.p99,
            l.server_cores().unwrap_or(0.0),
            l.other_cpu_s.unwrap_or(0.0) / l.secs(),
        );
        return;
    }
    eprintln!(
        "  {:<16} {:<11} ×{:<4} {:>7.0} pairs/s {:>7.0} RPC/s  send p50/p99 {:.2}/{:.2} ms  check p50/p99 {:.2}/{:.2} ms  errors {}  violations {}  sidecar {:.2} cores, peak {:.1} MiB, {} threads  redis {:.2}  generator {:.2}  other {:.2} cores",
        l.phase,
        l.hashing,
        l.concurrency,
        l.pairs_per_s(),
        l.rpc_per_s(),
        send.p50,
        send.p99,
        check.p50,
        check.p99,
        l.stats.total_errors(),
        l.stats.total_violations(),
        l.server_cores().unwrap_or(0.0),
        l.server_peak_rss_mib.unwrap_or(0.0),
        l.server_threads.unwrap_or(0),
        l.redis_cpu_s.unwrap_or(0.0) / l.secs(),
        l.generator_cpu_s / l.secs(),
        l.other_cpu_s.unwrap_or(0.0) / l.secs(),
    );
}

/// The sidecar's `request_duration_seconds` sums and counts, by `api/method`.
async fn handler_times(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
) -> BTreeMap<String, (f64, f64)> {
    let Ok(resp) = http.get(format!("http://{addr}/metrics")).send().await else {
        return BTreeMap::new();
    };
    let text = resp.text().await.unwrap_or_default();
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        // The registry may prefix names (`switchboard_request_duration_seconds_sum{...}`).
        let line = line
            .find("request_duration_seconds_")
            .map_or(line, |i| &line[i..]);
        let (is_sum, rest) = if let Some(r) = line.strip_prefix("request_duration_seconds_sum{") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("request_duration_seconds_count{") {
            (false, r)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_ascii_lowercase())
                .unwrap_or_default()
        };
        let key = format!("{}/{}", label("api"), label("method"));
        let v: f64 = value.trim().parse().unwrap_or(0.0);
        let e = out.entry(key).or_default();
        if is_sum {
            e.0 = v;
        } else {
            e.1 = v;
        }
    }
    out
}

/// Mean ms per `api/method` between two scrapes.
fn handler_means(
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, (sum, count))| {
            let (s0, c0) = before.get(k).copied().unwrap_or_default();
            let n = count - c0;
            (n > 0.0).then(|| (k.clone(), (sum - s0) * 1000.0 / n))
        })
        .collect()
}

/// Drives the empty reference service at every concurrency of the sweep.
async fn empty_reference(
    args: &RunArgs,
    redis: &redis::Endpoint,
    phase: &str,
    levels: &mut Vec<Level>,
) -> anyhow::Result<()> {
    let server = empty::EmptyServer::start()?;
    let channels = client::connect(server.addr, args.connections).await?;
    eprintln!("empty gRPC service reference (pid {}):", server.pid);
    let _ = workload::run_empty(&channels, 8, Duration::from_secs(1)).await;
    for &c in &args.concurrency {
        let b = before(Some(server.pid), redis);
        let (stats, wall) =
            workload::run_empty(&channels, c, Duration::from_secs_f64(args.empty_duration)).await;
        let l = after(b, Some(server.pid), redis, phase, "-", c, stats, wall);
        progress(&l);
        levels.push(l);
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut info = RunInfo::default();
    machine_info(&mut info);
    info.add("command", std::env::args().collect::<Vec<_>>().join(" "));
    let hashings: Vec<Hashing> = args
        .hashing
        .iter()
        .map(|h| Hashing::parse(h))
        .collect::<Result<_, _>>()?;
    if hashings.is_empty() {
        bail!("--hashing names no scheme");
    }
    let sidecar_bin = harness::sidecar_bin(args.sidecar_bin.as_ref())?;
    std::fs::create_dir_all(&args.out)?;
    let tmp = tempfile::tempdir()?;
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_owned());

    // Redis.
    let (_redis_server, redis) = match &args.redis_url {
        Some(url) => (None, redis::Endpoint::from_url(url)?),
        None => {
            let s = redis::start_server();
            let e = redis::Endpoint::from_url(&s.url())?;
            (Some(s), e)
        }
    };
    info.add(
        "redis",
        format!(
            "redis-server {} at {}{}",
            redis.version(),
            redis.url,
            if args.redis_url.is_some() {
                " (given)"
            } else {
                " (started by the tool: --save \"\" --appendonly no)"
            }
        ),
    );

    // Provider emulator.
    let mut behaviour = Behaviour::default();
    behaviour.set_latency(&args.latency)?;
    behaviour.set_failures(&args.fail)?;
    let emu = Emulator::new(behaviour.clone());
    let emu_addr = emu.serve().await?;
    info.add("provider emulator", behaviour.describe());

    // Population.
    let weights = numbers::parse_weights(&args.countries)?;
    let t = Instant::now();
    let probe_numbers = if args.mixed_duration > 0.0 {
        (args.expiry_probes * 50).max(1)
    } else {
        0
    };
    let pop = numbers::generate(args.population + probe_numbers, &weights, args.seed);
    info.add(
        "population",
        format!(
            "{} distinct valid mobiles ({}), {} candidates rejected (invalid, or on the shipped disposable list), generated in {:.1} s",
            pop.numbers.len(),
            pop.by_country
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            pop.rejected,
            t.elapsed().as_secs_f64()
        ),
    );
    eprintln!("population ready: {} numbers", pop.numbers.len());
    let numbers = Arc::new(pop.numbers);
    let mut levels: Vec<Level> = Vec::new();

    // Reference (a): the empty gRPC service, its own process; measured before the sidecar runs
    // and again after them (the report compares with the better of the two).
    if args.empty_duration > 0.0 {
        empty_reference(&args, &redis, "empty-grpc", &mut levels).await?;
    }

    // Phases of the HTTP API are named `http-…`.
    let phase = |p: &str| match args.api {
        Api::Grpc => p.to_owned(),
        Api::Http => format!("http-{p}"),
    };
    info.add("API driven", format!("{:?}", args.api).to_lowercase());
    let api_key = random_hex(24);
    let expiry_api_key = random_hex(24);
    let limits = Limits {
        validity: Duration::from_secs(args.validity_secs),
        max_attempts: args.max_attempts,
    };
    for (si, &hashing) in hashings.iter().enumerate() {
        let spec = Spec {
            name: hashing.name().to_owned(),
            bin: sidecar_bin.clone(),
            work_dir: work_dir.clone(),
            redis_url: redis.url.clone(),
            key_prefix: format!("sbload{}-{}", std::process::id(), hashing.name()),
            hashing,
            emulator: emu_addr,
            pepper: random_hex(32),
            api_key: api_key.clone(),
            expiry_api_key: expiry_api_key.clone(),
            expiry_validity_secs: args.expiry_validity,
            validity_secs: args.validity_secs,
            max_attempts: args.max_attempts,
            max_resends: args.max_resends,
            log_filter: args.sidecar_log.clone(),
            env: args
                .sidecar_env
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .with_context(|| format!("--sidecar-env {kv}: expected KEY=VALUE"))
                })
                .collect::<Result<_, _>>()?,
            tuning: Tuning::default(),
        };
        let sidecar = Sidecar::start(&spec)?;
        let pid = sidecar.pid;
        eprintln!(
            "sidecar ({}) pid {pid}, gRPC {}, config {}",
            hashing.name(),
            sidecar.grpc_addr,
            sidecar.config_path.display()
        );
        info.add(
            format!("sidecar {} log level", hashing.name()),
            format!(
                "RUST_LOG={}{}",
                args.sidecar_log,
                args.sidecar_env
                    .iter()
                    .map(|e| format!(", {e}"))
                    .collect::<String>()
            ),
        );
        info.add(
            format!("sidecar {} RSS at start", hashing.name()),
            format!("{:.1} MiB", procstat::rss_mib(pid).unwrap_or(0.0)),
        );

        // Memory: the verification state of many numbers, in the store the sidecar uses.
        if si == 0 && args.prefill > 0 {
            let mem0 = redis.used_memory_mib().unwrap_or(0.0);
            let p = prefill::prefill(
                &redis.url,
                &spec.key_prefix,
                args.prefill,
                args.prefill_in_flight,
                Duration::from_secs(3600),
            )
            .await?;
            let mem1 = redis.used_memory_mib().unwrap_or(0.0);
            let msg = format!(
                "{} numbers' state (pending verification + resend window, 1 h validity) written with Store::reserve_send (the real Lua script), {} in flight, in {:.1} s ({:.0}/s); Redis used_memory {:.0} → {:.0} MiB, {} keys",
                p.numbers,
                args.prefill_in_flight,
                p.elapsed.as_secs_f64(),
                p.numbers as f64 / p.elapsed.as_secs_f64(),
                mem0,
                mem1,
                redis.dbsize().unwrap_or(0)
            );
            eprintln!("pre-fill: {msg}");
            info.add("pre-fill", msg);
        }
        // Reference (b): raw EVALSHA on the same Redis, after the pre-fill.
        if si == 0 && args.redis_bench_requests > 0 {
            let b = redis.cpu_seconds().ok();
            let t = Instant::now();
            let raw = redis.raw_evalsha(args.redis_bench_clients, args.redis_bench_requests)?;
            let cpu = redis.cpu_seconds().ok().zip(b).map(|(a, b)| a - b);
            let msg = format!(
                "{raw:.0} EVALSHA/s (check script, {} clients, {} requests, {:.1} s; Redis CPU {:.1} µs per EVALSHA)",
                args.redis_bench_clients,
                args.redis_bench_requests,
                t.elapsed().as_secs_f64(),
                cpu.map_or(0.0, |c| c * 1e6 / args.redis_bench_requests as f64),
            );
            eprintln!("redis-benchmark: {msg}");
            info.add("raw Redis (redis-benchmark)", msg);
            info.add("raw_evalsha_per_s", format!("{raw:.0}"));
        }

        let channels = client::connect(sidecar.grpc_addr, args.connections).await?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()?;
        let clients: Vec<Client> = match args.api {
            Api::Grpc => channels
                .iter()
                .map(|c| Client::grpc(c.clone(), &api_key))
                .collect::<Result<_, _>>()?,
            Api::Http => vec![Client::http(http.clone(), sidecar.http_addr, &api_key)],
        };
        let allowance = args.max_resends + 1;
        let pool = Arc::new(Pool::new(
            numbers.clone(),
            probe_numbers..numbers.len(),
            allowance,
            (args.population / 50).min(10_000),
        ));
        let make_ctx = |mix: &str| -> anyhow::Result<Arc<Ctx>> {
            Ok(Arc::new(Ctx {
                clients: clients.clone(),
                emulator: emu.clone(),
                pool: pool.clone(),
                mix: Mix::parse(mix)?,
                limits,
                lookup_numbers: numbers.clone(),
                pace: None,
            }))
        };
        let sweep = make_ctx(&args.mix)?;
        emu.clear();
        if args.warmup > 0.0 {
            let c = args.concurrency.iter().copied().max().unwrap_or(64);
            let _ = workload::run_level(
                sweep.clone(),
                c,
                Stop::After(Duration::from_secs_f64(args.warmup)),
            )
            .await;
        }
        eprintln!("sweep ({}):", hashing.name());
        for &c in &args.concurrency {
            let stop = match args.count {
                Some(n) => Stop::Count(n, Duration::from_secs_f64(args.duration.max(600.0))),
                None => Stop::After(Duration::from_secs_f64(args.duration)),
            };
            let m = handler_times(&http, sidecar.http_addr).await;
            let b = before(Some(pid), &redis);
            let (stats, wall) = workload::run_level(sweep.clone(), c, stop).await;
            let mut l = after(
                b,
                Some(pid),
                &redis,
                &phase("sweep"),
                hashing.name(),
                c,
                stats,
                wall,
            );
            l.handler_mean_ms = handler_means(&m, &handler_times(&http, sidecar.http_addr).await);
            progress(&l);
            levels.push(l);
        }

        if args.mixed_duration > 0.0 {
            let mixed = make_ctx(&args.mixed_mix)?;
            let d = Duration::from_secs_f64(args.mixed_duration);
            let probe_pool = Arc::new(Pool::new(numbers.clone(), 0..probe_numbers, allowance, 0));
            let expiry_client = match args.api {
                Api::Grpc => Client::grpc(channels[0].clone(), &expiry_api_key)?,
                Api::Http => Client::http(http.clone(), sidecar.http_addr, &expiry_api_key),
            };
            let m = handler_times(&http, sidecar.http_addr).await;
            let b = before(Some(pid), &redis);
            let probes = tokio::spawn(workload::expiry_probes(
                expiry_client,
                emu.clone(),
                probe_pool,
                Duration::from_secs(args.expiry_validity),
                Instant::now() + d,
                args.expiry_probes,
            ));
            let (mut stats, wall) =
                workload::run_level(mixed, args.mixed_concurrency, Stop::After(d)).await;
            if let Ok(p) = probes.await {
                stats.merge(&p);
            }
            let mut l = after(
                b,
                Some(pid),
                &redis,
                &phase("mixed"),
                hashing.name(),
                args.mixed_concurrency,
                stats,
                wall,
            );
            l.handler_mean_ms = handler_means(&m, &handler_times(&http, sidecar.http_addr).await);
            progress(&l);
            levels.push(l);
        }

        if !args.provider_latency.is_empty() {
            let spec = &args.provider_latency;
            let mut slow = behaviour.clone();
            slow.set_latency(spec)?;
            emu.set_behaviour(slow.clone());
            if si == 0 {
                info.add("provider-latency phase", slow.describe());
            }
            for &c in &args.provider_latency_concurrency {
                let m = handler_times(&http, sidecar.http_addr).await;
                let b = before(Some(pid), &redis);
                let (stats, wall) = workload::run_level(
                    sweep.clone(),
                    c,
                    Stop::After(Duration::from_secs_f64(args.provider_latency_duration)),
                )
                .await;
                let mut l = after(
                    b,
                    Some(pid),
                    &redis,
                    &phase("provider-latency"),
                    hashing.name(),
                    c,
                    stats,
                    wall,
                );
                l.handler_mean_ms =
                    handler_means(&m, &handler_times(&http, sidecar.http_addr).await);
                progress(&l);
                levels.push(l);
            }
            emu.set_behaviour(behaviour.clone());
        }

        // The sidecar's own health Check, at the sweep's largest concurrency: its server stack
        // with nothing behind it.
        if args.empty_duration > 0.0 {
            let c = args.concurrency.iter().copied().max().unwrap_or(64).min(64);
            let b = before(Some(pid), &redis);
            let (stats, wall) =
                workload::run_empty(&channels, c, Duration::from_secs_f64(args.empty_duration))
                    .await;
            if stats.total_errors() == 0 {
                let l = after(
                    b,
                    Some(pid),
                    &redis,
                    "sidecar-health",
                    hashing.name(),
                    c,
                    stats,
                    wall,
                );
                progress(&l);
                levels.push(l);
            }
        }
        info.add(
            format!(
                "sidecar {} peak RSS over its whole run (VmHWM)",
                hashing.name()
            ),
            format!(
                "{:.1} MiB (process lifetime; per-level peaks in the table)",
                // The per-level reset leaves VmHWM at the last level's peak: take the max.
                levels
                    .iter()
                    .filter(|l| l.hashing == hashing.name())
                    .filter_map(|l| l.server_peak_rss_mib)
                    .fold(procstat::peak_rss_mib(pid).unwrap_or(0.0), f64::max)
            ),
        );
        info.add(
            format!(
                "numbers with send budget left after the {} run",
                hashing.name()
            ),
            format!("{} of {}", pool.fresh_len(), numbers.len() - probe_numbers),
        );
        drop(channels);
        sidecar.stop();
    }

    if args.empty_duration > 0.0 {
        empty_reference(&args, &redis, "empty-grpc-end", &mut levels).await?;
    }
    let c = &emu.counters;
    info.add(
        "emulator requests",
        format!(
            "twilio {} ok / {} failed, meta_whatsapp {} ok / {} failed, {} rejected as malformed",
            c.twilio_ok.load(std::sync::atomic::Ordering::Relaxed),
            c.twilio_failed.load(std::sync::atomic::Ordering::Relaxed),
            c.meta_ok.load(std::sync::atomic::Ordering::Relaxed),
            c.meta_failed.load(std::sync::atomic::Ordering::Relaxed),
            c.rejected.load(std::sync::atomic::Ordering::Relaxed),
        ),
    );
    info.add("load average at end", loadavg());
    info.add(
        "total run time",
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    );

    report::write_csv(&args.out.join("results.csv"), &levels)?;
    report::write_counts_csv(&args.out.join("counts.csv"), &levels)?;
    let md = report::markdown(&levels, &info);
    std::fs::write(args.out.join("results.md"), &md)?;
    let title = format!(
        "switchboard sidecar over gRPC with Redis — {} cores shared by generator, sidecar and Redis",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if let Err(e) = report::plot(
        &args.out.join("latency_throughput"),
        &levels,
        &title,
        args.font.as_deref(),
    ) {
        eprintln!("plot not written: {e:#}");
    }
    println!("{md}");
    eprintln!("results in {}", args.out.display());
    let violations: u64 = levels.iter().map(|l| l.stats.total_violations()).sum();
    if violations > 0 {
        bail!("{violations} correctness violations");
    }
    Ok(())
}
