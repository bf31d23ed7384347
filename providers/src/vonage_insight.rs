//! Vonage line intelligence, from two APIs under one `[lookup.vonage]` table:
//!
//! - **Number Insight Advanced** (synchronous): `GET /ni/advanced/json?number=...` on
//!   `api.nexmo.com`, authenticated by `api_key` and `api_secret` in the query as the official
//!   spec declares. It answers the carrier serving the number now (`current_carrier`, with its
//!   `network_type`), the carrier it was allocated to (`original_carrier`), `ported`, `roaming`
//!   and `reachable`. It has no SIM-swap status.
//! - **Identity Insights**: `POST /identity-insights/v1/requests` on `api-eu.vonage.com`
//!   (`api-us.vonage.com` for the Americas), authenticated by an application JWT (RS256, the
//!   application's `application_id` and `private_key`). Its `sim_swap` insight is Vonage's
//!   SIM-swap check since the standalone CAMARA SIM Swap API was retired (November 2025):
//!   `is_swapped` within `period` hours and, where the operator discloses it,
//!   `latest_sim_swap_at`. Its `current_carrier` and `original_carrier` insights give the line
//!   facts when no Number Insight credentials are configured. Each insight answers with its own
//!   `status.code`: `OK` is used; `NO_COVERAGE`, `NOT_FOUND` and `UNSUPPORTED_NETWORK_TYPE` are
//!   "no answer" for that insight (not an error: the number is looked up again after the TTL),
//!   and so are `UNAUTHORIZED` and `INVALID_PURPOSE` (network insights are approved operator by
//!   operator: the number's operator has not approved the application; logged);
//!   `INVALID_NUMBER_FORMAT` is `Permanent`. HTTP errors are RFC 7807 problems, read by status:
//!   401-404 `Config`, 408 and 429 `Transient`, other 4xx `Permanent`, 5xx `Transient`.
//!
//! With both credential pairs, the line comes from Number Insight (it also knows porting,
//! roaming and reachability) and the SIM swap from Identity Insights, in parallel. A request
//! fails when either part fails, so a half answer is never cached as a whole one.
//!
//! Number Insight failures: Vonage answers HTTP 200 with an error `status` in the body: 1
//! (throttled) and 5 (internal error) are `Transient`; 4 (invalid credentials), 9 (quota /
//! credit exceeded), 19 (facility not allowed) and 999 (request unparseable) are `Config`; 3
//! (invalid parameters: the number) is `Permanent`. 43, 44 and 45 (live mobile lookup not
//! returned) are a partial answer: what came is used. Other HTTP statuses are read by status.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{self, FieldError, ProviderContext, ProviderTable};
use crate::http::{self, Endpoint, HttpClient, Response};
use crate::lookup::{
    DynLineLookup, LineFacts, LineKind, LineLookup, LookupCapabilities, LookupError, LookupRequest,
    SimSwap,
};
use crate::vonage_app::{self, ApplicationKey};
use crate::{DeliveryError, FailureClass, Secret, lenient_option, secret};

/// The config name.
pub const NAME: &str = "vonage";
/// Number Insight's host.
pub const DEFAULT_BASE_URL: &str = "https://api.nexmo.com";
/// Identity Insights' host (EU; `https://api-us.vonage.com` serves the Americas).
pub const DEFAULT_INSIGHTS_BASE_URL: &str = "https://api-eu.vonage.com";
/// The Identity Insights operation.
pub const INSIGHTS_PATH: &str = "/identity-insights/v1/requests";
/// The `purpose` Identity Insights requires for the network insights (SIM swap).
pub const PURPOSE: &str = "FraudPreventionAndDetection";
/// Identity Insights accepts a SIM-swap `period` of 1 to 2,400 hours.
const SIM_SWAP_PERIOD_HOURS: (u32, u32) = (1, 2_400);

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}

fn default_insights_base_url() -> String {
    DEFAULT_INSIGHTS_BASE_URL.to_owned()
}

fn default_sim_swap_period_hours() -> u32 {
    // 7 days: the default `risk.sim_swap_days`. A swap reported within this period counts
    // for any window at least as long.
    168
}

fn default_rate_per_sec() -> u32 {
    // Vonage's default Number Insight throughput per account.
    10
}

