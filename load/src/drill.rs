//! The fraud drill: a real `switchboard serve` on its embedded defaults (development mode,
//! in-memory store, console provider; only the server's request rate limits raised), driven
//! over the HTTP API with three classes of traffic interleaved:
//!
//! - *normal*: valid mobiles of six countries over many prefixes, each send from its own
//!   `signals.ip`; 70% of them checked with the right code (read from the console provider's
//!   log lines) a few seconds later, as real users do;
//! - *concentrated* pumping: distinct numbers inside one prefix (a block of 10,000 numbers) of
//!   a country the normal traffic never uses, from rotating IPs, never checked;
//! - *spread* pumping: distinct numbers over many prefixes of another such country, from more
//!   rotating IPs, never checked.
//!
//! Every rotating IP sits in its own /24, the case the per-IP and per-network rules cannot
//! catch alone. The report counts, per class, what was sent, dispatched (`Success`/`Retry`),
//! blocked by which rule, checked and approved; in shadow mode, the sends the screen would have
//! refused, from the sidecar's log (or its metrics when it exports a fraud decision counter).
//!
//! Shared with the root crate's test suite (`tests/it/drill.rs` includes this file with
//! `#[path]`), so it depends only on crates both have.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::numbers;

/// Countries of the normal traffic, with their weights.
pub const NORMAL_COUNTRIES: &str = "ES=20,BR=20,GB=15,DE=15,MX=15,IN=15";
/// The country of the concentrated pumping, and the prefix (E.164 without its last 4 digits)
/// all of its numbers share.
pub const CONCENTRATED_COUNTRY: &str = "FR";
pub const CONCENTRATED_PREFIX: &str = "+3367841";
/// The country of the spread pumping, and over how many prefixes it spreads.
pub const SPREAD_COUNTRY: &str = "IT";
pub const SPREAD_PREFIXES: usize = 500;
/// Rotating client IPs of each pumping class.
pub const CONCENTRATED_IPS: usize = 500;
pub const SPREAD_IPS: usize = 2_000;
/// Share of the normal sends that are checked, in tenths.
const CHECKED_TENTHS: usize = 7;

/// The targets: at most this many pumping sends dispatched, at least this share of the normal
/// sends dispatched.
pub const CONCENTRATED_MAX_DISPATCHED: u64 = 20;
pub const SPREAD_MAX_DISPATCHED: u64 = 200;
pub const NORMAL_MIN_DISPATCHED: f64 = 0.995;

/// The log line the engine writes for each send the screen would refuse in shadow mode.
const SHADOW_LINE: &str = "shadow mode: the fraud screen would refuse this send";
const CONSOLE_TARGET: &str = "switchboard::console";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Shadow,
}

impl Mode {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s.trim() {
            "enforce" => Ok(Mode::Enforce),
            "shadow" => Ok(Mode::Shadow),
            other => bail!("mode `{other}`: enforce or shadow"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// What a drill runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `switchboard` binary.
    pub bin: PathBuf,
    pub mode: Mode,
    pub normal: usize,
    pub concentrated: usize,
    pub spread: usize,
    /// Each class's sends are spread evenly over this long (interleaved with the others).
    pub duration: Duration,
    /// A checked normal send is checked this long after its answer.
    pub check_delay: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    pub seed: u64,
}

/// The three traffic classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Normal,
    Concentrated,
    Spread,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Normal, Class::Concentrated, Class::Spread];

    pub fn name(self) -> &'static str {
        match self {
            Class::Normal => "normal",
            Class::Concentrated => "concentrated",
            Class::Spread => "spread",
        }
    }
}

/// What happened to one class.
#[derive(Clone, Debug, Default)]
pub struct ClassReport {
    pub sent: u64,
    /// `Success` or `Retry`.
    pub dispatched: u64,
    /// `Blocked`, by its `reason`.
    pub blocked: BTreeMap<String, u64>,
    /// Any other answer: other statuses, HTTP errors, transport errors.
    pub other: BTreeMap<String, u64>,
    pub checked: u64,
    pub approved: u64,
    /// Checks that did not approve, by status (or why no check was made).
    pub not_approved: BTreeMap<String, u64>,
    /// Sends the screen would have refused (shadow mode), by rule.
    pub would_block: BTreeMap<String, u64>,
}

