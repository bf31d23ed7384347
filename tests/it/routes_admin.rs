//! The route ledger seen from outside: the send answer's `routing`, `GET /v3/routes/stats/`,
//! the route gauges of `/metrics`, gRPC `GetRouteStats` and `switchboard routes stats`.

use reqwest::StatusCode;
use switchboard::routing::RouteTable;
use switchboard::server::grpc::pb::{self, switchboard_client::SwitchboardClient};

use crate::http::sidecar_with;
use crate::support::{ES_MOBILE, FRAUD_OFF, Providers, ROUTES};

/// A sidecar over the test route table and scripted providers.
async fn sidecar(providers: &Providers) -> crate::http::Sidecar {
    let (wa, a, b, v) = (
        providers.wa.clone(),
        providers.sms_a.clone(),
        providers.sms_b.clone(),
        providers.voice.clone(),
    );
    sidecar_with(
        &format!("{FRAUD_OFF}[providers]\nstand_in = \"\"\n"),
        move |builder| {
            builder
                .routes(RouteTable::from_toml(ROUTES).unwrap())
                .provider(wa)
                .provider(a)
                .provider(b)
                .provider(v)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_served_over_http_and_as_metrics_after_a_send_and_its_approval() {
    let p = Providers::delivering();
    let s = sidecar(&p).await;
    let sent = s.send(ES_MOBILE).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    let why = &sent.body["routing"];
    assert_eq!(why["route"], "whatsapp:wa", "{why}");
    assert_eq!(why["strategy"], "static");
    assert_eq!(why["evidence"], 0);
    let checked = s.check(ES_MOBILE, &p.wa.last_code()).await;
    assert_eq!(checked.body["status"], "Approved", "{}", checked.text);

    let stats = s.get("/v3/routes/stats/?country=ES").await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
    assert_eq!(stats.body["strategy"], "static");
    assert_eq!(stats.body["currency"], "USD");
    let routes = stats.body["routes"].as_array().unwrap();
    let wa = routes
        .iter()
        .find(|r| r["country"] == "ES" && r["provider"] == "wa")
        .unwrap_or_else(|| panic!("no ES whatsapp row in {routes:?}"));
    assert_eq!((&wa["accepted"], &wa["approvals"]), (&1.into(), &1.into()));
    assert_eq!(wa["conversion"], 1.0);
    assert_eq!(wa["breaker"], "closed");

    let bad = s.get("/v3/routes/stats/?country=Spain").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);

    let metrics = s.get("/metrics").await.text;
    assert!(
        metrics.contains(
            "switchboard_route_conversion{app=\"default\",country=\"ES\",channel=\"whatsapp\",provider=\"wa\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("switchboard_route_breaker_open{"));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sends_say_why_and_get_route_stats_lists_the_ledger() {
    let p = Providers::delivering();
    let s = sidecar(&p).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = SwitchboardClient::new(channel);
    let sent = c
        .send(pb::SendRequest {
            phone_number: ES_MOBILE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let why = sent.routing.unwrap();
    assert_eq!(
        (why.route.as_str(), why.strategy.as_str()),
        ("whatsapp:wa", "static")
    );
    let stats = c
        .get_route_stats(pb::GetRouteStatsRequest {
            countries: vec!["ES".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let wa = stats
        .routes
        .iter()
        .find(|r| r.country == "ES" && r.provider == "wa")
        .unwrap();
    assert_eq!(wa.accepted, 1);
    let bad = c
        .get_route_stats(pb::GetRouteStatsRequest {
            countries: vec!["Spain".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    s.running.shutdown().await;
}
