//! Plumbing shared by the adapters that call a real API: one pooled rustls [`HttpClient`] for the
//! whole process, an [`Endpoint`] per provider (outbound rate limit, per-request timeout, a
//! capped response read, transport failures classified), `Retry-After` parsing and the
//! constant-time helpers signature checks need.
//!
//! An adapter builds its request, hands it to [`Endpoint::send`], and maps the [`Response`] with
//! its own `parse_error`, which reads the body with the provider's own table and leaves the
//! rest (unreadable bodies, the fallback code, redaction, `Retry-After`) to [`error_response`].

use std::fmt;
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota};
use hmac::{Hmac, Mac};
pub use reqwest::header::HeaderMap;
use sha2::Sha256;

use crate::{Channel, DeliveryError, FailureClass, OutboundMessage, Redactor};

/// Most of a response body an adapter reads; the rest is dropped unread. Every real success or
/// error body is far smaller.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A `Retry-After` longer than this is clamped (the dispatcher has its own, smaller, bound).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Idle pooled connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Connecting (TCP + TLS) may take at most this long, whatever the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The process-wide HTTP client: rustls, connection pooling, no redirects (an API that
/// redirects is a misconfiguration, and a redirect must not carry our credentials elsewhere).
/// Cheap to clone; every adapter shares one.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

/// The HTTP client could not be created (TLS backend initialisation).
#[derive(Debug, thiserror::Error)]
#[error("cannot create the HTTP client: {0}")]
pub struct HttpClientError(String);

impl HttpClient {
    pub fn new() -> Result<Self, HttpClientError> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(POOL_IDLE)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpClientError(e.without_url().to_string()))?;
        Ok(HttpClient { client })
    }

    /// The underlying client, for building requests.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpClient")
    }
}

/// A response, its body read up to [`MAX_RESPONSE_BYTES`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The body was longer than the cap and was cut.
    pub truncated: bool,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One provider's outbound side: the shared client, its own rate limit and request timeout.
pub struct Endpoint {
    provider: &'static str,
    client: HttpClient,
    limiter: Option<DefaultDirectRateLimiter>,
    timeout: Duration,
}