impl ClassReport {
    pub fn would_block_total(&self) -> u64 {
        self.would_block.values().sum()
    }
}

/// The drill's result.
#[derive(Clone, Debug)]
pub struct Report {
    pub mode: Mode,
    pub classes: BTreeMap<Class, ClassReport>,
    pub wall: Duration,
    /// Where the would-blocks were counted from.
    pub would_block_source: String,
    /// The sidecar's fraud decision counter, when it exports one (`decision="would_block"`).
    pub metric_would_block: Option<f64>,
}

fn fmt_map(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "-".to_owned();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report {
    pub fn class(&self, c: Class) -> &ClassReport {
        &self.classes[&c]
    }

    /// The targets this run missed (empty: all met).
    pub fn misses(&self) -> Vec<String> {
        let mut out = Vec::new();
        let n = self.class(Class::Normal);
        let conc = self.class(Class::Concentrated);
        let spread = self.class(Class::Spread);
        if n.approved != n.checked {
            out.push(format!(
                "normal: {} of {} checked codes approved",
                n.approved, n.checked
            ));
        }
        let expected_checks = expected_checks(n.dispatched as usize, n.sent as usize);
        if n.checked < expected_checks {
            out.push(format!(
                "normal: {} checked, {expected_checks} expected",
                n.checked
            ));
        }
        match self.mode {
            Mode::Enforce => {
                if (n.dispatched as f64) < NORMAL_MIN_DISPATCHED * n.sent as f64 {
                    out.push(format!(
                        "normal: {} of {} dispatched ({:.2}%, target ≥ {:.1}%)",
                        n.dispatched,
                        n.sent,
                        pct(n.dispatched, n.sent),
                        NORMAL_MIN_DISPATCHED * 100.0
                    ));
                }
                if conc.dispatched > CONCENTRATED_MAX_DISPATCHED {
                    out.push(format!(
                        "concentrated: {} of {} dispatched (target ≤ {CONCENTRATED_MAX_DISPATCHED})",
                        conc.dispatched, conc.sent
                    ));
                }
                if spread.dispatched > SPREAD_MAX_DISPATCHED {
                    out.push(format!(
                        "spread: {} of {} dispatched (target ≤ {SPREAD_MAX_DISPATCHED})",
                        spread.dispatched, spread.sent
                    ));
                }
            }
            Mode::Shadow => {
                for c in Class::ALL {
                    let r = self.class(c);
                    if r.dispatched != r.sent {
                        out.push(format!(
                            "{}: {} of {} dispatched in shadow mode (target: all)",
                            c.name(),
                            r.dispatched,
                            r.sent
                        ));
                    }
                }
                // Shadow must report what enforce would have refused.
                for (c, max) in [
                    (Class::Concentrated, CONCENTRATED_MAX_DISPATCHED),
                    (Class::Spread, SPREAD_MAX_DISPATCHED),
                ] {
                    let r = self.class(c);
                    if r.sent.saturating_sub(r.would_block_total()) > max {
                        out.push(format!(
                            "{}: {} would-blocks reported of {} sent (at most {max} should pass)",
                            c.name(),
                            r.would_block_total(),
                            r.sent
                        ));
                    }
                }
                let passed = n.sent - n.would_block_total().min(n.sent);
                if (passed as f64) < NORMAL_MIN_DISPATCHED * n.sent as f64 {
                    out.push(format!(
                        "normal: {} would-blocks of {} sent",
                        n.would_block_total(),
                        n.sent
                    ));
                }
            }
        }
        for c in Class::ALL {
            let r = self.class(c);
            if !r.other.is_empty() {
                out.push(format!(
                    "{}: unexpected answers: {}",
                    c.name(),
                    fmt_map(&r.other)
                ));
            }
        }
        out
    }

    /// The report as text (a Markdown table and the verdicts).
    pub fn render(&self) -> String {
        let mut s = format!(
            "fraud drill, mode {}: wall time {:.1} s\n\n",
            self.mode.as_str(),
            self.wall.as_secs_f64()
        );
        s.push_str("| class | sent | dispatched | blocked by rule | other | checked | approved | would-block (shadow) |\n");
        s.push_str("|---|--:|--:|---|---|--:|--:|---|\n");
        for c in Class::ALL {
            let r = self.class(c);
            s.push_str(&format!(
                "| {} | {} | {} ({:.2}%) | {} | {} | {} | {} | {} |\n",
                c.name(),
                r.sent,
                r.dispatched,
                pct(r.dispatched, r.sent),
                fmt_map(&r.blocked),
                fmt_map(&r.other),
                r.checked,
                r.approved,
                if self.mode == Mode::Shadow {
                    format!("{} ({})", r.would_block_total(), fmt_map(&r.would_block))
                } else {
                    "-".to_owned()
                },
            ));
        }
        if self.mode == Mode::Shadow {
            s.push_str(&format!(
                "\nwould-blocks counted from {}",
                self.would_block_source
            ));
            if let Some(m) = self.metric_would_block {
                s.push_str(&format!("; the sidecar's metric says {m}"));
            }
            s.push('\n');
        }
        let n = self.class(Class::Normal);
        if !n.not_approved.is_empty() {
            s.push_str(&format!(
                "\nnormal checks not approved: {}\n",
                fmt_map(&n.not_approved)
            ));
        }
        let misses = self.misses();
        s.push('\n');
        if misses.is_empty() {
            s.push_str("targets: all met\n");
        } else {
            for m in &misses {
                s.push_str(&format!("target missed: {m}\n"));
            }
        }
        s
    }
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// Whether the `i`-th normal send is one a user checks (exactly 7 in 10).
fn is_checked(i: usize) -> bool {
    i % 10 < CHECKED_TENTHS
}

/// The checks a run should have made: every checked send that was dispatched. Bounded by the
/// dispatched count, so a refused send is counted once (as not dispatched), not twice.
fn expected_checks(dispatched: usize, sent: usize) -> u64 {
    let planned = (0..sent).filter(|&i| is_checked(i)).count();
    planned.saturating_sub(sent - dispatched.min(sent)) as u64
}

/// One send of the drill.
#[derive(Clone, Debug)]
struct Job {
    class: Class,
    index: usize,
    number: String,
    ip: String,
}

/// The numbers of the normal traffic.
fn normal_numbers(n: usize, seed: u64) -> anyhow::Result<Vec<String>> {
    let weights = numbers::parse_weights(NORMAL_COUNTRIES)?;
    Ok(numbers::generate(n, &weights, seed).numbers)
}

/// `n` distinct valid mobiles inside one prefix, in a random order.
pub fn concentrated_numbers(n: usize, seed: u64) -> anyhow::Result<Vec<String>> {
    let mut all: Vec<String> = (0..10_000)
        .map(|s| format!("{CONCENTRATED_PREFIX}{s:04}"))
        .filter(|e| numbers::is_valid_mobile(e, CONCENTRATED_COUNTRY))
        .collect();
    if all.len() < n {
        bail!(
            "prefix {CONCENTRATED_PREFIX} holds {} valid mobiles, {n} asked",
            all.len()
        );
    }
    all.shuffle(&mut SmallRng::seed_from_u64(seed));
    all.truncate(n);
    Ok(all)
}

/// `n` distinct valid mobiles over [`SPREAD_PREFIXES`] prefixes, round robin.
pub fn spread_numbers(n: usize, seed: u64) -> anyhow::Result<Vec<String>> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    // Prefixes of valid mobiles drawn by the population generator.
    let mut prefixes: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let mut draw_seed = seed;
    while prefixes.len() < SPREAD_PREFIXES {
        let pop = numbers::generate(SPREAD_PREFIXES * 2, &[(SPREAD_COUNTRY.to_owned(), 1)], {
            draw_seed += 1;
            draw_seed
        });
        for num in pop.numbers {
            let p = num[..num.len() - 4].to_owned();
            if prefixes.len() < SPREAD_PREFIXES && seen.insert(p.clone()) {
                prefixes.push(p);
            }
        }
    }
    let per_prefix = n.div_ceil(SPREAD_PREFIXES);
    let mut by_prefix: Vec<Vec<String>> = Vec::with_capacity(prefixes.len());
    for p in &prefixes {
        let mut mine = HashSet::new();
        let mut tries = 0;
        while mine.len() < per_prefix {
            tries += 1;
            if tries > per_prefix * 1000 {
                bail!("prefix {p}: too few valid mobiles");
            }
            let e = format!("{p}{:04}", rng.random_range(0..10_000u32));
            if numbers::is_valid_mobile(&e, SPREAD_COUNTRY) {
                mine.insert(e);
            }
        }
        let mut mine: Vec<String> = mine.into_iter().collect();
        mine.sort();
        by_prefix.push(mine);
    }
    Ok((0..n)
        .map(|i| by_prefix[i % SPREAD_PREFIXES][i / SPREAD_PREFIXES].clone())
        .collect())
}

/// The client IP of the `i`-th send of a class: normal sends each have their own; pumping
/// rotates over its pool. Each address is in a /24 of its own.
fn client_ip(class: Class, i: usize) -> String {
    let (base, j) = match class {
        Class::Normal => (10u32 << 24, i),
        Class::Concentrated => ((100 << 24) | (64 << 16), i % CONCENTRATED_IPS),
        Class::Spread => ((198 << 24) | (18 << 16), i % SPREAD_IPS),
    };
    let v = base + ((j as u32) << 8) + 1 + (j as u32 % 250);
    std::net::Ipv4Addr::from(v).to_string()
}

/// What the sidecar's log told: codes per number, would-blocks per request id.
#[derive(Default)]
struct LogState {
    codes: HashMap<String, String>,
    would_block: Vec<(String, String)>,
    tail: std::collections::VecDeque<String>,
}

/// The code and number of a console provider line
/// (`... switchboard::console: Your switchboard code is 839158 to=+34600600600 ...`).
fn parse_console(line: &str) -> Option<(String, String)> {
    let rest = &line[line.find(CONSOLE_TARGET)? + CONSOLE_TARGET.len()..];
    let to_at = rest.find(" to=")?;
    let message = &rest[..to_at];
    let to: String = rest[to_at + 4..]
        .trim_start_matches('"')
        .chars()
        .take_while(|c| *c == '+' || c.is_ascii_digit())
        .collect();
    let code = message
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|run| run.len() >= 4)?;
    Some((to, code.to_owned()))
}