/// `[lookup.vonage]`. `Debug` hides `api_secret` and `private_key`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageInsightConfig {
    /// Number Insight: API key (with `api_secret`).
    #[serde(default, deserialize_with = "lenient_option")]
    pub api_key: Option<String>,
    #[serde(default)]
    pub api_secret: Option<Secret>,
    /// Identity Insights: the Vonage application id (with `private_key`). Enables the SIM-swap
    /// check.
    #[serde(default, deserialize_with = "lenient_option")]
    pub application_id: Option<String>,
    /// The application's RSA private key, PEM (PKCS#8 or PKCS#1); `\n` escapes are accepted.
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// Number Insight's base URL.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Identity Insights' base URL.
    #[serde(default = "default_insights_base_url")]
    pub insights_base_url: String,
    /// The SIM-swap `period` asked for, in hours (1-2400). Keep it no longer than the
    /// workflows' `risk.sim_swap_days`: a swap "within the period" counts for a window only
    /// when the period fits in it (a disclosed swap date is compared exactly).
    #[serde(default = "default_sim_swap_period_hours")]
    pub sim_swap_period_hours: u32,
    #[serde(default = "default_rate_per_sec")]
    pub rate_per_sec: u32,
    #[serde(default = "config::default_timeout_ms")]
    pub timeout_ms: u64,
}

impl VonageInsightConfig {
    /// Cross-field validation; errors name the key. At least one credential pair is needed.
    pub fn validate(&mut self) -> Result<(), FieldError> {
        match (&self.api_key, &self.api_secret) {
            (Some(key), Some(secret)) => {
                vonage_app::check_api_key(key)?;
                if secret.is_empty() {
                    return Err(FieldError::new("api_secret", "missing"));
                }
            }
            (Some(_), None) => return Err(FieldError::new("api_secret", "missing")),
            (None, Some(_)) => return Err(FieldError::new("api_key", "missing")),
            (None, None) => {}
        }
        let application = vonage_app::check_application(
            self.application_id.as_deref(),
            self.private_key.as_ref(),
        )?;
        if !application && self.api_key.is_none() {
            return Err(FieldError::new(
                "api_key",
                "no credentials: set api_key + api_secret (Number Insight) and/or \
                 application_id + private_key (Identity Insights)",
            ));
        }
        let (lo, hi) = SIM_SWAP_PERIOD_HOURS;
        if !(lo..=hi).contains(&self.sim_swap_period_hours) {
            return Err(FieldError::new(
                "sim_swap_period_hours",
                format!("must be {lo} to {hi}"),
            ));
        }
        self.insights_base_url = http::normalize_base_url(&self.insights_base_url)
            .map_err(|m| FieldError::new("insights_base_url", m))?;
        config::validate_endpoint_keys(&mut self.base_url, self.timeout_ms)
    }

    fn number_insight(&self) -> Option<(&str, &Secret)> {
        Some((self.api_key.as_deref()?, self.api_secret.as_ref()?))
    }
}

/// The Vonage lookup adapter (Number Insight Advanced and/or Identity Insights).
#[derive(Debug)]
pub struct VonageInsight {
    config: VonageInsightConfig,
    app: Option<ApplicationKey>,
    endpoint: Endpoint,
}

/// Which insights one Identity Insights request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insights {
    carrier: bool,
    sim_swap: bool,
}

impl VonageInsight {
    pub fn new(mut config: VonageInsightConfig, http: HttpClient) -> Result<Self, FieldError> {
        config.validate()?;
        let app = match (&config.application_id, &config.private_key) {
            (Some(id), Some(pem)) => Some(ApplicationKey::new(id, pem.expose())?),
            _ => None,
        };
        let endpoint = Endpoint::new(
            NAME,
            http,
            config.rate_per_sec,
            Duration::from_millis(config.timeout_ms),
        );
        Ok(VonageInsight {
            config,
            app,
            endpoint,
        })
    }

    /// The registry constructor.
    pub fn from_table(
        table: &ProviderTable,
        context: &ProviderContext,
    ) -> Result<Arc<dyn DynLineLookup>, FieldError> {
        Ok(Arc::new(Self::new(table.parse()?, context.http().clone())?))
    }

    /// The Identity Insights body for `e164`.
    pub fn insights_body(&self, e164: &str, carrier: bool, sim_swap: bool) -> Value {
        let mut insights = serde_json::Map::new();
        if carrier {
            insights.insert("current_carrier".into(), json!({}));
            insights.insert("original_carrier".into(), json!({}));
        }
        if sim_swap {
            insights.insert(
                "sim_swap".into(),
                json!({ "period": self.config.sim_swap_period_hours }),
            );
        }
        json!({
            "phone_number": e164.trim_start_matches('+'),
            "purpose": PURPOSE,
            "insights": insights,
        })
    }

