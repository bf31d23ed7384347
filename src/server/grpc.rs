//! The gRPC API (tonic) of `proto/switchboard/v1/switchboard.proto`, with the standard
//! `grpc.health.v1` health service and server reflection.
//!
//! Every call goes through [`AppState::limit_ip`] (per client IP, before anything else) and
//! [`AppState::authorize`] (API key from the `x-api-key` metadata, then its rate limit), runs
//! under the latency histogram, and maps engine errors through the one table of
//! [`super::errors`]: the gRPC code comes from the table and the stable code travels as a
//! `google.rpc.ErrorInfo` detail (plus `RetryInfo` when throttled).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use switchboard_providers::{Channel, OneTimeCode};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_types::{ErrorDetails, StatusExt};

use super::AppState;
use super::auth::Principal;
use super::conn::{Admitted, ConnectionCap};
use super::errors::ApiError;
use crate::clock::iso8601;
use crate::engine::{self, GeoTable};
use crate::fraud::GeoAction;
use crate::report::{
    AttemptRecord, CheckOutcome, CheckStatus, PhoneReport, SendOutcome, SendStatus,
};
use crate::risk::Warning;

/// The generated messages, client and server of `switchboard.v1`.
pub mod pb {
    tonic::include_proto!("switchboard.v1");

    /// The encoded file descriptor set of `switchboard.v1`, as served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("switchboard_descriptor");

    // Generated without `Debug` so that the code the user typed never reaches a log.
    impl std::fmt::Debug for CheckRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("CheckRequest")
                .field("phone_number", &self.phone_number)
                .field("region", &self.region)
                .field("code", &"<redacted>")
                .field("vendor_data", &self.vendor_data)
                .finish()
        }
    }
}

use pb::switchboard_server::{Switchboard, SwitchboardServer};

mod records;
mod workflows;
pub use records::IDEMPOTENCY_KEY_METADATA;

/// The `google.rpc.ErrorInfo` domain of our errors.
pub const ERROR_DOMAIN: &str = "switchboard.dev";

/// The metadata entry that carries the API key.
pub const API_KEY_METADATA: &str = "x-api-key";

/// Serves the gRPC API on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SwitchboardServer<Api>>().await;
    health.set_service_status("", ServingStatus::Serving).await;
    let drain = async move {
        shutdown.await;
        // Health checkers see the drain before the listener goes away.
        health.set_not_serving::<SwitchboardServer<Api>>().await;
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
    };

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // v1 is the standard; v1alpha keeps older tools (grpcurl, Postman) working.
    let reflection_v1 = reflection()
        .build_v1()
        .inspect_err(|e| tracing::error!(error = %e, "gRPC reflection disabled"))
        .ok();
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .inspect_err(|e| tracing::error!(error = %e, "gRPC reflection (v1alpha) disabled"))
        .ok();

    let config = &state.config;
    let secs = Duration::from_secs;
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(secs(config.tcp_keepalive_secs)));
    // At most `max_connections` at once; one more is closed as soon as it is accepted.
    let cap = ConnectionCap::new(config.max_connections);
    let metrics = state.metrics.clone();
    let incoming = incoming.filter_map(move |accepted| {
        let admitted = match accepted {
            Ok(stream) => match cap.admit() {
                Some(slot) => Some(Ok::<_, std::io::Error>(Admitted::new(stream, slot))),
                None => {
                    metrics.connection_refused("grpc");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "gRPC accept failed");
                None
            }
        };
        futures::future::ready(admitted)
    });
    let result = tonic::transport::Server::builder()
        .timeout(secs(config.grpc_request_timeout_secs))
        .concurrency_limit_per_connection(config.grpc_max_concurrent_streams as usize)
        .max_concurrent_streams(config.grpc_max_concurrent_streams)
        .http2_keepalive_interval(Some(secs(config.grpc_keepalive_interval_secs)))
        .http2_keepalive_timeout(Some(secs(config.grpc_keepalive_timeout_secs)))
        .add_service(health_service)
        .add_optional_service(reflection_v1)
        .add_optional_service(reflection_v1alpha)
        .add_service(SwitchboardServer::new(Api::new(state)))
        .serve_with_incoming_shutdown(incoming, drain)
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "gRPC server stopped");
    }
}

