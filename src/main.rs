//! The `switchboard` command: a thin shell over the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde_json::json;
use switchboard::config::LogFormat;
use switchboard::providers::{Channel, ConsoleProvider};
use switchboard::{CheckRequest, Config, EngineBuilder, SendOptions, SendRequest};

/// With `--features mimalloc`: mimalloc instead of glibc malloc. Under load the sidecar spends
/// about a fifth of its CPU in glibc's malloc/free; mimalloc buys ~10% throughput for ~30 MiB of
/// RSS (docs/performance.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Multi-channel one-time-code engine"
)]
struct Cli {
    /// Config file (TOML) layered over the embedded defaults; SWITCHBOARD_* env vars override both.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar: gRPC and HTTP/JSON APIs. With no config at all it runs on embedded
    /// defaults (development mode: in-memory state, console provider, no API key).
    Serve {
        /// gRPC listen address (default from config: 127.0.0.1:50051).
        #[arg(long)]
        grpc_addr: Option<String>,
        /// HTTP listen address (default from config: 127.0.0.1:8080).
        #[arg(long)]
        http_addr: Option<String>,
    },
    /// Print the SHA-256 to put in `server.api_keys` for an API key (read from stdin when omitted).
    HashKey { key: Option<String> },
    /// Print the phone report of numbers as JSON, without sending anything.
    /// `-` reads one number per line from stdin and prints one JSON object per line, in input
    /// order, looking numbers up on every core.
    Lookup {
        /// Numbers in E.164 (`+34600600600`), or national format with --region; `-` for stdin.
        #[arg(required = true)]
        numbers: Vec<String>,
        /// Region (ISO 3166-1 alpha-2) for numbers written in national format.
        #[arg(long)]
        region: Option<String>,
        /// Threads for `-` (default: one per core).
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        threads: usize,
    },
    /// Send a code and check it in one process (console/sandbox providers), printing both results.
    Demo {
        number: String,
        #[arg(long)]
        region: Option<String>,
        /// Pin a channel: SMS, WHATSAPP, TELEGRAM, RCS, VIBER or CALL.
        #[arg(long)]
        channel: Option<Channel>,
        /// Check this code instead of the one that was sent (to see a failed check).
        #[arg(long)]
        code: Option<String>,
    },
    /// Operate the fraud screen.
    #[command(subcommand)]
    Fraud(FraudCommand),
    /// Inspect routing: the route ledger and each route's score and breaker.
    #[command(subcommand)]
    Routes(RoutesCommand),
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// Print an application's route ledger (from the configured store: with Redis, what every
    /// instance recorded): per country and route, attempts, accepts, receipts, approvals,
    /// conversion, delivery rate, mean time to approval, score and breaker.
    Stats {
        /// The application (`default` when omitted).
        #[arg(long)]
        app: Option<String>,
        /// Countries to report besides those the route table names (repeatable).
        #[arg(long = "country")]
        countries: Vec<String>,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum FraudCommand {
    /// Print an application's effective fraud settings (configuration plus what was set at
    /// runtime through the admin API) and, with the Redis store, its current blocks.
    Status {
        /// The application (`default` when omitted).
        #[arg(long)]
        app: Option<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Lookup { .. }
        | Command::HashKey { .. }
        | Command::Fraud(_)
        | Command::Routes(_) => "error",
        Command::Demo { .. } | Command::Serve { .. } => "info",
    };
    // The log format is a config key; read it before the subscriber exists (errors surface in run()).
    let json = Config::load(cli.config.as_deref())
        .map(|c| c.server.log_format == LogFormat::Json)
        .unwrap_or(false);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::HashKey { key } = &cli.command {
        let key = match key {
            Some(k) => k.clone(),
            None => {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            }
        };
        anyhow::ensure!(key.len() >= 16, "API keys must be at least 16 characters");
        println!("{}", switchboard::server::auth::hash_key(&key));
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::HashKey { .. } => unreachable!("handled above"),
        Command::Serve {
            grpc_addr,
            http_addr,
        } => {
            if let Some(a) = grpc_addr {
                config.server.grpc_addr = a;
            }
            if let Some(a) = http_addr {
                config.server.http_addr = a;
            }
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.server.runtime_threads(cores))
                .enable_all()
                .build()?;
            runtime.block_on(switchboard::server::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lookup {
            numbers,
            region,
            threads,
        } => lookup(config, &numbers, region.as_deref(), threads),
        Command::Demo {
            number,
            region,
            channel,
            code,
        } => demo(config, number, region, channel, code),
        Command::Fraud(FraudCommand::Status { app, json }) => {
            fraud_status(config, app.as_deref(), json)
        }
        Command::Routes(RoutesCommand::Stats {
            app,
            countries,
            json,
        }) => routes_stats(config, app.as_deref(), &countries, json),
    }
}

/// `routes stats`: the route ledger as the configured store holds it.
fn routes_stats(
    config: Config,
    app: Option<&str>,
    countries: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let engine = EngineBuilder::new(config).build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(engine.route_stats(app, countries))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "strategy {}, window {} s, prices and scores in {}",
        report.strategy, report.window_secs, report.currency
    )?;
    writeln!(
        out,
        "{:<3} {:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7} {:>7} {:>9} {:>6} {:>7}",
        "cc",
        "route",
        "price",
        "attempts",
        "accepted",
        "approved",
        "conv",
        "deliv",
        "appr s",
        "P",
        "cost/ver",
        "",
        "breaker"
    )?;
    for r in &report.routes {
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.0}%", 100.0 * v));
        writeln!(
            out,
            "{:<3} {:<24} {:>8.4} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7} {:>7.3} {:>9.4} {:>6} {:>7}",
            r.country,
            format!("{}:{}", r.channel, r.provider),
            r.price,
            r.attempts,
            r.accepted,
            r.approvals,
            pct((r.accepted > 0).then_some(r.conversion)),
            pct(r.delivery_rate),
            r.mean_approval_secs
                .map_or("-".to_owned(), |s| format!("{s:.1}")),
            r.p_verified,
            r.score,
            "",
            r.breaker
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `fraud status`: the effective settings, and the blocks when they live in a shared store
/// (a memory store's blocks belong to the process that serves, not to this one).
fn fraud_status(config: Config, app: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let app = app.unwrap_or(switchboard::config::DEFAULT_APP).to_owned();
    let engine = EngineBuilder::new(config).build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared = matches!(engine.store(), switchboard::store::Store::Redis(_));
    let (policy, blocks) = runtime.block_on(async {
        let policy = engine.effective_fraud_policy(Some(&app)).await?;
        let blocks = if shared {
            Some(engine.fraud_blocks(Some(&app)).await?)
        } else {
            None
        };
        Ok::<_, switchboard::Error>((policy, blocks))
    })?;
    if json {
        println!(
            "{}",
            json!({"app": app, "fraud": &*policy, "blocks": blocks})
        );
        return Ok(ExitCode::SUCCESS);
    }
    let money = |cap: f64| {
        if cap > 0.0 {
            format!("{cap}")
        } else {
            "no cap".to_owned()
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "application: {app}")?;
    writeln!(out, "mode: {}", json!(policy.mode).as_str().unwrap_or("?"))?;
    writeln!(out, "window: {} s", policy.window_secs)?;
    writeln!(
        out,
        "budgets per window: prefix {} (last {} digits), country {}, ip {}, network {}, device {}; each approval earns back {}",
        policy.prefix_budget,
        policy.prefix_digits,
        policy.country_budget,
        policy.ip_budget,
        policy.network_budget,
        policy.device_budget,
        policy.approval_credit
    )?;
    writeln!(
        out,
        "cool-off: {} s, doubling up to {} s",
        policy.cooloff_secs, policy.max_cooloff_secs
    )?;
    writeln!(
        out,
        "spend caps: hour {}, day {}",
        money(policy.spend_cap_hour),
        money(policy.spend_cap_day)
    )?;
    match policy.safe_list.as_slice() {
        [] => writeln!(out, "safe list: (empty)")?,
        list => writeln!(out, "safe list: {}", list.join(", "))?,
    }
    writeln!(out, "geo:")?;
    for (channel, table) in &policy.geo {
        let entries: Vec<String> = table
            .iter()
            .map(|(country, action)| format!("{country}={}", json!(action).as_str().unwrap_or("?")))
            .collect();
        writeln!(out, "  {channel}: {}", entries.join(", "))?;
    }
    match blocks {
        None => writeln!(
            out,
            "blocks: not shown (memory store: they live in the serving process; GET /v3/fraud/blocks/)"
        )?,
        Some(blocks) if blocks.is_empty() => writeln!(out, "blocks: none")?,
        Some(blocks) => {
            writeln!(out, "blocks:")?;
            for b in blocks {
                writeln!(
                    out,
                    "  {} {} until {} (block #{})",
                    b.rule.as_str(),
                    b.key,
                    b.blocked_until,
                    b.blocks
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn lookup(
    config: Config,
    numbers: &[String],
    region: Option<&str>,
    threads: usize,
) -> anyhow::Result<ExitCode> {
    let engine = EngineBuilder::new(config).build()?;
    if numbers.len() == 1 && numbers[0] == "-" {
        // Bulk: one JSON object per line; a bad line yields an error object, not an abort.
        let stdin = std::io::stdin();
        switchboard::bulk::lookup_lines(&engine, region, threads, stdin.lock(), std::io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    for input in numbers {
        match engine.lookup_offline(input, region) {
            Ok(report) if numbers.len() == 1 => {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?
            }
            Ok(report) => writeln!(out, "{}", serde_json::to_string(&report)?)?,
            Err(e) => {
                out.flush()?;
                eprintln!("switchboard: {}: {e}", switchboard::bulk::shorten(input));
                failed = true;
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn demo(
    config: Config,
    number: String,
    region: Option<String>,
    channel: Option<Channel>,
    code: Option<String>,
) -> anyhow::Result<ExitCode> {
    let console = Arc::new(ConsoleProvider::new());
    let engine = EngineBuilder::new(config)
        .provider(console.clone())
        .build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sent = match engine
            .send(SendRequest {
                phone_number: number.clone(),
                region: region.clone(),
                channel,
                options: SendOptions::default(),
                ..SendRequest::default()
            })
            .await
        {
            Ok(sent) => sent,
            Err(e) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"send": switchboard::bulk::error_object(&number, &e)})
                    )?
                );
                return Ok(ExitCode::FAILURE);
            }
        };
        let e164 = sent.phone.full_number.clone();
        let delivered = code
            .map(switchboard::providers::OneTimeCode::new)
            .or_else(|| {
                engine
                    .sandbox()
                    .and_then(|s| s.last_code(&e164))
                    .or_else(|| console.last_code(&e164))
            });
        let checked = match delivered {
            Some(c) => {
                let mut req = CheckRequest::new(e164, "");
                req.code = c;
                match engine.check(req).await {
                    Ok(outcome) => serde_json::to_value(outcome)?,
                    Err(e) => switchboard::bulk::error_object(&number, &e),
                }
            }
            None => json!(null),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "send": sent, "check": checked }))?
        );
        Ok(ExitCode::SUCCESS)
    })
}
