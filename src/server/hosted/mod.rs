//! The hosted verification page at a session's `session_url` (`/session/TOKEN/`): phone,
//! channel (when the workflow offers a choice), code, done. Server-rendered (`page`), in six
//! languages (`i18n`), with a small script for progressive enhancement (`static/`).
//!
//! Every form goes through the engine's own send and check (`Engine::session_send`,
//! `Engine::session_check`), with the user's IP as the fraud screen's signal, behind the same
//! per-IP limit as the API. Every form carries a CSRF token (HMAC of the session token, compared
//! in constant time); every answer a strict Content-Security-Policy (no inline script or
//! style), `Referrer-Policy: no-referrer` (the URL's token never leaves in a Referer) and
//! `Cache-Control: no-store`. No code is ever rendered.

mod i18n;
mod page;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use switchboard_providers::Channel;

use super::AppState;
use crate::Error;
use crate::hosted::{Session, SessionStatus};
use crate::report::{CheckStatus, SendOutcome, SendStatus};
use i18n::{Lang, t, tn};
use page::{Frame, Step};

/// The fields the page's forms post (each form a few of them).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PageForm {
    /// The form's CSRF token (every form).
    csrf: Option<String>,
    /// Send: the number, national (with `country`) or E.164.
    phone_number: Option<String>,
    /// Send: ISO 3166-1 alpha-2 region of the number.
    country: Option<String>,
    /// Send: the channel chosen (`SMS`, `WHATSAPP`, ...), where the workflow offers a choice.
    channel: Option<String>,
    /// Check: the code typed.
    code: Option<String>,
}

/// Largest form body accepted.
const FORM_LIMIT: usize = 4096;

const SCRIPT: &str = include_str!("static/hosted.js");
const STYLE: &str = include_str!("static/hosted.css");

/// The key the page's CSRF tokens are made with: derived from `pepper` when set (so every
/// sidecar of a deployment accepts the others' forms), random per process otherwise.
#[derive(Clone)]
pub struct PageKey([u8; 32]);

impl std::fmt::Debug for PageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageKey(<redacted>)")
    }
}

impl PageKey {
    pub fn new(pepper: &crate::config::Secret) -> Self {
        if pepper.is_empty() {
            return PageKey(rand::random());
        }
        let mut mac =
            Hmac::<Sha256>::new_from_slice(pepper.expose().as_bytes()).expect("HMAC takes any key");
        mac.update(b"switchboard hosted page csrf");
        PageKey(mac.finalize().into_bytes().into())
    }

    /// The CSRF token of the session whose URL carries `token`.
    fn csrf(&self, token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Constant-time comparison of a submitted CSRF token.
    fn verify(&self, token: &str, submitted: &str) -> bool {
        let expected = self.csrf(token);
        expected.len() == submitted.len()
            && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
    }
}

/// What one request to the page knows.
struct Ctx<'a> {
    state: &'a AppState,
    token: String,
    lang: Lang,
    accept_language: Option<String>,
    /// `scheme://host` the user reached the page at (or `server.public_url`).
    origin: String,
    session: Option<Session>,
    resolved: Option<crate::hosted::Resolved>,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The public origin: `server.public_url`, else the request's `Host`.
pub(crate) fn origin(state: &AppState, headers: &HeaderMap) -> String {
    let configured = state.config.public_url.trim().trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_owned();
    }
    let host = header(headers, "host")
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The session URL of `token` under `origin`.
pub(crate) fn session_url(origin: &str, token: &str) -> String {
    format!("{origin}/session/{token}/")
}

impl<'a> Ctx<'a> {
    async fn load(state: &'a AppState, token: String, headers: &HeaderMap) -> Result<Self, Error> {
        let accept_language = header(headers, "accept-language").map(str::to_owned);
        let session = state.engine.session_by_token(&token).await?;
        let resolved = match &session {
            Some(s) => Some(state.engine.session_workflow(s)?),
            None => None,
        };
        let fixed = session
            .as_ref()
            .and_then(|s| s.locale.clone().or_else(|| s.settings.locale.clone()));
        let lang = i18n::choose(fixed.as_deref(), accept_language.as_deref());
        Ok(Ctx {
            state,
            token,
            lang,
            accept_language,
            origin: origin(state, headers),
            session,
            resolved,
        })
    }

