//! The hosted page in a real browser: headless Chromium driven through chromedriver, against an
//! in-process sidecar on the embedded defaults whose console provider the test reads codes
//! from. Accessibility is checked with axe-core (installed by `scripts/test` under
//! `target/axe-core`) on every step in every language.
//!
//! Screenshots of every step (desktop and a 390-px phone) are written to
//! `$SWITCHBOARD_SCREENSHOTS` when it is set (`docs/hosted` refreshes the README's).

use std::sync::Arc;

use serde_json::{Value, json};
use switchboard::providers::console::ConsoleProvider;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::http::{Sidecar, sidecar_with};
use crate::webdriver::Browser;

const DESKTOP: (u32, u32) = (1280, 860);
const PHONE: (u32, u32) = (390, 844);
const LANGUAGES: [&str; 6] = ["en", "es", "pt", "fr", "de", "ar"];

async fn console_sidecar(overrides: &str) -> (Sidecar, Arc<ConsoleProvider>) {
    let console = Arc::new(ConsoleProvider::new());
    let c = console.clone();
    (
        sidecar_with(overrides, move |b| b.provider(c)).await,
        console,
    )
}

async fn session_url(s: &Sidecar, body: Value) -> String {
    let a = s.post("/v3/session/", body).await;
    assert_eq!(a.status.as_u16(), 201, "{}", a.text);
    a.body["session_url"].as_str().unwrap().to_owned()
}

fn code_of(console: &ConsoleProvider, e164: &str) -> String {
    console.last_code(e164).unwrap().expose().to_owned()
}

/// Enters a Spanish national number on the phone step and submits it.
async fn enter_number(browser: &Browser, national: &str) {
    let spain = browser.find("#country option[value='ES']").await;
    browser.click(&spain).await;
    let phone = browser.find("input[name='phone_number']").await;
    browser.type_into(&phone, national).await;
    let submit = browser.find("button[type='submit']").await;
    browser.click(&submit).await;
}

