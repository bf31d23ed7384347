//! Idempotent sends. A send carrying an idempotency key runs once per application and key:
//! the first request claims the key in the store (one atomic step), sends, and stores its
//! answer for 24 hours; a repeat with the same body gets that answer and sends nothing; a
//! repeat with another body is refused; a repeat that arrives while the first still runs waits
//! for its answer. A failed first request (an error, not a `Blocked` or `Undeliverable`
//! answer) frees the key, so that a retry runs again. A claim is held for a lease at most, so
//! a crashed instance cannot hold a key forever.

use std::time::{Duration, Instant};

use super::{Engine, SendRequest};
use crate::error::Error;
use crate::report::SendOutcome;
use crate::store::{Claim, NumberKey};

/// How long a stored answer is replayed.
const ANSWER_TTL_MS: i64 = 24 * 3600 * 1000;
/// How long a claim outlives a request that never finishes (a crashed instance).
const LEASE_MS: i64 = 120_000;
/// How long a repeat waits for the first request's answer before giving up.
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);
/// Longest key accepted.
const MAX_KEY: usize = 255;

/// The idempotency key of a send and what identifies its request.
#[derive(Clone, Debug)]
pub struct SendKey<'a> {
    /// The API the answer is stored for (`http`, `grpc`): each replays its own wire form.
    pub scope: &'a str,
    /// The caller's key: 1 to 255 visible ASCII characters.
    pub key: &'a str,
    /// A digest of the request body; the same key with another fingerprint is refused.
    pub fingerprint: String,
}

/// What an idempotent send answered.
#[derive(Debug)]
pub enum IdempotentSend {
    /// This request ran the send; `answer` is what repeats will get.
    Fresh {
        outcome: Box<SendOutcome>,
        answer: String,
    },
    /// An earlier request with the same key and body ran it: its stored answer.
    Replayed(String),
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidRequest {
            field: "Idempotency-Key",
            message: format!("must be 1 to {MAX_KEY} visible ASCII characters"),
        });
    }
    Ok(())
}

impl Engine {
    /// [`Engine::send`] at most once per application and key (module docs). `encode` turns
    /// the outcome into the answer stored for repeats.
    pub async fn send_once(
        &self,
        req: SendRequest,
        key: SendKey<'_>,
        encode: impl FnOnce(&SendOutcome) -> String,
    ) -> Result<IdempotentSend, Error> {
        check_key(key.key)?;
        let (app, _) = self.workflow(req.app.as_deref())?;
        let app = app.to_owned();
        let slot = format!("{}:{}", key.scope, key.key);
        let store = &self.inner.store;
        let deadline = Instant::now() + WAIT;
        loop {
            match store
                .claim_idempotency(&app, &slot, &key.fingerprint, self.now(), LEASE_MS)
                .await?
            {
                Claim::Claimed => break,
                Claim::Done(answer) => return Ok(IdempotentSend::Replayed(answer)),
                Claim::Mismatch => return Err(Error::IdempotencyKeyReused),
                Claim::Pending if Instant::now() >= deadline => {
                    return Err(Error::IdempotencyKeyInProgress);
                }
                Claim::Pending => tokio::time::sleep(POLL).await,
            }
        }
        let outcome = match self.send(req).await {
            Ok(outcome) => outcome,
            Err(e) => {
                if let Err(release) = store.abandon_idempotency(&app, &slot).await {
                    tracing::warn!("idempotency key not released: {release}");
                }
                return Err(e);
            }
        };
        let answer = encode(&outcome);
        let number = NumberKey::new(app.as_str(), outcome.phone.full_number.clone());
        if let Err(e) = store
            .complete_idempotency(
                &app,
                &slot,
                Some(&number),
                &answer,
                self.now(),
                ANSWER_TTL_MS,
            )
            .await
        {
            tracing::warn!(request_id = %outcome.request_id, "idempotent answer not stored: {e}");
        }
        Ok(IdempotentSend::Fresh {
            outcome: Box::new(outcome),
            answer,
        })
    }
}
