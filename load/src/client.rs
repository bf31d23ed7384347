//! The calls the load makes, over the sidecar's gRPC API (primary) — `Send`, `Check`, `Lookup`
//! with the `x-api-key` metadata — or its HTTP/JSON API (`POST /v3/phone/send/`, `check/`,
//! `lookup/` with the `x-api-key` header), reduced to what the workload needs to judge each
//! answer.

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

use crate::ledger::Ledger;

pub mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("switchboard.v1");
}

use pb::switchboard_client::SwitchboardClient;

/// A send's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendStatus {
    Success,
    Retry,
    Undeliverable,
    Blocked,
    Other(i32),
}

#[derive(Clone, Debug)]
pub struct SendAnswer {
    pub status: SendStatus,
    pub reason: Option<String>,
    pub channel: Option<String>,
    /// Delivery attempts the engine made (more than one: a fallback happened).
    pub attempts: usize,
    /// The verification the send opened or joined.
    pub verification_id: Option<String>,
}

/// A check's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    Approved,
    Declined,
    InReview,
    Failed,
    NotFound,
    Other(i32),
}

#[derive(Clone, Debug)]
pub struct CheckAnswer {
    pub status: CheckStatus,
    pub reason: Option<String>,
    pub attempts_left: Option<u32>,
    /// The verification the code was checked against.
    pub verification_id: Option<String>,
}

/// A call that failed: `CODE/REASON` (`ResourceExhausted/RESEND_LIMIT_EXCEEDED`), the gRPC
/// status code with the stable machine code of its `google.rpc.ErrorInfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError(pub String);

impl CallError {
    pub fn reason(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, r)| r)
    }
}

fn call_error(status: &tonic::Status) -> CallError {
    let reason = status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default();
    CallError(format!("{:?}/{reason}", status.code()))
}

/// Opens `connections` HTTP/2 connections to `addr`.
pub async fn connect(addr: SocketAddr, connections: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let ch = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .with_context(|| format!("connect to the gRPC API at {addr}"))?;
        out.push(ch);
    }
    Ok(out)
}

/// A client of the sidecar for one application (its API key), over either API; with a
/// [`Ledger`], every answer is written to it as it arrives.
#[derive(Clone)]
pub struct Client {
    api: Api,
    ledger: Option<Arc<Ledger>>,
}

#[derive(Clone)]
enum Api {
    Grpc(GrpcClient),
    Http(HttpClient),
}

impl Client {
    pub fn grpc(channel: Channel, api_key: &str) -> anyhow::Result<Self> {
        Ok(Client {
            api: Api::Grpc(GrpcClient {
                inner: SwitchboardClient::new(channel),
                key: MetadataValue::try_from(api_key).context("API key")?,
            }),
            ledger: None,
        })
    }

    pub fn http(client: reqwest::Client, addr: SocketAddr, api_key: &str) -> Self {
        Client {
            api: Api::Http(HttpClient {
                client,
                base: format!("http://{addr}"),
                key: api_key.to_owned(),
            }),
            ledger: None,
        }
    }

