//! HTTP/JSON API (axum), shaped like the phone-verification API of PRODUCT.md:
//! `POST /v3/phone/send/`, `/v3/phone/check/`, `/v3/phone/lookup/`, the blocklist, the fraud
//! screen's admin calls (`/v3/fraud/...`), provider callbacks, `/openapi.json` (generated from these handlers and types), `/metrics` and
//! `/healthz`.
//!
//! Every answer that is not a success is `{"error": {"code", "message", "retry_after"?}}` with
//! the status of the one error table (`server::errors`); 429 carries `Retry-After`. Handlers read
//! their own bodies (`body`), so none of axum's plain-text rejections can leave.

mod body;
mod callbacks;
mod destinations;
mod openapi;
mod records;
mod sessions;
pub mod types;
mod workflows;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use hyper::body::Incoming as HyperBody;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::AppState;
use super::auth::Principal;
use super::conn::{Admitted, ConnectionCap, JsonRefusals};
use super::errors::ApiError;
use crate::report::{CheckOutcome, SendOutcome};
use types::{
    Blocklist, BlocklistBody, BlocklistEntry, CheckBody, ErrorBody, FraudBlocks, FraudRelease,
    GeoBody, GeoPermissions, Health, LookupBatchBody, LookupBatchResponse, LookupBody,
    LookupResponse, SafeList, SafeListBody, SafeListChange, SendBody, ServingStatus,
};

pub use openapi::document as openapi_document;

/// Response header carrying the request id (the engine's, where the request reached it).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Request header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Request header making a send idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Serves the HTTP API on `listener` until `shutdown` resolves, then drains.
///
/// hyper's HTTP/1.1 server with a timer, so `server.header_read_timeout_secs` closes a
/// connection whose request headers do not arrive in time (and one idle that long between
/// requests); at most `server.max_connections` connections at once, the rest closed at accept
/// (`super::conn`); hyper's own 400/414/431 answers rewritten into the JSON envelope. No HTTP/2
/// here: clients of this API speak HTTP/1.1, and gRPC has its own listener.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = router(state.clone());
    let cap = ConnectionCap::new(state.config.max_connections);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(state.config.header_read_timeout_secs))
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // pause briefly rather than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = cap.admit() else {
            state.metrics.connection_refused("http");
            tracing::debug!(%peer, "HTTP listener full: connection closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<HyperBody>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            tower_service::Service::call(&mut router, request)
        });
        let io = TokioIo::new(JsonRefusals::new(Admitted::new(stream, slot)));
        let connection = graceful.watch(http1.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    // Idle keep-alive connections close now; busy ones after their answer.
    graceful.shutdown().await;
}

/// The API's routes. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: the
/// per-IP rate limit reads the peer address.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v3/phone/send/", post(send))
        .route("/v3/phone/check/", post(check))
        .route("/v3/phone/lookup/", post(lookup))
        .route(
            "/v3/phone/verifications/{verification_id}/",
            get(records::get_verification).patch(records::review_verification),
        )
        .route(
            "/v3/phone/numbers/{phone_number}/",
            delete(records::delete_number),
        )
        .route("/v3/phone/lookup/batch/", post(lookup_batch))
        .route("/v3/blocklist/", post(block).get(blocklist))
        .route("/v3/blocklist/{phone_number}", delete(unblock))
        .route("/v3/routes/stats/", get(route_stats))
        .route("/v3/fraud/blocks/", get(fraud_blocks))
        .route("/v3/fraud/blocks/{key}/", delete(release_fraud_block))
        .route(
            "/v3/fraud/safe-list/",
            get(safe_list).post(safe_list_add).delete(safe_list_remove),
        )
        .route(
            "/v3/fraud/geo/",
            get(geo_permissions).put(set_geo_permissions),
        )
        .route(
            "/callbacks/{provider}",
            post(callbacks::receive).get(callbacks::receive_get),
        )
        .route(
            "/v3/workflows/",
            get(workflows::list).post(workflows::create),
        )
        .route(
            "/v3/workflows/{workflow_id}/",
            get(workflows::get)
                .patch(workflows::update)
                .delete(workflows::delete),
        )
        .route("/v3/session/", post(sessions::create))
        .route(
            "/v3/session/{session_id}/decision/",
            get(sessions::decision),
        )
        .route(
            "/v3/webhook/destinations/",
            get(destinations::list).post(destinations::create),
        )
        .route(
            "/v3/webhook/destinations/{destination_id}/",
            delete(destinations::delete),
        )
        .route("/session/{token}/", get(super::hosted::show))
        .route("/session/{token}/send", post(super::hosted::send))
        .route("/session/{token}/resend", post(super::hosted::resend))
        .route("/session/{token}/check", post(super::hosted::check))
        .route("/session/{token}/validate", get(super::hosted::validate))
        .route("/hosted/static/{file}", get(super::hosted::asset))
        .route("/hosted/static/brand/{file}", get(super::hosted::brand))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            per_ip_limit,
        ))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// What a request brought besides its body.
