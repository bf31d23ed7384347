//! `switchboard-sim [--json] SCENARIO.toml...`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use switchboard_sim::{Outcome, Scenario, run_scenario};

/// Delivery-economics simulator: runs each scenario with the static, adaptive and oracle
/// routing strategies against the real engine and reports verification rate, cost and time.
#[derive(Parser, Debug)]
#[command(name = "switchboard-sim", version)]
struct Args {
    /// One JSON object per scenario and strategy, one per line.
    #[arg(long)]
    json: bool,
    /// Scenario files (TOML).
    #[arg(required = true, value_name = "SCENARIO.toml")]
    scenarios: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Every file is checked before anything runs.
    let mut scenarios = Vec::with_capacity(args.scenarios.len());
    for path in &args.scenarios {
        match Scenario::load(path) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("switchboard-sim: bad scenario {}: {e:#}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    for scenario in &scenarios {
        let outcomes = match run_scenario(scenario) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("switchboard-sim: scenario {}: {e:#}", scenario.name);
                return ExitCode::FAILURE;
            }
        };
        if args.json {
            for o in &outcomes {
                match serde_json::to_string(&o.summary) {
                    Ok(line) => println!("{line}"),
                    Err(e) => {
                        eprintln!("switchboard-sim: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        } else {
            print_table(scenario, &outcomes);
        }
    }
    ExitCode::SUCCESS
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

fn print_table(scenario: &Scenario, outcomes: &[Outcome]) {
    println!(
        "{} ({} verifications over {:.0} s, seed {}, {})",
        scenario.name,
        scenario.verifications,
        scenario.duration_secs,
        scenario.seed,
        scenario.currency
    );
    println!(
        "  {:<9} {:>9} {:>10} {:>10} {:>10} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "strategy",
        "verified",
        "delivered",
        "cost",
        "cost/ver",
        "msg/ver",
        "p50 s",
        "p95 s",
        "abandon",
        "gave_up",
        "rerouted",
        "timeouts",
        "wall s"
    );
    for o in outcomes {
        let (s, d) = (&o.summary, &o.detail);
        println!(
            "  {:<9} {:>8.2}% {:>9.2}% {:>10.2} {:>10} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7.2}",
            s.strategy,
            100.0 * s.verified_rate,
            100.0 * s.delivered_rate,
            s.cost_total,
            opt(s.cost_per_verified, 5),
            opt(s.messages_per_verified, 3),
            opt(s.p50_time_to_verify_s, 1),
            opt(s.p95_time_to_verify_s, 1),
            d.abandoned,
            d.gave_up,
            d.rerouted,
            d.timeouts,
            d.wall_secs
        );
    }
    println!();
}