    async fn fetch(&self, request: &LookupRequest<'_>) -> Result<LineFacts, LookupError> {
        if !http::is_e164(request.e164) {
            return Err(
                DeliveryError::permanent(NAME, "not an E.164 number").with_code("invalid_number")
            );
        }
        let ni = request.line && self.config.number_insight().is_some();
        let wanted = Insights {
            carrier: request.line && !ni,
            sim_swap: request.sim_swap && self.app.is_some(),
        };
        let ii = wanted.carrier || wanted.sim_swap;
        match (ni, ii) {
            (true, true) => {
                let (line, insights) =
                    tokio::join!(self.number_insight(request), self.identity(request, wanted));
                let mut facts = line?;
                facts.sim_swap = insights?.sim_swap;
                Ok(facts)
            }
            (true, false) => self.number_insight(request).await,
            (false, true) => self.identity(request, wanted).await,
            (false, false) => Ok(LineFacts {
                provider: NAME.to_owned(),
                ..LineFacts::default()
            }),
        }
    }

    async fn number_insight(&self, request: &LookupRequest<'_>) -> Result<LineFacts, LookupError> {
        let Some((key, secret)) = self.config.number_insight() else {
            return Err(DeliveryError::config(NAME, "no Number Insight credentials"));
        };
        let req = self
            .endpoint
            .client()
            .get(format!("{}/ni/advanced/json", self.config.base_url))
            .query(&[
                ("api_key", key),
                ("api_secret", secret.expose()),
                ("number", request.e164.trim_start_matches('+')),
            ]);
        let response = self.endpoint.send(req).await?;
        parse_response(&response)
    }

    async fn identity(
        &self,
        request: &LookupRequest<'_>,
        wanted: Insights,
    ) -> Result<LineFacts, LookupError> {
        let Some(app) = &self.app else {
            return Err(DeliveryError::config(
                NAME,
                "no Identity Insights application",
            ));
        };
        let body = self.insights_body(request.e164, wanted.carrier, wanted.sim_swap);
        let req = self
            .endpoint
            .client()
            .post(format!("{}{INSIGHTS_PATH}", self.config.insights_base_url))
            .header(reqwest::header::ACCEPT, "application/json")
            .bearer_auth(app.token(NAME, SystemTime::now())?)
            .json(&body);
        let response = self.endpoint.send(req).await?;
        parse_insights(&response, self.config.sim_swap_period_hours)
    }
}

impl LineLookup for VonageInsight {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> LookupCapabilities {
        LookupCapabilities {
            line: true,
            sim_swap: self.app.is_some(),
        }
    }

