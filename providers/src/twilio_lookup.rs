//! Twilio Lookup v2: `GET /v2/PhoneNumbers/{PhoneNumber}?Fields=line_type_intelligence,sim_swap`
//! (HTTP Basic with the account SID and auth token) on `lookups.twilio.com`.
//!
//! - `line_type_intelligence`: `type` (`mobile`, `landline`, `fixedVoip`, `nonFixedVoip`,
//!   `tollFree`, `premium`, `sharedCost`, `personal`, `pager`, `voicemail`, `uan`, `unknown`),
//!   `carrier_name` (the carrier serving the number now), `mobile_country_code`,
//!   `mobile_network_code`, `error_code`;
//! - `sim_swap.last_sim_swap`: `last_sim_swap_date` (where the operator discloses it),
//!   `swapped_period` (`PT48H`) and `swapped_in_period`.
//!
//! Failures: an HTTP error body `{code, message, status}` is read with Twilio's codes (20003
//! authentication: `Config`; 20404 not found: `Permanent`; 20429 too many requests:
//! `Transient`), the status otherwise. A field that failed carries its own `error_code`
//! inside a 200: 60600 (unprovisioned or out of coverage) is no answer, not an error; 60606
//! (package not enabled) is `Config`; 60607 (provider not available) and 60608 (unknown) are
//! `Transient`. A 200 with `valid: false` is `Permanent`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{self, FieldError, ProviderContext, ProviderTable};
use crate::http::{self, Endpoint, HttpClient, ParsedError, Response};
use crate::lookup::{
    DynLineLookup, LineFacts, LineKind, LineLookup, LookupCapabilities, LookupError, LookupRequest,
    SimSwap, iso8601_period_secs,
};
use crate::{DeliveryError, FailureClass, Secret, lenient_string, secret};

/// The config name.
pub const NAME: &str = "twilio";
/// Twilio Lookup's host.
pub const DEFAULT_BASE_URL: &str = "https://lookups.twilio.com";

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}

fn default_rate_per_sec() -> u32 {
    // Twilio's Lookup default concurrency is far above this; a sidecar rarely needs more.
    20
}

fn yes() -> bool {
    true
}

/// `[lookup.twilio]`. `Debug` hides `auth_token`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioLookupConfig {
    #[serde(deserialize_with = "lenient_string")]
    pub account_sid: String,
    pub auth_token: Secret,
    /// Ask for `sim_swap` (a separately enabled, separately priced Lookup package).
    #[serde(default = "yes")]
    pub sim_swap: bool,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default = "default_rate_per_sec")]
    pub rate_per_sec: u32,
    #[serde(default = "config::default_timeout_ms")]
    pub timeout_ms: u64,
}

impl TwilioLookupConfig {
    pub fn validate(&mut self) -> Result<(), FieldError> {
        let sid = &self.account_sid;
        if !(sid.len() > 2
            && sid.len() <= 64
            && sid.starts_with("AC")
            && sid.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(FieldError::new(
                "account_sid",
                "must be a Twilio Account SID (AC followed by letters and digits)",
            ));
        }
        if self.auth_token.is_empty() {
            return Err(FieldError::new("auth_token", "missing"));
        }
        config::validate_endpoint_keys(&mut self.base_url, self.timeout_ms)
    }
}

/// The Twilio Lookup v2 adapter.
#[derive(Debug)]
pub struct TwilioLookup {
    config: TwilioLookupConfig,
    endpoint: Endpoint,
}

impl TwilioLookup {
    pub fn new(mut config: TwilioLookupConfig, http: HttpClient) -> Result<Self, FieldError> {
        config.validate()?;
        let endpoint = Endpoint::new(
            NAME,
            http,
            config.rate_per_sec,
            Duration::from_millis(config.timeout_ms),
        );
        Ok(TwilioLookup { config, endpoint })
    }

    /// The registry constructor.
    pub fn from_table(
        table: &ProviderTable,
        context: &ProviderContext,
    ) -> Result<Arc<dyn DynLineLookup>, FieldError> {
        Ok(Arc::new(Self::new(table.parse()?, context.http().clone())?))
    }

    /// The `Fields` a request asks for: only what is wanted and enabled.
    fn fields(&self, request: &LookupRequest<'_>) -> String {
        let mut fields = Vec::new();
        if request.line {
            fields.push("line_type_intelligence");
        }
        if request.sim_swap && self.config.sim_swap {
            fields.push("sim_swap");
        }
        fields.join(",")
    }

    async fn fetch(&self, request: &LookupRequest<'_>) -> Result<LineFacts, LookupError> {
        if !http::is_e164(request.e164) {
            return Err(
                DeliveryError::permanent(NAME, "not an E.164 number").with_code("invalid_number")
            );
        }
        let url = format!("{}/v2/PhoneNumbers/{}", self.config.base_url, request.e164);
        let req = self
            .endpoint
            .client()
            .get(url)
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose()),
            )
            .query(&[("Fields", self.fields(request))]);
        let response = self.endpoint.send(req).await?;
        if !response.is_success() {
            return Err(parse_error(&response));
        }
        parse_response(&response)
    }
}

impl LineLookup for TwilioLookup {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> LookupCapabilities {
        LookupCapabilities {
            line: true,
            sim_swap: self.config.sim_swap,
        }
    }