    fn frame<'f>(&'f self, csrf: &'f str, base: &'f str, handoff: Option<&'f str>) -> Frame<'f> {
        let (brand, color) = match &self.resolved {
            Some(r) => (r.workflow.brand.as_str(), &r.brand_color[1..]),
            None => (
                self.state.engine.config().workflow.brand.as_str(),
                &crate::hosted::DEFAULT_BRAND_COLOR[1..],
            ),
        };
        Frame {
            lang: self.lang,
            brand,
            color,
            base,
            csrf,
            handoff_url: handoff,
        }
    }

    /// The document of `step`, with the page's headers.
    fn render(&self, status: StatusCode, step: &Step<'_>) -> Response {
        let csrf = self.state.page_key.csrf(&self.token);
        let base = format!("/session/{}", self.token);
        let url = session_url(&self.origin, &self.token);
        let html = page::render(&self.frame(&csrf, &base, Some(&url)), step);
        let callback = self.session.as_ref().and_then(|s| s.callback.as_deref());
        with_page_headers(
            (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
            callback,
        )
    }

    fn not_found(&self) -> Response {
        self.render(StatusCode::NOT_FOUND, &Step::NotFound)
    }

    fn region(&self) -> String {
        i18n::default_region(self.accept_language.as_deref(), self.lang)
    }

    /// A refusal's message in the page's language.
    fn refusal(&self, e: &Error) -> String {
        let lang = self.lang;
        let wait = e.retry_after_secs().unwrap_or(1);
        match e.code() {
            "INVALID_PHONE_NUMBER" | "INVALID_REGION" => t(lang, "INVALID_PHONE_NUMBER").into(),
            "RESEND_LIMIT_EXCEEDED" => tn(lang, "RESEND_LIMIT_EXCEEDED", wait),
            "RESEND_COOLDOWN" => tn(lang, "cooldown", wait),
            "RATE_LIMITED" => tn(lang, "RATE_LIMITED", wait),
            "CHANNEL_UNAVAILABLE" => t(lang, "CHANNEL_UNAVAILABLE").into(),
            _ => t(lang, "UNAVAILABLE").into(),
        }
    }
}

/// CSP and the other headers of every page answer. A form may post to this origin only, and
/// (for the redirect at the end) to the callback's origin.
fn with_page_headers(mut response: Response, callback: Option<&str>) -> Response {
    let form_action = callback
        .and_then(callback_origin)
        .map_or_else(|| "'self'".to_owned(), |o| format!("'self' {o}"));
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `scheme://host[:port]` of a callback URL (validated at session creation).
fn callback_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]@".contains(&b)))
    .then(|| format!("{scheme}://{host}"))
}

/// The callback with the session's outcome appended.
fn callback_with(callback: &str, session_id: &str, status: SessionStatus) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("session_id", session_id)
        .append_pair("status", status.as_str())
        .finish();
    let sep = if callback.contains('?') { '&' } else { '?' };
    format!("{callback}{sep}{query}")
}

