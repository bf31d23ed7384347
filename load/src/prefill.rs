//! Pre-fills Redis with the verification state of many distinct numbers, through the real store:
//! `Store::reserve_send` (the same Lua script, keys, TTLs and key prefix the sidecar uses), many
//! calls in flight on one multiplexed connection, so they are pipelined. Each number gets what a
//! real first send leaves: a pending verification (hash with the code digest) and its entry in
//! the rolling resend window (sorted set). The digests are random bytes: nothing is hashed and
//! nothing is sent, which is what makes 1,000,000 numbers take seconds instead of minutes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use switchboard::code::CodeDigest;
use switchboard::providers::Channel;
use switchboard::store::{
    NumberKey, RedisSettings, RedisStore, Reservation, ReserveSend, SendLimits, Store,
};

use crate::numbers::prefill_number;

pub struct Prefilled {
    pub numbers: usize,
    pub elapsed: Duration,
}

/// Reserves a first send for `count` numbers of the pre-fill range, `in_flight` at a time.
/// The verifications stay valid for `validity` (the run must not outlive them).
pub async fn prefill(
    url: &str,
    key_prefix: &str,
    count: usize,
    in_flight: usize,
    validity: Duration,
) -> anyhow::Result<Prefilled> {
    let store = Store::Redis(
        RedisStore::new(&RedisSettings {
            url: url.to_owned(),
            key_prefix: key_prefix.to_owned(),
            command_timeout: Duration::from_secs(10),
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let limits = SendLimits {
        validity_ms: validity.as_millis() as i64,
        max_resends: 2,
        window_ms: 86_400_000,
        cooldown_ms: 0,
        exempt: false,
    };
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let store = store.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let key = NumberKey::new("default", prefill_number(i));
                    let mut digest = [0u8; 32];
                    rand::fill(&mut digest);
                    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
                    let r = store
                        .reserve_send(
                            &key,
                            ReserveSend {
                                route: "sms\tconsole\t0",
                                now,
                                digest: CodeDigest::from_bytes(digest),
                                channel: Channel::Sms,
                                vendor_data: None,
                                refuse_duplicate: false,
                                limits,
                                ids_ttl_ms: 86_400_000,
                            },
                        )
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))
                        .context("pre-fill reserve_send")?;
                    if !matches!(r, Reservation::Reserved(_)) {
                        bail!("pre-fill of {} was refused: {r:?}", key.e164);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(Prefilled {
        numbers: count,
        elapsed: started.elapsed(),
    })
}