    async fn lookup(&self, request: &LookupRequest<'_>) -> Result<LineFacts, LookupError> {
        let hidden = [request.e164, request.e164.trim_start_matches('+')];
        let credentials = [self.config.auth_token.expose(), &self.config.account_sid];
        self.fetch(request).await.map_err(|e| {
            secret::redact_send_error_with(e, &[&hidden[..], &credentials[..]].concat())
        })
    }
}

#[derive(Deserialize)]
struct Body {
    valid: Option<bool>,
    line_type_intelligence: Option<LineTypeIntelligence>,
    sim_swap: Option<SimSwapInfo>,
}

#[derive(Deserialize)]
struct LineTypeIntelligence {
    #[serde(rename = "type")]
    kind: Option<String>,
    carrier_name: Option<String>,
    mobile_country_code: Option<String>,
    mobile_network_code: Option<String>,
    error_code: Option<Value>,
}

#[derive(Deserialize)]
struct SimSwapInfo {
    last_sim_swap: Option<LastSimSwap>,
    carrier_name: Option<String>,
    mobile_country_code: Option<String>,
    mobile_network_code: Option<String>,
    error_code: Option<Value>,
}

#[derive(Deserialize)]
struct LastSimSwap {
    last_sim_swap_date: Option<String>,
    swapped_period: Option<String>,
    swapped_in_period: Option<bool>,
}

/// The class of a field's own `error_code` (`None`: no answer, not a failure).
fn field_error(code: &Value) -> Option<DeliveryError> {
    let code = match code {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    let class = match code.as_str() {
        // Unprovisioned or out of coverage: the provider has no answer for this number.
        "60600" => return None,
        // Package not enabled on the account, authorization required.
        "60606" | "60601" => FailureClass::Config,
        _ => FailureClass::Transient,
    };
    Some(
        DeliveryError::new(
            class,
            NAME,
            format!("lookup field failed with Twilio error {code}"),
        )
        .with_code(code),
    )
}

/// Reads a 200: the facts of the fields that answered. A field error is returned only when
/// no field answered.
pub fn parse_response(response: &Response) -> Result<LineFacts, LookupError> {
    let body: Body = serde_json::from_slice(&response.body).map_err(|_| {
        DeliveryError::transient(
            NAME,
            format!("HTTP {} with an unreadable body", response.status),
        )
        .with_code("malformed_response")
    })?;
    if body.valid == Some(false) {
        return Err(
            DeliveryError::permanent(NAME, "Twilio says the number is not valid")
                .with_code("invalid_number"),
        );
    }
    let mut facts = LineFacts {
        provider: NAME.to_owned(),
        ..LineFacts::default()
    };
    let mut failed = None;
    if let Some(lti) = body.line_type_intelligence {
        match lti.error_code.as_ref().filter(|c| !c.is_null()) {
            Some(code) => failed = failed.or(field_error(code)),
            None => {
                facts.line = lti.kind.as_deref().map(LineKind::from_twilio);
                facts.carrier = lti.carrier_name.filter(|c| !c.is_empty());
                facts.mobile_country_code = lti.mobile_country_code;
                facts.mobile_network_code = lti.mobile_network_code;
            }
        }
    }
    if let Some(ss) = body.sim_swap {
        match ss.error_code.as_ref().filter(|c| !c.is_null()) {
            Some(code) => failed = failed.or(field_error(code)),
            None => {
                let last = ss.last_sim_swap;
                facts.sim_swap = Some(SimSwap {
                    last_swap_ms: last
                        .as_ref()
                        .and_then(|l| l.last_sim_swap_date.as_deref())
                        .and_then(crate::timestamp::parse_rfc3339)
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .and_then(|d| i64::try_from(d.as_millis()).ok()),
                    period_secs: last
                        .as_ref()
                        .and_then(|l| l.swapped_period.as_deref())
                        .and_then(iso8601_period_secs),
                    swapped_in_period: last.as_ref().and_then(|l| l.swapped_in_period),
                });
                facts.carrier = facts.carrier.or(ss.carrier_name.filter(|c| !c.is_empty()));
                facts.mobile_country_code = facts.mobile_country_code.or(ss.mobile_country_code);
                facts.mobile_network_code = facts.mobile_network_code.or(ss.mobile_network_code);
            }
        }
    }
    match failed {
        Some(err) if facts.line.is_none() && facts.sim_swap.is_none() => Err(err),
        _ => Ok(facts),
    }
}

/// Maps an HTTP error to a classified error with Twilio's codes first.
pub fn parse_error(response: &Response) -> LookupError {
    #[derive(Deserialize)]
    struct ErrorBody {
        code: Option<Value>,
        message: Option<String>,
    }
    let status = response.status;
    let parsed = serde_json::from_slice::<ErrorBody>(&response.body)
        .ok()
        .filter(|b| b.code.is_some() || b.message.is_some())
        .map(|b| {
            let code = b.code.as_ref().map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let known = match code.as_deref() {
                Some("20003") => Some(FailureClass::Config),
                Some("20404") => Some(FailureClass::Permanent),
                Some("20429") => Some(FailureClass::Transient),
                _ => None,
            };
            ParsedError {
                class: known.unwrap_or(match status {
                    401 | 403 => FailureClass::Config,
                    404 => FailureClass::Permanent,
                    _ => FailureClass::Transient,
                }),
                code,
                text: format!(
                    "HTTP {status}: {}",
                    b.message.as_deref().unwrap_or("no message")
                ),
                // A lookup is a read: an unknown outcome has no meaning here.
                refused: true,
            }
        });
    let mut err = http::error_response(NAME, status, &response.headers, parsed);
    err.outcome_unknown = false;
    err
}