/// The session token of a page path (`/session/TOKEN/...`), as written (tokens are URL-safe).
fn token_of(uri: &Uri) -> String {
    uri.path()
        .strip_prefix("/session/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// The form fields of a page POST.
fn form(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The end user's context for the fraud screen: their IP and browser.
fn signals(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> crate::Signals {
    crate::Signals {
        ip: state
            .client_ip(Some(peer.ip()), header(headers, "x-forwarded-for"))
            .map(|ip| ip.to_string()),
        user_agent: header(headers, "user-agent").map(|ua| ua.chars().take(1024).collect()),
        ..crate::Signals::default()
    }
}

/// A readable form of an E.164 number (`+34 600 60 06 00`).
fn display(e164: &str) -> String {
    crate::phone::international(e164).unwrap_or_else(|| e164.to_owned())
}

/// `GET /session/{token}/`: the step the session is at.
#[utoipa::path(
    get,
    operation_id = "hosted_page",
    path = "/session/{token}/",
    tag = "hosted page",
    params(("token" = String, Path, description = "The session URL's token")),
    responses(
        (status = 200, description = "The step the session is at (phone, code, or the result)", content_type = "text/html", body = String),
        (status = 404, description = "No live session has this token", content_type = "text/html", body = String),
        (status = 503, description = "The state store is unavailable", content_type = "text/plain", body = String),
        (status = 429, description = "RATE_LIMITED: the per-IP limit (JSON error)", body = crate::server::http::types::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match Ctx::load(&state, token_of(&uri), &headers).await {
        Ok(ctx) => ctx,
        Err(_) => return unavailable(),
    };
    current_step(&ctx, None).await
}

/// The page for where the session stands; `notice` on the code step.
async fn current_step(ctx: &Ctx<'_>, notice: Option<String>) -> Response {
    let Some(session) = &ctx.session else {
        return ctx.not_found();
    };
    let engine = &ctx.state.engine;
    let (status, _) = match engine.session_status(session).await {
        Ok(s) => s,
        Err(_) => return unavailable(),
    };
    if status.is_final() {
        return done(ctx, session, status);
    }
    match engine.session_progress(session).await {
        Ok(Some(progress)) => ctx.render(
            StatusCode::OK,
            &Step::Code {
                phone: &display(&progress.phone_number),
                notice,
                error: None,
                resends_left: None,
                cooldown: None,
            },
        ),
        Ok(None) => {
            let region = ctx.region();
            let locked = session.phone.as_deref().map(display);
            ctx.render(
                StatusCode::OK,
                &Step::Phone {
                    region: &region,
                    number: "",
                    locked: locked.as_deref(),
                    error: None,
                },
            )
        }
        Err(_) => unavailable(),
    }
}

/// The done step: the result page, with a link to the callback when there is one.
fn done(ctx: &Ctx<'_>, session: &Session, status: SessionStatus) -> Response {
    let callback = session
        .callback
        .as_deref()
        .map(|cb| callback_with(cb, &session.session_id, status));
    ctx.render(
        StatusCode::OK,
        &Step::Done {
            status,
            callback: callback.as_deref(),
        },
    )
}

/// The end of the flow after a form: straight to the callback when there is one.
fn finish(ctx: &Ctx<'_>, session: &Session, status: SessionStatus) -> Response {
    match &session.callback {
        Some(cb) => {
            let location = callback_with(cb, &session.session_id, status);
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(LOCATION, v);
            }
            with_page_headers(response, Some(cb))
        }
        None => done(ctx, session, status),
    }
}

fn unavailable() -> Response {
    with_page_headers(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "The service is unavailable; please try again in a moment.",
        )
            .into_response(),
        None,
    )
}

/// Reads a POST: the session, its form, the CSRF check, and that the session has not ended.
/// `Err` is the answer to give.
async fn posted<'a>(
    state: &'a AppState,
    token: String,
    headers: &HeaderMap,
    request: Request,
) -> Result<(Ctx<'a>, Session, Vec<(String, String)>), Response> {
    let ctx = Ctx::load(state, token, headers)
        .await
        .map_err(|_| unavailable())?;
    let Some(session) = ctx.session.clone() else {
        return Err(ctx.not_found());
    };
    let bytes = super::http::read_body(request.into_body(), FORM_LIMIT)
        .await
        .map_err(|_| ctx.render(StatusCode::BAD_REQUEST, &Step::NotFound))?;
    let fields = form(&bytes);
    let submitted = field(&fields, "csrf").unwrap_or_default();
    if !state.page_key.verify(&ctx.token, submitted) {
        let region = ctx.region();
        return Err(ctx.render(
            StatusCode::FORBIDDEN,
            &Step::Phone {
                region: &region,
                number: "",
                locked: None,
                error: Some(t(ctx.lang, "FORM_EXPIRED").into()),
            },
        ));
    }
    // A session that ended sends and checks nothing more (its number may have a newer
    // verification, which is not the session's): the form answers with the result.
    match state.engine.session_status(&session).await {
        Ok((status, _)) if status.is_final() => return Err(done(&ctx, &session, status)),
        Ok(_) => {}
        Err(_) => return Err(unavailable()),
    }
    Ok((ctx, session, fields))
}

/// `POST /session/{token}/send`: the number (and channel), then the first code.
#[utoipa::path(
    post,
    operation_id = "hosted_page_send",
    path = "/session/{token}/send",
    tag = "hosted page",
    request_body(content = PageForm, content_type = "application/x-www-form-urlencoded"),
    params(("token" = String, Path, description = "The session URL's token")),
    responses(
        (status = 200, description = "The next step (code step, channel step) as HTML", content_type = "text/html", body = String),
        (status = 303, description = "Done: to the callback with `session_id` and `status`", headers(("Location" = String, description = "The callback"))),
        (status = 400, description = "The form could not be read", content_type = "text/html", body = String),
        (status = 403, description = "The CSRF token is missing or wrong: the phone step with a message", content_type = "text/html", body = String),
        (status = 404, description = "No live session has this token", content_type = "text/html", body = String),
        (status = 422, description = "A refusal (invalid number, wrong code with the attempts left, blocked, undeliverable), with its message", content_type = "text/html", body = String),
        (status = 429, description = "RATE_LIMITED, the per-IP limit (the JSON error), or a resend refused by the cooldown or the resend limit (the code step with its message)",
            content((crate::server::http::types::ErrorBody = "application/json"), (String = "text/html"))),
        (status = 503, description = "The state store is unavailable", content_type = "text/plain", body = String),
    )
)]
pub(super) async fn send(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let (ctx, session, fields) = match posted(&state, token_of(&uri), &headers, request).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let engine = &state.engine;
    match engine.session_progress(&session).await {
        Ok(None) => {}
        Ok(Some(_)) => return current_step(&ctx, None).await,
        Err(_) => return unavailable(),
    }
    let region = field(&fields, "country")
        .filter(|r| crate::phone::calling_code(r).is_some())
        .map_or_else(|| ctx.region(), str::to_owned);
    let typed = field(&fields, "phone_number").unwrap_or_default();
    let phone_step = |error: String| {
        let locked = session.phone.as_deref().map(display);
        ctx.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &Step::Phone {
                region: &region,
                number: typed,
                locked: locked.as_deref(),
                error: Some(error),
            },
        )
    };
    let e164 = match &session.phone {
        Some(locked) => locked.clone(),
        None => match crate::phone::parse(typed, Some(&region)) {
            Ok(info) => info.e164,
            Err(e) => return phone_step(ctx.refusal(&Error::from(e))),
        },
    };
    let resolved = ctx.resolved.as_ref().expect("a session has a workflow");
    let channels = &resolved.allowed_channels;
    let channel = match field(&fields, "channel") {
        Some(c) => match c.parse::<Channel>() {
            Ok(c) => Some(c),
            Err(_) => return phone_step(t(ctx.lang, "CHANNEL_UNAVAILABLE").into()),
        },
        None if channels.len() == 1 => Some(channels[0]),
        None if channels.len() > 1 => {
            return ctx.render(
                StatusCode::OK,
                &Step::Channel {
                    number: typed,
                    region: &region,
                    channels,
                    error: None,
                },
            );
        }
        None => None,
    };
    let host = ctx
        .origin
        .split_once("://")
        .map(|(_, h)| h.split(':').next().unwrap_or(h).to_owned());
    let sent = engine
        .session_send(
            &session,
            &e164,
            channel,
            signals(&state, peer, &headers),
            host,
        )
        .await;
    match sent {
        Ok(outcome) => code_after_send(&ctx, &outcome, None, phone_step),
        Err(e) => phone_step(ctx.refusal(&e)),
    }
}