    async fn lookup(&self, request: &LookupRequest<'_>) -> Result<LineFacts, LookupError> {
        let digits = request.e164.trim_start_matches('+');
        let mut hidden = vec![request.e164, digits];
        hidden.extend(self.config.api_key.as_deref());
        hidden.extend(self.config.api_secret.as_ref().map(Secret::expose));
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
    let (mcc, mnc) = mcc_mnc(current.as_ref().and_then(|c| c.network_code.as_deref()));
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

#[derive(Deserialize)]
struct InsightsBody {
    insights: Option<InsightsAnswer>,
}

#[derive(Deserialize)]
struct InsightsAnswer {
    current_carrier: Option<CarrierInsight>,
    original_carrier: Option<CarrierInsight>,
    sim_swap: Option<SimSwapInsight>,
}

#[derive(Deserialize)]
struct InsightStatus {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct CarrierInsight {
    name: Option<String>,
    network_type: Option<String>,
    network_code: Option<String>,
    status: Option<InsightStatus>,
}

#[derive(Deserialize)]
struct SimSwapInsight {
    latest_sim_swap_at: Option<String>,
    is_swapped: Option<bool>,
    status: Option<InsightStatus>,
}

/// An insight's `status`: `Ok(true)` to use its fields, `Ok(false)` for "no answer", `Err` for
/// a failure of the whole lookup.
fn insight_usable(insight: &str, status: Option<&InsightStatus>) -> Result<bool, LookupError> {
    let code = status.and_then(|s| s.code.as_deref()).unwrap_or("OK");
    match code {
        "OK" => Ok(true),
        "INVALID_NUMBER_FORMAT" => {
            let message = status.and_then(|s| s.message.as_deref()).unwrap_or("");
            Err(DeliveryError::permanent(
                NAME,
                crate::Redactor::new()
                    .redact(&format!("Identity Insights {insight}: {code} {message}")),
            )
            .with_code(code.to_owned()))
        }
        // Network insights are approved operator by operator: a number on an operator that has
        // not approved the application answers UNAUTHORIZED (or INVALID_PURPOSE) for that
        // insight while others answer. No answer for this number, cached like one, rather than
        // a failed lookup paid again on every send (or refusing them, when fail-closed).
        "UNAUTHORIZED" | "INVALID_PURPOSE" => {
            tracing::warn!(
                provider = NAME,
                insight,
                code,
                "Identity Insights insight not authorised for this number's operator"
            );
            Ok(false)
        }
        // NO_COVERAGE, NOT_FOUND, UNSUPPORTED_NETWORK_TYPE, and a status this adapter does not
        // know: no answer from that insight.
        _ => Ok(false),
    }
}

/// Splits Vonage's `network_code` (MCC + MNC digits) in two.
fn mcc_mnc(network: Option<&str>) -> (Option<String>, Option<String>) {
    match network {
        Some(n) if n.len() > 3 && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(n[..3].to_owned()), Some(n[3..].to_owned()))
        }
        _ => (None, None),
    }
}

/// Reads an Identity Insights response. `period_hours` is the SIM-swap period that was asked.
pub fn parse_insights(response: &Response, period_hours: u32) -> Result<LineFacts, LookupError> {
    let status = response.status;
    if !response.is_success() {
        let problem: Option<Value> = serde_json::from_slice(&response.body).ok();
        let field = |k: &str| {
            problem
                .as_ref()
                .and_then(|p| p.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let class = match status {
            408 | 429 => FailureClass::Transient,
            300..=399 | 401..=404 => FailureClass::Config,
            400..=499 => FailureClass::Permanent,
            _ => FailureClass::Transient,
        };
        let (title, detail) = (field("title"), field("detail"));
        let text = if title.is_empty() && detail.is_empty() {
            "no readable body".to_owned()
        } else {
            format!("{title} {detail}")
        };
        let mut err = DeliveryError::new(
            class,
            NAME,
            crate::Redactor::new().redact(&format!("HTTP {status}: {}", text.trim())),
        )
        .with_code(format!("http_{status}"));
        if class == FailureClass::Transient
            && let Some(after) = http::retry_after(&response.headers)
        {
            err = err.with_retry_after(after);
        }
        return Err(err);
    }
    let answer = serde_json::from_slice::<InsightsBody>(&response.body)
        .ok()
        .and_then(|b| b.insights)
        .ok_or_else(|| {
            DeliveryError::transient(NAME, format!("HTTP {status} with an unreadable body"))
                .with_code("malformed_response")
        })?;
    let mut facts = LineFacts {
        provider: NAME.to_owned(),
        ..LineFacts::default()
    };
    if let Some(current) = answer.current_carrier
        && insight_usable("current_carrier", current.status.as_ref())?
    {
        facts.line = current
            .network_type
            .as_deref()
            .map(|t| LineKind::from_vonage(&t.to_ascii_lowercase()));
        facts.carrier = current.name.filter(|n| !n.is_empty());
        (facts.mobile_country_code, facts.mobile_network_code) =
            mcc_mnc(current.network_code.as_deref());
    }
    if let Some(original) = answer.original_carrier
        && insight_usable("original_carrier", original.status.as_ref())?
    {
        facts.original_carrier = original.name.filter(|n| !n.is_empty());
        if let (Some(now), Some(first)) = (&facts.carrier, &facts.original_carrier) {
            facts.ported = Some(now != first);
        }
    }
    if let Some(swap) = answer.sim_swap
        && insight_usable("sim_swap", swap.status.as_ref())?
    {
        let last_swap_ms = swap
            .latest_sim_swap_at
            .as_deref()
            .and_then(crate::timestamp::parse_rfc3339)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok());
        facts.sim_swap = Some(SimSwap {
            last_swap_ms,
            period_secs: Some(u64::from(period_hours) * 3_600),
            swapped_in_period: swap.is_swapped,
        });
    }
    Ok(facts)
}
