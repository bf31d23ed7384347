//! A fast in-process emulation of the two provider APIs the sidecar is configured with, speaking
//! their real wire formats (the shapes `providers/src/twilio.rs` and `meta_whatsapp.rs` send
//! and parse, as in the providers crate's wiremock emulations):
//!
//! - Twilio Messages API: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form body,
//!   HTTP Basic; `201` with the message resource (`sid` `SM…`, `status` `queued`), or Twilio's
//!   error body `{code, message, more_info, status}`. SMS carries the code in `Body`, WhatsApp
//!   in `ContentVariables` `{"1":"<code>"}`; `Calls.json` reads it from the TwiML.
//! - Meta WhatsApp Cloud API: `POST /{version}/{phone_number_id}/messages`, JSON, Bearer;
//!   `200` with `messages[0].id` (`wamid.…`), or the Graph error envelope
//!   `{error: {message, type, code, error_data, fbtrace_id}}` (e.g. 131026, not on WhatsApp).
//!
//! Each channel has a latency distribution and a failure rate with a provider error code. Every
//! request is recorded against its destination number: the codes delivered (so a client can type
//! the right one) and the time the handler spent (the provider's share of the send latency, the
//! reference for the engine-added latency).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::RwLock;
use rand::Rng;
use serde_json::{Value, json};

pub const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_TOKEN: &str = "load-test-twilio-auth-token";
pub const TWILIO_FROM: &str = "+15005550006";
pub const META_TOKEN: &str = "load-test-meta-access-token";
pub const META_PHONE_NUMBER_ID: &str = "106540352242922";

/// A latency distribution, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LatencyDist {
    Fixed(f64),
    Uniform(f64, f64),
    /// Median and shape (sigma of the underlying normal).
    LogNormal {
        median: f64,
        sigma: f64,
    },
}

impl LatencyDist {
    /// `fixed:MS`, `uniform:LO:HI` or `lognormal:MEDIAN:SIGMA`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize| -> anyhow::Result<f64> {
            parts
                .get(i)
                .with_context(|| format!("latency `{s}`: missing value"))?
                .parse::<f64>()
                .with_context(|| format!("latency `{s}`"))
        };
        let d = match parts[0] {
            "fixed" => LatencyDist::Fixed(num(1)?),
            "uniform" => LatencyDist::Uniform(num(1)?, num(2)?),
            "lognormal" => LatencyDist::LogNormal {
                median: num(1)?,
                sigma: num(2)?,
            },
            other => bail!(
                "latency kind `{other}`: use fixed:MS, uniform:LO:HI or lognormal:MEDIAN:SIGMA"
            ),
        };
        Ok(d)
    }

    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        let ms = match *self {
            LatencyDist::Fixed(ms) => ms,
            LatencyDist::Uniform(lo, hi) => lo + (hi - lo) * rng.random::<f64>(),
            LatencyDist::LogNormal { median, sigma } => {
                // Box-Muller: one standard normal.
                let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                median * (sigma * z).exp()
            }
        };
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

impl std::fmt::Display for LatencyDist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LatencyDist::Fixed(ms) => write!(f, "fixed:{ms}"),
            LatencyDist::Uniform(a, b) => write!(f, "uniform:{a}:{b}"),
            LatencyDist::LogNormal { median, sigma } => write!(f, "lognormal:{median}:{sigma}"),
        }
    }
}

/// How one channel behaves.
#[derive(Clone, Debug)]
pub struct ChannelBehaviour {
    pub latency: LatencyDist,
    /// Probability (0..=1) that a request fails with `fail_code`.
    pub fail_rate: f64,
    /// Provider error code of a failure (Twilio `30003`, Meta `131026`, ...).
    pub fail_code: u32,
}

#[derive(Clone, Debug)]
pub struct Behaviour {
    pub sms: ChannelBehaviour,
    pub whatsapp: ChannelBehaviour,
    pub call: ChannelBehaviour,
}

impl Default for Behaviour {
    fn default() -> Self {
        let ok = |code| ChannelBehaviour {
            latency: LatencyDist::Fixed(0.0),
            fail_rate: 0.0,
            fail_code: code,
        };
        Behaviour {
            sms: ok(30003),
            whatsapp: ok(131026),
            call: ok(30003),
        }
    }
}