/// The code step after a send, or the refusal on `refused` (the step the form came from).
fn code_after_send(
    ctx: &Ctx<'_>,
    outcome: &SendOutcome,
    notice: Option<String>,
    refused: impl FnOnce(String) -> Response,
) -> Response {
    let lang = ctx.lang;
    match outcome.status {
        SendStatus::Success | SendStatus::Retry => {
            let cooldown = ctx
                .resolved
                .as_ref()
                .map(|r| r.workflow.limits.resend_cooldown_secs)
                .filter(|c| *c > 0);
            ctx.render(
                StatusCode::OK,
                &Step::Code {
                    phone: &display(&outcome.phone.full_number),
                    notice,
                    error: None,
                    resends_left: Some(outcome.resends_left),
                    cooldown,
                },
            )
        }
        SendStatus::Blocked => refused(t(lang, "BLOCKED").into()),
        SendStatus::Undeliverable => refused(t(lang, "UNDELIVERABLE").into()),
    }
}

/// `POST /session/{token}/resend`: a new code to the session's number.
#[utoipa::path(
    post,
    operation_id = "hosted_page_resend",
    path = "/session/{token}/resend",
    tag = "hosted page",
    request_body(content = PageForm, content_type = "application/x-www-form-urlencoded"),
    params(("token" = String, Path, description = "The session URL's token")),
    responses(
        (status = 200, description = "The next step (code step, channel step) as HTML", content_type = "text/html", body = String),
        (status = 303, description = "Done: to the callback with `session_id` and `status`", headers(("Location" = String, description = "The callback"))),
        (status = 400, description = "The form could not be read", content_type = "text/html", body = String),
        (status = 403, description = "The CSRF token is missing or wrong: the phone step with a message", content_type = "text/html", body = String),
        (status = 404, description = "No live session has this token", content_type = "text/html", body = String),
        (status = 422, description = "A refusal (invalid number, wrong code with the attempts left, blocked, undeliverable), with its message", content_type = "text/html", body = String),
        (status = 429, description = "RATE_LIMITED, the per-IP limit (the JSON error), or a resend refused by the cooldown or the resend limit (the code step with its message)",
            content((crate::server::http::types::ErrorBody = "application/json"), (String = "text/html"))),
        (status = 503, description = "The state store is unavailable", content_type = "text/plain", body = String),
    )
)]
pub(super) async fn resend(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let (ctx, session, _) = match posted(&state, token_of(&uri), &headers, request).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let engine = &state.engine;
    let progress = match engine.session_progress(&session).await {
        Ok(Some(p)) => p,
        Ok(None) => return current_step(&ctx, None).await,
        Err(_) => return unavailable(),
    };
    let phone = display(&progress.phone_number);
    let code_step = |error: String, cooldown: Option<u64>| {
        ctx.render(
            StatusCode::TOO_MANY_REQUESTS,
            &Step::Code {
                phone: &phone,
                notice: None,
                error: Some(error),
                resends_left: None,
                cooldown,
            },
        )
    };
    let host = ctx
        .origin
        .split_once("://")
        .map(|(_, h)| h.split(':').next().unwrap_or(h).to_owned());
    match engine
        .session_send(
            &session,
            &progress.phone_number,
            None,
            signals(&state, peer, &headers),
            host,
        )
        .await
    {
        Ok(outcome) => code_after_send(&ctx, &outcome, Some(t(ctx.lang, "resent").into()), |e| {
            code_step(e, None)
        }),
        Err(e) => {
            let cooldown = (e.code() == "RESEND_COOLDOWN")
                .then(|| e.retry_after_secs())
                .flatten();
            code_step(ctx.refusal(&e), cooldown)
        }
    }
}

