//! The line-facts cache: what a lookup provider said about a number, kept for its TTL and
//! shared by every instance on one store, so a number is looked up at most once per TTL.
//!
//! Two entries per number — `line` (line type, carrier; TTL in days) and `sim` (SIM-swap
//! status; TTL in minutes) — and a short in-flight claim, `lookup`, taken with `SET NX PX`:
//! the instance that takes it asks the provider, the others wait for its answer. The keys
//! share the number's hash tag (`sb:{+14155552671}:line`), so a cluster keeps them on one
//! slot. Values are opaque to the store (the engine's JSON).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::redis::RedisStore;
use super::{Store, StoreError};
use crate::clock::Millis;

/// The cached entries of one number (`None`: absent or expired).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachedLine {
    pub line: Option<String>,
    pub sim: Option<String>,
}

/// What to write: each entry with its TTL in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct LineWrite<'a> {
    pub line: Option<(&'a str, Millis)>,
    pub sim: Option<(&'a str, Millis)>,
}

/// Entries kept by the memory store before expired ones are swept on write.
const MEMORY_SWEEP_AT: usize = 10_000;

/// A memory entry: (number, `line` | `sim` | `lookup`) -> (value, expiry).
type Entries = HashMap<(String, &'static str), (String, Millis)>;

/// The memory store's cache: values with their expiry, swept when it grows.
#[derive(Clone, Default)]
pub(super) struct MemoryLines {
    entries: Arc<Mutex<Entries>>,
}

impl MemoryLines {
    fn get(&self, e164: &str, now: Millis) -> CachedLine {
        let entries = self.entries.lock();
        let live = |kind: &'static str| {
            entries
                .get(&(e164.to_owned(), kind))
                .filter(|(_, until)| *until > now)
                .map(|(v, _)| v.clone())
        };
        CachedLine {
            line: live("line"),
            sim: live("sim"),
        }
    }

    fn claim(&self, e164: &str, now: Millis, hold_ms: Millis) -> bool {
        let mut entries = self.entries.lock();
        let key = (e164.to_owned(), "lookup");
        if entries.get(&key).is_some_and(|(_, until)| *until > now) {
            return false;
        }
        entries.insert(key, (String::new(), now + hold_ms));
        true
    }

    fn save(&self, e164: &str, now: Millis, write: LineWrite<'_>) {
        let mut entries = self.entries.lock();
        if entries.len() >= MEMORY_SWEEP_AT {
            entries.retain(|_, (_, until)| *until > now);
        }
        for (kind, value) in [("line", write.line), ("sim", write.sim)] {
            if let Some((v, ttl)) = value {
                entries.insert((e164.to_owned(), kind), (v.to_owned(), now + ttl));
            }
        }
        entries.remove(&(e164.to_owned(), "lookup"));
    }
}

impl RedisStore {
    fn line_key(&self, e164: &str, kind: &str) -> String {
        format!("{}:{{{e164}}}:{kind}", self.prefix())
    }

    async fn cached_line(&self, e164: &str) -> Result<CachedLine, StoreError> {
        let (line, sim): (Option<String>, Option<String>) = self
            .command(
                redis::cmd("MGET")
                    .arg(self.line_key(e164, "line"))
                    .arg(self.line_key(e164, "sim")),
            )
            .await?;
        Ok(CachedLine { line, sim })
    }

    async fn claim_lookup(&self, e164: &str, hold_ms: Millis) -> Result<bool, StoreError> {
        let set: Option<String> = self
            .command(
                redis::cmd("SET")
                    .arg(self.line_key(e164, "lookup"))
                    .arg("1")
                    .arg("NX")
                    .arg("PX")
                    .arg(hold_ms.max(1)),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn save_line(&self, e164: &str, write: LineWrite<'_>) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        for (kind, value) in [("line", write.line), ("sim", write.sim)] {
            if let Some((v, ttl)) = value {
                pipe.cmd("SET")
                    .arg(self.line_key(e164, kind))
                    .arg(v)
                    .arg("PX")
                    .arg(ttl.max(1))
                    .ignore();
            }
        }
        pipe.cmd("DEL").arg(self.line_key(e164, "lookup")).ignore();
        self.pipeline::<()>(&pipe).await
    }
}

impl Store {
    /// The cached line facts of `e164`.
    pub async fn cached_line(&self, e164: &str, now: Millis) -> Result<CachedLine, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.lines().get(e164, now)),
            Store::Redis(r) => r.cached_line(e164).await,
        }
    }

    /// Takes the in-flight claim of `e164` for `hold_ms` (`SET NX PX`): true when this caller
    /// should ask the provider, false when another instance already is.
    pub async fn claim_lookup(
        &self,
        e164: &str,
        now: Millis,
        hold_ms: Millis,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.lines().claim(e164, now, hold_ms)),
            Store::Redis(r) => r.claim_lookup(e164, hold_ms).await,
        }
    }

    /// Writes the answered entries with their TTLs and gives the claim back (also after a
    /// failed lookup, with nothing to write: the next caller may try again).
    pub async fn save_line(
        &self,
        e164: &str,
        now: Millis,
        write: LineWrite<'_>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.lines().save(e164, now, write);
                Ok(())
            }
            Store::Redis(r) => r.save_line(e164, write).await,
        }
    }
}