impl Behaviour {
    fn channel(&self, c: Chan) -> &ChannelBehaviour {
        match c {
            Chan::Sms => &self.sms,
            Chan::Whatsapp => &self.whatsapp,
            Chan::Call => &self.call,
        }
    }

    fn channel_mut(&mut self, name: &str) -> anyhow::Result<&mut ChannelBehaviour> {
        Ok(match name {
            "sms" => &mut self.sms,
            "whatsapp" => &mut self.whatsapp,
            "call" => &mut self.call,
            other => bail!("channel `{other}`: the emulator serves sms, whatsapp and call"),
        })
    }

    /// `sms=fixed:0,whatsapp=lognormal:40:0.5`.
    pub fn set_latency(&mut self, spec: &str) -> anyhow::Result<()> {
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (ch, dist) = part
                .split_once('=')
                .with_context(|| format!("`{part}`: expected CHANNEL=DIST"))?;
            self.channel_mut(ch.trim())?.latency = LatencyDist::parse(dist.trim())?;
        }
        Ok(())
    }

    /// `whatsapp=0.10:131026,sms=0.01:30003`.
    pub fn set_failures(&mut self, spec: &str) -> anyhow::Result<()> {
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (ch, rest) = part
                .split_once('=')
                .with_context(|| format!("`{part}`: expected CHANNEL=RATE:CODE"))?;
            let (rate, code) = rest
                .split_once(':')
                .with_context(|| format!("`{part}`: expected CHANNEL=RATE:CODE"))?;
            let b = self.channel_mut(ch.trim())?;
            b.fail_rate = rate.trim().parse().context("failure rate")?;
            b.fail_code = code.trim().parse().context("failure code")?;
            if !(0.0..=1.0).contains(&b.fail_rate) {
                bail!("failure rate of {ch} must be in 0..=1");
            }
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        let one = |name: &str, b: &ChannelBehaviour| {
            format!(
                "{name}: latency {}, failures {:.1}% (code {})",
                b.latency,
                b.fail_rate * 100.0,
                b.fail_code
            )
        };
        format!(
            "{}; {}",
            one("sms (twilio)", &self.sms),
            one("whatsapp (meta_whatsapp)", &self.whatsapp)
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chan {
    Sms,
    Whatsapp,
    Call,
}

/// A provider outage the emulator plays (the chaos run's provider fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every request waits this long before it is handled (beyond the adapters' timeout).
    Slow(Duration),
    /// Every connection, new or kept alive, is reset (TCP RST) at its next read or write.
    Reset,
}

/// An accepted connection that resets itself while the emulator plays [`Fault::Reset`].
pub struct Conn {
    inner: tokio::net::TcpStream,
    emu: Arc<Emulator>,
}

impl Conn {
    fn reset(&self) -> Option<std::io::Error> {
        if *self.emu.fault.read() != Fault::Reset {
            return None;
        }
        // Closed with SO_LINGER 0: the peer gets a RST, not a FIN.
        let _ = self.inner.set_zero_linger();
        Some(std::io::ErrorKind::ConnectionReset.into())
    }
}

impl tokio::io::AsyncRead for Conn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(e) = self.reset() {
            return std::task::Poll::Ready(Err(e));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Conn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if let Some(e) = self.reset() {
            return std::task::Poll::Ready(Err(e));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The emulator's listener: plain TCP, each connection wrapped in a [`Conn`].
struct FaultyListener {
    inner: tokio::net::TcpListener,
    emu: Arc<Emulator>,
}

impl axum::serve::Listener for FaultyListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        let (inner, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let _ = inner.set_nodelay(true);
        (
            Conn {
                inner,
                emu: self.emu.clone(),
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// What the emulator saw for one destination since it was last taken.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Codes delivered (accepted requests only), oldest first.
    pub codes: Vec<String>,
    /// Requests received, failed ones included.
    pub attempts: u32,
    /// Requests answered with a failure.
    pub failed: u32,
    /// Time spent in the handler over all requests, microseconds.
    pub provider_us: u64,
}

/// Counters of the whole run.
#[derive(Debug, Default)]
pub struct Counters {
    pub twilio_ok: AtomicU64,
    pub twilio_failed: AtomicU64,
    pub meta_ok: AtomicU64,
    pub meta_failed: AtomicU64,
    pub rejected: AtomicU64,
}

pub struct Emulator {
    behaviour: RwLock<Behaviour>,
    fault: RwLock<Fault>,
    records: DashMap<String, Record>,
    seq: AtomicU64,
    pub counters: Counters,
    twilio_auth: String,
    meta_auth: String,
}

impl Emulator {
    pub fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Emulator {
            behaviour: RwLock::new(behaviour),
            fault: RwLock::new(Fault::None),
            records: DashMap::with_capacity(1 << 16),
            seq: AtomicU64::new(1),
            counters: Counters::default(),
            twilio_auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"))
            ),
            meta_auth: format!("Bearer {META_TOKEN}"),
        })
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *self.behaviour.write() = b;
    }

    /// Starts (or, with [`Fault::None`], ends) a provider outage.
    pub fn set_fault(&self, f: Fault) {
        *self.fault.write() = f;
    }

    /// Removes and returns what was recorded for `e164` (with its `+`).
    pub fn take(&self, e164: &str) -> Option<Record> {
        self.records.remove(e164).map(|(_, r)| r)
    }

    /// Forgets everything recorded (between phases).
    pub fn clear(&self) {
        self.records.clear();
    }

    /// Binds `127.0.0.1:0` and serves on the current runtime.
    pub async fn serve(self: &Arc<Self>) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio_messages),
            )
            .route("/2010-04-01/Accounts/{sid}/Calls.json", post(twilio_calls))
            .route("/{version}/{phone_number_id}/messages", post(meta_messages))
            .with_state(self.clone());
        let listener = FaultyListener {
            inner: listener,
            emu: self.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("emulator stopped: {e}");
            }
        });
        Ok(addr)
    }

    /// Decides the outcome of one request on `chan` and waits its latency.
    async fn act(&self, chan: Chan) -> Option<u32> {
        let fault = *self.fault.read();
        if let Fault::Slow(d) = fault {
            // The answer comes after the caller gave up: a failure nobody reads, no code.
            tokio::time::sleep(d).await;
            return Some(self.behaviour.read().channel(chan).fail_code);
        }
        let (delay, fail) = {
            let b = self.behaviour.read();
            let cb = b.channel(chan);
            let mut rng = rand::rng();
            let delay = cb.latency.sample(&mut rng);
            let fail =
                (cb.fail_rate > 0.0 && rng.random::<f64>() < cb.fail_rate).then_some(cb.fail_code);
            (delay, fail)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        fail
    }

    fn record(&self, to: &str, code: Option<String>, started: Instant) {
        let us = started.elapsed().as_micros() as u64;
        let mut r = self.records.entry(to.to_owned()).or_default();
        r.attempts += 1;
        r.provider_us += us;
        match code {
            Some(c) => r.codes.push(c),
            None => r.failed += 1,
        }
    }

    fn next_id(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn twilio_error(status: u16, code: u32, message: &str) -> Response {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

fn twilio_message(code: u32) -> &'static str {
    match code {
        30003 => "Unreachable destination handset",
        30006 => "Landline or unreachable carrier",
        21614 => "'To' number is not a valid mobile number",
        20429 => "Too Many Requests",
        63024 => "Invalid message recipient",
        _ => "Message delivery failed",
    }
}

/// The last run of digits in a text: the code of "Your switchboard code is 123456".
fn last_digits(text: &str) -> Option<String> {
    let end = text.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = text[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    Some(text[start..end].to_owned())
}

fn form(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn twilio_messages(
    State(emu): State<Arc<Emulator>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    if sid != TWILIO_SID
        || headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(emu.twilio_auth.as_str())
    {
        emu.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return twilio_error(401, 20003, "Authenticate");
    }
    let f = form(&body);
    let Some(to_raw) = field(&f, "To") else {
        emu.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return twilio_error(400, 21604, "A 'To' phone number is required.");
    };
    if field(&f, "From").is_none() && field(&f, "MessagingServiceSid").is_none() {
        emu.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return twilio_error(400, 21603, "A 'From' phone number is required.");
    }
    let (chan, to) = match to_raw.strip_prefix("whatsapp:") {
        Some(n) => (Chan::Whatsapp, n.to_owned()),
        None => (Chan::Sms, to_raw.to_owned()),
    };
    let code = match chan {
        Chan::Whatsapp => field(&f, "ContentVariables")
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
            .and_then(|v| v.get("1").and_then(Value::as_str).map(str::to_owned)),
        _ => field(&f, "Body").and_then(last_digits),
    };
    let Some(code) = code else {
        emu.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return twilio_error(400, 21602, "Message body is required.");
    };
    if let Some(fail) = emu.act(chan).await {
        emu.counters.twilio_failed.fetch_add(1, Ordering::Relaxed);
        emu.record(&to, None, started);
        let status = if fail == 20429 { 429 } else { 400 };
        return twilio_error(status, fail, twilio_message(fail));
    }
    let id = emu.next_id();
    let sid_out = format!("SM{id:032x}");
    emu.counters.twilio_ok.fetch_add(1, Ordering::Relaxed);
    emu.record(&to, Some(code), started);
    json_response(
        StatusCode::CREATED,
        json!({
            "account_sid": TWILIO_SID, "api_version": "2010-04-01",
            "body": field(&f, "Body").unwrap_or(""),
            "date_created": "Thu, 01 Jan 2026 00:00:00 +0000", "date_sent": null,
            "date_updated": "Thu, 01 Jan 2026 00:00:00 +0000", "direction": "outbound-api",
            "error_code": null, "error_message": null, "from": field(&f, "From"),
            "messaging_service_sid": field(&f, "MessagingServiceSid"), "num_media": "0",
            "num_segments": "1", "price": null, "price_unit": "USD", "sid": sid_out,
            "status": "queued", "to": to_raw,
            "uri": format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid_out}.json"),
        }),
    )
}

async fn twilio_calls(
    State(emu): State<Arc<Emulator>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    if sid != TWILIO_SID
        || headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(emu.twilio_auth.as_str())
    {
        emu.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return twilio_error(401, 20003, "Authenticate");
    }
    let f = form(&body);
    let (Some(to), Some(twiml)) = (field(&f, "To"), field(&f, "Twiml")) else {
        emu.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return twilio_error(400, 21201, "No 'To' number or 'Twiml' is specified");
    };
    // The code is read digit by digit: "1, 2, 3, 4, 5, 6".
    let code: String = twiml
        .split("<Say")
        .nth(1)
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    // loop="2" contributes a digit too.
    let code = code.strip_prefix('2').unwrap_or(&code).to_owned();
    if let Some(fail) = emu.act(Chan::Call).await {
        emu.counters.twilio_failed.fetch_add(1, Ordering::Relaxed);
        emu.record(to, None, started);
        return twilio_error(400, fail, twilio_message(fail));
    }
    let id = emu.next_id();
    let sid_out = format!("CA{id:032x}");
    emu.counters.twilio_ok.fetch_add(1, Ordering::Relaxed);
    emu.record(to, Some(code), started);
    json_response(
        StatusCode::CREATED,
        json!({
            "account_sid": TWILIO_SID, "sid": sid_out, "status": "queued", "to": to,
            "from": field(&f, "From"), "direction": "outbound-api", "api_version": "2010-04-01",
            "uri": format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls/{sid_out}.json"),
        }),
    )
}

fn graph_error(status: u16, code: u32, message: &str, details: &str) -> Response {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        json!({
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": { "messaging_product": "whatsapp", "details": details },
                "fbtrace_id": "AbCdEfGhIjKlMnOpQrSt",
            }
        }),
    )
}

fn meta_failure(code: u32) -> Response {
    match code {
        131026 => graph_error(
            400,
            code,
            "(#131026) Message undeliverable",
            "Message Undeliverable.",
        ),
        130429 => graph_error(
            429,
            code,
            "(#130429) Rate limit hit",
            "Cloud API message throughput has been reached.",
        ),
        131000 => graph_error(
            500,
            code,
            "(#131000) Something went wrong",
            "Something went wrong.",
        ),
        other => graph_error(
            400,
            other,
            "(#131048) Spam rate limit hit",
            "Message failed to send.",
        ),
    }
}

async fn meta_messages(
    State(emu): State<Arc<Emulator>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    if !version.starts_with('v') || phone_number_id != META_PHONE_NUMBER_ID {
        emu.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return graph_error(
            400,
            100,
            "Unsupported post request.",
            "Object does not exist",
        );
    }
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(emu.meta_auth.as_str())
    {
        emu.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return graph_error(
            401,
            190,
            "Invalid OAuth access token.",
            "Invalid OAuth access token.",
        );
    }
    let parsed: Option<(String, String)> = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(|v| v["messaging_product"] == "whatsapp" && v["type"] == "template")
        .and_then(|v| {
            let to = v["to"].as_str()?.to_owned();
            let code = v["template"]["components"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "body")?["parameters"][0]["text"]
                .as_str()?
                .to_owned();
            Some((to, code))
        });
    let Some((to, code)) = parsed else {
        emu.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return graph_error(
            400,
            100,
            "(#100) Invalid parameter",
            "Parameter value is not valid",
        );
    };
    let e164 = format!("+{}", to.trim_start_matches('+'));
    if let Some(fail) = emu.act(Chan::Whatsapp).await {
        emu.counters.meta_failed.fetch_add(1, Ordering::Relaxed);
        emu.record(&e164, None, started);
        return meta_failure(fail);
    }
    let id = emu.next_id();
    emu.counters.meta_ok.fetch_add(1, Ordering::Relaxed);
    emu.record(&e164, Some(code), started);
    json_response(
        StatusCode::OK,
        json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": to, "wa_id": to }],
            "messages": [{ "id": format!("wamid.HBgL{id:020}"), "message_status": "accepted" }],
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_every_message_text() {
        assert_eq!(
            last_digits("Your switchboard code is 042917").as_deref(),
            Some("042917")
        );
        assert_eq!(
            last_digits("Ihr switchboard-Code lautet 1234").as_deref(),
            Some("1234")
        );
        assert_eq!(last_digits("no code"), None);
    }

    #[test]
    fn latency_specs_parse_and_sample_in_range() {
        let mut rng = rand::rng();
        let u = LatencyDist::parse("uniform:2:4").unwrap();
        for _ in 0..100 {
            let d = u.sample(&mut rng).as_secs_f64() * 1000.0;
            assert!((2.0..=4.0).contains(&d), "{d}");
        }
        assert_eq!(
            LatencyDist::parse("fixed:0").unwrap().sample(&mut rng),
            Duration::ZERO
        );
        let l = LatencyDist::parse("lognormal:40:0.5").unwrap();
        let mut v: Vec<f64> = (0..2001)
            .map(|_| l.sample(&mut rng).as_secs_f64())
            .collect();
        v.sort_by(f64::total_cmp);
        let median_ms = v[1000] * 1000.0;
        assert!((30.0..50.0).contains(&median_ms), "{median_ms}");
        assert!(LatencyDist::parse("gamma:1").is_err());
    }

    fn message(to: &str, channel: switchboard::providers::Channel) -> OutboundMessage {
        OutboundMessage {
            to: to.to_owned(),
            country: Some("ES".to_owned()),
            channel,
            code: OneTimeCode::new("042917"),
            brand: "switchboard".to_owned(),
            locale: "en".to_owned(),
            validity: Duration::from_secs(300),
            reference: "v1".to_owned(),
            webotp_host: None,
        }
    }

    use switchboard::providers::http::HttpClient;
    use switchboard::providers::meta_whatsapp::{MetaWhatsappConfig, MetaWhatsappProvider};
    use switchboard::providers::twilio::{TwilioConfig, TwilioProvider};
    use switchboard::providers::{Channel, FailureClass, OneTimeCode, OutboundMessage, Provider};

    fn twilio_at(base: &str, timeout_ms: u64, http: HttpClient) -> TwilioProvider {
        let twilio: TwilioConfig = serde_json::from_value(json!({
            "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": TWILIO_FROM,
            "whatsapp_from": TWILIO_FROM, "content_sid": "HX0123456789abcdef0123456789abcdef",
            "base_url": base, "rate_per_sec": 0, "timeout_ms": timeout_ms,
        }))
        .unwrap();
        TwilioProvider::new(twilio, http).unwrap()
    }

    /// The provider outage: late answers make the adapter give up, a reset fails the call at
    /// the connection (kept-alive connections included), and once the fault ends the emulator
    /// serves again; no code is recorded for a failed call.
    #[tokio::test]
    async fn faults_make_calls_time_out_or_reset_until_they_end() {
        let emu = Emulator::new(Behaviour::default());
        let addr = emu.serve().await.unwrap();
        let twilio = twilio_at(&format!("http://{addr}"), 300, HttpClient::new().unwrap());
        let to = "+34600000004";
        // A kept-alive connection first.
        twilio.send(&message(to, Channel::Sms)).await.unwrap();
        emu.set_fault(Fault::Slow(Duration::from_millis(1500)));
        let started = Instant::now();
        assert!(twilio.send(&message(to, Channel::Sms)).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(1500));
        emu.set_fault(Fault::Reset);
        assert!(twilio.send(&message(to, Channel::Sms)).await.is_err());
        emu.set_fault(Fault::None);
        twilio.send(&message(to, Channel::Sms)).await.unwrap();
        assert_eq!(emu.take(to).unwrap().codes, ["042917", "042917"]);
    }

    /// The real adapters, pointed at the emulator, deliver and read back the code; a failure
    /// comes back classified as the adapter classifies the real provider's error.
    #[tokio::test]
    async fn the_real_adapters_talk_to_the_emulator() {
        let emu = Emulator::new(Behaviour::default());
        let addr = emu.serve().await.unwrap();
        let base = format!("http://{addr}");
        let http = HttpClient::new().unwrap();
        let twilio = twilio_at(&base, 4000, http.clone());
        let meta: MetaWhatsappConfig = serde_json::from_value(json!({
            "access_token": META_TOKEN, "phone_number_id": META_PHONE_NUMBER_ID,
            "base_url": base, "rate_per_sec": 0,
        }))
        .unwrap();
        let meta = MetaWhatsappProvider::new(meta, http).unwrap();

        let d = twilio
            .send(&message("+34600000001", Channel::Sms))
            .await
            .unwrap();
        assert!(d.provider_message_id.starts_with("SM"));
        let d = twilio
            .send(&message("+34600000001", Channel::Whatsapp))
            .await
            .unwrap();
        assert!(d.provider_message_id.starts_with("SM"));
        let d = meta
            .send(&message("+34600000002", Channel::Whatsapp))
            .await
            .unwrap();
        assert!(d.provider_message_id.starts_with("wamid."));
        let r = emu.take("+34600000001").unwrap();
        assert_eq!(r.codes, ["042917", "042917"]);
        assert_eq!(emu.take("+34600000002").unwrap().codes, ["042917"]);

        let mut b = Behaviour::default();
        b.set_failures("whatsapp=1:131026,sms=1:30003").unwrap();
        emu.set_behaviour(b);
        let e = meta
            .send(&message("+34600000003", Channel::Whatsapp))
            .await
            .unwrap_err();
        assert_eq!(e.class, FailureClass::Fallback);
        assert_eq!(e.code.as_deref(), Some("131026"));
        let e = twilio
            .send(&message("+34600000003", Channel::Sms))
            .await
            .unwrap_err();
        assert_eq!(e.class, FailureClass::Fallback);
        assert_eq!(e.code.as_deref(), Some("30003"));
        let r = emu.take("+34600000003").unwrap();
        assert_eq!((r.attempts, r.failed, r.codes.len()), (2, 2, 0));
        assert_eq!(emu.counters.rejected.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn failure_specs_parse() {
        let mut b = Behaviour::default();
        b.set_failures("whatsapp=0.1:131026,sms=0.02:30003")
            .unwrap();
        assert_eq!(b.whatsapp.fail_code, 131026);
        assert!((b.sms.fail_rate - 0.02).abs() < 1e-9);
        assert!(b.set_failures("fax=0.1:1").is_err());
        assert!(b.set_failures("sms=2:1").is_err());
    }
}
