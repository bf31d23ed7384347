//! The HTTP/JSON API: request bodies and path parameters through the real router, its
//! deserialisers and the engine's validation, on embedded defaults (memory store, console
//! provider), in process.
//!
//! Input: one byte picks the endpoint (send, check, lookup, batch lookup, verification
//! get/review, number deletion, blocklist, fraud admin, routes, workflows, sessions, webhook
//! destinations, provider callbacks, the hosted page's forms); one byte of flags (bit 0: a JSON
//! content type, or a form one for the page; bit 1: an `Idempotency-Key`); for endpoints with a
//! path parameter, the bytes before the first `\n` are that parameter (percent-encoded into the
//! path; an empty one on a page path is the token of a real session, so the forms are reached);
//! the rest is the body, where `CSRF` stands for that session's CSRF token. Invariants: never a
//! 500; every answer of the API (`/v3/`, `/callbacks/`) that is not a success is the JSON error
//! envelope `{"error": {"code", "message"}}` with a SCREAMING_SNAKE code.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
use serde_json::Value;
use tower::ServiceExt;

/// (method, path; `{}` is the fuzzed parameter).
const ENDPOINTS: &[(Method, &str)] = &[
    (Method::POST, "/v3/phone/send/"),
    (Method::POST, "/v3/phone/check/"),
    (Method::POST, "/v3/phone/lookup/"),
    (Method::POST, "/v3/phone/lookup/batch/"),
    (Method::GET, "/v3/phone/verifications/{}/"),
    (Method::PATCH, "/v3/phone/verifications/{}/"),
    (Method::DELETE, "/v3/phone/numbers/{}/"),
    (Method::POST, "/v3/blocklist/"),
    (Method::DELETE, "/v3/blocklist/{}"),
    (Method::GET, "/v3/fraud/blocks/"),
    (Method::DELETE, "/v3/fraud/blocks/{}/"),
    (Method::POST, "/v3/fraud/safe-list/"),
    (Method::DELETE, "/v3/fraud/safe-list/"),
    (Method::PUT, "/v3/fraud/geo/"),
    (Method::GET, "/v3/routes/stats/"),
    (Method::POST, "/callbacks/{}"),
    (Method::POST, "/v3/workflows/"),
    (Method::GET, "/v3/workflows/{}/"),
    (Method::PATCH, "/v3/workflows/{}/"),
    (Method::DELETE, "/v3/workflows/{}/"),
    (Method::POST, "/v3/session/"),
    (Method::GET, "/v3/session/{}/decision/"),
    (Method::POST, "/v3/webhook/destinations/"),
    (Method::DELETE, "/v3/webhook/destinations/{}/"),
    (Method::GET, "/session/{}/"),
    (Method::POST, "/session/{}/send"),
    (Method::POST, "/session/{}/resend"),
    (Method::POST, "/session/{}/check"),
    (Method::GET, "/session/{}/validate"),
];

/// A sidecar on embedded defaults (memory store, console provider), started once per process
/// and shared by the `http` and `grpc` targets; called in process, not over its sockets.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
    running: switchboard::server::Running,
    /// A hosted session's page token and the CSRF token of its forms.
    session: (String, String),
}

impl Server {
    /// Its shared state, for the gRPC service.
    pub fn state(&self) -> std::sync::Arc<switchboard::server::AppState> {
        self.running.state.clone()
    }

    /// Runs `f` on its runtime.
    pub fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }
}

pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let config = switchboard::Config::from_toml(
            "[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n",
        )
        .expect("the embedded defaults load");
        let running = runtime
            .block_on(switchboard::server::start(config, |builder| builder))
            .expect("the server starts");
        let router = switchboard::server::http::router(running.state.clone());
        let session = runtime.block_on(hosted_session(&router));
        Server {
            runtime,
            router,
            running,
            session,
        }
    })
}

/// Creates a hosted session and reads its page: (page token, CSRF token).
async fn hosted_session(router: &Router) -> (String, String) {
    let call = |request: Request<Body>| async {
        let response = router.clone().oneshot(request).await.expect("infallible");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let created = call(
        Request::post("/v3/session/")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"vendor_data": "fuzz"}"#))
            .expect("a request"),
    )
    .await;
    let created: Value = serde_json::from_str(&created).expect("a session");
    let url = created["session_url"].as_str().expect("a session URL");
    let token = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .expect("a token")
        .to_owned();
    let page = call(
        Request::get(format!("/session/{token}/"))
            .body(Body::empty())
            .expect("a request"),
    )
    .await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's CSRF token")
        .to_owned();
    (token, csrf)
}

pub fn run(data: &[u8]) {
    let [which, flags, rest @ ..] = data else {
        return;
    };
    let (method, template) = &ENDPOINTS[usize::from(*which) % ENDPOINTS.len()];
    let server = server();
    let page = template.starts_with("/session/");
    let (path, body) = match template.split_once("{}") {
        Some((before, after)) => {
            let (param, body) = super::split_line(rest);
            let param = if page && param.is_empty() {
                server.session.0.clone()
            } else {
                percent_encode(param, NON_ALPHANUMERIC).to_string()
            };
            (format!("{before}{param}{after}"), body)
        }
        None => ((*template).to_owned(), rest),
    };
    let body = if page {
        String::from_utf8_lossy(body)
            .replace("CSRF", &server.session.1)
            .into_bytes()
    } else {
        body.to_vec()
    };
    let mut request = Request::builder().method(method.clone()).uri(path.clone());
    if flags & 1 == 1 {
        let kind = if page {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        request = request.header("content-type", kind);
    }
    if flags & 2 == 2 {
        request = request.header("idempotency-key", format!("fuzz-{}", flags >> 2));
    }
    let Ok(mut request) = request.body(Body::from(body)) else {
        return;
    };
    // What the server's accept loop adds to every request: the client's address (the flags
    // byte picks one, so the per-IP limits are met only as often as real clients meet them).
    let peer = SocketAddr::from(([10, 0, flags >> 2, 1], 40_000));
    request.extensions_mut().insert(ConnectInfo(peer));
    let (status, bytes) = server.block_on(async {
        let response = server
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a response body");
        (status, bytes)
    });
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "no input makes a 500: {}",
        String::from_utf8_lossy(&bytes)
    );
    let api = path.starts_with("/v3/") || path.starts_with("/callbacks/");
    if api && !status.is_success() {
        let envelope: Value =
            serde_json::from_slice(&bytes).expect("an error answer is the JSON envelope");
        let code = envelope["error"]["code"]
            .as_str()
            .expect("the envelope has a code");
        assert!(
            !code.is_empty()
                && code
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "error codes are SCREAMING_SNAKE: {code}"
        );
        assert!(
            envelope["error"]["message"].is_string(),
            "the envelope has a message"
        );
    }
}