async fn enter_code(browser: &Browser, code: &str) {
    let input = browser.wait_for("input[name='code']").await;
    browser.type_into(&input, code).await;
    let submit = browser
        .find("form[action$='/check'] button[type='submit']")
        .await;
    browser.click(&submit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_user_enters_the_number_and_the_code_and_lands_on_the_callback_approved() {
    let shop = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/done"))
        .respond_with(ResponseTemplate::new(200).set_body_string("thanks"))
        .mount(&shop)
        .await;
    let (s, console) = console_sidecar("").await;
    let url = session_url(
        &s,
        json!({"vendor_data": "user-1", "callback": format!("{}/done", shop.uri())}),
    )
    .await;
    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    browser.goto(&url).await;
    browser.wait_for("body[data-step='phone']").await;
    enter_number(&browser, "600 600 640").await;
    browser.wait_for("body[data-step='code']").await;
    let code = code_of(&console, "+34600600640");
    enter_code(&browser, &code).await;
    let landed = browser.url().await;
    assert!(
        landed.starts_with(&format!("{}/done?session_id=", shop.uri())),
        "{landed}"
    );
    assert!(landed.ends_with("&status=Approved"), "{landed}");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_wrong_code_shows_the_attempts_left_and_a_second_the_declined_state() {
    let (s, _console) = console_sidecar("").await;
    let url = session_url(&s, json!({"contact_details": {"phone": "+34600600641"}})).await;
    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    browser.goto(&url).await;
    let submit = browser.wait_for("button[type='submit']").await;
    browser.click(&submit).await;
    enter_code(&browser, "000000").await;
    let alert = browser.wait_for("[role='alert']").await;
    assert!(
        browser.text(&alert).await.contains("Attempts left: 1"),
        "{}",
        browser.text(&alert).await
    );
    enter_code(&browser, "000001").await;
    let result = browser.wait_for("[data-status='Declined']").await;
    assert!(
        browser
            .text(&result)
            .await
            .contains("could not verify this phone number")
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_resend_button_waits_out_the_cooldown_and_says_how_long() {
    let (s, _console) = console_sidecar("").await;
    let wf = s
        .post(
            "/v3/workflows/",
            json!({"workflow_label": "cooldown", "settings": {"resend_cooldown_secs": 30}}),
        )
        .await;
    let url = session_url(
        &s,
        json!({"workflow_id": wf.body["workflow_id"], "contact_details": {"phone": "+34600600642"}}),
    )
    .await;
    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    browser.goto(&url).await;
    let submit = browser.wait_for("button[type='submit']").await;
    browser.click(&submit).await;
    let resend = browser.wait_for("form.resend button").await;
    assert!(
        !browser.enabled(&resend).await,
        "disabled while cooling down"
    );
    let note = browser.find("#cooldown").await;
    let text = browser.text(&note).await;
    assert!(
        text.starts_with("Please wait ") && text.ends_with(" s before asking for a new code."),
        "{text}"
    );
    let left = browser.find("form.resend p.hint:last-child").await;
    assert_eq!(browser.text(&left).await, "New codes left: 2");
    s.running.shutdown().await;
}

/// axe-core's source, installed by `scripts/test`.
fn axe_source() -> String {
    let path = std::env::var("AXE_CORE_JS").unwrap_or_else(|_| {
        format!(
            "{}/target/axe-core/node_modules/axe-core/axe.min.js",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is missing at {path} ({e}): run scripts/test, or \
             npm install --prefix target/axe-core axe-core"
        )
    })
}

/// The page's serious and critical axe violations (rule, impact, elements).
async fn serious_violations(browser: &Browser, axe: &str) -> Vec<Value> {
    browser
        .execute(&format!("{axe}\n;return typeof window.axe;"), json!([]))
        .await;
    let found = browser
        .execute_async(
            "var done = arguments[arguments.length - 1];
             window.axe.run(document, {resultTypes: ['violations']}).then(function (r) {
               done(r.violations.filter(function (v) {
                 return v.impact === 'serious' || v.impact === 'critical';
               }).map(function (v) {
                 return {id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.map(function (n) { return n.target.join(' '); })};
               }));
             }).catch(function (e) { done([{id: 'axe-error', help: String(e)}]); });",
            json!([]),
        )
        .await;
    found.as_array().cloned().unwrap_or_default()
}

/// Screenshots of the current step at both sizes, when screenshots are asked for.
async fn shoot(browser: &Browser, name: &str) {
    let Ok(dir) = std::env::var("SWITCHBOARD_SCREENSHOTS") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    for (kind, (w, h)) in [("desktop", DESKTOP), ("phone", PHONE)] {
        browser.resize(w, h).await;
        let png = browser.screenshot().await;
        std::fs::write(format!("{dir}/{name}-{kind}.png"), png).unwrap();
    }
    browser.resize(DESKTOP.0, DESKTOP.1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_in_every_language_has_no_serious_or_critical_accessibility_violation() {
    let axe = axe_source();
    let (s, console) = console_sidecar("").await;
    let wf = s
        .post(
            "/v3/workflows/",
            json!({"workflow_label": "choice", "settings": {
                "brand": "Acme Bank", "allowed_channels": ["SMS", "WHATSAPP"],
                "resend_cooldown_secs": 30}}),
        )
        .await;
    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    let mut failures = Vec::new();
    for (i, lang) in LANGUAGES.iter().enumerate() {
        let url = session_url(
            &s,
            json!({"workflow_id": wf.body["workflow_id"], "language": lang}),
        )
        .await;
        let number = format!("60060065{i}");
        let e164 = format!("+34{number}");
        browser.goto(&url).await;
        let mut check = async |step: &str| {
            browser.wait_for(&format!("html[lang='{lang}']")).await;
            let found = serious_violations(&browser, &axe).await;
            if !found.is_empty() {
                failures.push(format!("{lang} {step}: {}", Value::Array(found)));
            }
            if *lang == "en" || (*lang == "ar" && step == "phone") {
                shoot(&browser, &format!("{step}-{lang}")).await;
            }
        };
        browser.wait_for("body[data-step='phone']").await;
        check("phone").await;
        enter_number(&browser, &number).await;
        browser.wait_for("body[data-step='channel']").await;
        check("channel").await;
        let submit = browser.find("button[type='submit']").await;
        browser.click(&submit).await;
        browser.wait_for("body[data-step='code']").await;
        check("code").await;
        enter_code(&browser, "000000").await;
        browser.wait_for("[role='alert']").await;
        check("wrong-code").await;
        enter_code(&browser, &code_of(&console, &e164)).await;
        browser.wait_for("body[data-step='done']").await;
        check("done").await;
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The check can fail: the same page with its labels removed has critical violations.
    browser
        .goto(&session_url(&s, json!({"workflow_id": wf.body["workflow_id"]})).await)
        .await;
    browser.wait_for("body[data-step='phone']").await;
    browser
        .execute(
            "document.querySelectorAll('label').forEach(function (l) { l.remove(); });",
            json!([]),
        )
        .await;
    let broken = serious_violations(&browser, &axe).await;
    assert!(
        broken
            .iter()
            .any(|v| v["id"] == "label" || v["id"] == "select-name"),
        "{broken:?}"
    );
    s.running.shutdown().await;
}
