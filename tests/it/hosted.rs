//! Hosted verification, black-box over HTTP: workflows, webhook destinations, sessions and the
//! hosted page's forms (real sidecar, real HTTP, the console provider's codes; Redis where the
//! behaviour is about sharing).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::providers::console::ConsoleProvider;

use crate::http::{Sidecar, hook, received_events, sidecar, sidecar_with, wait_for_event};
use crate::redis_server::{shared_server, unique_prefix};

/// A Spanish mobile: the console stands in for its providers.
const ES_MOBILE: &str = "+34600600611";

/// A sidecar whose console provider the test can read codes from.
async fn console_sidecar(overrides: &str) -> (Sidecar, Arc<ConsoleProvider>) {
    let console = Arc::new(ConsoleProvider::new());
    let c = console.clone();
    (
        sidecar_with(overrides, move |b| b.provider(c)).await,
        console,
    )
}

/// A browser without redirects or cookies: what the page's forms see.
struct Browser {
    client: reqwest::Client,
    /// `http://host/session/TOKEN`
    base: String,
    csrf: String,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    csp: String,
    html: String,
}

impl Page {
    /// The text of the page's alert, if any.
    fn alert(&self) -> Option<&str> {
        let start = self.html.find("role=\"alert\"")?;
        let rest = &self.html[start..];
        Some(&rest[..rest.find("</div>")?])
    }
}