impl Endpoint {
    /// `rate_per_sec` requests per second at most (bursts up to the same number); 0 = no limit.
    pub fn new(
        provider: &'static str,
        client: HttpClient,
        rate_per_sec: u32,
        timeout: Duration,
    ) -> Self {
        Endpoint {
            provider,
            client,
            limiter: NonZeroU32::new(rate_per_sec)
                .map(|n| DefaultDirectRateLimiter::direct(Quota::per_second(n))),
            timeout,
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        self.client.reqwest()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `request` within the rate limit and the timeout and reads the response (capped).
    ///
    /// An exhausted rate limit fails at once as `Transient` with the wait as `retry_after`, so
    /// the dispatcher's retry policy decides whether to wait or move on. Transport failures are
    /// `Transient`; their messages never carry the URL (it holds account ids) or the body.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, DeliveryError> {
        if let Some(limiter) = &self.limiter
            && let Err(not_until) = limiter.check()
        {
            let wait = not_until.wait_time_from(limiter.clock().now());
            return Err(DeliveryError::transient(
                self.provider,
                "outbound rate limit of this provider reached",
            )
            .with_code("local_rate_limit")
            .with_retry_after(wait));
        }
        let mut response = request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        let mut truncated = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_BYTES - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport(&e)),
            }
        }
        Ok(Response {
            status,
            headers,
            body,
            truncated,
        })
    }

    /// A transport failure. A connect failure (TCP, TLS) never wrote the request: plainly
    /// `Transient`. A timeout or a connection lost later may have delivered the request, so the
    /// provider may have accepted the message: `Transient` and `outcome_unknown`.
    fn transport(&self, e: &reqwest::Error) -> DeliveryError {
        if e.is_builder() {
            DeliveryError::config(
                self.provider,
                "cannot build the request (check base_url and credentials)",
            )
            .with_code("request")
        } else if e.is_connect() {
            // Checked before `is_timeout`: a connect timeout is both, and sent nothing.
            DeliveryError::transient(self.provider, "cannot connect").with_code("connect")
        } else if e.is_timeout() {
            DeliveryError::transient(self.provider, "request timed out")
                .with_code("timeout")
                .outcome_unknown()
        } else {
            DeliveryError::transient(self.provider, "transport error")
                .with_code("transport")
                .outcome_unknown()
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("provider", &self.provider)
            .field("rate_limited", &self.limiter.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `Config` (`channel_not_configured`) unless `message` goes by `channel`, the one channel of a
/// single-channel adapter.
#[cfg_attr(
    not(any(feature = "meta_whatsapp", feature = "telegram", feature = "infobip")),
    allow(dead_code)
)]
pub(crate) fn require_channel(
    provider: &'static str,
    message: &OutboundMessage,
    channel: Channel,
) -> Result<(), DeliveryError> {
    if message.channel == channel {
        return Ok(());
    }
    Err(DeliveryError::config(
        provider,
        format!("{provider} does not carry {}", message.channel),
    )
    .with_code("channel_not_configured"))
}

/// What an adapter's `parse_error` read from an error body with the provider's own table.
#[derive(Debug)]
pub(crate) struct ParsedError {
    /// By the provider's code first, the HTTP status otherwise.
    pub class: FailureClass,
    /// The provider's code; `http_<status>` is used without one.
    pub code: Option<String>,
    /// The provider's message (redacted by [`error_response`]).
    pub text: String,
    /// The body is the provider's documented refusal (a code its table knows): the message
    /// was not accepted, even with a 5xx status.
    pub refused: bool,
}

/// The classified error of a failed response, once the adapter's table has read the body
/// (`parsed`; `None` for a body it cannot read). An unreadable body is `Config` for 401/403 and
/// redirects, `Transient` otherwise. The code is the provider's, else `http_<status>`; the text
/// has its numbers masked (the adapter's `send` hides the rest); `Retry-After` is kept on
/// transient errors. A 5xx is `outcome_unknown` (the provider may have accepted the message)
/// unless the body is a documented refusal (`refused`).
pub(crate) fn error_response(
    provider: &'static str,
    status: u16,
    headers: &HeaderMap,
    parsed: Option<ParsedError>,
) -> DeliveryError {
    let ParsedError {
        class,
        code,
        text,
        refused,
    } = parsed.unwrap_or_else(|| ParsedError {
        class: match status {
            401 | 403 | 300..=399 => FailureClass::Config,
            _ => FailureClass::Transient,
        },
        code: None,
        text: format!("HTTP {status} with an unreadable body"),
        refused: false,
    });
    let mut err = DeliveryError::new(class, provider, Redactor::new().redact(&text))
        .with_code(code.unwrap_or_else(|| format!("http_{status}")));
    if status >= 500 && !refused {
        err = err.outcome_unknown();
    }
    if class == FailureClass::Transient
        && let Some(after) = retry_after(headers)
    {
        err = err.with_retry_after(after);
    }
    err
}

/// A 2xx without a readable `id` (`message id`, `request_id`, ...): `Transient`
/// (`malformed_response`) and `outcome_unknown`: the provider may have accepted the message; a
/// retry can duplicate it, which beats a lost code.
pub(crate) fn unreadable_success(provider: &'static str, status: u16, id: &str) -> DeliveryError {
    DeliveryError::transient(provider, format!("HTTP {status} without a readable {id}"))
        .with_code("malformed_response")
        .outcome_unknown()
}

/// A provider's message id as we keep it: 1 to 256 printable ASCII characters.
#[cfg_attr(
    not(any(feature = "telegram", feature = "vonage", feature = "infobip")),
    allow(dead_code)
)]
pub(crate) fn is_message_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// `+` and 6 to 15 digits.
#[cfg_attr(not(any(feature = "twilio", feature = "vonage")), allow(dead_code))]
pub(crate) fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (6..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The pause a response asks for: `Retry-After` as delay-seconds, or as an HTTP-date measured
/// against the response's own `Date` header (the server's clock, so our clock's skew does not
/// matter; without a `Date` an HTTP-date is ignored). Clamped to [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let date = headers
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok());
    parse_retry_after(value, date)
}

