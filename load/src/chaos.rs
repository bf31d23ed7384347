//! `switchboard-load chaos`: steady send/check load through two sidecars sharing a Redis
//! Cluster of 3 masters with one replica each, and one fault per phase:
//!
//! - `master`: a master is killed (SIGKILL) and its replica takes over;
//! - `sidecar`: one sidecar is killed (SIGKILL) and started again on the same ports;
//! - `pause`: every Redis node is stopped (SIGSTOP) for longer than the store's command
//!   timeout, then continued;
//! - `provider`: the providers answer after the adapters' timeout for a while, then reset
//!   every connection for a while, then recover.
//!
//! The workload judges each session as `run` does (double approvals, attempt budget, resend
//! budget, expiry, through the expiry probes), and the clients keep a [`Ledger`] of what they
//! were told. After each phase the audit asks a sidecar for every verification a send said
//! was sent in that phase (`GetVerification` by id): one it does not know is lost. Errors
//! during a fault are expected (the store fails closed) and counted; the time to recover is
//! measured from the fault's injection (its end for the pause and the provider outage) to the
//! end of the last 1-s window in which less than `--target` of the calls were answered.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;

use crate::client::{self, Client};
use crate::emulator::Fault;
use crate::harness::{Common, Rig};
use crate::ledger::{self, Ledger, TICK};
use crate::redis::RedisCluster;
use crate::sidecar::{Sidecar, Spec, Tuning};
use crate::stats::Stats;
use crate::workload::{self, Stop};

#[derive(clap::Args, Clone, Debug)]
pub struct ChaosArgs {
    #[command(flatten)]
    pub common: Common,
    /// Faults, one phase each, in order: master, sidecar, pause, provider.
    #[arg(
        long,
        default_value = "master,sidecar,pause,provider",
        value_delimiter = ','
    )]
    pub faults: Vec<String>,
    /// Seconds of load before each fault.
    #[arg(long, default_value_t = 8.0)]
    pub before: f64,
    /// Seconds of load after each fault (after its end for pause and provider).
    #[arg(long, default_value_t = 25.0)]
    pub after: f64,
    /// `cluster-node-timeout` of the Redis nodes, ms (how soon a dead master is failed over).
    #[arg(long, default_value_t = 2000)]
    pub node_timeout_ms: u64,
    /// `store.command_timeout_ms` of the sidecars.
    #[arg(long, default_value_t = 250)]
    pub command_timeout_ms: u64,
    /// How long Redis stays stopped (above the command timeout, below the node timeout so
    /// no failover starts).
    #[arg(long, default_value_t = 1.5)]
    pub pause_secs: f64,
    /// `timeout_ms` of the emulated providers.
    #[arg(long, default_value_t = 1000)]
    pub provider_timeout_ms: u64,
    /// Seconds the providers answer late, then seconds they reset connections.
    #[arg(long, default_value_t = 6.0)]
    pub provider_slow_secs: f64,
    #[arg(long, default_value_t = 6.0)]
    pub provider_reset_secs: f64,
    /// Share of calls answered in a 1-s window that counts as recovered.
    #[arg(long, default_value_t = 0.99)]
    pub target: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    Master,
    Sidecar,
    Pause,
    Provider,
}

impl FaultKind {
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s.trim() {
            "master" => FaultKind::Master,
            "sidecar" => FaultKind::Sidecar,
            "pause" => FaultKind::Pause,
            "provider" => FaultKind::Provider,
            other => bail!("fault `{other}`: master, sidecar, pause or provider"),
        })
    }

    fn describe(self) -> &'static str {
        match self {
            FaultKind::Master => "(a) kill -9 a Redis master; its replica takes over",
            FaultKind::Sidecar => "(b) kill -9 one sidecar; start it again on its ports",
            FaultKind::Pause => "(c) SIGSTOP every Redis node, then SIGCONT",
            FaultKind::Provider => "(d) providers answer late, then reset connections",
        }
    }
}

