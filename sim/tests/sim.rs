//! The simulator end to end: determinism, strict scenario files, and the oracle against a
//! wrong table. Small runs (500 verifications); no wall-clock assertions.

use std::path::PathBuf;
use std::process::Command;

use switchboard_sim::{Scenario, Strategy, run_scenario};

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/scenarios")
        .join(format!("{name}.toml"))
}

/// A shipped scenario cut down to `n` verifications (same duration and changes).
fn small(name: &str, n: usize) -> Scenario {
    let mut s = Scenario::load(&scenario_path(name)).expect("shipped scenario is valid");
    s.verifications = n;
    s
}

fn json_lines(s: &Scenario) -> Vec<String> {
    run_scenario(s)
        .unwrap()
        .iter()
        .map(|o| serde_json::to_string(&o.summary).unwrap())
        .collect()
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            assert_eq!(s.verifications, 20_000, "{}", path.display());
            assert_eq!(s.duration_secs, 21_600.0, "{}", path.display());
            count += 1;
        }
    }
    assert!(count >= 8, "{count} scenarios");
}

#[test]
fn same_seed_same_json_and_another_seed_differs() {
    let s = small("br-whatsapp-outage", 500);
    let first = json_lines(&s);
    assert_eq!(first.len(), 3);
    assert_eq!(first, json_lines(&s));
    for (line, strategy) in first.iter().zip(Strategy::ALL) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "scenario",
                "strategy",
                "verified_rate",
                "delivered_rate",
                "cost_total",
                "cost_per_verified",
                "messages_per_verified",
                "p50_time_to_verify_s",
                "p95_time_to_verify_s"
            ]
        );
        assert_eq!(v["strategy"], strategy.as_str());
        let rate = v["verified_rate"].as_f64().unwrap();
        assert!(rate > 0.5 && rate <= 1.0, "{line}");
    }
    let mut other = s.clone();
    other.seed += 1;
    assert_ne!(first, json_lines(&other));
}

#[test]
fn the_binary_prints_identical_json_for_the_same_file() {
    let dir = tempdir();
    let path = dir.join("small.toml");
    let text = std::fs::read_to_string(scenario_path("steady-br"))
        .unwrap()
        .replace("verifications = 20000", "verifications = 300");
    std::fs::write(&path, text).unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard-sim"))
            .arg("--json")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    assert_eq!(first.lines().count(), 3);
    assert_eq!(first, run());
}

#[test]
fn unknown_keys_are_errors_everywhere() {
    let base = std::fs::read_to_string(scenario_path("co-whatsapp-recovers")).unwrap();
    for (after, extra) in [
        ("currency = \"USD\"\n", "colour = \"blue\"\n"),
        ("patience_secs = 45\n", "patiense = 30\n"),
        ("accept = 0.999\n", "acept = 0.9\n"),
        ("at_secs = 3600\n", "delivr = 0.5\n"),
    ] {
        assert!(base.contains(after), "{after}");
        let text = base.replacen(after, &format!("{after}{extra}"), 1);
        let err = Scenario::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{extra}: {err}");
    }

    // The binary refuses the file, names it, and runs nothing.
    let dir = tempdir();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        base.replacen("seed = 23\n", "seed = 23\nsed = 1\n", 1),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard-sim"))
        .arg("--json")
        .arg(scenario_path("steady-br"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("sed"),
        "{stderr}"
    );
}

#[test]
fn the_oracle_beats_a_wrong_table() {
    for name in ["id-wrong-table-order", "in-cheap-route-poor-conversion"] {
        let s = small(name, 500);
        let outcomes = run_scenario(&s).unwrap();
        let get = |k: Strategy| {
            outcomes
                .iter()
                .find(|o| o.summary.strategy == k.as_str())
                .unwrap()
                .summary
                .clone()
        };
        let (stat, oracle) = (get(Strategy::Static), get(Strategy::Oracle));
        assert!(
            oracle.verified_rate >= stat.verified_rate,
            "{name}: {oracle:?} vs {stat:?}"
        );
        assert!(
            oracle.cost_per_verified.unwrap() <= stat.cost_per_verified.unwrap(),
            "{name}: {oracle:?} vs {stat:?}"
        );
    }
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchboard-sim-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every failure receipt of a route that delivers nothing moves the code to the next route:
/// the engine's delivery records (written by a spawned task) are in place when the receipt
/// comes, and the user is verified through the second route before any resend (static order).
#[test]
fn failure_receipts_reroute_through_the_engine() {
    let text = r#"
name = "receipts"
seed = 3
duration_secs = 3600
verifications = 200
currency = "USD"

[countries.ES]
share = 1.0
convert = 1.0
patience_secs = 60

[[countries.ES.routes]]
channel = "whatsapp"
provider = "meta_whatsapp"
price = 0.02
deliver = 0.0
latency_secs = [3.0, 0.0]
receipt = 1.0
accept = 1.0

[[countries.ES.routes]]
channel = "sms"
provider = "vonage"
price = 0.08
deliver = 1.0
latency_secs = [5.0, 0.0]
receipt = 1.0
accept = 1.0
"#;
    let s = Scenario::from_toml(text).unwrap();
    for o in run_scenario(&s).unwrap() {
        let (sum, d) = (&o.summary, &o.detail);
        match sum.strategy {
            "oracle" => {
                // WhatsApp can verify nobody: the oracle never tries it.
                assert_eq!(d.rerouted, 0, "{sum:?}");
                assert_eq!(d.messages, 200, "{sum:?}");
            }
            "static" => {
                assert_eq!(d.rerouted, 200, "{sum:?} {d:?}");
                assert_eq!(d.messages, 400, "{sum:?}");
                // 3 s to the failure receipt, 5 s to the SMS, typing.
                assert!(sum.p50_time_to_verify_s.unwrap() >= 8.0, "{sum:?}");
            }
            // Adaptive learns to skip WhatsApp at its own pace; only the outcome is certain.
            _ => {}
        }
        assert_eq!(sum.verified_rate, 1.0, "{sum:?} {d:?}");
    }
}
