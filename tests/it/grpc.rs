//! The gRPC API end to end: a real tonic client against an in-process sidecar on
//! `127.0.0.1:0`. Codes come from the sandbox provider (approve range `+1202555010X`) or from a
//! console provider registered through the builder hook.

use std::sync::Arc;
use std::time::Duration;

use switchboard::Config;
use switchboard::providers::{
    Capabilities, Channel as ProviderChannel, ConsoleProvider, Delivery, DeliveryError,
    OutboundMessage, Provider,
};
use switchboard::server::auth::hash_key;
use switchboard::server::grpc::ERROR_DOMAIN;
use switchboard::server::grpc::pb::{self, switchboard_client::SwitchboardClient};
use switchboard::server::{self, Running};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const SANDBOX: &str = "+12025550101";
/// A Spanish mobile number: not in the sandbox, so resend limits apply.
const ES_MOBILE: &str = "+34600600600";
const API_KEY: &str = "test-key-0123456789abcdef";

/// Fast code hashing, both servers on ephemeral ports, plus `server` lines under `[server]`.
fn config(server: &str) -> Config {
    Config::from_toml(&format!(
        "[code]\nhashing = {{ scheme = \"hmac-sha256\" }}\n[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n{server}\n"
    ))
    .expect("test config is valid")
}

async fn start(server: &str) -> Running {
    server::start(config(server), |b| b)
        .await
        .expect("sidecar starts")
}

async fn channel(running: &Running) -> Channel {
    Channel::from_shared(format!("http://{}", running.grpc_addr))
        .expect("valid URI")
        .connect()
        .await
        .expect("gRPC client connects")
}

async fn client(running: &Running) -> SwitchboardClient<Channel> {
    SwitchboardClient::new(channel(running).await)
}

fn send_request(phone_number: &str) -> pb::SendRequest {
    pb::SendRequest {
        phone_number: phone_number.to_owned(),
        ..Default::default()
    }
}

fn check_request(phone_number: &str, code: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        phone_number: phone_number.to_owned(),
        code: code.to_owned(),
        ..Default::default()
    }
}

fn sandbox_code(running: &Running, number: &str) -> String {
    running
        .state
        .engine
        .sandbox()
        .expect("sandbox enabled")
        .last_code(number)
        .expect("the sandbox recorded a code")
        .expose()
        .to_owned()
}

/// A code of the same length that is surely not `code`.
fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| if c == '9' { '0' } else { (c as u8 + 1) as char })
        .collect()
}

fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().expect("ASCII key"));
    request
}

/// The stable code of an error status, checking that it sits in our `ErrorInfo` domain.
fn stable_code(status: &Status) -> String {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo detail in {status:?}"));
    assert_eq!(info.domain, ERROR_DOMAIN);
    info.reason
}

