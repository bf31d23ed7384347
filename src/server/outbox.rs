//! The durable webhook outbox of the Redis store: events wait in a Redis Stream that one
//! consumer group, shared by every sidecar, reads. Delivery is at-least-once:
//!
//! - each event is appended once per destination that takes it (`XADD`, trimmed to about
//!   `max_len`), a few milliseconds after it happened, off the request path;
//! - a sidecar reads new entries (`XREADGROUP`), delivers each with retries and backoff, and
//!   removes it (`XACK` + `XDEL`) only once the destination accepted it: a sidecar killed in
//!   between leaves the entry pending, and another sidecar (or the restarted one) takes it over
//!   (`XAUTOCLAIM`) once nobody touched it for `reclaim_idle_ms`. A live sidecar touches the
//!   entries it holds every third of that time, so none is taken from it while it retries;
//! - after `max_attempts` failed attempts the entry moves to the dead-letter stream (with its
//!   last error) in one step;
//! - `/metrics` shows the stream's length, its oldest entry's age and the dead letters.
//!
//! Receivers deduplicate by `event_id`: an entry taken over after a crash may be delivered again.
//! The body is the event serialised whole, as the in-process queue sends it.
//!
//! Keys (under `store.key_prefix` `P`, one hash tag so the scripts stay on one cluster slot):
//! `P:{outbox}:<webhooks.stream>`, `P:{outbox}:<webhooks.dead_letter_stream>`.

use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamAutoClaimReply, StreamId, StreamInfoConsumersReply, StreamReadReply};
use redis::{Script, Value};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::destinations::Destinations;
use super::metrics::Metrics;
use super::webhooks::{LazyBody, deliver_with_retries, takes};
use crate::config::WebhooksConfig;
use crate::events::Event;
use crate::store::{RedisStore, StoreError};

/// Entries read or appended per call.
const BATCH: usize = 64;
/// How often an idle sidecar looks for entries appended by others.
const POLL: Duration = Duration::from_millis(500);
/// How often the queue gauges are refreshed.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// `XACK` + `XDEL` of a delivered entry, or its move to the dead-letter stream, in one step.
/// KEYS: 1 stream, 2 dead-letter stream; ARGV: 1 group, 2 id, 3 max_len, then (dead letters
/// only) field, value pairs.
const FINISH: &str = r"
if #ARGV > 3 then
  local fields = {}
  for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
";

/// Removes consumer ARGV[2] of group ARGV[1] when it holds no entry and has been idle longer
/// than ARGV[3] ms, in one step (so it cannot take an entry in between). KEYS: 1 stream.
const FORGET: &str = r"
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return 0
end
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if name == ARGV[2] and idle and idle > tonumber(ARGV[3]) then
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  end
end
return 0
";

struct Outbox {
    store: RedisStore,
    destinations: Arc<Destinations>,
    config: WebhooksConfig,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    stream: String,
    dead: String,
    /// This sidecar's name in the group: unique per process, so a restarted sidecar is a new
    /// consumer and takes over the old one's entries by idle time.
    consumer: String,
    finish: Script,
    forget: Script,
    /// Wakes the reader when this sidecar appended.
    appended: Notify,
}

/// Starts the appender, the reader and the gauges; returns their tasks.
pub(super) fn start(
    rx: mpsc::Receiver<Event>,
    config: WebhooksConfig,
    destinations: Arc<Destinations>,
    store: RedisStore,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
) -> Vec<JoinHandle<()>> {
    let key = |name: &str| format!("{}:{{outbox}}:{name}", store.prefix());
    let outbox = Arc::new(Outbox {
        stream: key(&config.stream),
        dead: key(&config.dead_letter_stream),
        consumer: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
        finish: Script::new(FINISH),
        forget: Script::new(FORGET),
        appended: Notify::new(),
        destinations,
        store,
        config,
        client,
        metrics,
    });
    vec![
        tokio::spawn(append(rx, outbox.clone())),
        tokio::spawn(read(outbox.clone())),
        tokio::spawn(gauges(outbox)),
    ]
}

