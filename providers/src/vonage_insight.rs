//! Vonage Number Insight Advanced (synchronous): `GET /ni/advanced/json?number=...` on
//! `api.nexmo.com`, authenticated by `api_key` and `api_secret` in the query as the official
//! spec declares. It answers the carrier serving the number now (`current_carrier`, with its
//! `network_type`), the carrier it was allocated to (`original_carrier`), `ported`, `roaming`
//! and `reachable`. It has no SIM-swap status (Vonage sells that as a separate network API
//! that needs an operator-side authorisation flow; not supported here).
//!
//! Failures: Vonage answers HTTP 200 with an error `status` in the body: 1 (throttled) and 5
//! (internal error) are `Transient`; 4 (invalid credentials), 9 (quota / credit exceeded),
//! 19 (facility not allowed) and 999 (request unparseable) are `Config`; 3 (invalid
//! parameters: the number) is `Permanent`. 43, 44 and 45 (live mobile lookup not returned)
//! are a partial answer: what came is used. Other HTTP statuses are read by status.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{self, FieldError, ProviderContext, ProviderTable};
use crate::http::{self, Endpoint, HttpClient, Response};
use crate::lookup::{
    DynLineLookup, LineFacts, LineKind, LineLookup, LookupCapabilities, LookupError, LookupRequest,
};
use crate::{DeliveryError, FailureClass, Secret, lenient_string, secret};

/// The config name.
pub const NAME: &str = "vonage";
/// Vonage's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.nexmo.com";

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}

fn default_rate_per_sec() -> u32 {
    // Vonage's default Number Insight throughput per account.
    10
}

/// `[lookup.vonage]`. `Debug` hides `api_secret`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageInsightConfig {
    #[serde(deserialize_with = "lenient_string")]
    pub api_key: String,
    pub api_secret: Secret,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default = "default_rate_per_sec")]
    pub rate_per_sec: u32,
    #[serde(default = "config::default_timeout_ms")]
    pub timeout_ms: u64,
}

impl VonageInsightConfig {
    pub fn validate(&mut self) -> Result<(), FieldError> {
        if self.api_key.trim().is_empty() || self.api_key.len() > 64 {
            return Err(FieldError::new("api_key", "missing"));
        }
        if self.api_secret.is_empty() {
            return Err(FieldError::new("api_secret", "missing"));
        }
        config::validate_endpoint_keys(&mut self.base_url, self.timeout_ms)
    }
}

/// The Vonage Number Insight Advanced adapter.
#[derive(Debug)]
pub struct VonageInsight {
    config: VonageInsightConfig,
    endpoint: Endpoint,
}

impl VonageInsight {
    pub fn new(mut config: VonageInsightConfig, http: HttpClient) -> Result<Self, FieldError> {
        config.validate()?;
        let endpoint = Endpoint::new(
            NAME,
            http,
            config.rate_per_sec,
            Duration::from_millis(config.timeout_ms),
        );
        Ok(VonageInsight { config, endpoint })
    }

    /// The registry constructor.
    pub fn from_table(
        table: &ProviderTable,
        context: &ProviderContext,
    ) -> Result<Arc<dyn DynLineLookup>, FieldError> {
        Ok(Arc::new(Self::new(table.parse()?, context.http().clone())?))
    }

    async fn fetch(&self, request: &LookupRequest<'_>) -> Result<LineFacts, LookupError> {
        if !http::is_e164(request.e164) {
            return Err(
                DeliveryError::permanent(NAME, "not an E.164 number").with_code("invalid_number")
            );
        }
        let req = self
            .endpoint
            .client()
            .get(format!("{}/ni/advanced/json", self.config.base_url))
            .query(&[
                ("api_key", self.config.api_key.as_str()),
                ("api_secret", self.config.api_secret.expose()),
                ("number", request.e164.trim_start_matches('+')),
            ]);
        let response = self.endpoint.send(req).await?;
        parse_response(&response)
    }
}

impl LineLookup for VonageInsight {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> LookupCapabilities {
        LookupCapabilities {
            line: true,
            sim_swap: false,
        }
    }