struct Incoming {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

fn split(request: Request) -> (Incoming, axum::body::Body) {
    let (parts, body) = request.into_parts();
    (
        Incoming {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
        },
        body,
    )
}

/// The API key and its rate limit: the gate of every `/v3` route (behind [`per_ip_limit`]).
fn authorize(state: &AppState, incoming: &Incoming) -> Result<Principal, ApiError> {
    let key = incoming
        .headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok());
    state.authorize(key)
}

/// The per-IP rate limit, in front of every route but `/healthz` (a health checker behind the
/// same proxy as an abusive client must keep getting its answer): before authentication, before
/// a body is read and before a callback's signature is checked, so floods of wrong keys or bad
/// signatures from one address cost one limiter lookup each.
async fn per_ip_limit(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if request.uri().path() != "/healthz" {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        if let Err(err) = state.limit_ip(state.client_ip(peer, forwarded)) {
            state.metrics.record_error("per_ip", err.code);
            return error_response(&err);
        }
    }
    next.run(request).await
}

/// Gives every answer an `x-request-id`: the handlers set the engine's where there is one; the
/// rest (health, metrics, the document, 404, 405, the per-IP 429) get a fresh one here.
async fn request_id(request: Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let name = HeaderName::from_static(REQUEST_ID_HEADER);
    if !response.headers().contains_key(&name)
        && let Ok(v) = HeaderValue::from_str(&new_request_id())
    {
        response.headers_mut().insert(name, v);
    }
    response
}

/// A handler's success.
struct Reply {
    response: Response,
    /// The engine's request id, when the request reached the engine.
    request_id: Option<String>,
}

impl Reply {
    fn json(status: StatusCode, body: &impl Serialize, request_id: Option<String>) -> Self {
        Reply {
            response: (status, axum::Json(body)).into_response(),
            request_id,
        }
    }
}

