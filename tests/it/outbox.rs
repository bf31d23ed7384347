//! The durable webhook outbox of the Redis store: deliveries that survive a `kill -9` of every
//! sidecar while the receiver is down, dead letters after the last attempt, the queue gauges,
//! and expiry events announced once by two sidecars sharing one Redis.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::http::{SANDBOX, sidecar};
use crate::redis_server::{free_port, shared_cluster, shared_server, unique_prefix};

const SECRET: &str = "whsec-test-0123456789abcdef";

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(shared_server().url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn xlen(conn: &mut impl redis::aio::ConnectionLike, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

/// Waits (bounded) until `done` answers true.
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, secs: u64, mut done: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The event bodies a receiver got.
async fn bodies(receiver: &MockServer) -> Vec<Value> {
    receiver
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_fails_every_attempt_moves_to_the_dead_letters_and_shows_in_metrics() {
    dead_letters_and_metrics(&shared_server().url(), redis_conn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_the_outbox_delivers_and_dead_letters_the_same_way() {
    let cluster = shared_cluster();
    let conn = redis::cluster::ClusterClient::new(
        cluster.nodes.iter().map(|n| n.url()).collect::<Vec<_>>(),
    )
    .unwrap()
    .get_async_connection()
    .await
    .unwrap();
    dead_letters_and_metrics(&cluster.url(), conn).await;
}

async fn dead_letters_and_metrics(url: &str, mut conn: impl redis::aio::ConnectionLike) {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/broken"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&receiver)
        .await;
    let prefix = unique_prefix();
    let s = sidecar(&format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n\
         [webhooks]\ndestinations = [\
         {{ url = \"{uri}/ok\", secret = \"{SECRET}\" }}, \
         {{ url = \"{uri}/broken\", secret = \"{SECRET}\", events = [\"verification.started\"] }}]\n\
         max_attempts = 3\ninitial_backoff_ms = 10\nmax_backoff_ms = 20\n",
        url,
        uri = receiver.uri()
    ))
    .await;
    assert_eq!(s.send(SANDBOX).await.status, StatusCode::OK);
    let code = s.sandbox_code(SANDBOX);
    assert_eq!(s.check(SANDBOX, &code).await.body["status"], "Approved");

    let stream = format!("{prefix}:{{outbox}}:webhooks");
    let dead = format!("{prefix}:{{outbox}}:webhooks-dead");
    eventually("the dead letter", 20, async || {
        xlen(&mut conn, &dead).await == 1
    })
    .await;
    eventually("an empty outbox", 20, async || {
        xlen(&mut conn, &stream).await == 0
    })
    .await;

    let ok: Vec<Value> = receiver
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/ok")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let kinds: BTreeSet<&str> = ok.iter().filter_map(|b| b["event"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["verification.started", "verification.approved"])
    );
    let broken = receiver
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/broken")
        .count();
    assert_eq!(broken, 3, "max_attempts attempts, then the dead letters");

    let letters: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&dead)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, fields) = &letters[0];
    assert_eq!(fields["event"], "verification.started");
    assert_eq!(fields["error"], "HTTP 500");
    assert!(fields["url"].ends_with("/broken"));
    let body: Value = serde_json::from_str(&fields["body"]).unwrap();
    assert_eq!(body["phone_number"], SANDBOX);
    assert!(
        !fields["body"].contains(&code),
        "a payload never carries the code"
    );

    eventually("the gauges", 10, async || {
        s.metric("switchboard_webhook_dead_letters").await == 1.0
            && s.metric("switchboard_webhook_queue_depth").await == 0.0
    })
    .await;
    assert_eq!(
        s.metric("switchboard_webhook_deliveries_total{outcome=\"failed\"}")
            .await,
        1.0
    );
    s.running.shutdown().await;
}

/// `switchboard serve` as a child process (killed with SIGKILL when dropped).
struct Process {
    child: Child,
    http: u16,
}

impl Process {
    fn spawn(config: &Path) -> Self {
        let http = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.args(["serve", "--config"])
            .arg(config)
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--grpc-addr", &format!("127.0.0.1:{}", free_port())]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(&key);
            }
        }
        let child = cmd
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start switchboard serve");
        Process { child, http }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    async fn ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the sidecar exited"
            );
            if client
                .get(self.url("/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            assert!(Instant::now() < deadline, "the sidecar never got ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two sidecars on one Redis; the receiver is down. Each sends to its own numbers, whose
/// verifications are then abandoned (a one-second validity). Once every event is in the
/// outbox, both sidecars are killed with SIGKILL mid-retry; the receiver comes up and both
/// sidecars restart: every event arrives, and each number has exactly one `started` and one
/// `abandoned` event (by `event_id`, which receivers deduplicate on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_every_sidecar_while_the_receiver_is_down_loses_no_event_and_ends_are_announced_once()
 {
    const PER_SIDECAR: usize = 6;
    let prefix = unique_prefix();
    let receiver_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "[workflow.limits]\nvalidity_secs = 1\n[workflow.fraud]\nmode = \"off\"\n\
             [store]\nbackend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\nexpiry_sweep_ms = 100\n\
             [server]\nrate_per_ip = 1000000\nburst_per_ip = 1000000\n\
             [webhooks]\ndestinations = [{{ url = \"http://127.0.0.1:{receiver_port}/hook\", secret = \"{SECRET}\" }}]\n\
             max_attempts = 1000\ninitial_backoff_ms = 50\nmax_backoff_ms = 300\ntimeout_ms = 1000\n\
             reclaim_idle_ms = 1000\n",
            shared_server().url()
        ),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let mut a = Process::spawn(&config);
    let mut b = Process::spawn(&config);
    a.ready(&client).await;
    b.ready(&client).await;

    let numbers: Vec<String> = (0..2 * PER_SIDECAR)
        .map(|i| format!("+3460070{i:04}"))
        .collect();
    for (i, number) in numbers.iter().enumerate() {
        let via = if i < PER_SIDECAR { &a } else { &b };
        let r = client
            .post(via.url("/v3/phone/send/"))
            .json(&serde_json::json!({ "phone_number": number }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }
    // Every started and abandoned event waits in the outbox; the sidecars keep failing to
    // deliver them.
    let mut conn = redis_conn().await;
    let stream = format!("{prefix}:{{outbox}}:webhooks");
    let all = 2 * numbers.len() as u64;
    eventually("every event in the outbox", 30, async || {
        xlen(&mut conn, &stream).await == all
    })
    .await;
    let depth = async |p: &Process| -> f64 {
        let text = client
            .get(p.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("switchboard_webhook_queue_depth "))
            .map_or(-1.0, |v| v.trim().parse().unwrap())
    };
    eventually("the queue depth gauge", 10, async || {
        depth(&a).await == all as f64
    })
    .await;
    let (pending, _, _, _): (u64, Option<String>, Option<String>, redis::Value) =
        redis::cmd("XPENDING")
            .arg(&stream)
            .arg("webhooks")
            .query_async(&mut conn)
            .await
            .unwrap();
    assert!(pending > 0, "deliveries were in progress at the kill");
    a.kill();
    b.kill();
    let consumers = async |conn: &mut redis::aio::MultiplexedConnection| -> BTreeSet<String> {
        let info: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&stream)
            .arg("webhooks")
            .query_async(conn)
            .await
            .unwrap();
        info.consumers.into_iter().map(|c| c.name).collect()
    };
    let killed = consumers(&mut conn).await;
    assert_eq!(killed.len(), 2, "one consumer per sidecar");

    let receiver = MockServer::builder()
        .listener(std::net::TcpListener::bind(("127.0.0.1", receiver_port)).unwrap())
        .start()
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let mut a = Process::spawn(&config);
    let mut b = Process::spawn(&config);
    a.ready(&client).await;
    b.ready(&client).await;

    eventually("an empty outbox", 60, async || {
        xlen(&mut conn, &stream).await == 0
    })
    .await;
    let got = bodies(&receiver).await;
    let mut by_id: BTreeMap<String, (String, String)> = BTreeMap::new();
    for body in &got {
        let id = body["event_id"].as_str().unwrap().to_owned();
        let what = (
            body["phone_number"].as_str().unwrap().to_owned(),
            body["event"].as_str().unwrap().to_owned(),
        );
        // A redelivery carries the same event.
        if let Some(seen) = by_id.insert(id, what.clone()) {
            assert_eq!(seen, what);
        }
    }
    let mut per_number: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (number, event) in by_id.values() {
        per_number.entry(number).or_default().push(event);
    }
    assert_eq!(per_number.len(), numbers.len(), "{per_number:?}");
    for number in &numbers {
        let mut events = per_number[number.as_str()].clone();
        events.sort();
        assert_eq!(
            events,
            ["verification.abandoned", "verification.started"],
            "{number}"
        );
    }
    assert!(got.len() >= by_id.len());
    // The killed sidecars' consumers, empty now, leave the group after ten reclaim times.
    eventually("the dead consumers forgotten", 60, async || {
        consumers(&mut conn).await.is_disjoint(&killed)
    })
    .await;
    drop((a, b));
}
