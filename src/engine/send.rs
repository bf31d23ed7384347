//! The send path, as the named stages of ARCHITECTURE.md: validate (parse), line facts (a live
//! lookup where the application asks; module `lookup`), screen (the line's risks), plan (gating, geo permissions), order (strategy, breakers; module `routes`), count
//! and reserve (the fraud screen's counts ride in the reserving store call), judge (fraud
//! verdict; a refusal gives the reservation back), open (a first send's verification record,
//! before any provider is called), patience (a resend after a lost code), dispatch, settle.
//! Each stage is one function; [`Engine::send_unobserved`] reads as the list of them.

use std::sync::Arc;
use std::time::Duration;

use switchboard_providers::{DynProvider, FailureClass, OutboundMessage, SandboxProvider};

use super::{
    Engine, check_vendor_data, is_duplicate, new_request_id, plan_request, salt_for, secs_ceil,
    with,
};
use crate::code;
use crate::config::Workflow;
use crate::error::Error;
use crate::fraud::{self, Figure, FraudMode, GeoAction, Rule, Subjects, Verdict};
use crate::phone::{self, PhoneInfo};
use crate::report::{DeliveredRoute, SendOutcome, SendStatus, VerificationStatus};
use crate::risk::{self, Action, Risk};
use crate::routing::{self, DispatchReport, Dispatched, Route};
use crate::store::{
    CodeRoute, DeliveryRef, NumberKey, RecordDelivery, Reservation, ReserveSend, Reserved,
    SendLimits,
};

use super::{SendRequest, secs_ms};

/// What every stage of one send knows.
struct Send<'a> {
    request_id: String,
    app: &'a str,
    wf: &'a Workflow,
    req: &'a SendRequest,
    code_len: u8,
    locale: &'a str,
    info: PhoneInfo,
    key: NumberKey,
    /// The application's effective fraud policy: `[workflow.fraud]` with the runtime safe
    /// list and geo permissions (module `admin`).
    fraud: Arc<fraud::FraudPolicy>,
    /// Set when the sandbox handles this number for this application.
    sandbox: Option<Arc<SandboxProvider>>,
    /// What the fraud screen counts this send under; `None` when it is not screened (sandbox,
    /// safe list, fraud mode off).
    subjects: Option<Subjects>,
    risks: Vec<Risk>,
    /// What the live line lookup found and cost.
    line: super::lookup::LineLookup,
}

impl Engine {
    pub(super) async fn send_unobserved(&self, req: SendRequest) -> Result<SendOutcome, Error> {
        let mut send = self.validate_send(&req).await?;
        self.line_facts(&mut send).await?;
        if let Some(refused) = self.screen_send(&mut send) {
            return Ok(refused);
        }
        let mut plan = self.plan(
            &send.info,
            send.wf,
            &send.fraud,
            req.channel,
            req.options.preferred_channel,
        );
        let choices = self
            .order_routes(
                send.app,
                send.wf,
                send.info.region.as_deref(),
                &send.info.e164,
                &mut plan,
            )
            .await?;
        let Some(first) = plan.first().cloned() else {
            return self.no_route(&send);
        };
        let first = &first;
        // The fraud screen's counts go in the reserving store call; its verdict comes before
        // any provider is called, and a refused send gives its reservation back.
        let (mut counts, geo) = self.fraud_counts(&send, first);
        let (reservation, tallies) = self.reserve(&mut send, first, &counts.counts).await?;
        let deferred = std::mem::take(&mut counts.deferred);
        self.inner.recorder.record(self.now(), deferred).await;
        let screening = match geo {
            Some(verdict) => verdict,
            None => self.fraud_judge(&send, first, &counts, &tallies).await?,
        };
        if let Verdict::Block(figure) = screening {
            if let Reserve::Granted(granted) = &reservation {
                self.inner.store.release_send(&send.key, &granted.0).await?;
            }
            return Ok(self.fraud_blocked(&send, figure));
        }
        let (reserved, message) = match reservation {
            Reserve::Granted(granted) => *granted,
            Reserve::Refused(refused) => return Ok(*refused),
            Reserve::Throttled(e) => return Err(e),
        };
        self.open(&send, &reserved).await?;
        let moved = self
            .after_patience(
                send.app,
                send.wf,
                send.info.region.as_deref(),
                reserved.previous_route.as_deref(),
                &mut plan,
                &choices,
            )
            .await?;
        let report = self.dispatch_send(&send, &plan, &message).await;
        if send.sandbox.is_none() {
            self.record_attempts(
                send.app,
                send.wf,
                send.info.region.as_deref(),
                &report.attempts,
            )
            .await;
        }
        let mut outcome = self.settle(&send, &plan, first, &reserved, report).await?;
        if let Verdict::WouldBlock(_) = &screening {
            outcome.fraud = Some(screening);
        }
        outcome.routing = plan.first().and_then(|r| {
            let name = format!("{}:{}", r.channel, r.provider);
            let mut c = choices.into_iter().find(|c| c.route == name)?;
            c.patience_exceeded = moved;
            Some(c)
        });
        Ok(outcome)
    }