/// Runs one request of `method`: latency into the histogram, errors counted and answered from
/// the error table, one log line with the request id (never a code, a number or a secret).
async fn run(
    state: &AppState,
    method: &'static str,
    work: impl Future<Output = Result<Reply, ApiError>>,
) -> Response {
    let span = tracing::info_span!("http", method, request_id = tracing::field::Empty);
    let started = Instant::now();
    let result = state
        .timed("http", method, work.instrument(span.clone()))
        .await;
    let elapsed_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let (mut response, request_id) = match result {
        Ok(reply) => {
            let id = reply.request_id.unwrap_or_else(new_request_id);
            span.record("request_id", id.as_str());
            span.in_scope(|| {
                tracing::info!(
                    status = reply.response.status().as_u16(),
                    elapsed_ms,
                    "request served"
                );
            });
            (reply.response, id)
        }
        Err(err) => {
            state.metrics.record_error(method, err.code);
            let id = new_request_id();
            span.record("request_id", id.as_str());
            let status = err.http_status();
            span.in_scope(|| {
                if status >= 500 {
                    tracing::warn!(status, code = err.code, elapsed_ms, "request failed");
                } else {
                    tracing::info!(status, code = err.code, elapsed_ms, "request refused");
                }
            });
            (error_response(&err), id)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    response
}

/// The error answer: the table's status, the JSON body, and `Retry-After` when known (always
/// on 429).
fn error_response(err: &ApiError) -> Response {
    let status =
        StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let retry_after = err
        .retry_after
        .or((status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
    let mut response = (status, axum::Json(ErrorBody::from(err))).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Reads a request body of at most `limit` bytes (the hosted page's forms).
pub(crate) async fn read_body(
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    body::read(body, limit).await
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Sends a code to a phone number.
#[utoipa::path(
    post,
    path = "/v3/phone/send/",
    tag = "phone",
    request_body = SendBody,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`Success` (sent), `Retry` (re-sent inside the pending verification), `Undeliverable` (every route failed; nothing charged) or `Blocked` (refused before spending, see `reason`)", body = SendOutcome),
        (status = 400, description = "INVALID_PHONE_NUMBER, INVALID_REGION or INVALID_REQUEST (the message names the field)", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED: missing or invalid `x-api-key`", body = ErrorBody),
        (status = 403, description = "UNKNOWN_APP", body = ErrorBody),
        (status = 422, description = "CHANNEL_UNAVAILABLE: the pinned channel cannot reach the number", body = ErrorBody),
        (status = 429, description = "RESEND_LIMIT_EXCEEDED, RESEND_COOLDOWN or RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "INTERNAL", body = ErrorBody),
        (status = 502, description = "phone_provider_unavailable: every provider failed on its side; retry later", body = ErrorBody),
        (status = 503, description = "UNAVAILABLE: the state store cannot be reached; nothing was sent", body = ErrorBody),
    )
)]
async fn send(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "send", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let bytes = body::json_bytes(&incoming.headers, body).await?;
        let req: SendBody = body::parse(&bytes)?;
        let key = match incoming.headers.get(IDEMPOTENCY_KEY_HEADER) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                ApiError::invalid("invalid `Idempotency-Key`: must be visible ASCII")
            })?),
        };
        let request = req.into_request(principal.app);
        let Some(key) = key else {
            let outcome = state.engine.send(request).await?;
            state.metrics.record_send(&outcome);
            return Ok(Reply::json(
                StatusCode::OK,
                &outcome,
                Some(outcome.request_id.clone()),
            ));
        };
        let send_key = crate::SendKey {
            scope: "http",
            key,
            fingerprint: fingerprint(&bytes),
        };
        let answer = state
            .engine
            .send_once(request, send_key, |o| {
                serde_json::to_string(o).unwrap_or_default()
            })
            .await?;
        let (text, request_id) = match answer {
            crate::IdempotentSend::Fresh { outcome, answer } => {
                state.metrics.record_send(&outcome);
                (answer, Some(outcome.request_id))
            }
            crate::IdempotentSend::Replayed(answer) => (answer, None),
        };
        Ok(Reply {
            response: (StatusCode::OK, [(CONTENT_TYPE, "application/json")], text).into_response(),
            request_id,
        })
    })
    .await
}

/// The fingerprint of a JSON body: the same object with its keys in another order or other
/// whitespace is the same request.
fn fingerprint(body: &[u8]) -> String {
    use sha2::Digest as _;
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| super::webhooks::canonical_json(&v))
        .unwrap_or_default();
    hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
}