/// The `switchboard.v1.Switchboard` service over the shared state.
#[derive(Debug)]
pub struct Api {
    state: Arc<AppState>,
}

impl Api {
    /// The service over `state` (what [`serve`] mounts; also for calling it in process).
    pub fn new(state: Arc<AppState>) -> Self {
        Api { state }
    }

    /// Authorizes, runs `f` under the latency histogram, counts errors, and turns an
    /// [`ApiError`] into a [`Status`].
    async fn call<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        f: F,
    ) -> Result<Response<Resp>, Status>
    where
        F: FnOnce(Principal, Req) -> Fut,
        Fut: Future<Output = Result<Resp, ApiError>>,
    {
        let state = &self.state;
        let result = state
            .timed("grpc", method, async {
                let api_key = request
                    .metadata()
                    .get(API_KEY_METADATA)
                    .and_then(|v| v.to_str().ok());
                let forwarded = request
                    .metadata()
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok());
                let ip = state.client_ip(request.remote_addr().map(|a| a.ip()), forwarded);
                state.limit_ip(ip)?;
                let principal = state.authorize(api_key)?;
                f(principal, request.into_inner()).await
            })
            .await;
        result.map(Response::new).map_err(|e| {
            state.metrics.record_error(method, e.code);
            tracing::debug!(method, code = e.code, "gRPC call refused");
            status(&e)
        })
    }
}

/// The gRPC status of an error: the table's code, the stable code as `ErrorInfo`, and
/// `RetryInfo` when a retry delay is known. Internal errors leave without any detail.
pub fn status(e: &ApiError) -> Status {
    let code = e.grpc_code();
    if code == tonic::Code::Internal {
        return Status::new(code, "internal error");
    }
    let mut metadata = HashMap::new();
    if let Some(secs) = e.retry_after {
        metadata.insert("retry_after".to_owned(), secs.to_string());
    }
    let mut details = ErrorDetails::with_error_info(e.code, ERROR_DOMAIN, metadata);
    if let Some(secs) = e.retry_after {
        details.set_retry_info(Some(Duration::from_secs(secs)));
    }
    Status::with_error_details(code, e.message.clone(), details)
}