/// What injecting a fault did.
struct Injected {
    /// Recovery is measured from here: the injection, or the fault's end.
    from: Instant,
    note: String,
}

/// The system under test.
struct World {
    rig: Rig,
    cluster: Arc<RedisCluster>,
    specs: Vec<Spec>,
    sidecars: Vec<Sidecar>,
    ledger: Arc<Ledger>,
}

/// One phase's findings.
struct PhaseReport {
    fault: FaultKind,
    note: String,
    stats: Stats,
    told: usize,
    lost: Vec<String>,
    /// Verifications answered `Approved` whose record says otherwise: id (number): status.
    approval_not_recorded: Vec<String>,
    double_approvals: usize,
    unaudited: usize,
    unavailable_calls: u64,
    recovery: Option<Duration>,
    /// Per second from the recovery's reference point: (answered, unavailable), while any
    /// call failed.
    timeline: Vec<(u64, u64)>,
}

impl PhaseReport {
    fn failures(&self) -> u64 {
        self.stats.total_violations()
            + self.lost.len() as u64
            + self.double_approvals as u64
            + u64::from(self.recovery.is_none())
    }
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    let faults: Vec<FaultKind> = args
        .faults
        .iter()
        .map(|f| FaultKind::parse(f))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut world = setup(&args).await?;
    let ledger = world.ledger.clone();
    let clients = clients(&world).await?;
    let ctx = world.rig.ctx(clients.clone(), None)?;
    let probe_pool = world.rig.probe_pool(None);
    let probe_channel = client::connect(world.sidecars[1].grpc_addr, 1).await?;
    let expiry_client = Client::grpc(probe_channel[0].clone(), &world.rig.expiry_api_key)?;
    let mut reports = Vec::new();
    for (i, &fault) in faults.iter().enumerate() {
        eprintln!("phase {}: {}", i + 1, fault.describe());
        ledger.set_phase(i);
        let phase_start = Instant::now();
        let fault_secs = match fault {
            FaultKind::Pause => args.pause_secs,
            FaultKind::Provider => args.provider_slow_secs + args.provider_reset_secs,
            _ => 0.0,
        };
        let length = Duration::from_secs_f64(args.before + fault_secs + args.after);
        let load = tokio::spawn(workload::run_level(
            ctx.clone(),
            args.common.concurrency,
            Stop::After(length),
        ));
        let probes = tokio::spawn(workload::expiry_probes(
            expiry_client.clone(),
            world.rig.emu.clone(),
            probe_pool.clone(),
            Duration::from_secs(args.common.expiry_validity),
            phase_start + length,
            args.common.expiry_probes,
        ));
        tokio::time::sleep(Duration::from_secs_f64(args.before)).await;
        let injected = inject(&mut world, &args, fault).await?;
        eprintln!("  {}", injected.note);
        let (mut stats, _) = load.await.context("load task")?;
        if let Ok(p) = probes.await {
            stats.merge(&p);
        }
        let end = Instant::now();
        let ticks = ledger.ticks(ledger.tick_of(injected.from), ledger.tick_of(end));
        let recovery = ledger::recovery_ticks(&ticks, args.target).map(|t| TICK * t as u32);
        let unavailable_calls = ledger
            .ticks(ledger.tick_of(phase_start), ledger.tick_of(end) + 1)
            .iter()
            .map(|t| t.1)
            .sum();
        let mut report = audit(
            &world,
            &clients,
            i,
            fault,
            injected.note,
            stats,
            recovery,
            unavailable_calls,
        )
        .await;
        report.timeline = per_second(&ticks);
        eprintln!("  {}", summary(&report));
        reports.push(report);
    }
    let over_budget = ledger
        .accepted
        .iter()
        .filter(|e| *e.value() > args.common.max_resends + 1)
        .count();
    let md = render(&args, &world, &reports, over_budget, started.elapsed());
    let path = args.common.out.join("chaos.md");
    std::fs::write(&path, &md)?;
    println!("{md}");
    eprintln!("chaos report in {}", path.display());
    let failures: u64 = reports.iter().map(PhaseReport::failures).sum::<u64>() + over_budget as u64;
    for s in world.sidecars.drain(..) {
        s.stop();
    }
    if failures > 0 {
        bail!("{failures} chaos failures (violations, lost verifications, phases not recovered)");
    }
    Ok(())
}

