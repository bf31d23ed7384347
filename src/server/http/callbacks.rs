//! Provider callbacks: `POST /callbacks/{provider}` (and `GET`, for providers that call back
//! with GET or, like Meta, verify a subscription with a `hub.challenge` handshake).
//!
//! No API key: providers authenticate by signature, which covers the URL they called (Twilio),
//! so the URL handed to the provider is the public one: `server.public_url` + path + query when
//! set, else `http://` + the request's Host + path + query. A callback that fails verification
//! records nothing. A verified one is answered at once; its receipts are then applied in the
//! background (events, and the late fallback of a failed message: `Engine::apply_receipts`).

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::response::{IntoResponse, Response};
use switchboard_providers::{InboundRequest, ReceiptError};

use super::types::{CallbackAck, ErrorBody};
use super::{Incoming, Reply, body, run, split};
use crate::config::ServerConfig;
use crate::server::AppState;
use crate::server::errors::ApiError;

/// A delivery callback from provider `provider` (`twilio`, `meta_whatsapp`, ...).
#[utoipa::path(
    post,
    path = "/callbacks/{provider}",
    tag = "callbacks",
    params(("provider" = String, Path, description = "The provider's registry name", example = "twilio")),
    request_body(content = String, description = "The provider's own callback format, verified by its signature header", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Verified; the receipts were recorded", body = CallbackAck),
        (status = 400, description = "INVALID_REQUEST: signed, but not a shape the provider sends", body = ErrorBody),
        (status = 401, description = "BAD_SIGNATURE: missing, wrong or stale signature; nothing recorded", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such provider, or it takes no callbacks", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED (per client IP, before the signature is checked)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn receive(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "callback", async {
        let (incoming, body) = split(request);
        let provider = provider_name(&incoming)?;
        let body = body::read(body, body::MAX_CALLBACK_BODY).await?;
        let inbound = inbound(&state.config, &incoming, body.to_vec())?;
        let receipts = state
            .engine
            .receipt(provider, &inbound)
            .map_err(|e| receipt_error(provider, e))?;
        tracing::info!(provider, receipts = receipts.len(), "delivery callback");
        // Verified: answer the provider now; events and any late fallback follow off the
        // request path (a fallback may wait on other providers).
        let count = receipts.len();
        let state = state.clone();
        let provider = provider.to_owned();
        tokio::spawn(async move {
            for effect in state.engine.apply_receipts(&receipts).await {
                state.metrics.record_receipt(&provider, &effect);
            }
        });
        Ok(Reply::json(
            StatusCode::OK,
            &CallbackAck { receipts: count },
            None,
        ))
    })
    .await
}

/// A GET callback: Meta's subscription handshake (`hub.mode=subscribe`, answered with the
/// plain-text `hub.challenge`), or a delivery callback made with GET.
#[utoipa::path(
    get,
    path = "/callbacks/{provider}",
    tag = "callbacks",
    params(
        ("provider" = String, Path, description = "The provider's registry name", example = "meta_whatsapp"),
        ("hub.mode" = Option<String>, Query, description = "`subscribe` for Meta's handshake"),
        ("hub.verify_token" = Option<String>, Query, description = "Must equal the configured `verify_token`"),
        ("hub.challenge" = Option<String>, Query, description = "Echoed back when the token matches"),
    ),
    responses(
        (status = 200, description = "Handshake: the `hub.challenge`, as plain text", content_type = "text/plain", body = String),
        (status = 400, description = "INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "BAD_SIGNATURE: wrong verify token or signature", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such provider, or it takes no callbacks", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED (per client IP, before the signature is checked)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn receive_get(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let handshake = request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p.split('=').next() == Some("hub.mode"))
    });
    if !handshake {
        return receive(State(state), request).await;
    }
    run(&state, "subscription", async {
        let (incoming, _) = split(request);
        let provider = provider_name(&incoming)?;
        let inbound = inbound(&state.config, &incoming, Vec::new())?;
        let challenge = state
            .engine
            .verify_subscription(provider, &inbound)
            .map_err(|e| receipt_error(provider, e))?;
        tracing::info!(provider, "callback subscription verified");
        Ok(Reply {
            response: ([(CONTENT_TYPE, "text/plain; charset=utf-8")], challenge).into_response(),
            request_id: None,
        })
    })
    .await
}