#[tonic::async_trait]
impl Switchboard for Api {
    async fn send(
        &self,
        request: Request<pb::SendRequest>,
    ) -> Result<Response<pb::SendResponse>, Status> {
        let idempotency_key = request
            .metadata()
            .get(IDEMPOTENCY_KEY_METADATA)
            .map(|v| v.to_str().map(str::to_owned));
        self.call("send", request, |principal, req| async move {
            let idempotency_key = idempotency_key.transpose().map_err(|_| {
                ApiError::invalid("invalid `idempotency-key`: must be visible ASCII")
            })?;
            let encoded = idempotency_key
                .as_ref()
                .map(|_| prost::Message::encode_to_vec(&req));
            let metadata = req
                .metadata
                .as_deref()
                .map(serde_json::from_str::<serde_json::Value>)
                .transpose()
                .map_err(|_| ApiError::invalid("invalid `metadata`: must be a JSON object"))?;
            let options = req.options.unwrap_or_default();
            let signals = req.signals.unwrap_or_default();
            let code_size = options
                .code_size
                .map(|n| {
                    u8::try_from(n).map_err(|_| {
                        ApiError::invalid("invalid `options.code_size`: must be 4 to 10")
                    })
                })
                .transpose()?;
            let send = engine::SendRequest {
                phone_number: req.phone_number,
                region: req.region,
                channel: channel_in(req.channel, "channel")?,
                vendor_data: req.vendor_data,
                metadata,
                app: Some(principal.app),
                options: engine::SendOptions {
                    code_size,
                    locale: options.locale,
                    preferred_channel: channel_in(
                        options.preferred_channel,
                        "options.preferred_channel",
                    )?,
                    webotp_host: None,
                },
                signals: engine::Signals {
                    ip: signals.ip,
                    device_id: signals.device_id,
                    user_agent: signals.user_agent,
                    device_platform: signals.device_platform,
                    device_model: signals.device_model,
                    os_version: signals.os_version,
                    app_version: signals.app_version,
                },
                workflow: None,
            };
            if let (Some(key), Some(encoded)) = (idempotency_key, encoded) {
                let (response, fresh) =
                    records::send_once(&self.state.engine, send, &encoded, &key, send_response)
                        .await?;
                if let Some(outcome) = fresh {
                    self.state.metrics.record_send(&outcome);
                }
                return Ok(response);
            }
            let outcome = self.state.engine.send(send).await?;
            self.state.metrics.record_send(&outcome);
            Ok(send_response(outcome))
        })
        .await
    }

    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        self.call("check", request, |principal, req| async move {
            let check = engine::CheckRequest {
                phone_number: req.phone_number,
                region: req.region,
                code: OneTimeCode::new(req.code),
                vendor_data: req.vendor_data,
                app: Some(principal.app),
                workflow: None,
            };
            let outcome = self.state.engine.check(check).await?;
            self.state.metrics.record_check(&outcome);
            Ok(check_response(outcome))
        })
        .await
    }

    async fn lookup(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupResponse>, Status> {
        self.call("lookup", request, |principal, req| async move {
            let report = self
                .state
                .engine
                .lookup(
                    &req.phone_number,
                    req.region.as_deref(),
                    req.vendor_data.as_deref(),
                    Some(&principal.app),
                )
                .await?;
            Ok(pb::LookupResponse {
                phone: Some(phone_report(report)),
            })
        })
        .await
    }

    async fn lookup_batch(
        &self,
        request: Request<pb::LookupBatchRequest>,
    ) -> Result<Response<pb::LookupBatchResponse>, Status> {
        self.call("lookup_batch", request, |principal, req| async move {
            let results = super::lookup_batch::lookup_batch(
                &self.state.engine,
                &req.phone_numbers,
                req.region.as_deref(),
                req.vendor_data.as_deref(),
                &principal.app,
            )
            .await?;
            let results = results
                .into_iter()
                .map(|result| pb::LookupResult {
                    result: Some(match result {
                        Ok(report) => pb::lookup_result::Result::Phone(phone_report(report)),
                        Err(e) => pb::lookup_result::Result::Error(pb::LookupError {
                            code: e.code.to_owned(),
                            message: e.message,
                        }),
                    }),
                })
                .collect();
            Ok(pb::LookupBatchResponse { results })
        })
        .await
    }

    async fn get_verification(
        &self,
        request: Request<pb::GetVerificationRequest>,
    ) -> Result<Response<pb::GetVerificationResponse>, Status> {
        self.call("get_verification", request, |principal, req| async move {
            records::get(&self.state.engine, &principal.app, req).await
        })
        .await
    }

    async fn review_verification(
        &self,
        request: Request<pb::ReviewVerificationRequest>,
    ) -> Result<Response<pb::GetVerificationResponse>, Status> {
        self.call(
            "review_verification",
            request,
            |principal, req| async move {
                records::review(&self.state.engine, &principal.app, req).await
            },
        )
        .await
    }

    async fn delete_phone_number(
        &self,
        request: Request<pb::DeletePhoneNumberRequest>,
    ) -> Result<Response<pb::DeletePhoneNumberResponse>, Status> {
        self.call("delete_number", request, |principal, req| async move {
            records::delete(&self.state.engine, &principal.app, req).await
        })
        .await
    }

    async fn add_to_blocklist(
        &self,
        request: Request<pb::AddToBlocklistRequest>,
    ) -> Result<Response<pb::AddToBlocklistResponse>, Status> {
        self.call("add_to_blocklist", request, |principal, req| async move {
            let added = self
                .state
                .engine
                .block(&req.phone_number, Some(&principal.app))
                .await?;
            Ok(pb::AddToBlocklistResponse { added })
        })
        .await
    }

    async fn remove_from_blocklist(
        &self,
        request: Request<pb::RemoveFromBlocklistRequest>,
    ) -> Result<Response<pb::RemoveFromBlocklistResponse>, Status> {
        self.call(
            "remove_from_blocklist",
            request,
            |principal, req| async move {
                let removed = self
                    .state
                    .engine
                    .unblock(&req.phone_number, Some(&principal.app))
                    .await?;
                Ok(pb::RemoveFromBlocklistResponse { removed })
            },
        )
        .await
    }

    async fn list_blocklist(
        &self,
        request: Request<pb::ListBlocklistRequest>,
    ) -> Result<Response<pb::ListBlocklistResponse>, Status> {
        self.call("list_blocklist", request, |principal, _req| async move {
            let phone_numbers = self.state.engine.blocklist(Some(&principal.app)).await?;
            Ok(pb::ListBlocklistResponse { phone_numbers })
        })
        .await
    }

    async fn list_fraud_blocks(
        &self,
        request: Request<pb::ListFraudBlocksRequest>,
    ) -> Result<Response<pb::ListFraudBlocksResponse>, Status> {
        self.call("fraud_blocks_list", request, |principal, _req| async move {
            let blocks = self.state.engine.fraud_blocks(Some(&principal.app)).await?;
            Ok(pb::ListFraudBlocksResponse {
                blocks: blocks
                    .into_iter()
                    .map(|b| pb::FraudBlock {
                        rule: b.rule.as_str().to_owned(),
                        key: b.key,
                        blocked_until: b.blocked_until,
                        blocks: b.blocks,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn get_route_stats(
        &self,
        request: Request<pb::GetRouteStatsRequest>,
    ) -> Result<Response<pb::GetRouteStatsResponse>, Status> {
        self.call("route_stats", request, |principal, req| async move {
            let r = self
                .state
                .engine
                .route_stats(Some(&principal.app), &req.countries)
                .await?;
            Ok(pb::GetRouteStatsResponse {
                strategy: r.strategy.to_owned(),
                currency: r.currency,
                window_secs: r.window_secs,
                routes: r
                    .routes
                    .into_iter()
                    .map(|s| pb::RouteStats {
                        country: s.country,
                        channel: s.channel,
                        provider: s.provider,
                        price: s.price,
                        attempts: s.attempts,
                        accepted: s.accepted,
                        delivered: s.delivered,
                        failed: s.failed,
                        approvals: s.approvals,
                        late_approvals: s.late_approvals,
                        conversion: s.conversion,
                        delivery_rate: s.delivery_rate,
                        mean_approval_secs: s.mean_approval_secs,
                        score: s.score,
                        p_verified: s.p_verified,
                        breaker: s.breaker.to_owned(),
                        breaker_open_until: s.breaker_open_until,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn release_fraud_block(
        &self,
        request: Request<pb::ReleaseFraudBlockRequest>,
    ) -> Result<Response<pb::ReleaseFraudBlockResponse>, Status> {
        self.call(
            "fraud_block_release",
            request,
            |principal, req| async move {
                let released = self
                    .state
                    .engine
                    .release_fraud_block(&req.key, Some(&principal.app))
                    .await?;
                Ok(pb::ReleaseFraudBlockResponse { released })
            },
        )
        .await
    }

    async fn list_workflows(
        &self,
        request: Request<pb::ListWorkflowsRequest>,
    ) -> Result<Response<pb::ListWorkflowsResponse>, Status> {
        self.call("list_workflows", request, |principal, _req| async move {
            workflows::list(&self.state.engine, &principal.app).await
        })
        .await
    }

    async fn get_workflow(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::Workflow>, Status> {
        self.call("get_workflow", request, |principal, req| async move {
            workflows::get(&self.state.engine, &principal.app, req).await
        })
        .await
    }

    async fn create_workflow(
        &self,
        request: Request<pb::CreateWorkflowRequest>,
    ) -> Result<Response<pb::Workflow>, Status> {
        self.call("create_workflow", request, |principal, req| async move {
            workflows::create(&self.state.engine, &principal.app, req).await
        })
        .await
    }

    async fn update_workflow(
        &self,
        request: Request<pb::UpdateWorkflowRequest>,
    ) -> Result<Response<pb::Workflow>, Status> {
        self.call("update_workflow", request, |principal, req| async move {
            workflows::update(&self.state.engine, &principal.app, req).await
        })
        .await
    }

    async fn delete_workflow(
        &self,
        request: Request<pb::DeleteWorkflowRequest>,
    ) -> Result<Response<pb::DeleteWorkflowResponse>, Status> {
        self.call("delete_workflow", request, |principal, req| async move {
            workflows::delete(&self.state.engine, &principal.app, req).await
        })
        .await
    }

    async fn get_safe_list(
        &self,
        request: Request<pb::GetSafeListRequest>,
    ) -> Result<Response<pb::GetSafeListResponse>, Status> {
        self.call(
            "fraud_safe_list_get",
            request,
            |principal, _req| async move {
                let entries = self
                    .state
                    .engine
                    .fraud_safe_list(Some(&principal.app))
                    .await?;
                Ok(pb::GetSafeListResponse {
                    entries,
                    configured: configured_safe_list(&self.state, &principal.app),
                })
            },
        )
        .await
    }

    async fn add_to_safe_list(
        &self,
        request: Request<pb::AddToSafeListRequest>,
    ) -> Result<Response<pb::AddToSafeListResponse>, Status> {
        self.call(
            "fraud_safe_list_add",
            request,
            |principal, req| async move {
                let added = self
                    .state
                    .engine
                    .add_to_fraud_safe_list(&req.entry, Some(&principal.app))
                    .await?;
                Ok(pb::AddToSafeListResponse { added })
            },
        )
        .await
    }

    async fn remove_from_safe_list(
        &self,
        request: Request<pb::RemoveFromSafeListRequest>,
    ) -> Result<Response<pb::RemoveFromSafeListResponse>, Status> {
        self.call(
            "fraud_safe_list_remove",
            request,
            |principal, req| async move {
                let removed = self
                    .state
                    .engine
                    .remove_from_fraud_safe_list(&req.entry, Some(&principal.app))
                    .await?;
                Ok(pb::RemoveFromSafeListResponse { removed })
            },
        )
        .await
    }

    async fn get_geo_permissions(
        &self,
        request: Request<pb::GetGeoPermissionsRequest>,
    ) -> Result<Response<pb::GetGeoPermissionsResponse>, Status> {
        self.call("fraud_geo_get", request, |principal, _req| async move {
            geo_permissions(&self.state, &principal.app).await
        })
        .await
    }

    async fn set_geo_permissions(
        &self,
        request: Request<pb::SetGeoPermissionsRequest>,
    ) -> Result<Response<pb::GetGeoPermissionsResponse>, Status> {
        self.call("fraud_geo_set", request, |principal, req| async move {
            let mut table = GeoTable::new();
            for p in req.permissions {
                let action = match pb::GeoAction::try_from(p.action) {
                    Ok(pb::GeoAction::Allow) => GeoAction::Allow,
                    Ok(pb::GeoAction::Monitor) => GeoAction::Monitor,
                    Ok(pb::GeoAction::Deny) => GeoAction::Deny,
                    _ => {
                        return Err(ApiError::invalid(
                            "invalid `permissions.action`: ALLOW, MONITOR or DENY",
                        ));
                    }
                };
                table
                    .entry(p.channel)
                    .or_default()
                    .insert(p.country, action);
            }
            self.state
                .engine
                .set_fraud_geo(&table, Some(&principal.app))
                .await?;
            geo_permissions(&self.state, &principal.app).await
        })
        .await
    }
}

/// The configured safe list of `app` (empty for an application without its own workflow).
fn configured_safe_list(state: &AppState, app: &str) -> Vec<String> {
    state
        .engine
        .config()
        .app(app)
        .map(|w| w.fraud.safe_list.clone())
        .unwrap_or_default()
}

/// The runtime and the effective geo permissions of `app`.
async fn geo_permissions(
    state: &AppState,
    app: &str,
) -> Result<pb::GetGeoPermissionsResponse, ApiError> {
    let runtime = state.engine.fraud_geo(Some(app)).await?;
    let effective = state.engine.effective_fraud_policy(Some(app)).await?;
    let flat = |table: &GeoTable| {
        table
            .iter()
            .flat_map(|(channel, countries)| {
                countries
                    .iter()
                    .map(move |(country, action)| pb::GeoPermission {
                        channel: channel.clone(),
                        country: country.clone(),
                        action: match action {
                            GeoAction::Allow => pb::GeoAction::Allow,
                            GeoAction::Monitor => pb::GeoAction::Monitor,
                            GeoAction::Deny => pb::GeoAction::Deny,
                        }
                        .into(),
                    })
            })
            .collect()
    };
    Ok(pb::GetGeoPermissionsResponse {
        permissions: flat(&runtime),
        effective: flat(&effective.geo),
    })
}

/// A request channel: unspecified is "let switchboard route"; an unknown number is refused.
fn channel_in(value: i32, field: &str) -> Result<Option<Channel>, ApiError> {
    let channel = pb::Channel::try_from(value)
        .map_err(|_| ApiError::invalid(format!("invalid `{field}`: unknown channel {value}")))?;
    Ok(match channel {
        pb::Channel::Unspecified => None,
        pb::Channel::Sms => Some(Channel::Sms),
        pb::Channel::Whatsapp => Some(Channel::Whatsapp),
        pb::Channel::Telegram => Some(Channel::Telegram),
        pb::Channel::Rcs => Some(Channel::Rcs),
        pb::Channel::Viber => Some(Channel::Viber),
        pb::Channel::Call => Some(Channel::Call),
    })
}

fn send_response(o: SendOutcome) -> pb::SendResponse {
    let status = match o.status {
        SendStatus::Success => pb::SendStatus::Success,
        SendStatus::Retry => pb::SendStatus::Retry,
        SendStatus::Undeliverable => pb::SendStatus::Undeliverable,
        SendStatus::Blocked => pb::SendStatus::Blocked,
    };
    pb::SendResponse {
        request_id: o.request_id,
        verification_id: o.verification_id,
        vendor_data: o.vendor_data,
        metadata: o.metadata.map(|m| m.to_string()),
        status: status.into(),
        status_text: o.status.as_str().to_owned(),
        reason: o.reason,
        channel: o.channel.map(|c| c.as_str().to_owned()),
        resends_left: o.resends_left,
        retry_after: o.retry_after,
        expires_at: o.expires_at.map(iso8601),
        attempts: o.attempts.into_iter().map(attempt).collect(),
        delivered_by: o.delivered_by.map(|d| pb::DeliveredRoute {
            channel: d.channel.as_str().to_owned(),
            provider: d.provider,
            price: d.price,
            currency: d.currency,
            provider_message_id: d.provider_message_id,
        }),
        phone: Some(phone_report(o.phone)),
        lookup: o.lookup.map(|l| pb::LookupCharge {
            provider: l.provider,
            price: l.price,
            currency: l.currency,
        }),
        routing: o.routing.map(|c| pb::RouteChoice {
            route: c.route,
            strategy: c.strategy.to_owned(),
            score: c.score,
            p_verified: c.p_verified,
            evidence: c.evidence,
            approvals: c.approvals,
            explored: c.explored,
            broken: c.broken,
            patience_exceeded: c.patience_exceeded,
        }),
    }
}

fn attempt(a: AttemptRecord) -> pb::DeliveryAttempt {
    pb::DeliveryAttempt {
        channel: a.channel.as_str().to_owned(),
        provider: a.provider,
        outcome: a.outcome.as_str().to_owned(),
        failure_class: a.class.map(|c| c.as_str().to_owned()),
        error_code: a.error_code,
    }
}

fn check_response(o: CheckOutcome) -> pb::CheckResponse {
    let status = match o.status {
        CheckStatus::Approved => pb::CheckStatus::Approved,
        CheckStatus::Declined => pb::CheckStatus::Declined,
        CheckStatus::InReview => pb::CheckStatus::InReview,
        CheckStatus::Failed => pb::CheckStatus::Failed,
        CheckStatus::ExpiredOrNotFound => pb::CheckStatus::ExpiredOrNotFound,
    };
    pb::CheckResponse {
        request_id: o.request_id,
        verification_id: o.verification_id,
        vendor_data: o.vendor_data,
        metadata: o.metadata.map(|m| m.to_string()),
        status: status.into(),
        status_text: o.status.as_str().to_owned(),
        reason: o.reason,
        attempts_left: o.attempts_left,
        phone: Some(phone_report(o.phone)),
    }
}

fn phone_report(r: PhoneReport) -> pb::PhoneReport {
    pb::PhoneReport {
        status: r.status.as_str().to_owned(),
        phone_number_prefix: r.phone_number_prefix,
        phone_number: r.phone_number,
        full_number: r.full_number,
        country_code: r.country_code,
        country_name: r.country_name,
        carrier: Some(pb::Carrier {
            name: r.carrier.name,
            r#type: r.carrier.line_type.as_str().to_owned(),
            source: r.carrier.source.as_str().to_owned(),
        }),
        is_disposable: r.is_disposable,
        is_virtual: r.is_virtual,
        verification_method: r.verification_method.map(|c| c.as_str().to_owned()),
        verification_attempts: r.verification_attempts,
        verified_at: r.verified_at.map(iso8601),
        warnings: r.warnings.into_iter().map(warning).collect(),
    }
}

fn warning(w: Warning) -> pb::Warning {
    pb::Warning {
        risk: w.risk.as_str().to_owned(),
        log_type: w.log_type.as_str().to_owned(),
        short_description: w.short_description.to_owned(),
        long_description: w.long_description.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_their_stable_code_and_retry_delay() {
        let s = status(&ApiError::rate_limited(7));
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        let info = s.get_details_error_info().expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("RATE_LIMITED", ERROR_DOMAIN)
        );
        let retry = s.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
    }

    #[test]
    fn internal_errors_leave_without_detail() {
        let s = status(&ApiError::internal());
        assert_eq!(s.code(), tonic::Code::Internal);
        assert_eq!(s.message(), "internal error");
        assert!(s.details().is_empty());
    }

    #[test]
    fn unknown_channel_numbers_are_invalid_requests() {
        assert_eq!(channel_in(0, "channel"), Ok(None));
        assert_eq!(channel_in(6, "channel"), Ok(Some(Channel::Call)));
        assert_eq!(
            channel_in(42, "channel").unwrap_err().code,
            "INVALID_REQUEST"
        );
    }

    #[test]
    fn check_request_debug_hides_the_code() {
        let req = pb::CheckRequest {
            phone_number: "+12025550101".into(),
            code: "123456".into(),
            ..Default::default()
        };
        assert!(!format!("{req:?}").contains("123456"));
    }
}