async fn setup(args: &ChaosArgs) -> anyhow::Result<World> {
    let rig = Rig::new(&args.common).await?;
    let node_timeout = args.node_timeout_ms;
    let cluster = tokio::task::spawn_blocking(move || RedisCluster::start_with(1, node_timeout))
        .await
        .context("start the Redis Cluster")?;
    let tuning = || Tuning {
        provider_timeout_ms: Some(args.provider_timeout_ms),
        command_timeout_ms: Some(args.command_timeout_ms),
        ..Tuning::default()
    };
    let specs: Vec<Spec> = ["a", "b"]
        .iter()
        .map(|n| rig.spec(&format!("chaos-{n}"), &cluster.url(), tuning()))
        .collect();
    let mut sidecars = Vec::new();
    for spec in &specs {
        let s = Sidecar::start(spec)?;
        eprintln!(
            "sidecar {} pid {}, gRPC {}, log {}",
            spec.name,
            s.pid,
            s.grpc_addr,
            s.log_path.display()
        );
        sidecars.push(s);
    }
    eprintln!("redis cluster {}", cluster.url());
    Ok(World {
        rig,
        cluster: Arc::new(cluster),
        specs,
        sidecars,
        ledger: Arc::new(Ledger::new()),
    })
}

/// Clients of both sidecars, alternating (worker `w` uses sidecar `w % 2`), writing to the
/// ledger.
async fn clients(world: &World) -> anyhow::Result<Vec<Client>> {
    let mut per: Vec<Vec<Client>> = Vec::new();
    for s in &world.sidecars {
        per.push(
            client::connect(s.grpc_addr, 2)
                .await?
                .into_iter()
                .map(|c| {
                    Client::grpc(c, &world.rig.api_key).map(|c| c.with_ledger(world.ledger.clone()))
                })
                .collect::<Result<_, _>>()?,
        );
    }
    let mut out = Vec::new();
    for i in 0..per[0].len() {
        for p in &per {
            out.push(p[i].clone());
        }
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("blocking task")?
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?
        .success();
    if !ok {
        bail!("kill {sig} {pid} failed");
    }
    Ok(())
}

async fn inject(world: &mut World, args: &ChaosArgs, fault: FaultKind) -> anyhow::Result<Injected> {
    let at = Instant::now();
    match fault {
        FaultKind::Master => {
            let cluster = world.cluster.clone();
            blocking(move || {
                let (port, took) = cluster.kill_master(Duration::from_secs(60));
                Ok(Injected {
                    from: at,
                    note: format!(
                        "master :{port} killed with SIGKILL; its replica was promoted and the cluster was ok again {:.1} s later",
                        took.as_secs_f64()
                    ),
                })
            })
            .await
        }
        FaultKind::Sidecar => {
            let old = world.sidecars.remove(0);
            old.kill9()?;
            let killed = Instant::now();
            let spec = world.specs[0].clone();
            let (grpc, http) = (old.grpc_addr.port(), old.http_addr.port());
            drop(old);
            let new = blocking(move || Sidecar::start_on(&spec, grpc, http)).await?;
            let note = format!(
                "sidecar {} killed with SIGKILL; restarted on its ports, listening {:.1} s later (pid {})",
                world.specs[0].name,
                killed.elapsed().as_secs_f64(),
                new.pid
            );
            world.sidecars.insert(0, new);
            Ok(Injected { from: at, note })
        }
        FaultKind::Pause => {
            let cluster = world.cluster.clone();
            let pause = Duration::from_secs_f64(args.pause_secs);
            let command_timeout = args.command_timeout_ms;
            blocking(move || {
                let pids: Vec<u32> = cluster
                    .nodes
                    .iter()
                    .filter_map(|n| cluster.pid(n.port))
                    .collect();
                for &p in &pids {
                    signal(p, "-STOP")?;
                }
                std::thread::sleep(pause);
                for &p in &pids {
                    signal(p, "-CONT")?;
                }
                Ok(Injected {
                    from: Instant::now(),
                    note: format!(
                        "{} Redis nodes stopped for {:.1} s (command timeout {} ms); recovery counted from SIGCONT",
                        pids.len(),
                        pause.as_secs_f64(),
                        command_timeout
                    ),
                })
            })
            .await
        }
        FaultKind::Provider => {
            let emu = world.rig.emu.clone();
            let late = Duration::from_millis(args.provider_timeout_ms * 3);
            emu.set_fault(Fault::Slow(late));
            tokio::time::sleep(Duration::from_secs_f64(args.provider_slow_secs)).await;
            emu.set_fault(Fault::Reset);
            tokio::time::sleep(Duration::from_secs_f64(args.provider_reset_secs)).await;
            emu.set_fault(Fault::None);
            Ok(Injected {
                from: Instant::now(),
                note: format!(
                    "providers answered after {} ms (adapter timeout {} ms) for {:.0} s, then reset every connection for {:.0} s; recovery counted from their return",
                    late.as_millis(),
                    args.provider_timeout_ms,
                    args.provider_slow_secs,
                    args.provider_reset_secs
                ),
            })
        }
    }
}

/// Asks the sidecars for every verification a send of phase `phase` said was sent.
#[allow(clippy::too_many_arguments)]
async fn audit(
    world: &World,
    clients: &[Client],
    phase: usize,
    fault: FaultKind,
    note: String,
    stats: Stats,
    recovery: Option<Duration>,
    unavailable_calls: u64,
) -> PhaseReport {
    let told: Vec<(String, u32)> = world
        .ledger
        .verifications
        .iter()
        .filter(|e| e.phase == phase)
        .map(|e| {
            (
                e.key().clone(),
                e.approvals.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
        .collect();
    let number_of = |id: &str| {
        world
            .ledger
            .verifications
            .get(id)
            .map(|e| e.number.clone())
            .unwrap_or_default()
    };
    let double_approvals = told.iter().filter(|(_, a)| *a > 1).count();
    let answers: Vec<(String, u32, Option<Option<String>>)> =
        futures::stream::iter(told.into_iter().enumerate())
            .map(|(k, (id, approvals))| {
                let mut c = clients[k % clients.len()].clone();
                async move {
                    for _ in 0..5 {
                        match c.verification_status(&id).await {
                            Ok(status) => return (id, approvals, Some(status)),
                            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                    (id, approvals, None)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
    let mut lost = Vec::new();
    let mut approval_not_recorded = Vec::new();
    let mut unaudited = 0;
    for (id, approvals, status) in &answers {
        match status {
            None => unaudited += 1,
            Some(None) => lost.push(format!("{id} ({})", number_of(id))),
            Some(Some(s)) if *approvals > 0 && s != "Approved" => {
                approval_not_recorded.push(format!("{id} ({}): {s}", number_of(id)));
            }
            Some(Some(_)) => {}
        }
    }
    PhaseReport {
        fault,
        note,
        stats,
        told: answers.len(),
        lost,
        approval_not_recorded,
        double_approvals,
        unaudited,
        unavailable_calls,
        recovery,
        timeline: Vec::new(),
    }
}

/// Ticks added up per second, up to the last second with an unavailable call.
fn per_second(ticks: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let per = (Duration::from_secs(1).as_millis() / TICK.as_millis()) as usize;
    let mut secs: Vec<(u64, u64)> = ticks
        .chunks(per)
        .map(|c| c.iter().fold((0, 0), |(a, b), &(x, y)| (a + x, b + y)))
        .collect();
    let last = secs.iter().rposition(|s| s.1 > 0).map_or(0, |i| i + 1);
    secs.truncate(last);
    secs
}

fn recovery_text(r: &PhaseReport) -> String {
    r.recovery.map_or("not recovered".to_owned(), |d| {
        format!("{:.1} s", d.as_secs_f64())
    })
}

fn summary(r: &PhaseReport) -> String {
    format!(
        "{} calls, {} unavailable, {} violations, {} double approvals, {} told sent / {} lost / {} approvals not in the record / {} unaudited; recovered in {}",
        r.stats.calls,
        r.unavailable_calls,
        r.stats.total_violations(),
        r.double_approvals,
        r.told,
        r.lost.len(),
        r.approval_not_recorded.len(),
        r.unaudited,
        recovery_text(r)
    )
}

fn render(
    args: &ChaosArgs,
    world: &World,
    reports: &[PhaseReport],
    over_budget: usize,
    elapsed: Duration,
) -> String {
    let c = &args.common;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Chaos run: {} phases in {:.0} s\n",
        reports.len(),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "Two sidecars ({}) on a Redis Cluster of 3 masters with one replica each (cluster-node-timeout {} ms, command timeout {} ms, provider timeout {} ms); {} clients at {} sessions/s over both, mix `{}`; providers `{}` (failures `{}`); validity {} s, {} attempts, {} resends; {} expiry probes (validity {} s) checking after expiry. Each phase: {:.0} s of load, the fault, {:.0} s of load after it. Recovered = every 1-s window (sliding by 100 ms) from the reference point on has at least {:.0}% of its calls answered.\n",
        world.rig.hashing.name(),
        args.node_timeout_ms,
        args.command_timeout_ms,
        args.provider_timeout_ms,
        c.concurrency,
        c.rate,
        c.mix,
        c.latency,
        c.fail,
        c.validity_secs,
        c.max_attempts,
        c.max_resends,
        c.expiry_probes,
        c.expiry_validity,
        args.before,
        args.after,
        args.target * 100.0
    );
    let _ = writeln!(
        md,
        "| fault | calls | unavailable (expected) | approved | violations | double approvals | verifications told sent | lost | approvals not in the record | time to recover |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in reports {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.fault.describe(),
            r.stats.calls,
            r.unavailable_calls,
            r.stats.counter("approved"),
            r.stats.total_violations(),
            r.double_approvals,
            r.told,
            r.lost.len(),
            r.approval_not_recorded.len(),
            recovery_text(r)
        );
    }
    let _ = writeln!(
        md,
        "\nNumbers with more accepted sends than the resend budget allows (ledger, whole run): {over_budget}.\n"
    );
    for (i, r) in reports.iter().enumerate() {
        let _ = writeln!(md, "Phase {} — {}: {}.", i + 1, r.fault.describe(), r.note);
        let _ = writeln!(md, "- errors by code: {:?}", r.stats.errors);
        let _ = writeln!(
            md,
            "- violations: {:?}; expected refusals: {}; unaudited (no answer to GetVerification): {}",
            r.stats
                .violations
                .iter()
                .map(|(v, n)| (v.name(), *n))
                .collect::<Vec<_>>(),
            r.stats.total_expected(),
            r.unaudited
        );
        if !r.timeline.is_empty() {
            let _ = writeln!(
                md,
                "- answered/unavailable calls per second from the reference point: {}",
                r.timeline
                    .iter()
                    .map(|(a, f)| format!("{a}/{f}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        if !r.approval_not_recorded.is_empty() {
            let _ = writeln!(
                md,
                "- approvals not in the record (first 5): {:?}",
                &r.approval_not_recorded[..r.approval_not_recorded.len().min(5)]
            );
        }
        if !r.lost.is_empty() {
            let _ = writeln!(
                md,
                "- lost verifications (first 5): {:?}",
                &r.lost[..r.lost.len().min(5)]
            );
        }
    }
    md
}
