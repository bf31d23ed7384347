//! What the reliability subcommands (`chaos`, `soak`) share: their common options, the
//! provider emulator, the population, sidecar specs with short state lifetimes, and the
//! workload context over one pool of numbers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::client::Client;
use crate::emulator::{Behaviour, Emulator};
use crate::numbers;
use crate::sidecar::{Hashing, Spec, Tuning};
use crate::workload::{Ctx, Limits, Mix, Pacer, Pool};

/// Options `chaos` and `soak` both take.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// The `switchboard` binary (default: next to this one).
    #[arg(long)]
    pub sidecar_bin: Option<PathBuf>,
    /// Concurrent clients (each with one session in flight).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Session starts per second over all clients (0: as fast as answers come).
    #[arg(long, default_value_t = 150.0)]
    pub rate: f64,
    /// Session mix (pair, wrong, exhaust, resend, double, concurrent, lookup, overlimit).
    #[arg(
        long,
        default_value = "pair=50,wrong=10,exhaust=8,resend=10,double=8,concurrent=4,lookup=5,overlimit=5"
    )]
    pub mix: String,
    /// Expiry probes in flight (sends of the short-validity application checked after it).
    #[arg(long, default_value_t = 4)]
    pub expiry_probes: usize,
    /// Validity of the expiry probes' application, seconds.
    #[arg(long, default_value_t = 3)]
    pub expiry_validity: u64,
    /// Validity of the default application's codes, seconds.
    #[arg(long, default_value_t = 20)]
    pub validity_secs: u64,
    #[arg(long, default_value_t = 2)]
    pub max_attempts: u32,
    #[arg(long, default_value_t = 2)]
    pub max_resends: u32,
    /// Code hashing of the sidecars (hmac-sha256 keeps a debug build's CPU for the load).
    #[arg(long, default_value = "hmac-sha256")]
    pub hashing: String,
    /// Provider latency per channel (fixed:MS, uniform:LO:HI, lognormal:MEDIAN:SIGMA): with
    /// some, sends are in flight at the provider when a fault strikes.
    #[arg(long, default_value = "sms=lognormal:40:0.5,whatsapp=lognormal:60:0.5")]
    pub latency: String,
    /// Provider failures per channel, RATE:CODE (131026: not on WhatsApp, fallback to SMS).
    #[arg(long, default_value = "whatsapp=0.10:131026")]
    pub fail: String,
    /// Distinct numbers of the load.
    #[arg(long, default_value_t = 150_000)]
    pub population: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `RUST_LOG` of the sidecars.
    #[arg(long, default_value = "warn")]
    pub sidecar_log: String,
    /// Where the generated sidecar configs and logs go (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Directory of the report.
    #[arg(long, default_value = "load/results")]
    pub out: PathBuf,
}

/// The `switchboard` binary: given, or next to this one.
pub fn sidecar_bin(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) => Ok(p.clone()),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("switchboard")),
    }
}

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

/// The emulator, the population and the secrets of a reliability run.
pub struct Rig {
    pub args: Common,
    pub emu: Arc<Emulator>,
    pub emu_addr: SocketAddr,
    pub numbers: Arc<Vec<String>>,
    /// The first `probe_numbers` numbers are the expiry probes'.
    pub probe_numbers: usize,
    pub api_key: String,
    pub expiry_api_key: String,
    pepper: String,
    pub prefix: String,
    pub work_dir: PathBuf,
    _tmp: tempfile::TempDir,
    pub bin: PathBuf,
    pub hashing: Hashing,
}

impl Rig {
    pub async fn new(args: &Common) -> anyhow::Result<Self> {
        let bin = sidecar_bin(args.sidecar_bin.as_ref())?;
        let hashing = Hashing::parse(&args.hashing)?;
        let tmp = tempfile::tempdir()?;
        let work_dir = args
            .work_dir
            .clone()
            .unwrap_or_else(|| tmp.path().to_owned());
        std::fs::create_dir_all(&args.out)?;
        let mut behaviour = Behaviour::default();
        behaviour.set_latency(&args.latency)?;
        behaviour.set_failures(&args.fail)?;
        let emu = Emulator::new(behaviour);
        let emu_addr = emu.serve().await?;
        let probe_numbers = (args.expiry_probes * 200).max(1);
        let weights = numbers::parse_weights("ES=20,BR=20,GB=15,DE=15,MX=15,IN=15")?;
        let pop = numbers::generate(args.population + probe_numbers, &weights, args.seed);
        Ok(Rig {
            args: args.clone(),
            emu,
            emu_addr,
            numbers: Arc::new(pop.numbers),
            probe_numbers,
            api_key: random_hex(24),
            expiry_api_key: random_hex(24),
            pepper: random_hex(32),
            prefix: format!("sbrel{}", std::process::id()),
            work_dir,
            _tmp: tmp,
            bin,
            hashing,
        })
    }

    /// The spec of sidecar `name`; every sidecar of a rig shares the store prefix and secrets.
    pub fn spec(&self, name: &str, redis_url: &str, tuning: Tuning) -> Spec {
        Spec {
            name: name.to_owned(),
            bin: self.bin.clone(),
            work_dir: self.work_dir.clone(),
            redis_url: redis_url.to_owned(),
            key_prefix: self.prefix.clone(),
            hashing: self.hashing,
            emulator: self.emu_addr,
            pepper: self.pepper.clone(),
            api_key: self.api_key.clone(),
            expiry_api_key: self.expiry_api_key.clone(),
            expiry_validity_secs: self.args.expiry_validity,
            validity_secs: self.args.validity_secs,
            max_attempts: self.args.max_attempts,
            max_resends: self.args.max_resends,
            log_filter: self.args.sidecar_log.clone(),
            env: Vec::new(),
            tuning,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            validity: Duration::from_secs(self.args.validity_secs),
            max_attempts: self.args.max_attempts,
        }
    }

    fn allowance(&self) -> u32 {
        self.args.max_resends + 1
    }

    /// The workload context over every number but the probes'; numbers get their budget back
    /// after `window` when set.
    pub fn ctx(&self, clients: Vec<Client>, window: Option<Duration>) -> anyhow::Result<Arc<Ctx>> {
        let mut pool = Pool::new(
            self.numbers.clone(),
            self.probe_numbers..self.numbers.len(),
            self.allowance(),
            (self.args.population / 50).min(10_000),
        );
        if let Some(w) = window {
            pool = pool.with_window(w);
        }
        Ok(Arc::new(Ctx {
            clients,
            emulator: self.emu.clone(),
            pool: Arc::new(pool),
            mix: Mix::parse(&self.args.mix)?,
            limits: self.limits(),
            lookup_numbers: self.numbers.clone(),
            pace: (self.args.rate > 0.0).then(|| Pacer::new(self.args.rate)),
        }))
    }

    /// The expiry probes' numbers.
    pub fn probe_pool(&self, window: Option<Duration>) -> Arc<Pool> {
        let mut pool = Pool::new(
            self.numbers.clone(),
            0..self.probe_numbers,
            self.allowance(),
            0,
        );
        if let Some(w) = window {
            pool = pool.with_window(w);
        }
        Arc::new(pool)
    }
}