/// Checks the code the user typed against the number's pending verification.
#[utoipa::path(
    post,
    path = "/v3/phone/check/",
    tag = "phone",
    request_body = CheckBody,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`Approved`, `Declined` (terminal; see `reason`), `In Review`, `Failed` (wrong code; see `attempts_left`) or `Expired or Not Found`", body = CheckOutcome),
        (status = 400, description = "INVALID_PHONE_NUMBER, INVALID_REGION or INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "UNKNOWN_APP", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "INTERNAL", body = ErrorBody),
        (status = 502, description = "phone_provider_unavailable: the live line lookup failed and the application's lookup is fail_closed; nothing was checked", body = ErrorBody),
        (status = 503, description = "UNAVAILABLE: nothing was approved", body = ErrorBody),
    )
)]
async fn check(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "check", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let req: CheckBody = body::json(&incoming.headers, body).await?;
        let outcome = state.engine.check(req.into_request(principal.app)).await?;
        state.metrics.record_check(&outcome);
        Ok(Reply::json(
            StatusCode::OK,
            &outcome,
            Some(outcome.request_id.clone()),
        ))
    })
    .await
}

/// The phone report of a number without sending anything.
#[utoipa::path(
    post,
    path = "/v3/phone/lookup/",
    tag = "phone",
    request_body = LookupBody,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The line, its risks and the state of its current verification", body = LookupResponse),
        (status = 400, description = "INVALID_PHONE_NUMBER, INVALID_REGION or INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "UNKNOWN_APP", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "phone_provider_unavailable: a live line lookup (`[workflow.lookup].report = \"live\"`) failed and the application's lookup is fail_closed", body = ErrorBody),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn lookup(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "lookup", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let req: LookupBody = body::json(&incoming.headers, body).await?;
        let phone = state
            .engine
            .lookup(
                &req.phone_number,
                req.region.as_deref(),
                req.vendor_data.as_deref(),
                Some(&principal.app),
            )
            .await?;
        let request_id = new_request_id();
        Ok(Reply::json(
            StatusCode::OK,
            &LookupResponse {
                request_id: request_id.clone(),
                phone,
            },
            Some(request_id),
        ))
    })
    .await
}

/// The phone reports of up to 1,000 numbers, in the order given, without sending anything.
#[utoipa::path(
    post,
    path = "/v3/phone/lookup/batch/",
    tag = "phone",
    request_body = LookupBatchBody,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One result per number, in order: `{\"phone\": report}`, or `{\"error\": {code, message}}` (INVALID_PHONE_NUMBER) for a number that is not valid", body = LookupBatchResponse),
        (status = 400, description = "BATCH_TOO_LARGE (more than 1,000 numbers), INVALID_REGION or INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "UNKNOWN_APP", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn lookup_batch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "lookup_batch", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let req: LookupBatchBody =
            body::json_within(&incoming.headers, body, body::MAX_BATCH_BODY).await?;
        let results = super::lookup_batch::lookup_batch(
            &state.engine,
            &req.phone_numbers,
            req.region.as_deref(),
            req.vendor_data.as_deref(),
            &principal.app,
        )
        .await?;
        let request_id = new_request_id();
        Ok(Reply::json(
            StatusCode::OK,
            &LookupBatchResponse {
                request_id: request_id.clone(),
                results: results.into_iter().map(Into::into).collect(),
            },
            Some(request_id),
        ))
    })
    .await
}

/// The E.164 form of a blocklist number (the engine parses it the same way).
fn blocklist_number(input: &str) -> Result<String, ApiError> {
    crate::phone::parse(input, None)
        .map(|info| info.e164)
        .map_err(|e| ApiError::from(crate::Error::InvalidPhone(e)))
}

/// Adds a number to the application's blocklist: sends to it are refused and checks decline.
#[utoipa::path(
    post,
    path = "/v3/blocklist/",
    tag = "blocklist",
    request_body = BlocklistBody,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Added", body = BlocklistEntry),
        (status = 200, description = "Already on the blocklist", body = BlocklistEntry),
        (status = 400, description = "INVALID_PHONE_NUMBER or INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn block(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "blocklist_add", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let req: BlocklistBody = body::json(&incoming.headers, body).await?;
        let phone_number = blocklist_number(&req.phone_number)?;
        let added = state
            .engine
            .block(&phone_number, Some(&principal.app))
            .await?;
        let status = if added {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(Reply::json(status, &BlocklistEntry { phone_number }, None))
    })
    .await
}