    /// Nothing to plan: a pinned channel that cannot reach the number is the caller's error; a
    /// plan emptied by geo permissions is a `GEO_DENIED` refusal.
    fn no_route(&self, send: &Send<'_>) -> Result<SendOutcome, Error> {
        if let Some(channel) = send.req.channel {
            return Err(Error::ChannelUnavailable { channel });
        }
        let unfiltered = routing::plan(
            &self.inner.routes,
            &plan_request(
                &send.info,
                send.wf,
                None,
                send.req.options.preferred_channel,
            ),
        );
        match unfiltered.first() {
            Some(first) if send.fraud.mode == FraudMode::Enforce => {
                Ok(self.fraud_blocked(send, geo_figure(send, first)))
            }
            _ => Ok(self.undeliverable(send, "no_route", 0, Vec::new())),
        }
    }

    /// Stage 4a: what the fraud screen counts for this send (module `fraud`). A country denied
    /// on the first route's channel in shadow mode is reported without counting (enforce mode
    /// never plans a denied route).
    fn fraud_counts(&self, send: &Send<'_>, first: &Route) -> (fraud::Screening, Option<Verdict>) {
        let Some(subjects) = &send.subjects else {
            return (fraud::Screening::default(), Some(Verdict::Allow));
        };
        let policy = &*send.fraud;
        match policy.geo(first.channel, send.info.region.as_deref()) {
            GeoAction::Deny => {
                return (
                    fraud::Screening::default(),
                    Some(Verdict::WouldBlock(geo_figure(send, first))),
                );
            }
            GeoAction::Monitor => {
                tracing::info!(request_id = %send.request_id, country = ?send.info.region, channel = %first.channel, "send to a monitored destination");
            }
            GeoAction::Allow => {}
        }
        (fraud::send_counts(send.app, policy, subjects), None)
    }

    /// Stage 4b: the fraud screen's verdict on the counted send, before any money is spent.
    async fn fraud_judge(
        &self,
        send: &Send<'_>,
        first: &Route,
        counts: &fraud::Screening,
        tallies: &[crate::outcomes::Tally],
    ) -> Result<Verdict, Error> {
        let verdict = fraud::judge(
            &self.inner.store,
            self.now(),
            send.app,
            &send.fraud,
            counts,
            tallies,
            first.price,
        )
        .await?;
        match &verdict {
            Verdict::Block(f) => {
                tracing::warn!(request_id = %send.request_id, rule = f.rule.as_str(), key = %f.key, count = f.count, budget = f.budget, "send refused by the fraud screen")
            }
            Verdict::WouldBlock(f) => {
                tracing::warn!(request_id = %send.request_id, rule = f.rule.as_str(), key = %f.key, count = f.count, budget = f.budget, "shadow mode: the fraud screen would refuse this send")
            }
            Verdict::Allow => {}
        }
        Ok(verdict)
    }