/// `POST /session/{token}/check`: the code the user typed.
#[utoipa::path(
    post,
    operation_id = "hosted_page_check",
    path = "/session/{token}/check",
    tag = "hosted page",
    request_body(content = PageForm, content_type = "application/x-www-form-urlencoded"),
    params(("token" = String, Path, description = "The session URL's token")),
    responses(
        (status = 200, description = "The next step (code step, channel step) as HTML", content_type = "text/html", body = String),
        (status = 303, description = "Done: to the callback with `session_id` and `status`", headers(("Location" = String, description = "The callback"))),
        (status = 400, description = "The form could not be read", content_type = "text/html", body = String),
        (status = 403, description = "The CSRF token is missing or wrong: the phone step with a message", content_type = "text/html", body = String),
        (status = 404, description = "No live session has this token", content_type = "text/html", body = String),
        (status = 422, description = "A refusal (invalid number, wrong code with the attempts left, blocked, undeliverable), with its message", content_type = "text/html", body = String),
        (status = 429, description = "RATE_LIMITED, the per-IP limit (the JSON error), or a resend refused by the cooldown or the resend limit (the code step with its message)",
            content((crate::server::http::types::ErrorBody = "application/json"), (String = "text/html"))),
        (status = 503, description = "The state store is unavailable", content_type = "text/plain", body = String),
    )
)]
pub(super) async fn check(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let (ctx, session, fields) = match posted(&state, token_of(&uri), &headers, request).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let code = field(&fields, "code").unwrap_or_default().trim().to_owned();
    let outcome = match state.engine.session_check(&session, &code).await {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return current_step(&ctx, None).await,
        Err(e) => {
            let error = ctx.refusal(&e);
            return code_error(&ctx, &session, error).await;
        }
    };
    state.metrics.record_check(&outcome);
    let status = match outcome.status {
        CheckStatus::Approved => SessionStatus::Approved,
        CheckStatus::InReview => SessionStatus::InReview,
        CheckStatus::Declined => SessionStatus::Declined,
        CheckStatus::ExpiredOrNotFound => SessionStatus::Expired,
        CheckStatus::Failed => {
            let left = tn(
                ctx.lang,
                "attempts_left",
                u64::from(outcome.attempts_left.unwrap_or(0)),
            );
            // A malformed entry costs an attempt like a wrong code; say what was wrong.
            let error = if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
                format!("{} {left}", t(ctx.lang, "INVALID_CODE"))
            } else {
                left
            };
            return code_error(&ctx, &session, error).await;
        }
    };
    finish(&ctx, &session, status)
}