/// Removes a number from the application's blocklist.
#[utoipa::path(
    delete,
    path = "/v3/blocklist/{phone_number}",
    tag = "blocklist",
    params(("phone_number" = String, Path, description = "E.164; `+` may be written as `%2B`", example = "+34600600600")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Removed", body = BlocklistEntry),
        (status = 400, description = "INVALID_PHONE_NUMBER", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: the number is not on the blocklist", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn unblock(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "blocklist_remove", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let raw = incoming
            .uri
            .path()
            .strip_prefix("/v3/blocklist/")
            .unwrap_or_default();
        let decoded = percent_decode(raw)
            .ok_or_else(|| ApiError::invalid("the phone number in the path is not valid UTF-8"))?;
        let phone_number = blocklist_number(&decoded)?;
        if !state
            .engine
            .unblock(&phone_number, Some(&principal.app))
            .await?
        {
            return Err(ApiError::not_found(
                "the phone number is not on the blocklist",
            ));
        }
        Ok(Reply::json(
            StatusCode::OK,
            &BlocklistEntry { phone_number },
            None,
        ))
    })
    .await
}

/// The application's blocklist.
#[utoipa::path(
    get,
    path = "/v3/blocklist/",
    tag = "blocklist",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Every blocked number, sorted", body = Blocklist),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn blocklist(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "blocklist_list", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let phone_numbers = state.engine.blocklist(Some(&principal.app)).await?;
        Ok(Reply::json(
            StatusCode::OK,
            &Blocklist { phone_numbers },
            None,
        ))
    })
    .await
}

/// The route ledger of the caller's application: per country and route, attempts, accepts,
/// receipts, approvals, conversion, delivery rate and mean time to approval over the ledger's
/// window, with the route's current score (expected cost per verified user) and breaker.
/// Countries: those the route table names, those this instance routed to, and any given as
/// `?country=BR,MX`.
#[utoipa::path(
    get,
    path = "/v3/routes/stats/",
    tag = "routing",
    security(("api_key" = [])),
    params(("country" = Option<String>, Query, pattern = "^,*([A-Za-z]{2}(,+[A-Za-z]{2})*)?,*$",
        description = "Comma-separated ISO 3166-1 alpha-2 codes to report too (either case)")),
    responses(
        (status = 200, description = "The ledger, per country in the order routes would be tried", body = crate::RoutesReport),
        (status = 400, description = "INVALID_REQUEST: a country is not an ISO code", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn route_stats(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "route_stats", async {
        // Percent-decoded, as any client encodes the query (`BR%2CMX`).
        let query = request.uri().query().unwrap_or("");
        let countries: Vec<String> = form_urlencoded::parse(query.as_bytes())
            .filter(|(key, _)| key == "country")
            .flat_map(|(_, value)| {
                value
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .take(300)
            .collect();
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let report = state
            .engine
            .route_stats(Some(&principal.app), &countries)
            .await?;
        Ok(Reply::json(StatusCode::OK, &report, None))
    })
    .await
}

/// The application's current fraud blocks: keys (a prefix, a country, a client IP or network,
/// a device) that tripped a fraud rule, until when, and how many times they were blocked.
#[utoipa::path(
    get,
    path = "/v3/fraud/blocks/",
    tag = "fraud",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Every current block, sorted by key", body = FraudBlocks),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn fraud_blocks(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "fraud_blocks_list", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let blocks = state.engine.fraud_blocks(Some(&principal.app)).await?;
        Ok(Reply::json(StatusCode::OK, &FraudBlocks { blocks }, None))
    })
    .await
}