    /// A send the fraud screen refused: `Blocked`, the rule as reason, `HIGH_RISK_PHONE_NUMBER`
    /// carrying the figure.
    fn fraud_blocked(&self, send: &Send<'_>, figure: Figure) -> SendOutcome {
        let risks = with(&send.risks, Risk::HighRiskPhoneNumber);
        let mut outcome = self.blocked(send, &risks, Risk::HighRiskPhoneNumber, 0, None);
        outcome.reason = Some(figure.rule.as_str().to_owned());
        if let Some(w) = outcome
            .phone
            .warnings
            .iter_mut()
            .find(|w| w.risk == Risk::HighRiskPhoneNumber)
        {
            w.additional_data = Some(figure.clone());
        }
        outcome.fraud = Some(Verdict::Block(figure));
        outcome
    }

    /// Request checks and stage 1 (`phone::parse`): nothing is stored for a bad request.
    async fn validate_send<'a>(&'a self, req: &'a SendRequest) -> Result<Send<'a>, Error> {
        let (app, wf) = self.workflow(req.app.as_deref())?;
        let wf = req.workflow.as_deref().unwrap_or(wf);
        let code_len = req.options.code_size.unwrap_or(wf.code_length);
        if !(code::MIN_LENGTH..=code::MAX_LENGTH).contains(&code_len) {
            return Err(Error::InvalidRequest {
                field: "options.code_size",
                message: format!(
                    "must be between {} and {}",
                    code::MIN_LENGTH,
                    code::MAX_LENGTH
                ),
            });
        }
        check_vendor_data(req.vendor_data.as_deref())?;
        super::records::check_metadata(req.metadata.as_ref())?;
        let locale = req.options.locale.as_deref().unwrap_or(&wf.locale);
        if locale.is_empty()
            || locale.len() > 35
            || !locale
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidRequest {
                field: "options.locale",
                message: "must be a BCP 47 language tag such as `en` or `pt-BR`".into(),
            });
        }
        let info = phone::parse(&req.phone_number, req.region.as_deref())?;
        let sandbox = self.sandbox_for(wf, &info.e164).cloned();
        let key = NumberKey::new(app, info.e164.clone());
        let subjects = self.subjects(wf, &info, &req.signals)?;
        // The runtime safe list too: read from the in-process cache, not the store per send.
        let fraud = self.fraud_policy(app, wf).await?;
        let subjects = subjects.filter(|_| sandbox.is_none() && !fraud.is_safe(&info.e164));
        Ok(Send {
            request_id: new_request_id(),
            app,
            wf,
            req,
            code_len,
            locale,
            info,
            key,
            fraud,
            sandbox,
            subjects,
            risks: Vec::new(),
            line: Default::default(),
        })
    }

    /// Stage 2: live line facts where the workflow asks for them; what the lookup cost counts
    /// toward the spend caps at once (it is paid whether or not the send goes out).
    async fn line_facts(&self, send: &mut Send<'_>) -> Result<(), Error> {
        send.line = self
            .look_up_line(send.wf, &mut send.info, super::lookup::Purpose::Verify)
            .await?;
        if let (Some((_, price)), Some(_)) = (&send.line.charged, &send.subjects) {
            self.record_spend(send, *price).await;
        }
        Ok(())
    }

    /// Stage 3: the line's risks; a declining one refuses before any money is spent on
    /// delivery.
    fn screen_send(&self, send: &mut Send<'_>) -> Option<SendOutcome> {
        let facts = risk::Facts {
            sim_swapped: send.line.sim_swapped,
            ..self.sandbox_facts(send.wf, &send.info.e164)
        };
        send.risks = risk::screen(&send.info, &self.inner.risk_data, facts);
        let risk = send.wf.risk.declining(&send.risks)?;
        tracing::info!(request_id = %send.request_id, risk = %risk, "send refused by risk screen");
        Some(self.blocked(send, &send.risks, risk, 0, None))
    }

    /// Stage 6: limits, blocklist, duplicates and the code's digest in one atomic store step.
    /// `Err` is the answer of a refused send (nothing was reserved).
    async fn reserve(
        &self,
        send: &mut Send<'_>,
        first: &Route,
        counts: &[crate::outcomes::Count],
    ) -> Result<(Reserve, Vec<crate::outcomes::Tally>), Error> {
        let code = code::generate(send.code_len).map_err(|_| Error::Internal)?;
        let digest = self
            .inner
            .hasher
            .digest(&code, &salt_for(&send.key))
            .await
            .map_err(|_| Error::Internal)?;
        let now = self.now();
        let (reservation, tallies) = self
            .inner
            .store
            .reserve_counted(
                &send.key,
                ReserveSend {
                    now,
                    digest,
                    channel: first.channel,
                    route: &CodeRoute::encode(first.channel, &first.provider, now),
                    vendor_data: send.req.vendor_data.as_deref(),
                    refuse_duplicate: send.wf.risk.duplicated == Action::Decline,
                    limits: send_limits(send.wf, send.sandbox.is_some()),
                    ids_ttl_ms: super::secs_ms(send.wf.limits.record_ttl_secs),
                },
                counts,
            )
            .await?;
        let refuse = |risk: Risk, retry_after: Option<u64>| {
            let risks = with(&send.risks, risk);
            let refused =
                Reserve::Refused(Box::new(self.blocked(send, &risks, risk, 0, retry_after)));
            Ok((refused, tallies.clone()))
        };
        let reserved = match reservation {
            Reservation::Reserved(r) => r,
            Reservation::Blocked => return refuse(Risk::PhoneNumberInBlocklist, None),
            Reservation::Duplicate => return refuse(Risk::DuplicatedPhoneNumber, None),
            Reservation::Declined { retry_after_ms } => {
                return refuse(
                    Risk::VerificationCodeAttemptsExceeded,
                    Some(secs_ceil(retry_after_ms)),
                );
            }
            Reservation::Throttled {
                retry_after_ms,
                cooldown,
            } => {
                let throttled = Reserve::Throttled(Error::RateLimited {
                    retry_after_secs: secs_ceil(retry_after_ms),
                    cooldown,
                });
                return Ok((throttled, tallies));
            }
        };
        if is_duplicate(
            reserved.verified_for.as_deref(),
            send.req.vendor_data.as_deref(),
        ) {
            send.risks = with(&send.risks, Risk::DuplicatedPhoneNumber);
        }
        let message = OutboundMessage {
            to: send.info.e164.clone(),
            country: send.info.region.clone(),
            channel: first.channel,
            code,
            brand: send.wf.brand.clone(),
            locale: send.locale.to_owned(),
            validity: Duration::from_millis((reserved.expires_at - now).max(0) as u64),
            reference: reserved.verification_id.clone(),
            webotp_host: send.req.options.webotp_host.clone(),
        };
        Ok((Reserve::Granted(Box::new((reserved, message))), tallies))
    }

    /// Stage 6b: a first send opens its verification's record before any provider is called,
    /// so the verification an answer names is never missing; when the store cannot write it,
    /// nothing is sent and the reservation is given back.
    async fn open(&self, send: &Send<'_>, reserved: &Reserved) -> Result<(), Error> {
        if reserved.joined {
            return Ok(());
        }
        let opened = self
            .open_record(
                &send.key,
                send.req,
                &reserved.verification_id,
                send.wf.limits.record_ttl_secs,
            )
            .await;
        if let Err(e) = opened {
            if let Err(e) = self.inner.store.release_send(&send.key, reserved).await {
                tracing::warn!(request_id = %send.request_id, "reservation not given back: {e}");
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Stage 7: each route of the plan in turn, through the sandbox for its test numbers.
    async fn dispatch_send(
        &self,
        send: &Send<'_>,
        plan: &[Route],
        message: &OutboundMessage,
    ) -> DispatchReport {
        routing::dispatch(
            plan,
            message,
            &self.inner.dispatch,
            |route: &Route| match &send.sandbox {
                Some(s) => Some(s.clone() as Arc<dyn DynProvider>),
                None => self.inner.providers.get(&*route.provider).cloned(),
            },
        )
        .await
    }

    /// Stage 8: record the route that carried the code; otherwise decide what the failure
    /// costs. A reservation is given back only when no provider can have accepted the message.
    async fn settle(
        &self,
        send: &Send<'_>,
        plan: &[Route],
        first: &Route,
        reserved: &Reserved,
        report: DispatchReport,
    ) -> Result<SendOutcome, Error> {
        let (route, provider, delivery) = match report.result {
            Dispatched::Delivered {
                route,
                provider,
                delivery,
            } => (route, provider, delivery),
            Dispatched::Fraud(err) => {
                // The provider's own pumping protection: a refusal, never a reason to try
                // another provider. The code may be live nowhere, but the send keeps its place
                // in the window so a pumper cannot retry for free.
                tracing::warn!(request_id = %send.request_id, provider = %err.provider, code = ?err.code, "send refused by the provider's fraud protection");
                if let Some(subjects) = &send.subjects {
                    // The same counters: the prefix is blocked as if it had tripped a rule.
                    if let Err(e) = fraud::record_provider_block(
                        &self.inner.store,
                        self.now(),
                        send.app,
                        &send.fraud,
                        subjects,
                    )
                    .await
                    {
                        tracing::warn!(request_id = %send.request_id, "provider fraud block not recorded: {e}");
                    }
                }
                let risks = with(&send.risks, Risk::HighRiskPhoneNumber);
                let mut outcome = self.blocked(
                    send,
                    &risks,
                    Risk::HighRiskPhoneNumber,
                    reserved.resends_left,
                    None,
                );
                outcome.attempts = report.attempts;
                outcome.verification_id = Some(reserved.verification_id.clone());
                return Ok(outcome);
            }
            failed => {
                return self
                    .settle_failure(
                        send,
                        reserved,
                        failed,
                        report.attempts,
                        report.possibly_delivered,
                    )
                    .await;
            }
        };
        self.record_delivery(
            &send.key,
            RecordDelivery {
                verification_id: &reserved.verification_id,
                seq: reserved.seq,
                channel: Some(route.channel),
                confirm: Some((&provider, &delivery.provider_message_id)),
                route: (route != *first)
                    .then(|| CodeRoute::encode(route.channel, &provider, reserved.reserved_at))
                    .as_deref(),
            },
            first.channel,
        )
        .await?;
        let follow_up = send
            .sandbox
            .is_none()
            .then(|| self.follow_up(plan, &route, &provider, &delivery.provider_message_id))
            .flatten();
        if let Some(next_route) = follow_up {
            self.remember_delivery(
                DeliveryRef {
                    app: send.app.to_owned(),
                    e164: send.info.e164.clone(),
                    verification_id: reserved.verification_id.clone(),
                    seq: reserved.seq,
                    channel: route.channel,
                    next_route,
                    pinned: send.req.channel,
                    preferred: send.req.options.preferred_channel,
                    locale: send.locale.to_owned(),
                    code_len: send.code_len,
                },
                &provider,
                &delivery.provider_message_id,
                reserved.expires_at,
            );
        }
        if send.subjects.is_some() {
            self.record_spend(send, route.price).await;
        }
        tracing::info!(request_id = %send.request_id, channel = %route.channel, %provider, price = route.price, joined = reserved.joined, "code sent");
        let mut phone = self.report(&send.info, &send.risks, send.wf);
        phone.verification_method = Some(route.channel);
        Ok(SendOutcome {
            request_id: send.request_id.clone(),
            verification_id: Some(reserved.verification_id.clone()),
            vendor_data: None,
            metadata: None,
            status: if reserved.joined {
                SendStatus::Retry
            } else {
                SendStatus::Success
            },
            reason: None,
            channel: Some(route.channel),
            delivered_by: Some(DeliveredRoute {
                channel: route.channel,
                provider,
                price: route.price,
                currency: self.inner.routes.currency().to_owned(),
                provider_message_id: delivery.provider_message_id,
            }),
            resends_left: reserved.resends_left,
            retry_after: None,
            expires_at: Some(reserved.expires_at),
            attempts: report.attempts,
            phone,
            fraud: None,
            routing: None,
            lookup: self.lookup_charge(send),
        })
    }

    /// No route delivered. When some attempt may have reached the user (a timeout, an
    /// unknown outcome), the send stays counted and its code stays valid: refunding it would
    /// hand a pumper free messages and erase the verification's failed checks. Otherwise the
    /// reservation is given back and the send costs nothing.
    async fn settle_failure(
        &self,
        send: &Send<'_>,
        reserved: &Reserved,
        failed: Dispatched,
        attempts: Vec<crate::report::AttemptRecord>,
        possibly_delivered: bool,
    ) -> Result<SendOutcome, Error> {
        let resends_left = if possibly_delivered {
            tracing::warn!(request_id = %send.request_id, "no provider confirmed the send, but one may have delivered it: the send stays counted");
            reserved.resends_left
        } else {
            self.inner.store.release_send(&send.key, reserved).await?;
            if !reserved.joined {
                // Its verification is gone and no answer names it: so is its record.
                if let Err(e) = self
                    .inner
                    .store
                    .discard_record(send.app, &reserved.verification_id)
                    .await
                {
                    tracing::warn!(request_id = %send.request_id, "record of an undone send not discarded: {e}");
                }
            }
            // The released send gives its place in the window back.
            let limits = send_limits(send.wf, send.sandbox.is_some());
            (reserved.resends_left + u32::from(!limits.exempt)).min(limits.max_resends)
        };
        // The verification stays when it was joined or the code may be out there.
        let kept =
            (reserved.joined || possibly_delivered).then(|| reserved.verification_id.clone());
        let provider_side = attempts.iter().all(|a| {
            matches!(
                a.class,
                Some(FailureClass::Transient | FailureClass::Config)
            )
        });
        match failed {
            Dispatched::Permanent(err) => {
                tracing::info!(request_id = %send.request_id, provider = %err.provider, code = ?err.code, "number refused by provider");
                let mut outcome =
                    self.undeliverable(send, "number_unreachable", resends_left, attempts);
                outcome.verification_id = kept;
                Ok(outcome)
            }
            _ if provider_side && !attempts.is_empty() => {
                tracing::warn!(request_id = %send.request_id, attempts = attempts.len(), "every provider failed on its side");
                Err(Error::ProviderUnavailable)
            }
            _ => {
                let reason = if attempts.is_empty() {
                    "no_route"
                } else {
                    "all_routes_failed"
                };
                let mut outcome = self.undeliverable(send, reason, resends_left, attempts);
                outcome.verification_id = kept;
                Ok(outcome)
            }
        }
    }

    fn blocked(
        &self,
        send: &Send<'_>,
        risks: &[Risk],
        reason: Risk,
        resends_left: u32,
        retry_after: Option<u64>,
    ) -> SendOutcome {
        let mut phone = self.report(&send.info, risks, send.wf);
        phone.status = VerificationStatus::Declined;
        SendOutcome {
            request_id: send.request_id.clone(),
            verification_id: None,
            vendor_data: None,
            metadata: None,
            status: SendStatus::Blocked,
            reason: Some(reason.as_str().to_owned()),
            channel: None,
            delivered_by: None,
            resends_left,
            retry_after,
            expires_at: None,
            attempts: Vec::new(),
            phone,
            fraud: None,
            routing: None,
            lookup: self.lookup_charge(send),
        }
    }

    fn undeliverable(
        &self,
        send: &Send<'_>,
        reason: &str,
        resends_left: u32,
        attempts: Vec<crate::report::AttemptRecord>,
    ) -> SendOutcome {
        SendOutcome {
            request_id: send.request_id.clone(),
            verification_id: None,
            vendor_data: None,
            metadata: None,
            status: SendStatus::Undeliverable,
            reason: Some(reason.to_owned()),
            channel: None,
            delivered_by: None,
            resends_left,
            retry_after: None,
            expires_at: None,
            attempts,
            phone: self.report(&send.info, &send.risks, send.wf),
            fraud: None,
            routing: None,
            lookup: self.lookup_charge(send),
        }
    }
}

impl Engine {
    /// What the fraud screen counts a send under (`None` with fraud off). An IP that does not
    /// parse is the caller's error.
    pub(super) fn subjects(
        &self,
        wf: &Workflow,
        info: &PhoneInfo,
        signals: &super::Signals,
    ) -> Result<Option<Subjects>, Error> {
        for (field, value, max) in [
            ("signals.device_id", &signals.device_id, 256),
            ("signals.user_agent", &signals.user_agent, 1024),
            ("signals.device_platform", &signals.device_platform, 64),
            ("signals.device_model", &signals.device_model, 128),
            ("signals.os_version", &signals.os_version, 64),
            ("signals.app_version", &signals.app_version, 64),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > max) {
                return Err(Error::InvalidRequest {
                    field,
                    message: format!("must be at most {max} bytes"),
                });
            }
        }
        let ip = match signals
            .ip
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(text) => {
                Some(
                    text.parse::<std::net::IpAddr>()
                        .map_err(|_| Error::InvalidRequest {
                            field: "signals.ip",
                            message: "must be an IPv4 or IPv6 address".into(),
                        })?,
                )
            }
        };
        if wf.fraud.mode == FraudMode::Off {
            return Ok(None);
        }
        Ok(Some(Subjects {
            prefix: crate::outcomes::prefix_of(
                &info.e164,
                info.calling_code,
                wf.fraud.prefix_digits,
            ),
            country: info.region.clone(),
            carrier: info.carrier().map(str::to_owned),
            ip,
            device: signals
                .device_id
                .as_deref()
                .filter(|d| !d.is_empty())
                .map(crate::outcomes::device_of),
        }))
    }

    /// What this send's line lookup cost, for its answer.
    fn lookup_charge(&self, send: &Send<'_>) -> Option<crate::report::LookupCharge> {
        send.line
            .charged
            .as_ref()
            .map(|(provider, price)| crate::report::LookupCharge {
                provider: provider.clone(),
                price: *price,
                currency: self.inner.routes.currency().to_owned(),
            })
    }

    /// Counts what a delivered send cost, for the spend caps (through the recorder).
    async fn record_spend(&self, send: &Send<'_>, price: f64) {
        self.inner
            .recorder
            .record(
                self.now(),
                fraud::spend_counts(send.app, &send.fraud, price),
            )
            .await;
    }
}

/// What the reserve stage decided.
enum Reserve {
    /// The send may go out with this code.
    Granted(Box<(Reserved, OutboundMessage)>),
    /// Refused with this answer (blocklist, duplicate, declined verification).
    Refused(Box<SendOutcome>),
    /// Over the resend limits.
    Throttled(Error),
}

/// The figure of a send geo permissions refuse.
fn geo_figure(send: &Send<'_>, route: &Route) -> Figure {
    Figure {
        rule: Rule::GeoDenied,
        key: format!(
            "geo:{}:{}",
            route.channel,
            send.info.region.as_deref().unwrap_or("")
        ),
        count: 1.0,
        budget: 0.0,
        window_secs: 0,
        approvals: 0,
        blocked_until: None,
    }
}

fn send_limits(wf: &Workflow, sandbox: bool) -> SendLimits {
    let l = &wf.limits;
    SendLimits {
        validity_ms: secs_ms(l.validity_secs),
        max_resends: l.max_resends,
        window_ms: secs_ms(l.resend_window_secs),
        cooldown_ms: secs_ms(l.resend_cooldown_secs),
        exempt: sandbox,
    }
}
