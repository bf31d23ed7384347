//! The dispatcher: tries the planned routes in order until one delivers.
//!
//! Per attempt: a timeout. `Transient` retries the same route once, after the provider's
//! `Retry-After` (bounded) or a short backoff; `Fallback` and a timeout move to the next route;
//! `Config` skips every route of that provider for this send; `Permanent` stops the send;
//! `Fraud` (the provider's own pumping protection refused the number) stops it too, and is
//! never a reason to try another provider.
//!
//! An attempt whose outcome is unknown (our timeout, or a provider error marked
//! `outcome_unknown`) may have delivered the code: the report says so, and the engine then keeps
//! the reservation instead of refunding it.

use std::sync::Arc;
use std::time::Duration;

use switchboard_providers::{Delivery, DeliveryError, DynProvider, FailureClass, OutboundMessage};

use super::table::Route;
use crate::report::{AttemptOutcome, AttemptRecord};

/// Timing of the dispatcher.
#[derive(Clone, Copy, Debug)]
pub struct DispatchPolicy {
    /// Each attempt is abandoned after this long.
    pub attempt_timeout: Duration,
    /// Pause before retrying a transient failure that gave no `Retry-After`.
    pub retry_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the next route is tried instead.
    pub max_retry_wait: Duration,
}

impl Default for DispatchPolicy {
    fn default() -> Self {
        DispatchPolicy {
            attempt_timeout: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(200),
            max_retry_wait: Duration::from_secs(2),
        }
    }
}

/// How a dispatch ended.
#[derive(Debug)]
pub enum Dispatched {
    /// A route delivered.
    Delivered {
        route: Route,
        provider: String,
        delivery: Delivery,
    },
    /// A permanent failure: the number cannot be reached; nothing else was tried.
    Permanent(DeliveryError),
    /// The provider's fraud protection refused the number; nothing else was tried.
    Fraud(DeliveryError),
    /// Every route failed (or there was none).
    Exhausted,
}

/// The outcome and every attempt made.
#[derive(Debug)]
pub struct DispatchReport {
    pub result: Dispatched,
    pub attempts: Vec<AttemptRecord>,
    /// Some failed attempt may have reached the user (timeout or unknown outcome).
    pub possibly_delivered: bool,
}

/// Tries `routes` in order for `message` (its channel is set per route).
pub async fn dispatch<F>(
    routes: &[Route],
    message: &OutboundMessage,
    policy: &DispatchPolicy,
    resolve: F,
) -> DispatchReport
where
    F: Fn(&Route) -> Option<Arc<dyn DynProvider>>,
{
    let mut attempts = Vec::new();
    let mut possibly_delivered = false;
    let mut broken: Vec<String> = Vec::new();
    let mut msg = message.clone();

    for route in routes {
        let Some(provider) = resolve(route) else {
            continue;
        };
        let name = provider.name().to_owned();
        if broken.contains(&name)
            || !provider
                .capabilities()
                .serves(route.channel, msg.country.as_deref())
        {
            continue;
        }
        msg.channel = route.channel;
        let mut retried = false;
        loop {
            let outcome =
                tokio::time::timeout(policy.attempt_timeout, provider.send_boxed(&msg)).await;
            let record = |outcome, err: Option<&DeliveryError>| AttemptRecord {
                channel: route.channel,
                provider: name.clone(),
                outcome,
                class: err.map(|e| e.class),
                error_code: err.and_then(|e| e.code.clone()),
            };
            match outcome {
                Ok(Ok(delivery)) => {
                    attempts.push(record(AttemptOutcome::Delivered, None));
                    return DispatchReport {
                        result: Dispatched::Delivered {
                            route: route.clone(),
                            provider: name,
                            delivery,
                        },
                        attempts,
                        possibly_delivered,
                    };
                }
                Err(_elapsed) => {
                    tracing::warn!(provider = %name, channel = %route.channel, "delivery attempt timed out");
                    attempts.push(AttemptRecord {
                        class: Some(FailureClass::Transient),
                        ..record(AttemptOutcome::Timeout, None)
                    });
                    possibly_delivered = true;
                    break;
                }
                Ok(Err(err)) => {
                    tracing::info!(provider = %name, channel = %route.channel, class = %err.class, code = ?err.code, "delivery attempt failed");
                    attempts.push(record(AttemptOutcome::Failed, Some(&err)));
                    possibly_delivered |= err.may_have_been_delivered();
                    match err.class {
                        FailureClass::Permanent => {
                            return DispatchReport {
                                result: Dispatched::Permanent(err),
                                attempts,
                                possibly_delivered,
                            };
                        }
                        FailureClass::Fraud => {
                            tracing::warn!(provider = %name, code = ?err.code, "provider's fraud protection refused the number");
                            return DispatchReport {
                                result: Dispatched::Fraud(err),
                                attempts,
                                possibly_delivered,
                            };
                        }
                        FailureClass::Config => {
                            tracing::error!(provider = %name, code = ?err.code, "provider misconfigured; skipped for this send: {}", err.message);
                            broken.push(name.clone());
                            break;
                        }
                        FailureClass::Fallback => break,
                        FailureClass::Transient => {
                            let wait = err.retry_after.unwrap_or(policy.retry_backoff);
                            if retried || wait > policy.max_retry_wait {
                                break;
                            }
                            retried = true;
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        }
    }
    DispatchReport {
        result: Dispatched::Exhausted,
        attempts,
        possibly_delivered,
    }
}