/// The value of `name=` in a text log line, quotes removed.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    let v = line[at..].split(' ').next()?;
    Some(v.trim_matches('"'))
}

/// The request id and rule of a shadow-mode line.
fn parse_shadow(line: &str) -> Option<(String, String)> {
    if !line.contains(SHADOW_LINE) {
        return None;
    }
    Some((
        field(line, "request_id")?.to_owned(),
        field(line, "rule")?.to_owned(),
    ))
}

/// `switchboard serve` on its embedded defaults, killed when dropped.
struct Sidecar {
    child: Child,
    http: SocketAddr,
    log: Arc<Mutex<LogState>>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Sidecar {
    fn start(bin: &PathBuf, mode: Mode) -> anyhow::Result<Self> {
        if !bin.is_file() {
            bail!(
                "sidecar binary {} not found: build it with `cargo build --release -p switchboard` (or pass --sidecar-bin)",
                bin.display()
            );
        }
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--http-addr", &http.to_string()])
            .args(["--grpc-addr", &grpc.to_string()]);
        // Embedded defaults: nothing of the caller's configuration.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(&key);
            }
        }
        // Only the server's own request rate limits are raised: every request of the drill
        // comes from 127.0.0.1 and no API key.
        for key in [
            "RATE_PER_IP",
            "BURST_PER_IP",
            "RATE_PER_KEY",
            "BURST_PER_KEY",
        ] {
            cmd.env(format!("SWITCHBOARD_SERVER__{key}"), "1000000");
        }
        if mode == Mode::Shadow {
            cmd.env("SWITCHBOARD_WORKFLOW__FRAUD__MODE", "shadow");
        }
        cmd.env("RUST_LOG", "warn,switchboard::console=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let stderr = child.stderr.take().context("sidecar stderr")?;
        let log = Arc::new(Mutex::new(LogState::default()));
        let state = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut s = state.lock();
                if let Some((to, code)) = parse_console(&line) {
                    s.codes.insert(to, code);
                } else if let Some(wb) = parse_shadow(&line) {
                    s.would_block.push(wb);
                } else {
                    if s.tail.len() >= 40 {
                        s.tail.pop_front();
                    }
                    s.tail.push_back(line);
                }
            }
        });
        Ok(Sidecar { child, http, log })
    }

    fn tail(&self) -> String {
        self.log
            .lock()
            .tail
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("the sidecar exited at start ({status}):\n{}", self.tail());
            }
            if let Ok(r) = http
                .get(format!("http://{}/healthz", self.http))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the sidecar did not answer within 30 s:\n{}", self.tail())
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the drill's tasks record.
#[derive(Default)]
struct Tally {
    classes: BTreeMap<Class, ClassReport>,
    request_class: HashMap<String, Class>,
}