/// Lifts one fraud block before its cool-off ends (its count of blocks stays, so a key that
/// trips again is blocked longer).
#[utoipa::path(
    delete,
    path = "/v3/fraud/blocks/{key}/",
    tag = "fraud",
    params(("key" = String, Path, description = "The block's `key` as the listing shows it, URL-encoded (`prefix%3A%2B3460060`)", example = "prefix:+3460060")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`released` is false when the key was not blocked", body = FraudRelease),
        (status = 400, description = "INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn release_fraud_block(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "fraud_block_release", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let raw = incoming
            .uri
            .path()
            .strip_prefix("/v3/fraud/blocks/")
            .unwrap_or_default();
        let raw = raw.strip_suffix('/').unwrap_or(raw);
        let key = percent_decode(raw)
            .ok_or_else(|| ApiError::invalid("the key in the path is not valid UTF-8"))?;
        let released = state
            .engine
            .release_fraud_block(&key, Some(&principal.app))
            .await?;
        Ok(Reply::json(
            StatusCode::OK,
            &FraudRelease { released },
            None,
        ))
    })
    .await
}

/// The application's runtime fraud safe list, and the configured one.
#[utoipa::path(
    get,
    path = "/v3/fraud/safe-list/",
    tag = "fraud",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Runtime and configured entries", body = SafeList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn safe_list(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "fraud_safe_list_get", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let entries = state.engine.fraud_safe_list(Some(&principal.app)).await?;
        let configured = state
            .engine
            .config()
            .app(&principal.app)
            .map(|w| w.fraud.safe_list.clone())
            .unwrap_or_default();
        Ok(Reply::json(
            StatusCode::OK,
            &SafeList {
                entries,
                configured,
            },
            None,
        ))
    })
    .await
}

/// Adds an E.164 number or a prefix ending in `*` to the runtime safe list: no fraud rule
/// refuses it (the resend limits and the blocklist still apply). Other instances see the
/// change within `store.fraud_admin_cache_ms`.
#[utoipa::path(
    post,
    path = "/v3/fraud/safe-list/",
    tag = "fraud",
    request_body = SafeListBody,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Added", body = SafeListChange),
        (status = 200, description = "Already on the safe list", body = SafeListChange),
        (status = 400, description = "INVALID_REQUEST: not an E.164 number or prefix", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn safe_list_add(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "fraud_safe_list_add", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let req: SafeListBody = body::json(&incoming.headers, body).await?;
        let added = state
            .engine
            .add_to_fraud_safe_list(&req.entry, Some(&principal.app))
            .await?;
        let status = if added {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(Reply::json(
            status,
            &SafeListChange {
                entry: req.entry,
                added: Some(added),
                removed: None,
            },
            None,
        ))
    })
    .await
}

/// Removes an entry of the runtime safe list (configured entries stay).
#[utoipa::path(
    delete,
    path = "/v3/fraud/safe-list/",
    tag = "fraud",
    request_body = SafeListBody,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`removed` is false when the entry was not there", body = SafeListChange),
        (status = 400, description = "INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn safe_list_remove(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "fraud_safe_list_remove", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let req: SafeListBody = body::json(&incoming.headers, body).await?;
        let removed = state
            .engine
            .remove_from_fraud_safe_list(&req.entry, Some(&principal.app))
            .await?;
        Ok(Reply::json(
            StatusCode::OK,
            &SafeListChange {
                entry: req.entry,
                added: None,
                removed: Some(removed),
            },
            None,
        ))
    })
    .await
}

/// The runtime and effective geo permissions of `app`.
async fn geo_answer(state: &AppState, app: &str) -> Result<Reply, ApiError> {
    let geo = state.engine.fraud_geo(Some(app)).await?;
    let effective = state.engine.effective_fraud_policy(Some(app)).await?;
    Ok(Reply::json(
        StatusCode::OK,
        &GeoPermissions {
            geo,
            effective: effective.geo.clone(),
        },
        None,
    ))
}

/// The application's geo permissions: the runtime entries and what applies.
#[utoipa::path(
    get,
    path = "/v3/fraud/geo/",
    tag = "fraud",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Runtime and effective geo permissions", body = GeoPermissions),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn geo_permissions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "fraud_geo_get", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        geo_answer(&state, &principal.app).await
    })
    .await
}