#[tokio::test]
async fn a_sent_code_checks_approved_and_the_verification_reads_approved() {
    let running = start("").await;
    let mut c = client(&running).await;

    let sent = c.send(send_request(SANDBOX)).await.unwrap().into_inner();
    assert_eq!(sent.status(), pb::SendStatus::Success);
    assert_eq!(sent.status_text, "Success");
    assert_eq!(sent.channel.as_deref(), Some("sms"));
    assert!(!sent.request_id.is_empty());
    assert!(sent.expires_at.is_some(), "a pending verification expires");
    let delivered = sent.delivered_by.expect("delivered_by");
    assert_eq!(delivered.provider, "sandbox");
    assert!(!delivered.provider_message_id.is_empty());
    assert_eq!(sent.phone.expect("phone").full_number, SANDBOX);

    let code = sandbox_code(&running, SANDBOX);
    let checked = c
        .check(check_request(SANDBOX, &code))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.status(), pb::CheckStatus::Approved);
    assert_eq!(checked.status_text, "Approved");
    assert_eq!(checked.reason, None);
    let phone = checked.phone.expect("phone");
    assert_eq!(phone.status, "Approved");
    assert_eq!(phone.verification_method.as_deref(), Some("sms"));
    assert!(phone.verified_at.is_some());

    let verification = c
        .get_verification(pb::GetVerificationRequest {
            phone_number: SANDBOX.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verification.status(), pb::VerificationStatus::Approved);
    assert_eq!(verification.status_text, "Approved");
    assert_eq!(verification.phone.expect("phone").verification_attempts, 1);

    // The same code is approved once only.
    let again = c
        .check(check_request(SANDBOX, &code))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(again.status(), pb::CheckStatus::Approved);

    let metrics = running.state.metrics.render();
    assert!(
        metrics.contains(r#"switchboard_sends_total{status="Success"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"switchboard_checks_total{status="Approved"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"api="grpc",method="check""#),
        "{metrics}"
    );
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn a_wrong_code_twice_declines_with_attempts_exceeded() {
    let running = start("").await;
    let mut c = client(&running).await;
    c.send(send_request(SANDBOX)).await.unwrap();
    let bad = wrong(&sandbox_code(&running, SANDBOX));

    let first = c
        .check(check_request(SANDBOX, &bad))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.status(), pb::CheckStatus::Failed);
    assert_eq!(first.status_text, "Failed");
    assert_eq!(first.attempts_left, Some(1));

    let second = c
        .check(check_request(SANDBOX, &bad))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.status(), pb::CheckStatus::Declined);
    assert_eq!(second.status_text, "Declined");
    assert_eq!(
        second.reason.as_deref(),
        Some("VERIFICATION_CODE_ATTEMPTS_EXCEEDED")
    );
    let phone = second.phone.expect("phone");
    assert_eq!(phone.status, "Declined");
    assert!(
        phone
            .warnings
            .iter()
            .any(|w| w.risk == "VERIFICATION_CODE_ATTEMPTS_EXCEEDED" && w.log_type == "error"),
        "{:?}",
        phone.warnings
    );

    // Declined is terminal: the right code no longer approves.
    let right = sandbox_code(&running, SANDBOX);
    let late = c
        .check(check_request(SANDBOX, &right))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(late.status(), pb::CheckStatus::Declined);
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn checking_a_number_with_nothing_pending_is_expired_or_not_found() {
    let running = start("").await;
    let mut c = client(&running).await;
    let checked = c
        .check(check_request(SANDBOX, "123456"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.status(), pb::CheckStatus::ExpiredOrNotFound);
    assert_eq!(checked.status_text, "Expired or Not Found");
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn an_invalid_number_is_invalid_argument_with_its_stable_code() {
    let running = start("").await;
    let mut c = client(&running).await;
    for call in ["send", "check", "lookup"] {
        let err = match call {
            "send" => c.send(send_request("12345")).await.unwrap_err(),
            "check" => c
                .check(check_request("not a number", "123456"))
                .await
                .unwrap_err(),
            _ => c
                .lookup(pb::LookupRequest {
                    phone_number: "+1 000".to_owned(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        };
        assert_eq!(err.code(), Code::InvalidArgument, "{call}: {err:?}");
        assert_eq!(stable_code(&err), "INVALID_PHONE_NUMBER", "{call}");
        assert!(!err.message().is_empty(), "{call}: a message for humans");
        assert!(err.get_details_retry_info().is_none(), "{call}");
    }
    let metrics = running.state.metrics.render();
    assert!(
        metrics.contains(r#"switchboard_sends_total{status="INVALID_PHONE_NUMBER"} 1"#),
        "{metrics}"
    );
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn out_of_range_request_fields_are_invalid_requests() {
    let running = start("").await;
    let mut c = client(&running).await;
    let unknown_channel = pb::SendRequest {
        channel: 42,
        ..send_request(SANDBOX)
    };
    let err = c.send(unknown_channel).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(stable_code(&err), "INVALID_REQUEST");
    assert!(err.message().contains("channel"), "{}", err.message());

    let huge_code = pb::SendRequest {
        options: Some(pb::SendOptions {
            code_size: Some(1_000),
            ..Default::default()
        }),
        ..send_request(SANDBOX)
    };
    let err = c.send(huge_code).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(stable_code(&err), "INVALID_REQUEST");
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn a_pinned_channel_carries_the_code() {
    let running = start("").await;
    let mut c = client(&running).await;
    let sent = c
        .send(pb::SendRequest {
            channel: pb::Channel::Whatsapp.into(),
            ..send_request(SANDBOX)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.status(), pb::SendStatus::Success);
    assert_eq!(sent.channel.as_deref(), Some("whatsapp"));
    assert!(sent.attempts.iter().all(|a| a.channel == "whatsapp"));
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn api_keys_are_required_when_configured() {
    let running = start(&format!(
        "api_keys = [{{ app = \"default\", sha256 = \"{}\" }}]",
        hash_key(API_KEY)
    ))
    .await;
    let mut c = client(&running).await;

    let missing = c.send(send_request(SANDBOX)).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(stable_code(&missing), "UNAUTHENTICATED");

    let wrong_key = c
        .send(with_key(send_request(SANDBOX), "not-the-key-0123456789"))
        .await
        .unwrap_err();
    assert_eq!(wrong_key.code(), Code::Unauthenticated);
    assert!(
        running
            .state
            .engine
            .sandbox()
            .unwrap()
            .last_code(SANDBOX)
            .is_none(),
        "nothing is sent without a valid key"
    );

    let sent = c
        .send(with_key(send_request(SANDBOX), API_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.status(), pb::SendStatus::Success);
    let code = sandbox_code(&running, SANDBOX);
    let checked = c
        .check(with_key(check_request(SANDBOX, &code), API_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.status(), pb::CheckStatus::Approved);
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn over_the_rate_limit_is_resource_exhausted_with_retry_info() {
    let running = start("rate_per_key = 1\nburst_per_key = 1").await;
    let mut c = client(&running).await;
    let lookup = || pb::LookupRequest {
        phone_number: ES_MOBILE.to_owned(),
        ..Default::default()
    };
    c.lookup(lookup())
        .await
        .expect("the first call is within the burst");

    let err = c.lookup(lookup()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(stable_code(&err), "RATE_LIMITED");
    let retry = err.get_details_retry_info().expect("RetryInfo");
    let delay = retry.retry_delay.expect("a retry delay");
    assert!(
        delay >= Duration::from_secs(1) && delay <= Duration::from_secs(2),
        "{delay:?}"
    );
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn the_per_ip_rate_limit_applies_to_the_peer_address() {
    // The key limit is generous; only the peer's IP can trip this one.
    let running = start("rate_per_ip = 1\nburst_per_ip = 1").await;
    let mut c = client(&running).await;
    c.list_blocklist(pb::ListBlocklistRequest {})
        .await
        .expect("the first call is within the burst");
    let err = c
        .list_blocklist(pb::ListBlocklistRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(stable_code(&err), "RATE_LIMITED");
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn past_the_resend_budget_is_resource_exhausted_and_the_last_code_still_approves() {
    let console = Arc::new(ConsoleProvider::new());
    let running = server::start(config(""), |b| b.provider(console.clone()))
        .await
        .expect("sidecar starts");
    let mut c = client(&running).await;

    let first = c.send(send_request(ES_MOBILE)).await.unwrap().into_inner();
    assert_eq!(first.status(), pb::SendStatus::Success);
    assert_eq!(first.delivered_by.expect("delivered").provider, "console");
    let mut left = first.resends_left;
    assert!(left > 0, "the default budget allows resends");
    while left > 0 {
        let resent = c.send(send_request(ES_MOBILE)).await.unwrap().into_inner();
        assert_eq!(resent.status(), pb::SendStatus::Retry);
        assert_eq!(resent.status_text, "Retry");
        assert!(resent.resends_left < left, "the budget goes down");
        left = resent.resends_left;
    }

    let err = c.send(send_request(ES_MOBILE)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(stable_code(&err), "RESEND_LIMIT_EXCEEDED");
    let delay = err
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo with a delay");
    assert!(delay > Duration::ZERO);

    let code = console
        .last_code(ES_MOBILE)
        .expect("console recorded the code");
    let checked = c
        .check(check_request(ES_MOBILE, code.expose()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.status(), pb::CheckStatus::Approved);
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn a_blocklisted_number_is_blocked_until_removed() {
    let running = start("").await;
    let mut c = client(&running).await;
    let number = "+12025550102";
    let add = || pb::AddToBlocklistRequest {
        phone_number: number.to_owned(),
    };

    assert!(c.add_to_blocklist(add()).await.unwrap().into_inner().added);
    assert!(
        !c.add_to_blocklist(add()).await.unwrap().into_inner().added,
        "adding twice changes nothing"
    );
    let listed = c
        .list_blocklist(pb::ListBlocklistRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.phone_numbers, vec![number.to_owned()]);

    let blocked = c.send(send_request(number)).await.unwrap().into_inner();
    assert_eq!(blocked.status(), pb::SendStatus::Blocked);
    assert_eq!(blocked.status_text, "Blocked");
    assert_eq!(blocked.reason.as_deref(), Some("PHONE_NUMBER_IN_BLOCKLIST"));
    assert!(blocked.delivered_by.is_none());
    assert!(
        running
            .state
            .engine
            .sandbox()
            .unwrap()
            .last_code(number)
            .is_none()
    );

    let lookup = c
        .lookup(pb::LookupRequest {
            phone_number: number.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        lookup
            .phone
            .expect("phone")
            .warnings
            .iter()
            .any(|w| w.risk == "PHONE_NUMBER_IN_BLOCKLIST")
    );

    let removed = c
        .remove_from_blocklist(pb::RemoveFromBlocklistRequest {
            phone_number: number.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(removed.removed);
    let listed = c
        .list_blocklist(pb::ListBlocklistRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.phone_numbers.is_empty());
    let sent = c.send(send_request(number)).await.unwrap().into_inner();
    assert_eq!(sent.status(), pb::SendStatus::Success);
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn lookup_batch_returns_results_in_order_and_refuses_more_than_1000_numbers() {
    let running = start("").await;
    let mut c = client(&running).await;
    let results = c
        .lookup_batch(pb::LookupBatchRequest {
            phone_numbers: vec![
                "+14155552671".to_owned(),
                "garbage".to_owned(),
                "600 600 600".to_owned(),
            ],
            region: Some("ES".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let results: Vec<_> = results
        .into_iter()
        .map(|r| r.result.expect("result"))
        .collect();
    assert_eq!(results.len(), 3);
    match &results[0] {
        pb::lookup_result::Result::Phone(p) => assert_eq!(p.full_number, "+14155552671"),
        other => panic!("{other:?}"),
    }
    match &results[1] {
        pb::lookup_result::Result::Error(e) => assert_eq!(e.code, "INVALID_PHONE_NUMBER"),
        other => panic!("{other:?}"),
    }
    match &results[2] {
        pb::lookup_result::Result::Phone(p) => assert_eq!(p.full_number, ES_MOBILE),
        other => panic!("{other:?}"),
    }

    let err = c
        .lookup_batch(pb::LookupBatchRequest {
            phone_numbers: vec![ES_MOBILE.to_owned(); 1001],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(stable_code(&err), "BATCH_TOO_LARGE");
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn lookup_returns_the_report_without_sending() {
    let running = start("").await;
    let mut c = client(&running).await;
    let report = c
        .lookup(pb::LookupRequest {
            phone_number: "600 600 600".to_owned(),
            region: Some("ES".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .phone
        .expect("phone");
    assert_eq!(report.status, "Not Finished");
    assert_eq!(report.full_number, ES_MOBILE);
    assert_eq!(report.phone_number_prefix, "+34");
    assert_eq!(report.phone_number, "600600600");
    assert_eq!(report.country_code.as_deref(), Some("ES"));
    assert_eq!(report.country_name.as_deref(), Some("Spain"));
    let carrier = report.carrier.expect("carrier");
    assert_eq!(carrier.r#type, "mobile");
    assert!(
        carrier.name.is_some(),
        "a known mobile range names its carrier"
    );
    assert!(!report.is_disposable);
    assert!(!report.is_virtual);
    assert_eq!(report.verification_method, None);
    assert_eq!(report.verification_attempts, 0);
    assert_eq!(report.verified_at, None);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let verification = c
        .get_verification(pb::GetVerificationRequest {
            phone_number: ES_MOBILE.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verification.status(), pb::VerificationStatus::NotFinished);
    assert_eq!(verification.status_text, "Not Finished");
    drop(c);
    running.shutdown().await;
}

#[tokio::test]
async fn health_reports_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let running = start("").await;
    let mut health = HealthClient::new(channel(&running).await);
    for service in ["", "switchboard.v1.Switchboard"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    drop(health);
    running.shutdown().await;
}

#[tokio::test]
async fn reflection_lists_and_describes_the_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    async fn ask(
        client: &mut ServerReflectionClient<Channel>,
        request: MessageRequest,
    ) -> ServerReflectionResponse {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        };
        let mut answers = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        answers.message().await.unwrap().expect("an answer")
    }

    let running = start("").await;
    let mut reflection = ServerReflectionClient::new(channel(&running).await);

    let listed = ask(&mut reflection, MessageRequest::ListServices(String::new())).await;
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("not a service list: {listed:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "switchboard.v1.Switchboard"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );

    let described = ask(
        &mut reflection,
        MessageRequest::FileContainingSymbol("switchboard.v1.Switchboard".to_owned()),
    )
    .await;
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("not a file descriptor: {described:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    drop(reflection);
    running.shutdown().await;
}

/// Stands in for the console provider and takes its time: a request in flight at shutdown.
struct SlowConsole;

impl Provider for SlowConsole {
    fn name(&self) -> &str {
        "console"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::channels(&ProviderChannel::ALL)
    }

    async fn send(&self, _message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(Delivery {
            provider_message_id: "slow-1".to_owned(),
        })
    }
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    let running = server::start(config(""), |b| b.provider(Arc::new(SlowConsole)))
        .await
        .expect("sidecar starts");
    let mut c = client(&running).await;
    let in_flight = tokio::spawn(async move { c.send(send_request(ES_MOBILE)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.shutdown().await;
    let sent = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered")
        .into_inner();
    assert_eq!(sent.status(), pb::SendStatus::Success);
    assert_eq!(
        sent.delivered_by.expect("delivered").provider_message_id,
        "slow-1"
    );
}

#[tokio::test]
async fn shutdown_stops_the_grpc_server() {
    let running = start("").await;
    let addr = running.grpc_addr;
    let mut c = client(&running).await;
    c.lookup(pb::LookupRequest {
        phone_number: SANDBOX.to_owned(),
        ..Default::default()
    })
    .await
    .unwrap();
    drop(c);
    tokio::time::timeout(Duration::from_secs(5), running.shutdown())
        .await
        .expect("shutdown drains promptly");
    assert!(
        SwitchboardClient::connect(format!("http://{addr}"))
            .await
            .is_err(),
        "the listener is closed"
    );
}
