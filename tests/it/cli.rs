//! Black-box tests of the `switchboard` binary: `lookup` (single, national format, bulk from
//! stdin, garbage input) and `demo` (send + check, sandbox numbers, config overrides by env).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// Exit status of a Rust process that panicked.
const PANIC_EXIT: i32 = 101;

/// The binary with a clean environment: no config file, no `SWITCHBOARD_*` override, no
/// `RUST_LOG`, no colours.
fn switchboard(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("SWITCHBOARD_CONFIG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Exited on its own terms: no panic, no signal.
    fn assert_no_panic(&self, what: &str) {
        assert!(
            self.code.is_some(),
            "{what}: killed by a signal; stderr: {}",
            self.stderr
        );
        assert_ne!(
            self.code,
            Some(PANIC_EXIT),
            "{what}: panic exit status; stderr: {}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "{what}: panicked: {}",
            self.stderr
        );
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", self.stdout))
    }
}

fn finish(output: Output) -> Run {
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn run(mut cmd: Command) -> Run {
    finish(cmd.output().expect("the binary runs"))
}

fn run_with_stdin(mut cmd: Command, input: &str) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    // Written from another thread so a large input cannot deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("the binary finishes");
    writer.join().unwrap().expect("stdin written");
    finish(output)
}

// ---------------------------------------------------------------------------------------------
// lookup
// ---------------------------------------------------------------------------------------------

#[test]
fn lookup_prints_the_e164_country_and_carrier_of_known_numbers() {
    let cases = [
        ("+34600600600", "ES", "mobile", Some("Vodafone")),
        ("+14155552671", "US", "unknown", None),
        ("+5511987654321", "BR", "mobile", Some("TIM")),
        ("+447911123456", "GG", "mobile", Some("JT")),
    ];
    for (number, country, line_type, carrier) in cases {
        let out = run(switchboard(&["lookup", number]));
        out.assert_no_panic(number);
        assert!(
            out.success(),
            "{number}: exit {:?}; stderr: {}",
            out.code,
            out.stderr
        );
        let report = out.json();
        assert_eq!(report["full_number"], number, "{number}");
        assert_eq!(report["country_code"], country, "{number}");
        assert_eq!(report["carrier"]["type"], line_type, "{number}");
        match carrier {
            Some(name) => assert_eq!(report["carrier"]["name"], name, "{number}"),
            None => assert!(report["carrier"]["name"].is_null(), "{number}: {report}"),
        }
        // A lookup sends nothing: no verification in the report.
        assert_eq!(report["status"], "Not Finished", "{number}");
        assert!(report["verification_method"].is_null(), "{number}");
    }
}

#[test]
fn lookup_of_garbage_exits_non_zero_with_a_message_and_no_panic() {
    let long = "1".repeat(10_000);
    let inputs = [
        "abc",
        "+",
        "",
        long.as_str(),
        "+999123",
        "☎️١٢٣",
        "𝟘𝟙𝟚",
        "+34 600 600 600 600 600 600 600",
    ];
    for input in inputs {
        let what = format!("lookup {:?}", input.chars().take(20).collect::<String>());
        let out = run(switchboard(&["lookup", input]));
        out.assert_no_panic(&what);
        assert!(!out.success(), "{what}: exit 0; stdout: {}", out.stdout);
        assert!(
            out.stdout.trim().is_empty(),
            "{what}: printed a report: {}",
            out.stdout
        );
        assert!(
            out.stderr.contains("switchboard:"),
            "{what}: no message: {}",
            out.stderr
        );
        // Untrusted input is echoed back shortened, never whole.
        assert!(
            out.stderr.len() < 1_000,
            "{what}: {} bytes of stderr",
            out.stderr.len()
        );
    }
}

#[test]
fn lookup_with_a_region_accepts_national_format_and_prints_e164() {
    let out = run(switchboard(&["lookup", "--region", "ES", "600600600"]));
    out.assert_no_panic("lookup --region ES");
    assert!(out.success(), "stderr: {}", out.stderr);
    let report = out.json();
    assert_eq!(report["full_number"], "+34600600600");
    assert_eq!(report["phone_number_prefix"], "+34");
    assert_eq!(report["phone_number"], "600600600");
    assert_eq!(report["country_code"], "ES");
    assert_eq!(report["carrier"]["name"], "Vodafone");
}

#[test]
fn bulk_lookup_on_many_threads_keeps_input_order_and_matches_one_thread() {
    // More lines than one parallel round (4,096), valid numbers of several countries with a
    // bad line every seventh: each answer must sit on its input's line.
    let prefixes = ["+34600", "+49151", "+5511987", "+1415"];
    let lines: Vec<String> = (0..10_000)
        .map(|i| match (i % 7, i % prefixes.len()) {
            (3, _) => format!("bad-{i}"),
            (_, 1) => format!("{}{:08}", prefixes[1], i),
            (_, 3) => format!("{}{:07}", prefixes[3], 5_550_000 + i),
            (_, p) => format!("{}{:06}", prefixes[p], i),
        })
        .collect();
    let input = lines.join("\n") + "\n";
    let parallel = run_with_stdin(switchboard(&["lookup", "--threads", "4", "-"]), &input);
    parallel.assert_no_panic("lookup --threads 4 -");
    assert!(parallel.success(), "stderr: {}", parallel.stderr);
    let single = run_with_stdin(switchboard(&["lookup", "--threads", "1", "-"]), &input);
    assert!(single.success(), "stderr: {}", single.stderr);
    assert_eq!(parallel.stdout, single.stdout, "same answers, same order");

    let objects: Vec<Value> = parallel
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(objects.len(), lines.len());
    let mut valid = 0;
    for (line, object) in lines.iter().zip(&objects) {
        if line.starts_with("bad-") {
            assert_eq!(object["input"], line.as_str(), "{object}");
        } else if object.get("error").is_none() {
            // Not every generated number is assigned; the valid ones echo their own digits.
            assert_eq!(object["full_number"], line.as_str(), "{object}");
            valid += 1;
        } else {
            assert_eq!(object["input"], line.as_str(), "{object}");
        }
    }
    assert!(valid > 5_000, "most generated numbers are valid: {valid}");
}

#[test]
fn national_format_without_a_region_is_refused() {
    let out = run(switchboard(&["lookup", "600600600"]));
    out.assert_no_panic("lookup 600600600");
    assert!(!out.success());
    assert!(out.stderr.contains("switchboard:"), "{}", out.stderr);
}

#[test]
fn bulk_lookup_from_stdin_prints_one_json_object_per_non_empty_line() {
    let long = "9".repeat(10_000);
    let lines = [
        "+34600600600",
        "",
        "abc",
        "  +14155552671  ",
        "+",
        "   ",
        "+999123",
        long.as_str(),
        "+5511987654321\r",
        "☎️",
    ];
    let input = lines.join("\n") + "\n";
    let out = run_with_stdin(switchboard(&["lookup", "-"]), &input);
    out.assert_no_panic("lookup -");
    assert!(
        out.success(),
        "bulk lookup exits 0 even with bad lines; stderr: {}",
        out.stderr
    );

    let objects: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let non_empty: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        objects.len(),
        non_empty.len(),
        "one object per non-empty line: {}",
        out.stdout
    );

    let valid = [
        (0, "+34600600600", "ES"),
        (2, "+14155552671", "US"),
        (6, "+5511987654321", "BR"),
    ];
    for (i, e164, country) in valid {
        assert_eq!(objects[i]["full_number"], e164, "line {i}: {}", objects[i]);
        assert_eq!(objects[i]["country_code"], country, "line {i}");
        assert!(objects[i].get("error").is_none(), "line {i}");
    }
    for i in [1, 3, 4, 5, 7] {
        let o = &objects[i];
        assert_eq!(o["error"]["code"], "INVALID_PHONE_NUMBER", "line {i}: {o}");
        assert!(
            o["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "line {i}: {o}"
        );
        assert!(o.get("full_number").is_none(), "line {i}: {o}");
        let echoed = o["input"].as_str().expect("input echoed as a string");
        if non_empty[i].chars().count() <= 64 {
            assert_eq!(
                echoed, non_empty[i],
                "line {i}: the trimmed input is echoed"
            );
        } else {
            assert!(
                echoed.chars().count() <= 65,
                "line {i}: long input echoed whole"
            );
            assert!(
                non_empty[i].starts_with(echoed.trim_end_matches('…')),
                "line {i}"
            );
        }
    }
}

#[test]
fn bulk_lookup_of_empty_stdin_prints_nothing_and_succeeds() {
    let out = run_with_stdin(switchboard(&["lookup", "-"]), "\n\n  \n");
    out.assert_no_panic("lookup - (blank)");
    assert!(out.success(), "stderr: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn lookup_without_a_number_is_a_usage_error() {
    let out = run(switchboard(&["lookup"]));
    out.assert_no_panic("lookup");
    assert!(!out.success());
    assert!(out.stdout.is_empty());
    assert!(!out.stderr.is_empty());
}

// ---------------------------------------------------------------------------------------------
// demo
// ---------------------------------------------------------------------------------------------

#[test]
fn demo_sends_a_code_and_approves_it() {
    let out = run(switchboard(&["demo", "+34600600600"]));
    out.assert_no_panic("demo");
    assert!(out.success(), "stderr: {}", out.stderr);
    let v = out.json();
    assert_eq!(v["send"]["status"], "Success", "{v}");
    assert_eq!(v["send"]["phone"]["full_number"], "+34600600600");
    assert!(v["send"]["channel"].is_string(), "{v}");
    assert_eq!(v["check"]["status"], "Approved", "{v}");
    assert_eq!(v["check"]["phone"]["status"], "Approved", "{v}");
    assert_eq!(v["check"]["phone"]["verification_attempts"], 1, "{v}");
}

#[test]
fn demo_with_a_wrong_code_fails_the_check_with_attempts_left() {
    // Seven digits: never equal to the six-digit code that was sent, so never a lucky match.
    let out = run(switchboard(&["demo", "--code", "0000000", "+34600600600"]));
    out.assert_no_panic("demo --code");
    assert!(out.success(), "stderr: {}", out.stderr);
    let v = out.json();
    assert_eq!(v["send"]["status"], "Success", "{v}");
    assert_eq!(v["check"]["status"], "Failed", "{v}");
    assert_eq!(v["check"]["attempts_left"], 1, "{v}");
    assert_eq!(v["check"]["phone"]["status"], "Not Finished", "{v}");
}

#[test]
fn demo_on_the_sandbox_undeliverable_number_reports_undeliverable() {
    let out = run(switchboard(&["demo", "+12025550199"]));
    out.assert_no_panic("demo undeliverable");
    let v = out.json();
    assert_eq!(v["send"]["status"], "Undeliverable", "{v}");
    assert!(v["send"]["channel"].is_null(), "{v}");
    assert!(v["check"].is_null(), "no code to check: {v}");
}

#[test]
fn demo_on_the_sandbox_high_risk_number_is_blocked_before_sending() {
    let out = run(switchboard(&["demo", "+12025550190"]));
    out.assert_no_panic("demo high risk");
    let v = out.json();
    assert_eq!(v["send"]["status"], "Blocked", "{v}");
    assert_eq!(v["send"]["reason"], "HIGH_RISK_PHONE_NUMBER", "{v}");
    assert!(
        v["send"]["attempts"].as_array().is_some_and(Vec::is_empty),
        "{v}"
    );
    assert!(v["check"].is_null(), "{v}");
}

#[test]
fn demo_on_the_sandbox_approve_range_approves() {
    let out = run(switchboard(&["demo", "+12025550101"]));
    out.assert_no_panic("demo sandbox");
    assert!(out.success(), "stderr: {}", out.stderr);
    let v = out.json();
    assert_eq!(v["send"]["status"], "Success", "{v}");
    assert_eq!(v["check"]["status"], "Approved", "{v}");
}

#[test]
fn demo_of_an_invalid_number_prints_an_error_object_and_fails() {
    let out = run(switchboard(&["demo", "abc"]));
    out.assert_no_panic("demo abc");
    assert!(!out.success());
    let v = out.json();
    assert_eq!(v["send"]["error"]["code"], "INVALID_PHONE_NUMBER", "{v}");
    assert_eq!(v["send"]["input"], "abc", "{v}");
}

#[test]
fn env_override_of_code_length_changes_the_sent_code() {
    let mut cmd = switchboard(&["demo", "+34600600600"]);
    // The console provider logs the message it "sends"; info level shows it.
    cmd.env("SWITCHBOARD_WORKFLOW__CODE_LENGTH", "8")
        .env("RUST_LOG", "info");
    let out = run(cmd);
    out.assert_no_panic("demo code_length 8");
    assert!(out.success(), "stderr: {}", out.stderr);
    let v = out.json();
    assert_eq!(v["check"]["status"], "Approved", "{v}");
    let marker = "code is ";
    let at = out
        .stderr
        .find(marker)
        .unwrap_or_else(|| panic!("the console provider logged no message: {}", out.stderr));
    let code: String = out.stderr[at + marker.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 8, "code {code:?} in: {}", &out.stderr[at..]);
}

#[test]
fn env_override_with_an_invalid_code_length_fails_naming_the_key() {
    let mut cmd = switchboard(&["demo", "+34600600600"]);
    cmd.env("SWITCHBOARD_WORKFLOW__CODE_LENGTH", "3");
    let out = run(cmd);
    out.assert_no_panic("demo code_length 3");
    assert!(!out.success(), "an invalid config is refused");
    assert!(out.stdout.trim().is_empty(), "nothing sent: {}", out.stdout);
    assert!(
        out.stderr.contains("workflow.code_length"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_config_file_is_an_error_not_ignored() {
    let out = run(switchboard(&[
        "--config",
        "/nonexistent/switchboard.toml",
        "lookup",
        "+34600600600",
    ]));
    out.assert_no_panic("--config missing");
    assert!(!out.success());
    assert!(out.stdout.trim().is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// fraud status
// ---------------------------------------------------------------------------------------------

fn config_file(toml: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    file
}

#[test]
fn fraud_status_prints_the_effective_settings_of_an_application() {
    let file = config_file(
        "[apps.shop]\nbrand = \"Shop\"\n[apps.shop.fraud]\nmode = \"shadow\"\nprefix_budget = 3\nsafe_list = [\"+3460060*\"]\n",
    );
    let path = file.path().to_str().unwrap();
    let text = run(switchboard(&[
        "--config", path, "fraud", "status", "--app", "shop",
    ]));
    text.assert_no_panic("fraud status");
    assert!(text.success(), "stderr: {}", text.stderr);
    for want in [
        "application: shop",
        "mode: shadow",
        "prefix 3",
        "+3460060*",
        "blocks: not shown",
    ] {
        assert!(text.stdout.contains(want), "{want:?} in {}", text.stdout);
    }

    let json = run(switchboard(&[
        "--config", path, "fraud", "status", "--app", "shop", "--json",
    ]));
    assert!(json.success(), "stderr: {}", json.stderr);
    let v = json.json();
    assert_eq!(v["app"], "shop");
    assert_eq!(v["fraud"]["mode"], "shadow");
    assert_eq!(v["fraud"]["safe_list"], serde_json::json!(["+3460060*"]));
    assert!(
        v["blocks"].is_null(),
        "memory store: no blocks to read: {v}"
    );

    let unknown = run(switchboard(&[
        "--config", path, "fraud", "status", "--app", "nope",
    ]));
    unknown.assert_no_panic("fraud status of an unknown app");
    assert!(!unknown.success());
    assert!(unknown.stderr.contains("nope"), "{}", unknown.stderr);
}

#[test]
fn fraud_status_with_redis_lists_the_current_blocks() {
    use switchboard::store::{RedisSettings, RedisStore, Store};
    let url = crate::redis_server::shared_server().url();
    let prefix = crate::redis_server::unique_prefix();
    let store = Store::Redis(
        RedisStore::new(&RedisSettings {
            url: url.clone(),
            key_prefix: prefix.clone(),
            command_timeout: std::time::Duration::from_secs(2),
        })
        .unwrap(),
    );
    // The CLI reads blocks at the wall clock's now: the engine blocks at the same time.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock = switchboard::clock::ManualClock::new(now);
    let engine = crate::support::build_engine(
        "[workflow.fraud]\nprefix_budget = 1\n",
        &crate::support::Providers::delivering(),
        &clock,
        Some(store),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for n in ["+34600600600", "+34600600601"] {
            engine.send(switchboard::SendRequest::new(n)).await.unwrap();
        }
    });
    let file = config_file(&format!(
        "[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n"
    ));
    let out = run(switchboard(&[
        "--config",
        file.path().to_str().unwrap(),
        "fraud",
        "status",
        "--json",
    ]));
    out.assert_no_panic("fraud status on redis");
    assert!(out.success(), "stderr: {}", out.stderr);
    let v = out.json();
    let blocks = v["blocks"].as_array().expect("blocks listed");
    assert_eq!(blocks.len(), 1, "{v}");
    assert_eq!(blocks[0]["key"], "prefix:+3460060");
    assert_eq!(blocks[0]["rule"], "PREFIX_VELOCITY");
}

#[test]
fn routes_stats_prints_the_ledger_of_the_route_tables_countries() {
    let text = run(switchboard(&["routes", "stats"]));
    text.assert_no_panic("routes stats");
    assert!(text.success(), "stderr: {}", text.stderr);
    assert!(text.stdout.contains("strategy static"), "{}", text.stdout);
    assert!(
        text.stdout.contains("BR  whatsapp:meta_whatsapp"),
        "{}",
        text.stdout
    );

    let json = run(switchboard(&[
        "routes",
        "stats",
        "--json",
        "--country",
        "zw",
    ]));
    assert!(json.success(), "stderr: {}", json.stderr);
    let v = json.json();
    assert_eq!(v["strategy"], "static");
    let routes = v["routes"].as_array().unwrap();
    assert!(
        routes.iter().any(|r| r["country"] == "ZW"),
        "asked-for country listed"
    );
    assert!(
        routes
            .iter()
            .all(|r| r["accepted"] == 0 && r["breaker"] == "closed")
    );

    let bad = run(switchboard(&["routes", "stats", "--country", "Zimbabwe"]));
    assert!(!bad.success());
    assert!(bad.stderr.contains("ISO 3166-1"), "{}", bad.stderr);
}
