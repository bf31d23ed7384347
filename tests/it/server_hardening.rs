//! The sidecar under hostile traffic: the per-IP limit in front of authentication and
//! signatures, slow and malformed connections, and the answers every client gets
//! (`x-request-id`, the JSON error envelope) whatever went wrong.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::providers::{
    Capabilities, Channel, Delivery, DeliveryError, OutboundMessage, Provider,
};
use switchboard::server::auth::hash_key;
use switchboard::server::grpc::pb::{self, switchboard_client::SwitchboardClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

use crate::http::{Answer, Sidecar, sidecar};

const KEY: &str = "sk_test_0123456789abcdef";

/// API keys required; the per-IP limit small (20 at once, then 1 a second).
fn keyed_with_small_ip_limit(extra: &str) -> String {
    format!(
        "[server]\napi_keys = [{{ app = \"default\", sha256 = \"{}\" }}]\nrate_per_ip = 1\nburst_per_ip = 20\n{extra}",
        hash_key(KEY)
    )
}

/// Counts the statuses of `answers`: (401s, 429s).
fn tally(answers: &[Answer]) -> (usize, usize) {
    let count = |s| answers.iter().filter(|a| a.status == s).count();
    (
        count(StatusCode::UNAUTHORIZED),
        count(StatusCode::TOO_MANY_REQUESTS),
    )
}

/// At most the burst, plus one a second for the time the flood took, got past the limiter.
fn assert_limited(answers: &[Answer], started: Instant, what: &str) {
    let (refused, limited) = tally(answers);
    let refill = started.elapsed().as_secs() as usize + 1;
    assert_eq!(refused + limited, answers.len(), "{what}: only 401 or 429");
    assert!(
        (20..=20 + refill).contains(&refused),
        "{what}: {refused} reached authentication, burst 20"
    );
    assert!(limited >= 300 - 20 - refill, "{what}: {limited} limited");
    let last = answers.last().unwrap();
    assert_eq!(last.code(), "RATE_LIMITED", "{what}");
    assert!(last.header("retry-after").is_some(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_api_keys_from_one_ip_are_rate_limited_before_authentication() {
    let s = sidecar(&keyed_with_small_ip_limit("")).await;
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..300 {
        let key = format!("sk_wrong_{i:04}_0123456789");
        answers.push(
            s.post_with_key(
                "/v3/phone/send/",
                Some(&key),
                json!({"phone_number": "+12025550101"}),
            )
            .await,
        );
    }
    assert_limited(&answers, started, "wrong keys");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_callbacks_from_one_ip_are_rate_limited_before_the_signature_check() {
    let s = sidecar(&keyed_with_small_ip_limit(
        "[providers.twilio]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
         auth_token = \"twilio-test-auth-token-0123\"\nfrom = \"+15005550006\"\n\
         base_url = \"http://127.0.0.1:1\"\n",
    ))
    .await;
    // 256 KiB of form body under a signature that does not match.
    let body = format!(
        "MessageSid=SM1&MessageStatus=delivered&Pad={}",
        "a".repeat(256 * 1024 - 60)
    );
    let post = |body: String| {
        s.client
            .post(s.url("/callbacks/twilio"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", "bm90LWEtc2lnbmF0dXJl")
            .body(body)
            .send()
    };
    let started = Instant::now();
    let (mut refused, mut limited, mut cut_off) = (0usize, 0usize, 0usize);
    for _ in 0..300 {
        match post(body.clone()).await {
            Ok(response) => match Sidecar::answer(response).await.code() {
                "BAD_SIGNATURE" => refused += 1,
                "RATE_LIMITED" => limited += 1,
                other => panic!("unexpected answer {other}"),
            },
            // Refused before its body was read: the server answered 429 and closed while the
            // upload was still going, so the client may see the reset instead of the answer.
            Err(e) if refused >= 20 => {
                assert!(e.is_request(), "{e}");
                cut_off += 1;
            }
            Err(e) => panic!("a callback within the burst failed: {e}"),
        }
    }
    let refill = started.elapsed().as_secs() as usize + 1;
    assert!(
        (20..=20 + refill).contains(&refused),
        "{refused} reached the signature check, burst 20"
    );
    assert_eq!(refused + limited + cut_off, 300);
    let last = Sidecar::answer(post("MessageSid=SM1".into()).await.unwrap()).await;
    assert_eq!(last.code(), "RATE_LIMITED", "{}", last.text);
    assert!(last.header("retry-after").is_some());
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_api_keys_over_grpc_from_one_ip_are_rate_limited_before_authentication() {
    let s = sidecar(&keyed_with_small_ip_limit("")).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = SwitchboardClient::new(channel);
    let started = Instant::now();
    let (mut refused, mut limited) = (0usize, 0usize);
    for i in 0..300 {
        let mut request = tonic::Request::new(pb::ListBlocklistRequest {});
        request.metadata_mut().insert(
            "x-api-key",
            format!("sk_wrong_{i:04}_0123456789").parse().unwrap(),
        );
        match client.list_blocklist(request).await.unwrap_err().code() {
            Code::Unauthenticated => refused += 1,
            Code::ResourceExhausted => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let refill = started.elapsed().as_secs() as usize + 1;
    assert!(
        (20..=20 + refill).contains(&refused),
        "{refused} authenticated"
    );
    assert!(limited >= 300 - 20 - refill, "{limited} limited");
    drop(client);
    s.running.shutdown().await;
}

// --- connections -------------------------------------------------------------------------------

/// Opens a connection to `addr` that sends half a request line and then nothing.
async fn slow_connection(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /healthz HT").await.unwrap();
    stream
}

/// Waits (up to `within`) until the server closes `stream`: true when it did.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends raw bytes on a fresh connection and reads the answer until the server closes.
async fn raw_exchange(
    addr: std::net::SocketAddr,
    request: &[u8],
) -> (u16, Vec<(String, String)>, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before the whole request is written.
    let _ = stream.write_all(request).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the server answers and closes");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (
        status,
        headers,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_connections_that_never_finish_their_headers_are_closed_within_15_s_while_healthz_answers()
 {
    // The embedded defaults: the header-read timeout and connection cap as shipped.
    let s = sidecar("").await;
    let addr = s.running.http_addr;
    let opened = tokio::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.push(slow_connection(addr).await);
    }
    // While all 300 hang: fresh clients are answered.
    for _ in 0..3 {
        let fresh = reqwest::Client::new();
        let a = Sidecar::answer(fresh.get(s.url("/healthz")).send().await.unwrap()).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body["status"], "SERVING");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deadline = opened + Duration::from_secs(15);
    for (i, stream) in slow.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            closed_within(stream, left).await,
            "slow connection {i} still open 15 s after it was opened"
        );
    }
    let a = s.get("/healthz").await;
    assert_eq!(a.status, StatusCode::OK);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_accept_and_admitted_again_once_slots_free() {
    let s = sidecar("[server]\nmax_connections = 4\nheader_read_timeout_secs = 1\n").await;
    let addr = s.running.http_addr;
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(slow_connection(addr).await);
    }
    // The fifth is closed at once, not left hanging.
    let mut fifth = slow_connection(addr).await;
    assert!(closed_within(&mut fifth, Duration::from_secs(5)).await);
    // The four are cut by the header-read timeout; then new connections are served again.
    for stream in &mut slow {
        assert!(closed_within(stream, Duration::from_secs(10)).await);
    }
    let fresh = reqwest::Client::new();
    let a = Sidecar::answer(fresh.get(s.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    let refused = "switchboard_connections_refused_total{listener=\"http\"}";
    assert!(s.metric(refused).await >= 1.0);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let s = sidecar("[server]\nheader_read_timeout_secs = 1\n").await;
    let mut stream = TcpStream::connect(s.running.http_addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: switchboard\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Kept alive after the answer, then closed when no next request comes.
    assert!(closed_within(&mut stream, Duration::from_secs(10)).await);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_still_drains_with_slow_connections_open() {
    let s = sidecar("").await;
    let addr = s.running.http_addr;
    let mut slow = slow_connection(addr).await;
    tokio::time::timeout(Duration::from_secs(15), s.running.shutdown())
        .await
        .expect("shutdown returns within its grace period");
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await);
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

// --- every answer: x-request-id and the JSON envelope -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_an_x_request_id() {
    let s = sidecar("[server]\nrate_per_ip = 1\nburst_per_ip = 6\n").await;
    let answers = [
        s.get("/healthz").await,
        s.get("/metrics").await,
        s.get("/openapi.json").await,
        s.get("/no/such/path").await,
        s.get("/v3/phone/send/").await,
        s.post("/v3/phone/send/", json!({})).await,
        s.get("/v3/blocklist/").await,
        // Over the per-IP burst: the limiter's own 429.
        s.get("/v3/blocklist/").await,
    ];
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200, 404, 405, 400, 200, 429]);
    for a in &answers {
        let id = a.header("x-request-id").unwrap_or_default();
        assert_eq!(id.len(), 36, "{} has no request id", a.status);
    }
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hypers_own_refusals_come_back_in_the_json_envelope() {
    let s = sidecar("").await;
    let addr = s.running.http_addr;
    let many_headers: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            format!("GET /healthz HTTP/1.1\r\nHost: s\r\n{many_headers}\r\n").into_bytes(),
            431,
            "REQUEST_HEADERS_TOO_LARGE",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: s\r\nx-big: {}\r\n\r\n", "a".repeat(600 * 1024))
                .into_bytes(),
            431,
            "REQUEST_HEADERS_TOO_LARGE",
        ),
        (
            b"POST /v3/phone/send/ HTTP/1.1\r\nHost: s\r\nContent-Length: abc\r\n\r\n{}".to_vec(),
            400,
            "INVALID_REQUEST",
        ),
        (
            b"POST /v3/phone/send/ HTTP/1.1\r\nHost: s\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
                .to_vec(),
            400,
            "INVALID_REQUEST",
        ),
        (b"NOT AN HTTP REQUEST\r\n\r\n".to_vec(), 400, "INVALID_REQUEST"),
        (
            format!("GET /{} HTTP/1.1\r\nHost: s\r\n\r\n", "a".repeat(70 * 1024)).into_bytes(),
            414,
            "URI_TOO_LONG",
        ),
    ];
    for (request, status, code) in cases {
        let shown = String::from_utf8_lossy(&request[..request.len().min(60)]).into_owned();
        let (got, headers, body) = raw_exchange(addr, &request).await;
        assert_eq!(got, status, "{shown}");
        assert_eq!(body["error"]["code"], code, "{shown}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("content-type"), Some("application/json"), "{shown}");
        assert_eq!(header("x-request-id").map(str::len), Some(36), "{shown}");
    }
    // The server is unharmed.
    assert_eq!(s.get("/healthz").await.status, StatusCode::OK);
    s.running.shutdown().await;
}

// --- gRPC ---------------------------------------------------------------------------------------

/// A provider that never answers (its route's attempt timeout is long).
struct Hanging;

impl Provider for Hanging {
    fn name(&self) -> &str {
        "console"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::channels(&Channel::ALL)
    }

    async fn send(&self, _message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        std::future::pending().await
    }
}

async fn grpc_client(addr: std::net::SocketAddr) -> SwitchboardClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    SwitchboardClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_past_the_request_timeout_is_cut_off() {
    let s = crate::http::sidecar_with(
        "[server]\ngrpc_request_timeout_secs = 1\n[routing]\nattempt_timeout_ms = 60000\n",
        |b| b.provider(std::sync::Arc::new(Hanging)),
    )
    .await;
    let mut client = grpc_client(s.running.grpc_addr).await;
    let request = pb::SendRequest {
        phone_number: "+34600600600".into(),
        ..Default::default()
    };
    let err = tokio::time::timeout(Duration::from_secs(15), client.send(request))
        .await
        .expect("the server cut the call off")
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{err:?}"
    );
    drop(client);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_connections_over_the_cap_are_refused_and_counted() {
    let s = sidecar("[server]\nmax_connections = 1\n").await;
    let mut first = grpc_client(s.running.grpc_addr).await;
    first
        .list_blocklist(pb::ListBlocklistRequest {})
        .await
        .expect("the first connection is served");
    let second = tonic::transport::Channel::from_shared(format!("http://{}", s.running.grpc_addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = second {
        // Closed at accept: the call fails at the transport (the code depends on when the
        // client notices: Unavailable, Unknown, ...), never served.
        let answer = SwitchboardClient::new(channel)
            .list_blocklist(pb::ListBlocklistRequest {})
            .await;
        assert!(answer.is_err(), "served over the cap");
    }
    let refused = "switchboard_connections_refused_total{listener=\"grpc\"}";
    assert!(s.metric(refused).await >= 1.0);
    // The admitted connection is unaffected.
    first
        .list_blocklist(pb::ListBlocklistRequest {})
        .await
        .expect("still served");
    drop(first);
    s.running.shutdown().await;
}

// --- the document ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_asks_for_the_api_key_when_the_sidecar_has_keys() {
    let s = sidecar(&keyed_with_small_ip_limit("")).await;
    let doc = s.get("/openapi.json").await.body;
    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(
        (&scheme["type"], &scheme["name"], &scheme["in"]),
        (&json!("apiKey"), &json!("x-api-key"), &json!("header"))
    );
    for (path, method) in [("/v3/phone/send/", "post"), ("/v3/blocklist/", "get")] {
        assert_eq!(
            doc["paths"][path][method]["security"],
            json!([{"api_key": []}]),
            "{method} {path}"
        );
    }
    assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_the_document_admits_are_taken_as_any_client_encodes_them() {
    let s = sidecar("").await;
    // JSON Schema's `integer` admits 8.0; a fraction is still refused.
    let a = s
        .post(
            "/v3/phone/send/",
            json!({"phone_number": "+34600600601", "options": {"code_size": 8.0}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = s
        .post(
            "/v3/phone/send/",
            json!({"phone_number": "+34600600602", "options": {"code_size": 8.5}}),
        )
        .await;
    assert_eq!(a.code(), "INVALID_REQUEST", "{}", a.text);
    assert!(a.text.contains("options.code_size"), "{}", a.text);
    // The query is percent-decoded: an encoded comma separates countries.
    let a = s.get("/v3/routes/stats/?country=BR%2Cmx").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let countries: BTreeSet<&str> = a.body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["country"].as_str().unwrap())
        .collect();
    assert!(
        countries.contains("BR") && countries.contains("MX"),
        "{countries:?}"
    );
    let a = s.get("/v3/routes/stats/?country=BR%2CXYZ").await;
    assert_eq!(a.code(), "INVALID_REQUEST", "{}", a.text);
    // The document's geo keys and IP forms.
    let doc = s.get("/openapi.json").await.body;
    let geo = &doc["components"]["schemas"]["GeoBody"]["properties"]["geo"];
    assert!(
        geo["propertyNames"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("all"))
    );
    assert_eq!(
        geo["additionalProperties"]["propertyNames"]["pattern"],
        "^[A-Z]{2}$"
    );
    let ip = &doc["components"]["schemas"]["SignalsBody"]["properties"]["ip"]["anyOf"];
    assert_eq!(ip.as_array().unwrap().len(), 4, "{ip}");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_states_the_limits_the_server_enforces_and_links_send_to_check() {
    let s = sidecar("").await;
    let doc = s.get("/openapi.json").await.body;
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let send = schema("SendBody");
    let regions = send["properties"]["region"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    assert!(regions.contains(&json!("ES")) && regions.contains(&Value::Null));
    assert!(!regions.contains(&json!("")) && !regions.contains(&json!("001")));
    assert_eq!(send["properties"]["vendor_data"]["maxLength"], 256);
    let options = schema("SendOptionsBody");
    assert_eq!(
        options["properties"]["locale"]["pattern"],
        "^[A-Za-z0-9_-]{1,35}$"
    );
    assert_eq!(options["properties"]["code_size"]["minimum"], 4);
    assert_eq!(options["properties"]["code_size"]["maximum"], 10);
    // What the schema allows, the server takes: every listed region with a national number.
    for region in ["ES", "US", "GB"] {
        assert!(regions.contains(&json!(region)));
    }
    let a = s
        .post(
            "/v3/phone/lookup/",
            json!({"phone_number": "600600600", "region": "ES", "vendor_data": "é".repeat(128)}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let link = &doc["paths"]["/v3/phone/send/"]["post"]["responses"]["200"]["links"]["check"];
    assert_eq!(link["operationId"], "check");
    assert_eq!(
        link["requestBody"]["phone_number"],
        "$request.body#/phone_number"
    );
    let unblock = &doc["paths"]["/v3/blocklist/"]["post"]["responses"]["201"]["links"]["unblock"];
    assert_eq!(unblock["operationId"], "unblock");
    let hub = doc["paths"]["/callbacks/{provider}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hub.mode")
        .unwrap()
        .clone();
    assert_eq!(hub["schema"]["enum"], json!(["subscribe"]));
    for path in ["/metrics", "/openapi.json"] {
        assert!(
            doc["paths"][path]["get"]["responses"]["429"].is_object(),
            "{path}"
        );
    }
    s.running.shutdown().await;
}