impl Browser {
    async fn open(session_url: &str) -> (Browser, Page) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let mut b = Browser {
            client,
            base: session_url.trim_end_matches('/').to_owned(),
            csrf: String::new(),
        };
        let page = b.get("/").await;
        b.csrf = csrf_of(&page.html);
        (b, page)
    }

    async fn read(response: reqwest::Response) -> Page {
        let header = |n: &str| {
            response
                .headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Page {
            status: response.status(),
            location: header("location"),
            csp: header("content-security-policy").unwrap_or_default(),
            html: String::new(),
        }
        .with_body(response.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> Page {
        Self::read(
            self.client
                .get(format!("{}{path}", self.base))
                .header("accept-language", "en-US")
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        form.extend_from_slice(fields);
        Self::read(
            self.client
                .post(format!("{}{path}", self.base))
                .form(&form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

impl Page {
    fn with_body(mut self, html: String) -> Self {
        self.html = html;
        self
    }
}

/// The page's CSRF token (empty when it has no form).
fn csrf_of(html: &str) -> String {
    html.find("name=\"csrf\" value=\"")
        .map(|at| html[at + 19..at + 19 + 64].to_owned())
        .unwrap_or_default()
}

async fn create_session(s: &Sidecar, body: Value) -> Value {
    let a = s.post("/v3/session/", body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    a.body
}

fn code_of(console: &ConsoleProvider, e164: &str) -> String {
    console
        .last_code(e164)
        .expect("the console sent a code")
        .expose()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_page_sends_a_code_checks_it_and_lands_on_the_callback_approved() {
    let receiver = hook().await;
    let (s, console) = console_sidecar(&format!(
        "[webhooks]\ndestinations = [{{ url = \"{}/hook\", secret = \"a-shared-secret-123\" }}]\n",
        receiver.uri()
    ))
    .await;
    let created = create_session(
        &s,
        json!({"vendor_data": "user-1", "callback": "https://shop.example.com/done?x=1",
               "metadata": {"order": 7}}),
    )
    .await;
    assert_eq!(created["status"], "Not Started");
    let url = created["session_url"].as_str().unwrap();
    let token = url.trim_end_matches('/').rsplit('/').next().unwrap();
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    wait_for_event(&receiver, "session.created").await;

    let (browser, page) = Browser::open(url).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.html
            .contains(r#"name="phone_number" type="tel" autocomplete="tel""#)
    );
    assert!(
        page.html.contains(r#"<option value="US" selected>"#),
        "region from en-US"
    );

    let sent = browser
        .post(
            "/send",
            &[("country", "ES"), ("phone_number", "600 600 611")],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.html);
    assert!(sent.html.contains(r#"autocomplete="one-time-code""#));
    assert!(sent.html.contains("+34 600 60 06 11"));
    let code = code_of(&console, ES_MOBILE);
    assert!(!sent.html.contains(&code), "no code is ever rendered");
    let progress = wait_for_event(&receiver, "session.in_progress").await;
    assert_eq!(progress["session_status"], "In Progress");
    assert_eq!(progress["metadata"]["order"], 7);

    let done = browser.post("/check", &[("code", &code)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let session_id = created["session_id"].as_str().unwrap();
    assert_eq!(
        done.location.as_deref(),
        Some(
            format!("https://shop.example.com/done?x=1&session_id={session_id}&status=Approved")
                .as_str()
        )
    );
    assert!(
        done.csp
            .contains("form-action 'self' https://shop.example.com")
    );
    let approved = wait_for_event(&receiver, "session.approved").await;
    assert_eq!(approved["session_id"], session_id);
    assert_eq!(approved["vendor_data"], "user-1");

    let decision = s.get(&format!("/v3/session/{session_id}/decision/")).await;
    assert_eq!(decision.status, StatusCode::OK, "{}", decision.text);
    assert_eq!(decision.body["status"], "Approved");
    assert_eq!(decision.body["phone"]["full_number"], ES_MOBILE);
    assert_eq!(decision.body["matches"], json!([]));
    // The page now shows the result.
    let again = browser.get("/").await;
    assert!(
        again.html.contains(r#"data-status="Approved""#),
        "{}",
        again.html
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_show_the_attempts_left_then_the_declined_result() {
    let receiver = hook().await;
    let (s, _console) = console_sidecar(&format!(
        "[webhooks]\ndestinations = [{{ url = \"{}/hook\", secret = \"a-shared-secret-123\", events = [\"session.declined\"] }}]\n",
        receiver.uri()
    ))
    .await;
    let created = create_session(&s, json!({"contact_details": {"phone": "+34600600612"}})).await;
    let (browser, page) = Browser::open(created["session_url"].as_str().unwrap()).await;
    assert!(
        page.html.contains("+34 600 60 06 12"),
        "the locked number is shown"
    );
    assert!(
        !page.html.contains(r#"id="phone_number""#),
        "and cannot be edited"
    );
    let sent = browser.post("/send", &[("phone_number", "+34999")]).await;
    assert_eq!(
        sent.status,
        StatusCode::OK,
        "the locked number is used: {}",
        sent.html
    );

    let wrong = browser.post("/check", &[("code", "000000")]).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong.alert().unwrap().contains("Attempts left: 1"),
        "{}",
        wrong.html
    );
    let declined = browser.post("/check", &[("code", "000001")]).await;
    assert_eq!(declined.status, StatusCode::OK);
    assert!(
        declined.html.contains(r#"data-status="Declined""#),
        "{}",
        declined.html
    );
    let event = wait_for_event(&receiver, "session.declined").await;
    assert_eq!(event["session_status"], "Declined");
    assert_eq!(
        received_events(&receiver).await.len(),
        1,
        "only the subscribed event"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_inside_the_workflows_cooldown_shows_the_wait_and_the_resends_left() {
    let (s, _console) = console_sidecar("").await;
    let wf = s
        .post(
            "/v3/workflows/",
            json!({"workflow_label": "slow resends", "settings": {"resend_cooldown_secs": 30, "brand": "Acme", "brand_color": "#0f766e", "locale": "es"}}),
        )
        .await;
    assert_eq!(wf.status, StatusCode::CREATED, "{}", wf.text);
    let created = create_session(&s, json!({"workflow_id": wf.body["workflow_id"]})).await;
    let (browser, page) = Browser::open(created["session_url"].as_str().unwrap()).await;
    assert!(
        page.html.contains(r#"<html lang="es" dir="ltr">"#),
        "the workflow's language"
    );
    assert!(page.html.contains("Acme"));
    assert!(page.html.contains("/hosted/static/brand/0f766e.css"));
    let sent = browser
        .post("/send", &[("country", "ES"), ("phone_number", "600600613")])
        .await;
    assert!(sent.html.contains(r#"data-cooldown="30""#), "{}", sent.html);
    assert!(
        sent.html.contains("Códigos nuevos restantes: 2"),
        "{}",
        sent.html
    );
    let refused = browser.post("/resend", &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let alert = refused.alert().expect("a message");
    assert!(alert.contains("Espera") && alert.contains(" s "), "{alert}");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_sessions_csrf_token_are_refused_and_nothing_is_sent() {
    let (s, console) = console_sidecar("").await;
    let a = create_session(&s, json!({})).await;
    let b = create_session(&s, json!({})).await;
    let (browser_a, _) = Browser::open(a["session_url"].as_str().unwrap()).await;
    let (mut browser_b, _) = Browser::open(b["session_url"].as_str().unwrap()).await;
    browser_b.csrf = browser_a.csrf.clone();
    let forged = browser_b
        .post("/send", &[("country", "ES"), ("phone_number", "600600614")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    browser_b.csrf.clear();
    let missing = browser_b
        .post("/send", &[("country", "ES"), ("phone_number", "600600614")])
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert_eq!(console.sent(), 0);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_under_a_strict_csp_and_an_unknown_token_is_not_found() {
    let (s, _) = console_sidecar("").await;
    let created = create_session(&s, json!({})).await;
    let (browser, page) = Browser::open(created["session_url"].as_str().unwrap()).await;
    assert!(page.csp.contains("default-src 'none'"));
    assert!(page.csp.contains("script-src 'self'"));
    assert!(!page.csp.contains("unsafe-inline"));
    assert!(!page.html.contains("<script>"), "no inline script");
    assert!(!page.html.contains("style="), "no inline style");
    let unknown = Browser::open(&format!("{}/session/{}/", s.base, "x".repeat(43))).await;
    assert_eq!(unknown.1.status, StatusCode::NOT_FOUND);
    let validate = browser
        .get("/validate?country=ES&phone_number=600%20600%20615")
        .await;
    let v: Value = serde_json::from_str(&validate.html).unwrap();
    assert_eq!(v["e164"], "+34600600615");
    let css = s.get("/hosted/static/brand/123abc.css").await;
    assert_eq!(css.text, ":root{--brand:#123abc;}\n");
    assert_eq!(
        s.get("/hosted/static/brand/red.css").await.status,
        StatusCode::NOT_FOUND
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_lists_the_other_users_a_number_was_approved_for() {
    let (s, console) = console_sidecar("[workflow.risk]\nduplicated = \"APPROVE\"\n").await;
    let approve = async |user: &str| {
        let created = create_session(&s, json!({"vendor_data": user})).await;
        let (browser, _) = Browser::open(created["session_url"].as_str().unwrap()).await;
        browser
            .post("/send", &[("country", "ES"), ("phone_number", "600600616")])
            .await;
        let code = code_of(&console, "+34600600616");
        let done = browser.post("/check", &[("code", &code)]).await;
        assert!(
            done.html.contains(r#"data-status="Approved""#),
            "{}",
            done.html
        );
        let id = created["session_id"].as_str().unwrap().to_owned();
        s.get(&format!("/v3/session/{id}/decision/")).await.body
    };
    let alice = approve("alice").await;
    assert_eq!(alice["matches"], json!([]));
    let bob = approve("bob").await;
    let matches = bob["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{bob}");
    assert_eq!(matches[0]["vendor_data"], "alice");
    assert_eq!(matches[0]["session_id"], alice["session_id"]);
    // Deleting the number forgets whom it was approved for.
    assert_eq!(
        s.delete("/v3/phone/numbers/%2B34600600616/").await.status,
        StatusCode::OK
    );
    let carol = approve("carol").await;
    assert_eq!(carol["matches"], json!([]), "{carol}");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_created_listed_changed_and_deleted_and_the_configured_one_is_read_only() {
    let s = sidecar("").await;
    let list = s.get("/v3/workflows/").await;
    assert_eq!(list.body["workflows"][0]["workflow_id"], "default");
    assert_eq!(list.body["workflows"][0]["source"], "config");
    let created = s
        .post(
            "/v3/workflows/",
            json!({"workflow_label": "signup", "settings": {"max_attempts": 5, "allowed_channels": ["SMS", "WHATSAPP", "SMS"], "risk": {"voip": "DECLINE"}}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["workflow_id"].as_str().unwrap().to_owned();
    let settings = &created.body["settings"];
    assert_eq!(settings["max_attempts"], 5);
    assert_eq!(
        settings["code_validity_secs"], 300,
        "the rest is the application's"
    );
    assert_eq!(settings["allowed_channels"], json!(["sms", "whatsapp"]));
    assert_eq!(settings["risk"]["voip"], "DECLINE");
    let patched = s
        .patch(
            &format!("/v3/workflows/{id}/"),
            json!({"settings": {"max_attempts": 3}}),
        )
        .await;
    assert_eq!(patched.body["settings"]["max_attempts"], 3);
    assert_eq!(patched.body["settings"]["risk"]["voip"], "DECLINE", "kept");
    assert_eq!(
        s.get("/v3/workflows/").await.body["workflows"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let bad = s
        .post(
            "/v3/workflows/",
            json!({"workflow_label": "x", "settings": {"max_attempts": 0}}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("max_attempts"), "{}", bad.text);
    let read_only = s.delete("/v3/workflows/default/").await;
    assert_eq!(read_only.status, StatusCode::CONFLICT);
    assert_eq!(read_only.code(), "CONFIG_READ_ONLY");
    assert_eq!(
        s.delete(&format!("/v3/workflows/{id}/")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.get(&format!("/v3/workflows/{id}/")).await.status,
        StatusCode::NOT_FOUND
    );
    let unknown = s.post("/v3/session/", json!({"workflow_id": id})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.message().contains("workflow_id"),
        "{}",
        unknown.text
    );
    let fractional = s
        .post(
            "/v3/workflows/",
            json!({"workflow_label": "y", "settings": {"max_attempts": 4.0}}),
        )
        .await;
    assert_eq!(
        fractional.body["settings"]["max_attempts"], 4,
        "4.0 is an integer"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflows_attempt_limit_applies_to_its_sessions_checks() {
    let (s, _console) = console_sidecar("").await;
    let wf = s
        .post(
            "/v3/workflows/",
            json!({"workflow_label": "patient", "settings": {"max_attempts": 3}}),
        )
        .await;
    let created = create_session(
        &s,
        json!({"workflow_id": wf.body["workflow_id"], "contact_details": {"phone": "+34600600617"}}),
    )
    .await;
    let (browser, _) = Browser::open(created["session_url"].as_str().unwrap()).await;
    browser.post("/send", &[]).await;
    let first = browser.post("/check", &[("code", "000000")]).await;
    assert!(
        first.alert().unwrap().contains("Attempts left: 2"),
        "{}",
        first.html
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_and_destinations_made_on_one_sidecar_are_used_by_another_through_redis() {
    let prefix = unique_prefix();
    let config = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        shared_server().url()
    );
    let receiver = hook().await;
    let (one, _) = console_sidecar(&config).await;
    let (two, console_two) = console_sidecar(&config).await;
    let wf = one
        .post(
            "/v3/workflows/",
            json!({"workflow_label": "shared", "settings": {"brand": "Shared"}}),
        )
        .await;
    let id = wf.body["workflow_id"].as_str().unwrap();
    let seen = two.get(&format!("/v3/workflows/{id}/")).await;
    assert_eq!(seen.body["settings"]["brand"], "Shared");
    let dest = one
        .post(
            "/v3/webhook/destinations/",
            json!({"url": format!("{}/hook", receiver.uri()), "subscribed_events": ["session.in_progress"]}),
        )
        .await;
    assert_eq!(dest.status, StatusCode::CREATED, "{}", dest.text);
    let secret = dest.body["secret_shared_key"].as_str().unwrap().to_owned();
    // A session made through one sidecar, its page served by the other.
    let created = create_session(&one, json!({"workflow_id": id})).await;
    let url = created["session_url"]
        .as_str()
        .unwrap()
        .replace(&one.base, &two.base);
    let (browser, page) = Browser::open(&url).await;
    assert!(page.html.contains("Shared"));
    browser
        .post("/send", &[("country", "ES"), ("phone_number", "600600618")])
        .await;
    assert!(console_two.last_code("+34600600618").is_some());
    let deadline = Instant::now() + Duration::from_secs(10);
    let delivery = loop {
        let requests = receiver.received_requests().await.unwrap_or_default();
        if let Some(r) = requests.into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "no delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let signature = delivery
        .headers
        .get("x-signature-v2")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(switchboard::server::webhooks::verify(
        &secret,
        &delivery.body,
        signature
    ));
    let listed = two.get("/v3/webhook/destinations/").await;
    assert!(!listed.text.contains(&secret), "the secret is shown once");
    let dest_id = dest.body["destination_id"].as_str().unwrap();
    assert_eq!(
        two.delete(&format!("/v3/webhook/destinations/{dest_id}/"))
            .await
            .status,
        StatusCode::OK
    );
    one.running.shutdown().await;
    two.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_destinations_are_listed_read_only_and_unknown_events_are_refused() {
    let s = sidecar(
        "[webhooks]\ndestinations = [{ url = \"http://127.0.0.1:9/hook\", secret = \"a-shared-secret-123\" }]\n",
    )
    .await;
    let listed = s.get("/v3/webhook/destinations/").await;
    assert_eq!(listed.body["destinations"][0]["destination_id"], "config-0");
    assert!(!listed.text.contains("a-shared-secret-123"));
    let refused = s.delete("/v3/webhook/destinations/config-0/").await;
    assert_eq!(refused.code(), "CONFIG_READ_ONLY");
    let bad = s
        .post(
            "/v3/webhook/destinations/",
            json!({"url": "https://example.com/h", "subscribed_events": ["session.nope"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("session.nope"), "{}", bad.text);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_outside_the_applications_allow_list_is_refused() {
    let s = sidecar("[workflow.hosted]\ncallback_urls = [\"https://shop.example.com/\"]\n").await;
    let refused = s
        .post(
            "/v3/session/",
            json!({"callback": "https://evil.example.com/"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.message().contains("callback"), "{}", refused.text);
    let ok = s
        .post(
            "/v3/session/",
            json!({"callback": "https://shop.example.com/ok"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ends_before_starting_is_announced_expired_once() {
    let receiver = hook().await;
    let clock = switchboard::clock::ManualClock::new(1_800_000_000_000);
    let c = clock.clone();
    let s = sidecar_with(
        &format!(
            "[store]\nexpiry_sweep_ms = 20\n[webhooks]\ndestinations = [{{ url = \"{}/hook\", secret = \"a-shared-secret-123\", events = [\"session.expired\"] }}]\n",
            receiver.uri()
        ),
        move |b| b.clock(Arc::new(c)),
    )
    .await;
    let created = create_session(&s, json!({})).await;
    let id = created["session_id"].as_str().unwrap();
    clock.advance_secs(1801);
    let event = wait_for_event(&receiver, "session.expired").await;
    assert_eq!(event["session_id"], id);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(received_events(&receiver).await.len(), 1, "announced once");
    let decision = s.get(&format!("/v3/session/{id}/decision/")).await;
    assert_eq!(decision.body["status"], "Expired");
    let gone = Browser::open(created["session_url"].as_str().unwrap()).await;
    assert_eq!(
        gone.1.status,
        StatusCode::NOT_FOUND,
        "the URL expires with it"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_managed_over_grpc_as_over_http() {
    use switchboard::server::grpc::pb;
    let s = sidecar("").await;
    let mut grpc = pb::switchboard_client::SwitchboardClient::connect(format!(
        "http://{}",
        s.running.grpc_addr
    ))
    .await
    .unwrap();
    let created = grpc
        .create_workflow(pb::CreateWorkflowRequest {
            workflow_label: "grpc".into(),
            settings_json: r#"{"max_resends": 1, "preferred_channel": "SMS"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.source, "api");
    let settings: Value = serde_json::from_str(&created.settings_json).unwrap();
    assert_eq!(settings["max_resends"], 1);
    assert_eq!(settings["preferred_channel"], "sms");
    // Visible over HTTP too.
    let over_http = s
        .get(&format!("/v3/workflows/{}/", created.workflow_id))
        .await;
    assert_eq!(over_http.body["workflow_label"], "grpc");
    let updated = grpc
        .update_workflow(pb::UpdateWorkflowRequest {
            workflow_id: created.workflow_id.clone(),
            workflow_label: Some("renamed".into()),
            settings_json: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.workflow_label, "renamed");
    let listed = grpc
        .list_workflows(pb::ListWorkflowsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.workflows.len(), 2);
    let bad = grpc
        .create_workflow(pb::CreateWorkflowRequest {
            workflow_label: "bad".into(),
            settings_json: r#"{"max_attempts": 0}"#.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let read_only = grpc
        .delete_workflow(pb::DeleteWorkflowRequest {
            workflow_id: "default".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(read_only.code(), tonic::Code::FailedPrecondition);
    grpc.delete_workflow(pb::DeleteWorkflowRequest {
        workflow_id: created.workflow_id,
    })
    .await
    .unwrap();
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_session_ends_with_its_verification_when_the_expiry_sweeper_ends_it() {
    let receiver = hook().await;
    let clock = switchboard::clock::ManualClock::new(1_800_000_000_000);
    let c = clock.clone();
    let console = Arc::new(ConsoleProvider::new());
    let p = console.clone();
    let s = sidecar_with(
        &format!(
            "[store]\nexpiry_sweep_ms = 20\n[webhooks]\ndestinations = [{{ url = \"{}/hook\", secret = \"a-shared-secret-123\", events = [\"session.abandoned\", \"session.expired\"] }}]\n",
            receiver.uri()
        ),
        move |b| b.clock(Arc::new(c)).provider(p),
    )
    .await;
    let created = create_session(&s, json!({"contact_details": {"phone": "+34600600619"}})).await;
    let (browser, _) = Browser::open(created["session_url"].as_str().unwrap()).await;
    let sent = browser.post("/send", &[]).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.html);
    clock.advance_secs(301);
    let event = wait_for_event(&receiver, "session.abandoned").await;
    assert_eq!(event["session_id"], created["session_id"]);
    assert_eq!(event["session_status"], "Abandoned");
    let id = created["session_id"].as_str().unwrap();
    let decision = s.get(&format!("/v3/session/{id}/decision/")).await;
    assert_eq!(decision.body["status"], "Abandoned", "{}", decision.text);
    // The session's own URL expiry later announces nothing more: it ended with its verification.
    clock.advance_secs(1800);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received_events(&receiver).await.len(), 1);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_checks_and_sends_nothing_more() {
    let (s, console) = console_sidecar("").await;
    let created = create_session(&s, json!({"contact_details": {"phone": "+34600600621"}})).await;
    let (browser, _) = Browser::open(created["session_url"].as_str().unwrap()).await;
    browser.post("/send", &[]).await;
    browser.post("/check", &[("code", "000000")]).await;
    browser.post("/check", &[("code", "000001")]).await;
    let sent = console.sent();
    let resend = browser.post("/resend", &[]).await;
    assert!(
        resend.html.contains(r#"data-status="Declined""#),
        "{}",
        resend.html
    );
    let code = code_of(&console, "+34600600621");
    let check = browser.post("/check", &[("code", &code)]).await;
    assert!(
        check.html.contains(r#"data-status="Declined""#),
        "{}",
        check.html
    );
    assert_eq!(console.sent(), sent, "nothing sent after the end");
    s.running.shutdown().await;
}