/// Replaces the runtime geo permissions; each entry overrides the configured one of its
/// channel and country (`deny` refuses with `GEO_DENIED`, a pinned channel gets
/// `CHANNEL_UNAVAILABLE`). Other instances see them within `store.fraud_admin_cache_ms`.
#[utoipa::path(
    put,
    path = "/v3/fraud/geo/",
    tag = "fraud",
    request_body = GeoBody,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Stored; the runtime and effective geo permissions", body = GeoPermissions),
        (status = 400, description = "INVALID_REQUEST: an unknown channel or a country that is not ISO 3166-1 alpha-2 uppercase", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
async fn set_geo_permissions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "fraud_geo_set", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let req: GeoBody = body::json(&incoming.headers, body).await?;
        state
            .engine
            .set_fraud_geo(&req.geo, Some(&principal.app))
            .await?;
        geo_answer(&state, &principal.app).await
    })
    .await
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain; version=0.0.4", body = String),
        (status = 429, description = "RATE_LIMITED (per client IP)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render();
    text.push_str(&state.engine.lookup_metrics());
    text.push_str(&route_gauges(&state).await);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The route ledger as gauges, per application, country, channel and provider: conversion,
/// delivery rate, accepted sends in the window, and whether the breaker is open. Read from the
/// store at scrape time (through the one-second ledger cache), so every instance sharing Redis
/// reports the same figures.
async fn route_gauges(state: &AppState) -> String {
    use std::fmt::Write as _;
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut rows = Vec::new();
    for app in state.engine.config().apps.keys() {
        match state.engine.route_stats(Some(app), &[]).await {
            Ok(report) => rows.extend(report.routes.into_iter().map(|r| (app.clone(), r))),
            Err(e) => tracing::warn!(%app, "route ledger not read for /metrics: {e}"),
        }
    }
    let mut out = String::new();
    type Value = fn(&crate::RouteStats) -> Option<f64>;
    let gauges: [(&str, &str, Value); 4] = [
        (
            "switchboard_route_conversion",
            "Approvals / accepted sends per route over the ledger window",
            |r| Some(r.conversion).filter(|_| r.accepted > 0),
        ),
        (
            "switchboard_route_delivery_rate",
            "Delivered / (delivered + failed) per route over the ledger window",
            |r| r.delivery_rate,
        ),
        (
            "switchboard_route_accepted",
            "Sends a provider accepted per route over the ledger window",
            |r| Some(r.accepted as f64),
        ),
        (
            "switchboard_route_breaker_open",
            "1 while the route's provider and channel circuit breaker is open",
            |r| Some(f64::from(u8::from(r.breaker == "open"))),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (app, r) in &rows {
            if let Some(v) = value(r) {
                let _ = writeln!(
                    out,
                    "{name}{{app=\"{}\",country=\"{}\",channel=\"{}\",provider=\"{}\"}} {v}",
                    esc(app),
                    esc(&r.country),
                    esc(&r.channel),
                    esc(&r.provider)
                );
            }
        }
    }
    out
}

/// Liveness: the server is up and serving.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Serving", body = Health))
)]
async fn healthz() -> Response {
    axum::Json(Health {
        status: ServingStatus::Serving,
    })
    .into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI document of this API", content_type = "application/json", body = Object),
        (status = 429, description = "RATE_LIMITED (per client IP)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    let document = openapi::rendered(!state.auth.is_open());
    ([(CONTENT_TYPE, "application/json")], document).into_response()
}

async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    // The most likely slip: the API's paths end with `/`.
    let hint = if !path.ends_with('/') && openapi::has_path(&format!("{path}/")) {
        format!(" (did you mean `{path}/`?)")
    } else {
        String::new()
    };
    error_response(&ApiError::not_found(format!(
        "no such endpoint{hint}; the API is described at /openapi.json"
    )))
}

async fn method_not_allowed(method: Method) -> Response {
    error_response(&ApiError::new(
        "METHOD_NOT_ALLOWED",
        format!(
            "method {method} is not allowed on this path; the API is described at /openapi.json"
        ),
    ))
}

/// Percent-decodes a path segment; `None` when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