/// The `{provider}` segment; only a registry-like name (anything else names no provider).
fn provider_name(incoming: &Incoming) -> Result<&str, ApiError> {
    let name = incoming
        .uri
        .path()
        .strip_prefix("/callbacks/")
        .unwrap_or_default();
    let plausible = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if plausible {
        Ok(name)
    } else {
        Err(ApiError::not_found("no such provider"))
    }
}

fn receipt_error(provider: &str, e: ReceiptError) -> ApiError {
    match e {
        ReceiptError::Unsupported => ApiError::not_found(format!(
            "no provider `{provider}` taking callbacks is configured"
        )),
        ReceiptError::BadSignature | ReceiptError::Stale => {
            ApiError::new("BAD_SIGNATURE", e.to_string())
        }
        ReceiptError::Malformed(_) => ApiError::invalid(e.to_string()),
        // The provider retries on a 5xx: the receipt is not lost once its signing is set up.
        ReceiptError::Unverifiable => ApiError::new("UNAVAILABLE", e.to_string()),
    }
}

/// The callback as the provider made it, with the URL it called.
fn inbound(
    config: &ServerConfig,
    incoming: &Incoming,
    body: Vec<u8>,
) -> Result<InboundRequest, ApiError> {
    let url = callback_url(config, incoming)
        .ok_or_else(|| ApiError::invalid("the request has no Host header"))?;
    let headers = incoming
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(InboundRequest::new(
        incoming.method.as_str(),
        url,
        headers,
        body,
        SystemTime::now(),
    ))
}

/// `public_url` + path + query when configured, else `http://` + Host + path + query.
fn callback_url(config: &ServerConfig, incoming: &Incoming) -> Option<String> {
    let uri = &incoming.uri;
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |p| p.as_str());
    let public = config.public_url.trim();
    if !public.is_empty() {
        return Some(format!("{}{path_and_query}", public.trim_end_matches('/')));
    }
    let host = incoming
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))?;
    Some(format!("http://{host}{path_and_query}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, Method, Uri};

    fn incoming(uri: &str, host: Option<&str>) -> Incoming {
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert(HOST, HeaderValue::from_str(h).unwrap());
        }
        Incoming {
            method: Method::POST,
            uri: uri.parse::<Uri>().unwrap(),
            headers,
        }
    }

    fn config(public_url: &str) -> ServerConfig {
        let mut c = crate::Config::default().server;
        c.public_url = public_url.to_owned();
        c
    }

    #[test]
    fn the_public_url_replaces_scheme_host_and_port() {
        let i = incoming("/callbacks/twilio?a=1&b=%2B2", Some("127.0.0.1:8080"));
        assert_eq!(
            callback_url(&config("https://otp.example.com/"), &i).unwrap(),
            "https://otp.example.com/callbacks/twilio?a=1&b=%2B2"
        );
        assert_eq!(
            callback_url(&config(""), &i).unwrap(),
            "http://127.0.0.1:8080/callbacks/twilio?a=1&b=%2B2"
        );
        assert!(callback_url(&config(""), &incoming("/callbacks/twilio", None)).is_none());
    }

    #[test]
    fn only_registry_like_provider_names_are_looked_up() {
        assert_eq!(
            provider_name(&incoming("/callbacks/meta_whatsapp", None)).unwrap(),
            "meta_whatsapp"
        );
        for bad in ["/callbacks/", "/callbacks/Twilio", "/callbacks/a%20b"] {
            assert_eq!(
                provider_name(&incoming(bad, None)).unwrap_err().code,
                "NOT_FOUND"
            );
        }
    }
}