/// Appends queued events to the stream, in batches, retrying while Redis is unreachable (the
/// bounded queue in front of it then fills and drops, counted).
async fn append(mut rx: mpsc::Receiver<Event>, outbox: Arc<Outbox>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let mut n = 0;
        let dests = outbox.destinations.current().await;
        for event in batch.drain(..) {
            let mut body = LazyBody::new(&event);
            for (index, dest) in dests.iter().enumerate() {
                if !takes(dest, &event) {
                    continue;
                }
                let Some(body) = body.get() else { break };
                pipe.cmd("XADD")
                    .arg(&outbox.stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(outbox.config.max_len)
                    .arg("*")
                    .arg("event")
                    .arg(event.event.as_str())
                    .arg("dest")
                    .arg(dest.id.clone().unwrap_or_else(|| index.to_string()))
                    .arg("url")
                    .arg(&dest.url)
                    .arg("body")
                    .arg(body.as_str())
                    .ignore();
                n += 1;
            }
        }
        if n == 0 {
            continue;
        }
        let mut pause = Duration::from_millis(100);
        while let Err(e) = outbox.store.pipeline::<()>(&pipe).await {
            tracing::warn!(error = %e, "webhook outbox: append failed; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
        outbox.appended.notify_one();
    }
}

/// Creates the consumer group (reading the stream from its start) unless it exists.
async fn ensure_group(outbox: &Outbox) -> Result<(), StoreError> {
    let created = outbox
        .store
        .command::<()>(
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&outbox.stream)
                .arg(&outbox.config.consumer_group)
                .arg("0")
                .arg("MKSTREAM"),
        )
        .await;
    match created {
        Err(StoreError::Unavailable(e)) if !e.contains("BUSYGROUP") => {
            Err(StoreError::Unavailable(e))
        }
        _ => Ok(()),
    }
}

/// Takes entries (abandoned ones first, then new ones) as delivery slots free up, and hands
/// each to its own delivery task.
async fn read(outbox: Arc<Outbox>) {
    let slots = Arc::new(Semaphore::new(outbox.config.max_in_flight));
    let reclaim_every = Duration::from_millis(outbox.config.reclaim_idle_ms / 3);
    let mut last_reclaim: Option<tokio::time::Instant> = None;
    let mut cursor = "0-0".to_owned();
    let mut group_ready = false;
    loop {
        if !group_ready {
            match ensure_group(&outbox).await {
                Ok(()) => group_ready = true,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox: cannot create the consumer group");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            }
        }
        // At least one free slot before anything is taken.
        let Ok(first) = slots.clone().acquire_owned().await else {
            return;
        };
        let free = slots.available_permits() + 1;
        drop(first);
        let mut taken = Vec::new();
        if last_reclaim.is_none_or(|t| t.elapsed() >= reclaim_every) {
            match reclaim(&outbox, &cursor, free).await {
                Ok(reply) => {
                    // A full pass over the pending entries ends at cursor 0-0.
                    cursor = reply.next_stream_id;
                    if cursor == "0-0" {
                        last_reclaim = Some(tokio::time::Instant::now());
                        forget_dead_consumers(&outbox).await;
                    }
                    taken.extend(reply.claimed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox: reclaim failed");
                    group_ready = !e.to_string().contains("NOGROUP");
                    last_reclaim = Some(tokio::time::Instant::now());
                }
            }
        }
        let room = free.saturating_sub(taken.len());
        if room > 0 {
            match read_new(&outbox, room).await {
                Ok(entries) => taken.extend(entries),
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox: read failed");
                    group_ready = !e.to_string().contains("NOGROUP");
                }
            }
        }
        if taken.is_empty() {
            tokio::select! {
                () = outbox.appended.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
            continue;
        }
        for entry in taken {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            tokio::spawn(deliver(outbox.clone(), entry, slot));
        }
    }
}

async fn reclaim(
    outbox: &Outbox,
    cursor: &str,
    count: usize,
) -> Result<StreamAutoClaimReply, StoreError> {
    outbox
        .store
        .command(
            redis::cmd("XAUTOCLAIM")
                .arg(&outbox.stream)
                .arg(&outbox.config.consumer_group)
                .arg(&outbox.consumer)
                .arg(outbox.config.reclaim_idle_ms)
                .arg(cursor)
                .arg("COUNT")
                .arg(count),
        )
        .await
}

/// Removes the group's consumers that hold nothing and have not read anything for ten reclaim
/// times: mostly sidecars that stopped (each process joins under a new name). A live but quiet
/// sidecar may be removed too: harmless, as it holds nothing and its next read joins again.
async fn forget_dead_consumers(outbox: &Outbox) {
    let Ok(info) = outbox
        .store
        .command::<StreamInfoConsumersReply>(
            redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&outbox.stream)
                .arg(&outbox.config.consumer_group),
        )
        .await
    else {
        return;
    };
    let silent = outbox.config.reclaim_idle_ms.saturating_mul(10);
    for c in info.consumers {
        if c.name != outbox.consumer && c.pending == 0 && c.idle as u64 > silent {
            let mut forget = outbox.forget.prepare_invoke();
            forget
                .key(&outbox.stream)
                .arg(&outbox.config.consumer_group)
                .arg(&c.name)
                .arg(silent);
            let _ = outbox.store.script::<Value>(&forget).await;
        }
    }
}

async fn read_new(outbox: &Outbox, count: usize) -> Result<Vec<StreamId>, StoreError> {
    let reply: Option<StreamReadReply> = outbox
        .store
        .command(
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&outbox.config.consumer_group)
                .arg(&outbox.consumer)
                .arg("COUNT")
                .arg(count)
                .arg("STREAMS")
                .arg(&outbox.stream)
                .arg(">"),
        )
        .await?;
    Ok(reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .collect())
}

fn text(entry: &StreamId, field: &str) -> String {
    entry.get::<String>(field).unwrap_or_default()
}

/// Delivers one entry with its retries while keeping it claimed, then removes it or moves it
/// to the dead letters.
async fn deliver(outbox: Arc<Outbox>, entry: StreamId, _slot: OwnedSemaphorePermit) {
    let dest_field = text(&entry, "dest");
    let url = text(&entry, "url");
    let event = text(&entry, "event");
    let body = text(&entry, "body");
    // The destination the entry was made for: an API one by its id; a configured one by
    // position and URL, or by URL alone when the configuration's order changed since.
    let dests = outbox.destinations.current().await;
    let dest = match dest_field.parse::<usize>() {
        Err(_) => dests
            .iter()
            .find(|d| d.id.as_deref() == Some(dest_field.as_str())),
        Ok(index) => dests
            .get(index)
            .filter(|d| d.id.is_none() && d.url == url)
            .or_else(|| dests.iter().find(|d| d.id.is_none() && d.url == url)),
    };
    let outcome = match dest {
        None => Err("destination no longer configured".to_owned()),
        Some(_) if body.is_empty() => Err("entry without a body".to_owned()),
        Some(dest) => {
            let work = deliver_with_retries(
                &outbox.client,
                dest,
                &body,
                &event,
                &outbox.config,
                &outbox.metrics,
            );
            tokio::select! {
                r = work => r,
                never = keep_claimed(&outbox, &entry.id) => match never {},
            }
        }
    };
    let mut finish = outbox.finish.prepare_invoke();
    finish
        .key(&outbox.stream)
        .key(&outbox.dead)
        .arg(&outbox.config.consumer_group)
        .arg(&entry.id)
        .arg(outbox.config.max_len);
    if let Err(error) = &outcome {
        outbox.metrics.webhook("failed");
        tracing::warn!(event, %error, "webhook moved to the dead letters after every attempt");
        finish
            .arg("event")
            .arg(&event)
            .arg("url")
            .arg(&url)
            .arg("body")
            .arg(&body)
            .arg("error")
            .arg(error)
            .arg("attempts")
            .arg(outbox.config.max_attempts)
            .arg("id")
            .arg(&entry.id);
    }
    // Should this fail, the entry is taken over later and delivered again (at-least-once).
    if let Err(e) = outbox.store.script::<Value>(&finish).await {
        tracing::warn!(error = %e, "webhook outbox: could not remove a finished entry");
    }
}

/// Renews this sidecar's claim on `id` every third of the reclaim time, so that no other
/// sidecar takes it over while it is being delivered. Never returns.
async fn keep_claimed(outbox: &Outbox, id: &str) -> std::convert::Infallible {
    let every = Duration::from_millis(outbox.config.reclaim_idle_ms / 3);
    loop {
        tokio::time::sleep(every).await;
        let _ = outbox
            .store
            .command::<Value>(
                redis::cmd("XCLAIM")
                    .arg(&outbox.stream)
                    .arg(&outbox.config.consumer_group)
                    .arg(&outbox.consumer)
                    .arg(0)
                    .arg(id)
                    .arg("JUSTID"),
            )
            .await;
    }
}

/// Refreshes the queue gauges: the stream's length, its oldest entry's age (by Redis's clock,
/// which stamped it) and the dead letters.
async fn gauges(outbox: Arc<Outbox>) {
    loop {
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN")
            .arg(&outbox.stream)
            .cmd("XRANGE")
            .arg(&outbox.stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .cmd("XLEN")
            .arg(&outbox.dead)
            .cmd("TIME");
        type Reply = (u64, Vec<(String, Value)>, u64, (String, String));
        match outbox.store.pipeline::<Vec<Value>>(&pipe).await {
            Ok(values) => {
                if let Ok((depth, oldest, dead, (secs, micros))) =
                    redis::from_redis_value::<Reply>(Value::Array(values))
                {
                    let now_ms = secs.parse::<f64>().unwrap_or(0.0) * 1000.0
                        + micros.parse::<f64>().unwrap_or(0.0) / 1000.0;
                    let age = oldest
                        .first()
                        .and_then(|(id, _)| id.split('-').next()?.parse::<f64>().ok())
                        .map_or(0.0, |ms| ((now_ms - ms) / 1000.0).max(0.0));
                    outbox.metrics.webhook_queue(depth, age, dead);
                }
            }
            Err(e) => tracing::debug!(error = %e, "webhook outbox: gauges not refreshed"),
        }
        tokio::time::sleep(GAUGES_EVERY).await;
    }
}