impl Tally {
    fn class(&mut self, c: Class) -> &mut ClassReport {
        self.classes.entry(c).or_default()
    }
}

struct Shared {
    http: reqwest::Client,
    base: String,
    tally: Mutex<Tally>,
    log: Arc<Mutex<LogState>>,
    check_delay: Duration,
}

/// The answer of a `POST`, or a label of what went wrong.
async fn post(shared: &Shared, path: &str, body: &Value) -> Result<Value, String> {
    let resp = shared
        .http
        .post(format!("{}{path}", shared.base))
        .json(body)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = resp.status();
    let value: Value = resp.json().await.map_err(|e| format!("body: {e}"))?;
    if !status.is_success() {
        let code = value["error"]["code"].as_str().unwrap_or("?");
        return Err(format!("HTTP {} {code}", status.as_u16()));
    }
    Ok(value)
}

async fn run_job(shared: Arc<Shared>, job: Job) {
    let body = json!({"phone_number": job.number, "signals": {"ip": job.ip}});
    let answer = post(&shared, "/v3/phone/send/", &body).await;
    let dispatched = {
        let mut t = shared.tally.lock();
        match &answer {
            Ok(v) => {
                if let Some(id) = v["request_id"].as_str() {
                    t.request_class.insert(id.to_owned(), job.class);
                }
                let status = v["status"].as_str().unwrap_or("?");
                let r = t.class(job.class);
                r.sent += 1;
                match status {
                    "Success" | "Retry" => {
                        r.dispatched += 1;
                        true
                    }
                    "Blocked" => {
                        let reason = v["reason"].as_str().unwrap_or("?").to_owned();
                        *r.blocked.entry(reason).or_default() += 1;
                        false
                    }
                    other => {
                        *r.other.entry(format!("status {other}")).or_default() += 1;
                        false
                    }
                }
            }
            Err(e) => {
                let r = t.class(job.class);
                r.sent += 1;
                *r.other.entry(e.clone()).or_default() += 1;
                false
            }
        }
    };
    if !(dispatched && job.class == Class::Normal && is_checked(job.index)) {
        return;
    }
    tokio::time::sleep(shared.check_delay).await;
    // The console line may trail the answer by a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(c) = shared.log.lock().codes.get(&job.number).cloned() {
            break Some(c);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let outcome = match code {
        None => Err("no code in the log".to_owned()),
        Some(code) => {
            let body = json!({"phone_number": job.number, "code": code});
            post(&shared, "/v3/phone/check/", &body)
                .await
                .map(|v| v["status"].as_str().unwrap_or("?").to_owned())
        }
    };
    let mut t = shared.tally.lock();
    let r = t.class(Class::Normal);
    r.checked += 1;
    match outcome {
        Ok(s) if s == "Approved" => r.approved += 1,
        Ok(s) => *r.not_approved.entry(s).or_default() += 1,
        Err(e) => *r.not_approved.entry(e).or_default() += 1,
    }
}