async fn code_error(ctx: &Ctx<'_>, session: &Session, error: String) -> Response {
    let phone = match ctx.state.engine.session_progress(session).await {
        Ok(Some(p)) => display(&p.phone_number),
        _ => String::new(),
    };
    ctx.render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &Step::Code {
            phone: &phone,
            notice: None,
            error: Some(error),
            resends_left: None,
            cooldown: None,
        },
    )
}

/// `GET /session/{token}/validate?country=ES&phone_number=...`: the as-you-type check, with
/// the API's parser: `{"valid", "e164"?, "display"?}`.
#[utoipa::path(
    get,
    operation_id = "hosted_page_validate",
    path = "/session/{token}/validate",
    tag = "hosted page",
    params(
        ("token" = String, Path, description = "The session URL's token"),
        ("country" = Option<String>, Query, description = "ISO 3166-1 alpha-2 region of a national number"),
        ("phone_number" = Option<String>, Query, description = "The number as typed"),
    ),
    responses(
        (status = 200, description = "`{\"valid\": true, \"e164\", \"display\"}` or `{\"valid\": false}`", body = Object),
        (status = 404, description = "No live session has this token"),
        (status = 429, description = "RATE_LIMITED: the per-IP limit (JSON error)", body = crate::server::http::types::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn validate(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    request: Request,
) -> Response {
    let query = request
        .uri()
        .query()
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    let fields = form(&query);
    let live = matches!(
        state.engine.session_by_token(&token_of(&uri)).await,
        Ok(Some(_))
    );
    if !live {
        return with_page_headers(StatusCode::NOT_FOUND.into_response(), None);
    }
    let region = field(&fields, "country").filter(|r| crate::phone::calling_code(r).is_some());
    let parsed = crate::phone::parse(field(&fields, "phone_number").unwrap_or_default(), region);
    let body = match parsed {
        Ok(info) => serde_json::json!({
            "valid": true,
            "e164": info.e164,
            "display": display(&info.e164),
        }),
        Err(_) => serde_json::json!({ "valid": false }),
    };
    with_page_headers(axum::Json(body).into_response(), None)
}

/// The page's static files: its script and its style sheet.
#[utoipa::path(
    get,
    operation_id = "hosted_page_asset",
    path = "/hosted/static/{file}",
    tag = "hosted page",
    params(("file" = String, Path, description = "`hosted.js` or `hosted.css`")),
    responses(
        (status = 200, description = "The file", content((String = "text/javascript"), (String = "text/css"))),
        (status = 404, description = "No such file"),
        (status = 429, description = "RATE_LIMITED: the per-IP limit (JSON error)", body = crate::server::http::types::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn asset(uri: Uri) -> Response {
    let file = uri.path().rsplit('/').next().unwrap_or_default();
    let (kind, body) = match file {
        "hosted.js" => ("text/javascript; charset=utf-8", SCRIPT.to_owned()),
        "hosted.css" => ("text/css; charset=utf-8", STYLE.to_owned()),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    static_answer(kind, body)
}

/// `/hosted/static/brand/RRGGBB.css`: the accent colour as a CSS variable (a sheet, not an
/// inline style, so the CSP needs no `unsafe-inline`).
#[utoipa::path(
    get,
    operation_id = "hosted_page_brand_color",
    path = "/hosted/static/brand/{file}",
    tag = "hosted page",
    params(("file" = String, Path, description = "Six hex digits and `.css` (`1d4ed8.css`)")),
    responses(
        (status = 200, description = "`:root{--brand:#RRGGBB}`", content_type = "text/css", body = String),
        (status = 404, description = "Not a colour"),
        (status = 429, description = "RATE_LIMITED: the per-IP limit (JSON error)", body = crate::server::http::types::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn brand(uri: Uri) -> Response {
    let file = uri.path().rsplit('/').next().unwrap_or_default();
    let Some(hex) = file
        .strip_suffix(".css")
        .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    static_answer(
        "text/css; charset=utf-8",
        format!(":root{{--brand:#{hex};}}\n"),
    )
}

fn static_answer(kind: &'static str, body: String) -> Response {
    let mut response = ([(CONTENT_TYPE, kind)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let key = PageKey::new(&crate::config::Secret::default());
        let token = key.csrf("session-a");
        assert!(key.verify("session-a", &token));
        assert!(!key.verify("session-b", &token));
        assert!(!key.verify("session-a", ""));
        assert!(!key.verify("session-a", &token[..10]));
    }

    #[test]
    fn the_callback_gets_the_session_and_its_status() {
        assert_eq!(
            callback_with("https://a.example/done?x=1", "id", SessionStatus::InReview),
            "https://a.example/done?x=1&session_id=id&status=In+Review"
        );
        assert_eq!(
            callback_origin("https://a.example:8443/done?x=1").as_deref(),
            Some("https://a.example:8443")
        );
    }
}
