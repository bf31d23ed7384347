//! The Python client example (`examples/python/client.py`, grpcio with stubs generated from
//! our proto) against an in-process sidecar. The client prints the send result; the test reads
//! the code from the sandbox provider and types it on the client's stdin, as a user would.
//!
//! Needs `python3` with `pip`; the requirements are installed once into
//! `target/tmp/python-grpc` and reused.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use switchboard::Config;
use switchboard::server::auth::hash_key;
use switchboard::server::{self, AppState, Running};

const API_KEY: &str = "python-example-key-0123456789";

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python")
}

fn imports_ok(deps: Option<&Path>) -> bool {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import grpc, grpc_tools, grpc_status"]);
    if let Some(deps) = deps {
        cmd.env("PYTHONPATH", deps);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The directory to put on `PYTHONPATH` (`None`: the system Python already has everything).
/// Installs the example's requirements into `target/tmp/python-grpc` the first time; installs
/// into a private directory and renames it, so concurrent test runs never see half an install.
fn python_deps() -> &'static Option<PathBuf> {
    static DEPS: OnceLock<Option<PathBuf>> = OnceLock::new();
    DEPS.get_or_init(|| {
        let version = Command::new("python3").arg("--version").output();
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "the Python client example test needs `python3` on PATH (with pip), e.g. \
             `apt-get install python3 python3-pip`: {version:?}"
        );
        if imports_ok(None) {
            return None;
        }
        let deps = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-grpc");
        if imports_ok(Some(&deps)) {
            return Some(deps);
        }
        let staging = deps.with_extension(format!("partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&staging)
            .arg("-r")
            .arg(example_dir().join("requirements.txt"))
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .output()
            .expect("run python3 -m pip");
        assert!(
            out.status.success(),
            "installing examples/python/requirements.txt with pip failed (is pip installed? \
             `apt-get install python3-pip`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&deps);
        if std::fs::rename(&staging, &deps).is_err() {
            // Another run installed it first.
            let _ = std::fs::remove_dir_all(&staging);
        }
        assert!(
            imports_ok(Some(&deps)),
            "grpc still cannot be imported from {}",
            deps.display()
        );
        Some(deps)
    })
}

/// The sidecar on embedded defaults, on ephemeral ports, requiring one API key.
async fn sidecar() -> Running {
    let config = Config::from_toml(&format!(
        "[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\napi_keys = [{{ app = \"default\", sha256 = \"{}\" }}]\n",
        hash_key(API_KEY)
    ))
    .expect("test config is valid");
    server::start(config, |b| b).await.expect("sidecar starts")
}

/// What the client printed and how it exited.
struct ClientRun {
    stdout: String,
    stderr: String,
    success: bool,
    exit: Option<i32>,
}

/// Runs `client.py` against `running` with `args`. When the client prints its send line,
/// `answer` gives the line to type on its stdin (`None`: close stdin).
async fn run_client(
    running: &Running,
    args: &[&str],
    answer: impl FnOnce(&AppState) -> Option<String> + Send + 'static,
) -> ClientRun {
    let deps = python_deps().clone();
    let address = running.grpc_addr.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let state: Arc<AppState> = running.state.clone();
    let run = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("python3");
        cmd.arg(example_dir().join("client.py"))
            .arg(&address)
            .args(&args)
            .env("SB_API_KEY", API_KEY)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(deps) = &deps {
            cmd.env("PYTHONPATH", deps);
        }
        let mut child = cmd.spawn().expect("start python3 client.py");
        let mut stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut printed = String::new();
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap_or(0) > 0 {
            printed.push_str(&line);
            if line.starts_with("send: ") {
                break;
            }
            line.clear();
        }
        if let (Some(mut input), Some(typed)) = (stdin.take(), answer(&state)) {
            let _ = writeln!(input, "{typed}");
        }
        let _ = stdout.read_to_string(&mut printed);
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let status = child.wait().expect("client exits");
        ClientRun {
            stdout: printed,
            stderr,
            success: status.success(),
            exit: status.code(),
        }
    });
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the Python client finishes within 3 minutes")
        .expect("the client runner does not panic")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_sends_and_checks_a_code_to_approved() {
    let running = sidecar().await;
    let number = "+12025550104";
    let run = run_client(&running, &["--phone", number], move |state| {
        state
            .engine
            .sandbox()
            .and_then(|s| s.last_code(number))
            .map(|c| c.expose().to_owned())
    })
    .await;
    assert!(
        run.success,
        "client failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        run.exit, run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("send: Success channel=sms"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("check: Approved"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("phone: {number}")),
        "{}",
        run.stdout
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_shows_the_stable_error_code() {
    let running = sidecar().await;
    let run = run_client(&running, &["--phone", "12345", "--code", "123456"], |_| {
        None
    })
    .await;
    assert_eq!(
        run.exit,
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout
            .contains("error: INVALID_ARGUMENT INVALID_PHONE_NUMBER:"),
        "{}",
        run.stdout
    );
    running.shutdown().await;
}