/// Parses a `Retry-After` value: delay-seconds (`120`, also `1.5`), or an HTTP-date taken
/// relative to `now` (a date in the past means "now": zero). `None` for anything else.
pub fn parse_retry_after(value: &str, now: Option<SystemTime>) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || value.len() > 64 {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = value.parse().ok()?;
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        return Some(Duration::from_secs_f64(
            secs.min(MAX_RETRY_AFTER.as_secs_f64()),
        ));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let wait = at.duration_since(now?).unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 of `message` under `key`, lowercase hex.
#[cfg_attr(
    not(any(feature = "meta_whatsapp", feature = "telegram")),
    allow(dead_code)
)]
pub(crate) fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    hex::encode(hmac_sha256(key, message))
}

/// True when `given_hex` is the hex HMAC-SHA256 of `message` under `key` (either case),
/// compared in constant time; false for anything that is not hex.
#[cfg_attr(
    not(any(feature = "meta_whatsapp", feature = "telegram")),
    allow(dead_code)
)]
pub(crate) fn hmac_sha256_hex_matches(key: &[u8], message: &[u8], given_hex: &str) -> bool {
    let Ok(given) = hex::decode(given_hex) else {
        return false;
    };
    constant_time_eq(&hmac_sha256(key, message), &given)
}

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(data))
}

/// Equality in time independent of where the inputs differ (their lengths may leak).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// `base_url` without its trailing slashes, validated as an `http(s)://` URL.
pub fn normalize_base_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| "must start with https:// (or http:// for tests)".to_owned())?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err("must name a host".to_owned());
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_delay_seconds() {
        assert_eq!(parse_retry_after("7", None), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 ", None),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("999999999", None), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_accepts_an_http_date_relative_to_now() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", Some(now)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", Some(now)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", None),
            None
        );
    }

    #[test]
    fn retry_after_rejects_garbage() {
        for bad in ["", "-1", "soon", "1e9", "..", "NaN"] {
            assert_eq!(parse_retry_after(bad, None), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_reads_the_header_against_the_response_date() {
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:10 GMT".parse().unwrap(),
        );
        h.insert("date", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(10)));
    }

    #[test]
    fn error_response_classes_unreadable_bodies_and_keeps_retry_after_only_when_transient() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        let e = error_response("p", 503, &h, None);
        assert_eq!(
            (e.class, e.code.as_deref(), e.retry_after),
            (
                FailureClass::Transient,
                Some("http_503"),
                Some(Duration::from_secs(7))
            )
        );
        for status in [401, 403, 302] {
            let e = error_response("p", status, &h, None);
            assert_eq!((e.class, e.retry_after), (FailureClass::Config, None));
        }
        let parsed = ParsedError {
            class: FailureClass::Fallback,
            code: Some("21211".into()),
            text: "HTTP 400: to 34600600600".into(),
            refused: true,
        };
        let e = error_response("p", 400, &h, Some(parsed));
        assert_eq!(
            (
                e.class,
                e.code.as_deref(),
                e.message.as_str(),
                e.retry_after
            ),
            (
                FailureClass::Fallback,
                Some("21211"),
                "HTTP 400: to ***00",
                None
            )
        );
    }

    #[test]
    fn a_5xx_is_outcome_unknown_unless_the_body_is_a_documented_refusal() {
        let h = HeaderMap::new();
        assert!(error_response("p", 503, &h, None).may_have_been_delivered());
        assert!(!error_response("p", 400, &h, None).may_have_been_delivered());
        let parsed = |refused| ParsedError {
            class: FailureClass::Transient,
            code: Some("x".into()),
            text: "HTTP 500".into(),
            refused,
        };
        assert!(error_response("p", 500, &h, Some(parsed(false))).may_have_been_delivered());
        assert!(!error_response("p", 500, &h, Some(parsed(true))).may_have_been_delivered());
    }

    #[test]
    fn constant_time_eq_compares_lengths_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn base_url_is_normalized_and_checked() {
        assert_eq!(
            normalize_base_url("https://api.twilio.com/").unwrap(),
            "https://api.twilio.com"
        );
        assert!(normalize_base_url("ftp://x").is_err());
        assert!(normalize_base_url("https://").is_err());
    }
}