    async fn lookup(&self, request: &LookupRequest<'_>) -> Result<LineFacts, LookupError> {
        let hidden = [
            request.e164,
            request.e164.trim_start_matches('+'),
            self.config.api_secret.expose(),
            &self.config.api_key,
        ];
        self.fetch(request)
            .await
            .map_err(|e| secret::redact_send_error_with(e, &hidden))
    }
}

#[derive(Deserialize)]
struct Body {
    status: Option<Value>,
    status_message: Option<String>,
    error_text: Option<String>,
    current_carrier: Option<Carrier>,
    original_carrier: Option<Carrier>,
    ported: Option<String>,
    roaming: Option<Value>,
    reachable: Option<String>,
}

#[derive(Deserialize)]
struct Carrier {
    network_code: Option<String>,
    name: Option<String>,
    network_type: Option<String>,
}

/// The class of a non-zero `status` (`None`: a partial answer to use).
fn status_class(status: i64) -> Option<FailureClass> {
    Some(match status {
        0 | 43 | 44 | 45 => return None,
        1 | 5 => FailureClass::Transient,
        3 => FailureClass::Permanent,
        _ => FailureClass::Config,
    })
}

/// Reads any response: the body's `status` decides on a 200, the HTTP status otherwise.
pub fn parse_response(response: &Response) -> Result<LineFacts, LookupError> {
    let status = response.status;
    let body: Option<Body> = serde_json::from_slice(&response.body).ok();
    if !response.is_success() {
        let class = match status {
            401 | 403 => FailureClass::Config,
            _ => FailureClass::Transient,
        };
        let text = body
            .as_ref()
            .and_then(|b| b.error_text.clone().or(b.status_message.clone()))
            .unwrap_or_else(|| "no readable body".into());
        let mut err = DeliveryError::new(
            class,
            NAME,
            crate::Redactor::new().redact(&format!("HTTP {status}: {text}")),
        )
        .with_code(format!("http_{status}"));
        if class == FailureClass::Transient
            && let Some(after) = http::retry_after(&response.headers)
        {
            err = err.with_retry_after(after);
        }
        return Err(err);
    }
    let body = body.ok_or_else(|| {
        DeliveryError::transient(NAME, format!("HTTP {status} with an unreadable body"))
            .with_code("malformed_response")
    })?;
    let code = match &body.status {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or(-1);
    if let Some(class) = status_class(code) {
        let text = body.status_message.or(body.error_text).unwrap_or_default();
        return Err(DeliveryError::new(
            class,
            NAME,
            crate::Redactor::new().redact(&format!("Number Insight status {code}: {text}")),
        )
        .with_code(code.to_string()));
    }
    let current = body.current_carrier;
    let network = current.as_ref().and_then(|c| c.network_code.clone());
    let (mcc, mnc) = match network.as_deref() {
        Some(n) if n.len() > 3 && n.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(n[..3].to_owned()), Some(n[3..].to_owned()))
        }
        _ => (None, None),
    };
    Ok(LineFacts {
        provider: NAME.to_owned(),
        line: current
            .as_ref()
            .and_then(|c| c.network_type.as_deref())
            .map(LineKind::from_vonage),
        carrier: current.and_then(|c| c.name).filter(|n| !n.is_empty()),
        mobile_country_code: mcc,
        mobile_network_code: mnc,
        original_carrier: body
            .original_carrier
            .and_then(|c| c.name)
            .filter(|n| !n.is_empty()),
        ported: match body.ported.as_deref() {
            Some("ported" | "assumed_ported") => Some(true),
            Some("not_ported" | "assumed_not_ported") => Some(false),
            _ => None,
        },
        roaming: match body
            .roaming
            .as_ref()
            .and_then(|r| r.get("status"))
            .and_then(Value::as_str)
        {
            Some("roaming") => Some(true),
            Some("not_roaming") => Some(false),
            _ => None,
        },
        reachable: match body.reachable.as_deref() {
            Some("reachable") => Some(true),
            Some("undeliverable" | "absent" | "bad_number" | "blacklisted") => Some(false),
            _ => None,
        },
        sim_swap: None,
    })
}
