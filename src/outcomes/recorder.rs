//! Buffered outcome writes: evidence that is only ever added up (approvals, spend, the route
//! ledger's attempts, receipts and approval times) does not need to reach Redis on the request
//! path. Each instance adds it into a small in-process buffer, merged per counter key, and
//! writes the buffer with one store call `flush_ms` (default 100 ms) after the first new
//! evidence, so a
//! burst of approvals in one country costs one increment, not one script each. Other instances
//! see it at most `flush_ms` later. With the memory store there is nothing to share and the
//! write is immediate.
//!
//! The fraud screen's own send counts are not buffered: a budget must be exact at the moment
//! of the send, across instances.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::Millis;
use crate::store::{Count, CounterKey, Field, Store, Window};

/// The most keys written by one store call.
const CHUNK: usize = 64;
/// Keys held before a write is forced, whatever the time.
const MAX_PENDING: usize = 4096;

#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    flush_ms: u64,
    pending: Mutex<HashMap<CounterKey, (Window, [i64; Field::COUNT])>>,
    /// A write is scheduled.
    scheduled: AtomicBool,
}

impl Recorder {
    pub fn new(store: Store, flush_ms: u64) -> Self {
        Recorder {
            inner: Arc::new(Inner {
                store,
                flush_ms,
                pending: Mutex::new(HashMap::new()),
                scheduled: AtomicBool::new(false),
            }),
        }
    }

    /// Adds `counts` to the counters: at once with the memory store or with `flush_ms = 0`;
    /// otherwise into the buffer, which a task spawned by the first addition writes `flush_ms`
    /// later (or sooner when it holds too many keys). Must be called inside a Tokio runtime.
    pub async fn record(&self, now: Millis, counts: Vec<Count>) {
        if counts.is_empty() {
            return;
        }
        if let Store::Memory(m) = &self.inner.store {
            for c in &counts {
                m.counters().count(now, c);
            }
            return;
        }
        if self.inner.flush_ms == 0 {
            if let Err(e) = self.inner.store.count(now, &counts).await {
                tracing::warn!(keys = counts.len(), "outcome counters not written: {e}");
            }
            return;
        }
        let full = {
            let mut pending = self.inner.pending.lock();
            for c in counts {
                let (_, sums) = pending
                    .entry(c.key)
                    .or_insert((c.window, [0; Field::COUNT]));
                for (field, by) in c.add {
                    sums[field as usize] += by;
                }
            }
            pending.len() >= MAX_PENDING
        };
        if !self.inner.scheduled.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            let wait = if full { 0 } else { self.inner.flush_ms };
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                // Whatever arrives from here on schedules the next write.
                this.inner.scheduled.store(false, Ordering::Release);
                this.flush(now + wait as i64).await;
            });
        }
    }

    /// Writes everything buffered (graceful shutdown calls this). A failed write is logged and
    /// its evidence dropped: it only ever informs decisions, never a user's verification.
    pub async fn flush(&self, now: Millis) {
        let drained: Vec<Count> = self
            .inner
            .pending
            .lock()
            .drain()
            .map(|(key, (window, sums))| Count {
                key,
                window,
                add: Field::ALL
                    .iter()
                    .filter(|f| sums[**f as usize] != 0)
                    .map(|f| (*f, sums[*f as usize]))
                    .collect(),
            })
            .collect();
        for chunk in drained.chunks(CHUNK) {
            if let Err(e) = self.inner.store.count(now, chunk).await {
                tracing::warn!(keys = chunk.len(), "outcome counters not written: {e}");
            }
        }
    }
}
