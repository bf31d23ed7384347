//! Expiry: a verification whose validity ends while it is still pending ends `Expired` (at
//! least one code was checked against it) or `Abandoned` (none was), and the engine emits
//! `verification.expired` / `verification.abandoned` once for it.
//!
//! Ends are found by sweeping, not by key-expiry notifications (which Redis may drop): the
//! Redis store keeps a deadline index (a sorted set scored by each verification's end) that
//! every instance sweeps; each due entry is leased to one sweeper at a time and decided by one
//! script on its number's slot, so each end is announced once however many instances sweep.
//! The sidecar runs a sweeper; a library user calls [`Engine::sweep_expired`] on a timer or
//! starts one with [`Engine::spawn_expiry_sweeper`].

use std::time::Duration;

use super::Engine;
use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::report::VerificationStatus;
use crate::store::{EndedVerification, LifecycleEntry, LifecycleEvent, RecordUpdate};

/// Verifications taken per store call.
const SWEEP_BATCH: usize = 256;

/// A background sweeper; stops when dropped.
#[derive(Debug)]
pub struct ExpirySweeper(tokio::task::JoinHandle<()>);

impl Drop for ExpirySweeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    /// Ends every verification whose validity is over while it is still pending and emits its
    /// `verification.expired` or `verification.abandoned` event, and ends the hosted sessions
    /// that expired before starting a verification (`session.expired`). Returns how many ended.
    /// Safe to call from any number of instances at once: each end is announced once.
    pub async fn sweep_expired(&self) -> Result<usize, Error> {
        let now = self.now();
        let mut total = 0;
        loop {
            let swept = self.inner.store.sweep_ended(now, SWEEP_BATCH).await?;
            total += swept.ended.len();
            for ended in &swept.ended {
                self.announce_end(ended).await;
            }
            if !swept.more {
                return Ok(total + self.sweep_sessions().await?);
            }
        }
    }

    /// Runs [`Engine::sweep_expired`] every `every` on the current tokio runtime until the
    /// returned handle is dropped. A failed sweep (store unavailable) is logged and retried at
    /// the next tick; nothing it would have announced is lost.
    pub fn spawn_expiry_sweeper(&self, every: Duration) -> ExpirySweeper {
        let engine = self.clone();
        ExpirySweeper(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = engine.sweep_expired().await {
                    tracing::warn!(error = %e, "expiry sweep failed; retrying at the next tick");
                }
            }
        }))
    }

    /// Ends the verification's record (its status and a lifecycle entry) and emits the event,
    /// with the record's `vendor_data` and `metadata` when it still has a record. A record
    /// that cannot be written is logged: the event still goes out.
    async fn announce_end(&self, ended: &EndedVerification) {
        let (kind, status, lifecycle) = if ended.abandoned() {
            (
                EventKind::Abandoned,
                VerificationStatus::Abandoned,
                LifecycleEvent::Abandoned,
            )
        } else {
            (
                EventKind::Expired,
                VerificationStatus::Expired,
                LifecycleEvent::Expired,
            )
        };
        let entry = LifecycleEntry::new(lifecycle, ended.expires_at);
        let update = RecordUpdate {
            now: self.now(),
            status: Some(status.as_str()),
            check: false,
            channel: None,
            entry: &entry,
        };
        let head = match self
            .inner
            .store
            .update_record(&ended.key.app, &ended.verification_id, update)
            .await
        {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(error = %e, "the end of a verification was not recorded");
                None
            }
        };
        let (vendor_data, metadata) = head
            .map(|h| {
                let metadata = h.metadata.and_then(|m| serde_json::from_str(&m).ok());
                (h.vendor_data, metadata)
            })
            .unwrap_or_default();
        self.publish(Event {
            verification_id: Some(ended.verification_id.clone()),
            vendor_data,
            metadata,
            event: kind,
            event_id: super::new_request_id(),
            created_at: crate::clock::iso8601(ended.expires_at),
            app: ended.key.app.clone(),
            request_id: String::new(),
            phone_number: ended.key.e164.clone(),
            status: Some(status),
            channel: ended.channel,
            provider: None,
            provider_message_id: None,
            delivery_status: None,
            reason: None,
            fraud: None,
            routing: None,
            session_id: None,
            session_status: None,
        });
    }
}