    /// This client, writing what it is told to `ledger`.
    pub fn with_ledger(mut self, ledger: Arc<Ledger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    pub async fn send(&mut self, number: &str) -> Result<SendAnswer, CallError> {
        let r = match &mut self.api {
            Api::Grpc(c) => c.send(number).await,
            Api::Http(c) => c.send(number).await,
        };
        if let Some(l) = &self.ledger {
            l.call(r.as_ref().err());
            if let Ok(a) = &r
                && matches!(a.status, SendStatus::Success | SendStatus::Retry)
            {
                l.sent(number, a.verification_id.as_deref());
            }
        }
        r
    }

    pub async fn check(&mut self, number: &str, code: &str) -> Result<CheckAnswer, CallError> {
        let r = match &mut self.api {
            Api::Grpc(c) => c.check(number, code).await,
            Api::Http(c) => c.check(number, code).await,
        };
        if let Some(l) = &self.ledger {
            l.call(r.as_ref().err());
            if let Ok(a) = &r
                && a.status == CheckStatus::Approved
            {
                l.approved(number, a.verification_id.as_deref());
            }
        }
        r
    }

    pub async fn lookup(&mut self, number: &str) -> Result<(), CallError> {
        let r = match &mut self.api {
            Api::Grpc(c) => c.lookup(number).await,
            Api::Http(c) => c.lookup(number).await,
        };
        if let Some(l) = &self.ledger {
            l.call(r.as_ref().err());
        }
        r
    }

    /// The status of a verification by its id (`Approved`, `Not Finished`, ...); `None` when
    /// the sidecar does not know it.
    pub async fn verification_status(&mut self, id: &str) -> Result<Option<String>, CallError> {
        match &mut self.api {
            Api::Grpc(c) => c.verification_status(id).await,
            Api::Http(c) => c.verification_status(id).await,
        }
    }
}

/// The HTTP/JSON API.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl HttpClient {
    async fn post(&self, path: &str, body: serde_json::Value) -> Result<Value, CallError> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .json(&body)
            .send()
            .await
            .map_err(|e| CallError(format!("HTTP/transport: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        let value: Value = resp
            .json()
            .await
            .map_err(|_| CallError(format!("HTTP{status}/unreadable_body")))?;
        if status != 200 {
            let code = value
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(CallError(format!("HTTP{status}/{code}")));
        }
        Ok(value)
    }

    async fn send(&mut self, number: &str) -> Result<SendAnswer, CallError> {
        let v = self
            .post("/v3/phone/send/", json!({ "phone_number": number }))
            .await?;
        let s = v["status"].as_str().unwrap_or("");
        Ok(SendAnswer {
            status: match s {
                "Success" => SendStatus::Success,
                "Retry" => SendStatus::Retry,
                "Undeliverable" => SendStatus::Undeliverable,
                "Blocked" => SendStatus::Blocked,
                _ => SendStatus::Other(-1),
            },
            reason: v["reason"].as_str().map(str::to_owned),
            channel: v["channel"].as_str().map(str::to_owned),
            attempts: v["attempts"].as_array().map_or(0, Vec::len),
            verification_id: v["verification_id"].as_str().map(str::to_owned),
        })
    }

    async fn check(&mut self, number: &str, code: &str) -> Result<CheckAnswer, CallError> {
        let v = self
            .post(
                "/v3/phone/check/",
                json!({ "phone_number": number, "code": code }),
            )
            .await?;
        Ok(CheckAnswer {
            status: match v["status"].as_str().unwrap_or("") {
                "Approved" => CheckStatus::Approved,
                "Declined" => CheckStatus::Declined,
                "In Review" => CheckStatus::InReview,
                "Failed" => CheckStatus::Failed,
                "Expired or Not Found" => CheckStatus::NotFound,
                _ => CheckStatus::Other(-1),
            },
            reason: v["reason"].as_str().map(str::to_owned),
            attempts_left: v["attempts_left"].as_u64().map(|n| n as u32),
            verification_id: v["verification_id"].as_str().map(str::to_owned),
        })
    }

    async fn lookup(&mut self, number: &str) -> Result<(), CallError> {
        self.post("/v3/phone/lookup/", json!({ "phone_number": number }))
            .await?;
        Ok(())
    }

    async fn verification_status(&mut self, id: &str) -> Result<Option<String>, CallError> {
        let resp = self
            .client
            .get(format!("{}/v3/phone/verifications/{id}/", self.base))
            .header("x-api-key", &self.key)
            .send()
            .await
            .map_err(|e| CallError(format!("HTTP/transport: {}", e.without_url())))?;
        match resp.status().as_u16() {
            404 => Ok(None),
            200 => {
                let v: Value = resp
                    .json()
                    .await
                    .map_err(|_| CallError("HTTP200/unreadable_body".into()))?;
                Ok(v["status"].as_str().map(str::to_owned))
            }
            status => Err(CallError(format!("HTTP{status}/"))),
        }
    }
}

/// The gRPC API.
#[derive(Clone)]
pub struct GrpcClient {
    inner: SwitchboardClient<Channel>,
    key: AsciiMetadataValue,
}

impl GrpcClient {
    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("x-api-key", self.key.clone());
        r
    }

    pub async fn send(&mut self, number: &str) -> Result<SendAnswer, CallError> {
        let req = self.request(pb::SendRequest {
            phone_number: number.to_owned(),
            ..Default::default()
        });
        let resp = self
            .inner
            .send(req)
            .await
            .map_err(|s| call_error(&s))?
            .into_inner();
        let status = match pb::SendStatus::try_from(resp.status) {
            Ok(pb::SendStatus::Success) => SendStatus::Success,
            Ok(pb::SendStatus::Retry) => SendStatus::Retry,
            Ok(pb::SendStatus::Undeliverable) => SendStatus::Undeliverable,
            Ok(pb::SendStatus::Blocked) => SendStatus::Blocked,
            _ => SendStatus::Other(resp.status),
        };
        Ok(SendAnswer {
            status,
            reason: resp.reason,
            channel: resp.channel,
            attempts: resp.attempts.len(),
            verification_id: resp.verification_id,
        })
    }

    pub async fn check(&mut self, number: &str, code: &str) -> Result<CheckAnswer, CallError> {
        let req = self.request(pb::CheckRequest {
            phone_number: number.to_owned(),
            code: code.to_owned(),
            ..Default::default()
        });
        let resp = self
            .inner
            .check(req)
            .await
            .map_err(|s| call_error(&s))?
            .into_inner();
        let status = match pb::CheckStatus::try_from(resp.status) {
            Ok(pb::CheckStatus::Approved) => CheckStatus::Approved,
            Ok(pb::CheckStatus::Declined) => CheckStatus::Declined,
            Ok(pb::CheckStatus::InReview) => CheckStatus::InReview,
            Ok(pb::CheckStatus::Failed) => CheckStatus::Failed,
            Ok(pb::CheckStatus::ExpiredOrNotFound) => CheckStatus::NotFound,
            _ => CheckStatus::Other(resp.status),
        };
        Ok(CheckAnswer {
            status,
            reason: resp.reason,
            attempts_left: resp.attempts_left,
            verification_id: resp.verification_id,
        })
    }

    pub async fn lookup(&mut self, number: &str) -> Result<(), CallError> {
        let req = self.request(pb::LookupRequest {
            phone_number: number.to_owned(),
            ..Default::default()
        });
        self.inner.lookup(req).await.map_err(|s| call_error(&s))?;
        Ok(())
    }

    pub async fn verification_status(&mut self, id: &str) -> Result<Option<String>, CallError> {
        let req = self.request(pb::GetVerificationRequest {
            verification_id: Some(id.to_owned()),
            ..Default::default()
        });
        match self.inner.get_verification(req).await {
            Ok(r) => Ok(Some(r.into_inner().status_text)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(call_error(&s)),
        }
    }
}

/// The standard `grpc.health.v1.Health/Check` client: the empty-service reference.
#[derive(Clone)]
pub struct Health {
    inner: tonic_health::pb::health_client::HealthClient<Channel>,
}

impl Health {
    pub fn new(channel: Channel) -> Self {
        Health {
            inner: tonic_health::pb::health_client::HealthClient::new(channel),
        }
    }

    pub async fn check(&mut self) -> Result<(), CallError> {
        self.inner
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|s| call_error(&s))?;
        Ok(())
    }
}