/// The sidecar's fraud decision counter for `would_block`, when it exports one.
async fn metric_would_block(http: &reqwest::Client, base: &str) -> Option<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("fraud") && l.contains("would_block"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Runs the drill against a sidecar of its own.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let mut jobs: Vec<Vec<Job>> = Vec::new();
    for (class, numbers) in [
        (Class::Normal, normal_numbers(opts.normal, opts.seed)?),
        (
            Class::Concentrated,
            concentrated_numbers(opts.concentrated, opts.seed)?,
        ),
        (Class::Spread, spread_numbers(opts.spread, opts.seed)?),
    ] {
        jobs.push(
            numbers
                .into_iter()
                .enumerate()
                .map(|(index, number)| Job {
                    class,
                    index,
                    ip: client_ip(class, index),
                    number,
                })
                .collect(),
        );
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut sidecar = Sidecar::start(&opts.bin, opts.mode)?;
    sidecar.wait_ready(&http).await?;
    let base = format!("http://{}", sidecar.http);
    let mut tally = Tally::default();
    for c in Class::ALL {
        tally.class(c);
    }
    let shared = Arc::new(Shared {
        http: http.clone(),
        base: base.clone(),
        tally: Mutex::new(tally),
        log: sidecar.log.clone(),
        check_delay: opts.check_delay,
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let started = Instant::now();
    let start = tokio::time::Instant::now();
    let mut pacers = Vec::new();
    for class_jobs in jobs {
        let (shared, permits, duration) = (shared.clone(), permits.clone(), opts.duration);
        pacers.push(tokio::spawn(async move {
            let n = class_jobs.len().max(1) as u32;
            let mut tasks = Vec::with_capacity(class_jobs.len());
            for (i, job) in class_jobs.into_iter().enumerate() {
                tokio::time::sleep_until(start + duration * i as u32 / n).await;
                let permit = permits.clone().acquire_owned().await.expect("open");
                let shared = shared.clone();
                tasks.push(tokio::spawn(async move {
                    run_job(shared, job).await;
                    drop(permit);
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }));
    }
    for p in pacers {
        p.await?;
    }
    let wall = started.elapsed();
    // Let the last log lines arrive before they are attributed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metric = metric_would_block(&http, &base).await;
    let mut tally = std::mem::take(&mut *shared.tally.lock());
    let lines = std::mem::take(&mut sidecar.log.lock().would_block);
    let mut unattributed = 0;
    for (id, rule) in lines {
        match tally.request_class.get(&id).copied() {
            Some(c) => *tally.class(c).would_block.entry(rule).or_default() += 1,
            None => unattributed += 1,
        }
    }
    drop(sidecar);
    Ok(Report {
        mode: opts.mode,
        classes: tally.classes,
        wall,
        would_block_source: format!(
            "the sidecar's log lines \"{SHADOW_LINE}\", matched to the sends by request id{}",
            if unattributed > 0 {
                format!(" ({unattributed} lines matched no send)")
            } else {
                String::new()
            }
        ),
        metric_would_block: metric,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_give_the_number_and_its_code() {
        let line = "2026-01-01T00:00:00.000000Z  INFO switchboard::console: Your switchboard code is 839158 to=+34600600600 channel=whatsapp message_id=console-1";
        assert_eq!(
            parse_console(line),
            Some(("+34600600600".to_owned(), "839158".to_owned()))
        );
        assert_eq!(parse_console("INFO switchboard::server: listening"), None);
    }

    #[test]
    fn shadow_lines_give_the_request_id_and_the_rule() {
        let line = "2026-01-01T00:00:00Z  WARN switchboard::engine::send: shadow mode: the fraud screen would refuse this send request_id=abc-1 rule=\"PREFIX_VELOCITY\" key=prefix:+3367841 count=11.0 budget=10.0";
        assert_eq!(
            parse_shadow(line),
            Some(("abc-1".to_owned(), "PREFIX_VELOCITY".to_owned()))
        );
    }

    #[test]
    fn pumping_numbers_share_one_prefix_or_spread_over_many() {
        let conc = concentrated_numbers(10_000, 1).unwrap();
        assert_eq!(conc.iter().collect::<HashSet<_>>().len(), 10_000);
        assert!(conc.iter().all(|n| n.starts_with(CONCENTRATED_PREFIX)));
        let spread = spread_numbers(2_000, 1).unwrap();
        assert_eq!(spread.iter().collect::<HashSet<_>>().len(), 2_000);
        let prefixes: HashSet<&str> = spread.iter().map(|n| &n[..n.len() - 4]).collect();
        assert_eq!(prefixes.len(), SPREAD_PREFIXES);
        assert!(
            spread
                .iter()
                .all(|n| numbers::is_valid_mobile(n, SPREAD_COUNTRY))
        );
    }

    #[test]
    fn rotating_ips_each_sit_in_their_own_network() {
        let nets = |c: Class, n: usize| {
            (0..n)
                .map(|i| {
                    let ip = client_ip(c, i);
                    ip[..ip.rfind('.').unwrap()].to_owned()
                })
                .collect::<HashSet<_>>()
                .len()
        };
        assert_eq!(nets(Class::Concentrated, 10_000), CONCENTRATED_IPS);
        assert_eq!(nets(Class::Spread, 10_000), SPREAD_IPS);
        assert_eq!(nets(Class::Normal, 2_000), 2_000);
    }
}
