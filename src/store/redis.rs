//! The Redis store: every operation is one Lua script, called by SHA (EVALSHA, reloaded on
//! NOSCRIPT). All keys of one number share the hash tag `{app:+E164}`, so each script touches
//! one Redis Cluster slot. Every key has a TTL except the blocklist (explicit admin data).
//!
//! Keys, under a configurable prefix `P`:
//! - `P:{app:+E164}:v`  verification (hash; TTL = its expiry)
//! - `P:{app:+E164}:sv` a concluded verification set aside by a send in flight (hash; TTL kept)
//! - `P:{app:+E164}:s`  send times in the rolling window (zset; TTL = window)
//! - `P:{app:+E164}:b`  blocklist flag (no TTL)
//! - `P:{app:+E164}:vf` vendor_data the number was approved for (TTL = verified_ttl)
//! - `P:{app}:blocklist` the application's blocklist, for listing (set; no TTL)
//! - `P:{oc:KEY}` one windowed outcome counter (hash of `field:bucket` counts and its block;
//!   TTL = its window, or its block when longer); each counter its own slot
//! - `P:{ocblocks:APP}` the application's blocked counters, for listing (zset by block end)
//! - `P:{fraud:APP}:safe` the application's runtime fraud safe list (set; no TTL, admin data)
//! - `P:{fraud:APP}:geo` its runtime geo permissions (JSON string; no TTL, admin data)
//! - `P:{app:+E164}:xn` verifications that ended pending and were replaced before the expiry
//!   sweep announced them (hash: id -> attempts, channel, end; TTL = [`ENDED_KEPT_MS`])
//! - `P:{expiry}:due` the deadline index: every opened verification (member `id\tapp\t+E164`,
//!   score = its end), swept by [`RedisStore::sweep_ended`]; one key, one slot
//! - `P:msg:PROVIDER:MESSAGE_ID` where a delivered message belongs, for its delivery receipt
//!   (JSON string; TTL = its verification's expiry; one key per message, any slot)
//! - `P:{vr:APP:ID}` a verification record (hash) and `P:{vr:APP:ID}:l` its lifecycle (list of
//!   JSON entries, bounded); TTL = `limits.record_ttl_secs` (module `records_redis`)
//! - `P:{app:+E164}:ids` the number's verification ids (zset by creation time) and
//!   `P:{app:+E164}:ik` the idempotency keys whose answers name it (set), for lookups by number
//!   and deletion; TTL = the longest record lifetime plus the validity of the newest
//!   verification (written by the reservation that opens it)
//! - `P:{idem:APP:SHA256(key)}` an idempotent send: body fingerprint and answer (hash; TTL =
//!   the claim's lease, then 24 h)
//!
//! Fail closed: every call is bounded by the command timeout and any failure becomes
//! [`StoreError::Unavailable`]. Connections are made lazily and re-made after failures, so
//! the engine starts while Redis is down and recovers by itself when it returns.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use tokio::sync::OnceCell;

use super::counters::{Count, CounterKey, Field, Tally};
use super::{
    CheckInput, CheckResult, CheckVerdict, DeclineReason, DeliveryRef, EndedVerification,
    Inspection, NumberKey, Redeliver, Redelivery, Reservation, ReserveSend, Reserved, StoreError,
    Swept, VerificationState, VerificationView,
};
use crate::clock::Millis;

/// Connection settings of the Redis store.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `redis://host:port[/db]` for one node; `redis+cluster://host1:port,host2:port,...` for a
    /// cluster (any reachable subset of the nodes).
    pub url: String,
    /// Prefix of every key; isolates tenants (and tests).
    pub key_prefix: String,
    /// Bound of every store call, connection included.
    pub command_timeout: Duration,
}

struct Scripts {
    reserve_send: Script,
    /// reserve_send and the fraud screen's counters in one call (single node).
    reserve_counted: Script,
    release_send: Script,
    record_channel: Script,
    redeliver: Script,
    check: Script,
    inspect: Script,
    counter: Script,
    counter_block: Script,
    counter_release: Script,
    claim_due: Script,
    end_verification: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            reserve_send: with_ended(&format!(
                "{}{}",
                include_str!("lua/live_codes.lua"),
                include_str!("lua/reserve_send.lua")
            )),
            release_send: Script::new(include_str!("lua/release_send.lua")),
            record_channel: Script::new(include_str!("lua/record_channel.lua")),
            redeliver: with_live_codes(include_str!("lua/redeliver.lua")),
            check: Script::new(include_str!("lua/check.lua")),
            inspect: Script::new(include_str!("lua/inspect.lua")),
            counter: Script::new(&format!(
                "{}{}",
                include_str!("lua/counter_fn.lua"),
                include_str!("lua/counter.lua")
            )),
            reserve_counted: with_ended(&format!(
                "{}{}local function reserve()\n{}\nend\nreturn {{reserve(), count_keys(9, 15)}}\n",
                include_str!("lua/live_codes.lua"),
                include_str!("lua/counter_fn.lua"),
                include_str!("lua/reserve_send.lua")
            )),
            counter_block: Script::new(include_str!("lua/counter_block.lua")),
            counter_release: Script::new(include_str!("lua/counter_release.lua")),
            claim_due: Script::new(include_str!("lua/claim_due.lua")),
            end_verification: Script::new(include_str!("lua/end_verification.lua")),
        }
    }
}

/// A script that adds codes, with the shared `add_code` function before it.
fn with_live_codes(body: &str) -> Script {
    Script::new(&format!("{}{body}", include_str!("lua/live_codes.lua")))
}

/// A script that may find a pending verification past its end, with `note_ended` before it.
fn with_ended(body: &str) -> Script {
    let ended = include_str!("lua/ended_fn.lua")
        .replace("__ENDED_KEPT_MS__", &super::ENDED_KEPT_MS.to_string());
    Script::new(&format!("{ended}{body}"))
}

/// A multiplexed connection to one node or to a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

enum Target {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

struct Inner {
    target: Target,
    conn: tokio::sync::RwLock<Arc<OnceCell<Conn>>>,
    scripts: Scripts,
    prefix: String,
    timeout: Duration,
}

/// State in Redis or Redis Cluster, shared by every engine instance that uses the same
/// server and prefix. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &matches!(self.inner.target, Target::Cluster(_)))
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Prepares a store; no connection is made until the first call.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let timeout = settings.command_timeout;
        let target = if let Some(rest) = settings.url.strip_prefix("redis+cluster://") {
            let nodes: Vec<String> = rest
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("redis://{n}"))
                .collect();
            if nodes.is_empty() {
                return Err(StoreError::Unavailable(
                    "store.url names no cluster node".into(),
                ));
            }
            let client = ClusterClient::builder(nodes)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("store.url: {e}")))?;
            Target::Cluster(Box::new(client))
        } else {
            let client = redis::Client::open(settings.url.as_str())
                .map_err(|e| StoreError::Unavailable(format!("store.url: {e}")))?;
            Target::Single(client)
        };
        Ok(RedisStore {
            inner: Arc::new(Inner {
                target,
                conn: tokio::sync::RwLock::new(Arc::new(OnceCell::new())),
                scripts: Scripts::new(),
                prefix: settings.key_prefix.clone(),
                timeout,
            }),
        })
    }

    async fn connect(&self) -> Result<Conn, StoreError> {
        match &self.inner.target {
            Target::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.inner.timeout))
                    .set_response_timeout(Some(self.inner.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(self.inner.timeout);
                client
                    .get_connection_manager_with_config(config)
                    .await
                    .map(Conn::Single)
                    .map_err(unavailable)
            }
            Target::Cluster(client) => client
                .get_async_connection()
                .await
                .map(Conn::Cluster)
                .map_err(unavailable),
        }
    }

    async fn conn(&self) -> Result<(Conn, Arc<OnceCell<Conn>>), StoreError> {
        let cell = self.inner.conn.read().await.clone();
        let conn = cell.get_or_try_init(|| self.connect()).await?.clone();
        Ok((conn, cell))
    }

    /// After a failure, the next call makes a fresh connection (unless another caller already did).
    async fn reset(&self, failed: &Arc<OnceCell<Conn>>) {
        let mut slot = self.inner.conn.write().await;
        if Arc::ptr_eq(&slot, failed) {
            *slot = Arc::new(OnceCell::new());
        }
    }

    /// Runs one request on the shared connection within the command timeout; fails closed.
    /// A connection-level failure drops the connection so the next call makes a fresh one.
    async fn bounded<T, F>(&self, request: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    {
        let attempt = async {
            let (mut conn, cell) = self.conn().await?;
            match request(&mut conn).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                        self.reset(&cell).await;
                    }
                    Err(unavailable(e))
                }
            }
        };
        match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable("state store timed out".into())),
        }
    }

    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.bounded(async |conn: &mut Conn| invocation.invoke_async::<T>(conn).await)
            .await
    }

    pub(super) async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.bounded(async |conn: &mut Conn| cmd.query_async::<T>(conn).await)
            .await
    }

    /// One command for another part of the crate (the webhook outbox), with the store's
    /// timeout, reconnection and failure mapping.
    pub(crate) async fn command<T: redis::FromRedisValue>(
        &self,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        self.query(cmd).await
    }

    /// Commands sent together in one round trip (see [`Self::command`]).
    pub(crate) async fn pipeline<T: redis::FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> Result<T, StoreError> {
        self.bounded(async |conn: &mut Conn| pipe.query_async::<T>(conn).await)
            .await
    }

    /// One script call (see [`Self::command`]).
    pub(crate) async fn script<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.run(invocation).await
    }

    /// The prefix of every key.
    pub(crate) fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub(super) fn key(&self, key: &NumberKey, suffix: &str) -> String {
        format!(
            "{}:{{{}:{}}}:{suffix}",
            self.inner.prefix, key.app, key.e164
        )
    }

    pub(super) fn blocklist_key(&self, app: &str) -> String {
        format!("{}:{{{app}}}:blocklist", self.inner.prefix)
    }

    fn reserve_invocation<'a>(
        &self,
        script: &'a Script,
        key: &NumberKey,
        input: &ReserveSend<'_>,
        new_id: &str,
    ) -> redis::ScriptInvocation<'a> {
        let l = input.limits;
        let mut inv = script.prepare_invoke();
        inv.key(self.key(key, "v"))
            .key(self.key(key, "sv"))
            .key(self.key(key, "s"))
            .key(self.key(key, "b"))
            .key(self.key(key, "vf"))
            .key(self.key(key, "xn"))
            .key(self.key(key, "ids"));
        // On one node the script indexes the verification it opens itself; on a cluster the
        // index lives on another slot and the caller adds the entry (`reserve_indexed`).
        let single = matches!(self.inner.target, Target::Single(_));
        if single {
            inv.key(self.due_key());
        }
        inv.arg(input.now)
            .arg(input.digest.to_hex())
            .arg(input.channel.as_str())
            .arg(input.vendor_data.unwrap_or(""))
            .arg(u8::from(input.refuse_duplicate))
            .arg(l.validity_ms)
            .arg(l.max_resends)
            .arg(l.window_ms)
            .arg(l.cooldown_ms)
            .arg(u8::from(l.exempt))
            .arg(new_id)
            .arg(input.route)
            .arg(if single {
                due_member(new_id, key)
            } else {
                String::new()
            })
            .arg(input.ids_ttl_ms.max(1));
        inv
    }

    pub(super) fn due_key(&self) -> String {
        format!("{}:{{expiry}}:due", self.inner.prefix)
    }

    /// Runs a reservation; on a cluster, together with the deadline-index entry of the
    /// verification it may open (the index is on another slot, so the script cannot add it):
    /// the entry goes first, so a verification is never opened without it and its end is always
    /// announced. An entry the script did not use (the send joined a pending verification, or
    /// was refused) is removed off the request path. On one node the script adds the entry.
    async fn reserve_indexed<T: redis::FromRedisValue>(
        &self,
        key: &NumberKey,
        input: &ReserveSend<'_>,
        new_id: &str,
        inv: &redis::ScriptInvocation<'_>,
        opened: impl FnOnce(&T) -> Result<bool, StoreError>,
    ) -> Result<T, StoreError> {
        if matches!(self.inner.target, Target::Single(_)) {
            return self.run(inv).await;
        }
        let member = due_member(new_id, key);
        let mut entry = redis::cmd("ZADD");
        entry
            .arg(self.due_key())
            .arg("NX")
            .arg(input.now + input.limits.validity_ms)
            .arg(&member);
        let ((), r) =
            futures::future::try_join(self.query::<()>(&entry), self.run::<T>(inv)).await?;
        if !opened(&r)? {
            let store = self.clone();
            tokio::spawn(async move {
                let _ = store
                    .query::<()>(redis::cmd("ZREM").arg(store.due_key()).arg(member))
                    .await;
            });
        }
        Ok(r)
    }

    pub(super) async fn reserve_send(
        &self,
        key: &NumberKey,
        input: ReserveSend<'_>,
    ) -> Result<Reservation, StoreError> {
        let new_id = uuid::Uuid::new_v4().to_string();
        let inv = self.reserve_invocation(&self.inner.scripts.reserve_send, key, &input, &new_id);
        let r: Vec<String> = self
            .reserve_indexed(key, &input, &new_id, &inv, |r: &Vec<String>| {
                Ok(opened(&parse_reservation(r, input.now)?, &new_id))
            })
            .await?;
        parse_reservation(&r, input.now)
    }

    /// [`Self::reserve_send`] and [`Self::count`] together: one script call on a single node
    /// (the counters' keys join the call: no cluster slot rule applies there), two calls on a
    /// cluster, where the counters live on their own slots.
    pub(super) async fn reserve_counted(
        &self,
        key: &NumberKey,
        input: ReserveSend<'_>,
        counts: &[Count],
    ) -> Result<(Reservation, Vec<Tally>), StoreError> {
        if counts.is_empty() || !matches!(self.inner.target, Target::Single(_)) {
            let tallies = self.count(input.now, counts).await?;
            return Ok((self.reserve_send(key, input).await?, tallies));
        }
        let new_id = uuid::Uuid::new_v4().to_string();
        let mut inv =
            self.reserve_invocation(&self.inner.scripts.reserve_counted, key, &input, &new_id);
        self.counter_args(&mut inv, input.now, counts);
        let (r, t): (Vec<String>, Vec<Vec<String>>) = self
            .reserve_indexed(
                key,
                &input,
                &new_id,
                &inv,
                |(r, _): &(Vec<String>, Vec<Vec<String>>)| {
                    Ok(opened(&parse_reservation(r, input.now)?, &new_id))
                },
            )
            .await?;
        if t.len() != counts.len() {
            return Err(StoreError::Corrupt(
                "counter answered malformed data".into(),
            ));
        }
        let tallies = t.iter().map(|t| parse_tally(t)).collect::<Result<_, _>>()?;
        Ok((parse_reservation(&r, input.now)?, tallies))
    }

    pub(super) async fn record_delivery(
        &self,
        key: &NumberKey,
        d: &super::RecordDelivery<'_>,
    ) -> Result<(), StoreError> {
        let mut inv = self.inner.scripts.record_channel.prepare_invoke();
        inv.key(self.key(key, "v"))
            .arg(d.verification_id)
            .arg(d.channel.map_or("", |c| c.as_str()))
            .arg(d.seq)
            .arg(
                d.confirm
                    .map(|(p, m)| format!("{p}\n{m}"))
                    .unwrap_or_default(),
            )
            .arg(d.route.unwrap_or(""));
        self.run::<i64>(&inv).await.map(|_| ())
    }

    pub(super) async fn release_send(
        &self,
        key: &NumberKey,
        reserved: &Reserved,
    ) -> Result<(), StoreError> {
        self.forget_code(key, &reserved.verification_id, reserved.seq)
            .await
    }

    /// The release script with a code that holds no place in the send window (its `id:seq`
    /// member is absent, so the window is left alone) is exactly "forget this code".
    pub(super) async fn forget_code(
        &self,
        key: &NumberKey,
        verification_id: &str,
        seq: u32,
    ) -> Result<(), StoreError> {
        let mut inv = self.inner.scripts.release_send.prepare_invoke();
        inv.key(self.key(key, "v"))
            .key(self.key(key, "sv"))
            .key(self.key(key, "s"))
            .key(self.key(key, "ids"))
            .arg(verification_id)
            .arg(seq);
        self.run::<i64>(&inv).await.map(|_| ())
    }

    pub(super) async fn redeliver(
        &self,
        key: &NumberKey,
        input: Redeliver<'_>,
    ) -> Result<Redelivery, StoreError> {
        let mut inv = self.inner.scripts.redeliver.prepare_invoke();
        inv.key(self.key(key, "v"))
            .key(self.key(key, "b"))
            .arg(input.now)
            .arg(input.verification_id)
            .arg(input.failed_seq)
            .arg(input.digest.to_hex())
            .arg(input.channel.as_str())
            .arg(input.max_live)
            .arg(input.route);
        let r: Vec<String> = self.run(&inv).await?;
        let int = |i: usize| -> Result<i64, StoreError> {
            r.get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("redeliver field {i}")))
        };
        match r.first().map(String::as_str) {
            Some("stale") => Ok(Redelivery::Stale),
            Some("added") => Ok(Redelivery::Added {
                seq: u32::try_from(int(1)?).map_err(|_| StoreError::Corrupt("seq".into()))?,
                expires_at: int(2)?,
            }),
            _ => Err(StoreError::Corrupt(
                "redeliver answered nothing known".into(),
            )),
        }
    }

    pub(super) fn delivery_key(&self, provider: &str, message_id: &str) -> String {
        format!("{}:msg:{provider}:{message_id}", self.inner.prefix)
    }

    pub(super) async fn remember_delivery(
        &self,
        provider: &str,
        message_id: &str,
        delivery: &DeliveryRef,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_string(delivery)
            .map_err(|e| StoreError::Corrupt(format!("delivery record: {e}")))?;
        self.query::<()>(
            redis::cmd("SET")
                .arg(self.delivery_key(provider, message_id))
                .arg(value)
                .arg("PX")
                .arg(ttl_ms),
        )
        .await
    }

    pub(super) async fn take_delivery(
        &self,
        provider: &str,
        message_id: &str,
        remove: bool,
    ) -> Result<Option<DeliveryRef>, StoreError> {
        let key = self.delivery_key(provider, message_id);
        let value: Option<String> = self
            .query(redis::cmd(if remove { "GETDEL" } else { "GET" }).arg(key))
            .await?;
        value
            .map(|v| {
                serde_json::from_str(&v)
                    .map_err(|_| StoreError::Corrupt("delivery record is not valid JSON".into()))
            })
            .transpose()
    }

    pub(super) async fn check(
        &self,
        key: &NumberKey,
        input: CheckInput<'_>,
    ) -> Result<CheckResult, StoreError> {
        let mut inv = self.inner.scripts.check.prepare_invoke();
        inv.key(self.key(key, "v"))
            .key(self.key(key, "b"))
            .key(self.key(key, "vf"))
            .arg(input.now)
            .arg(input.candidate.map(|d| d.to_hex()).unwrap_or_default())
            .arg(input.max_attempts)
            .arg(input.vendor_data.unwrap_or(""))
            .arg(u8::from(input.refuse_duplicate))
            .arg(input.verified_ttl_ms);
        let r: Vec<String> = self.run(&inv).await?;
        let field = |i: usize| r.get(i).map(String::as_str).unwrap_or("");
        let left: u32 = field(1).parse().unwrap_or(0);
        let verdict = match field(0) {
            "approved" => CheckVerdict::Approved,
            "duplicate" => CheckVerdict::Duplicate,
            "wrong" => CheckVerdict::Wrong {
                attempts_left: left,
            },
            "exhausted" => CheckVerdict::Exhausted,
            "declined" => CheckVerdict::AlreadyDeclined,
            "blocked" => CheckVerdict::Blocked,
            "notfound" => CheckVerdict::NotFound,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "check answered {:?}",
                    other.chars().take(16).collect::<String>()
                )));
            }
        };
        let confirm = (verdict == CheckVerdict::Approved)
            .then(|| r.get(12).and_then(|c| c.split_once('\n')))
            .flatten()
            .map(|(p, m)| (p.to_owned(), m.to_owned()));
        let route = (verdict == CheckVerdict::Approved)
            .then(|| r.get(13).filter(|s| !s.is_empty()).cloned())
            .flatten();
        let superseded = verdict == CheckVerdict::Approved && r.get(14).is_some_and(|s| s == "1");
        Ok(CheckResult {
            verdict,
            confirm,
            route,
            superseded,
            verification: parse_view(r.get(3..12).unwrap_or(&[]))?,
            verified_for: Some(field(2).to_owned()).filter(|v| !v.is_empty()),
        })
    }

    pub(super) async fn inspect(
        &self,
        key: &NumberKey,
        now: Millis,
    ) -> Result<Inspection, StoreError> {
        let mut inv = self.inner.scripts.inspect.prepare_invoke();
        inv.key(self.key(key, "v"))
            .key(self.key(key, "b"))
            .key(self.key(key, "vf"))
            .arg(now);
        let r: Vec<String> = self.run(&inv).await?;
        Ok(Inspection {
            blocked: r.first().is_some_and(|b| b == "1"),
            verified_for: r.get(1).filter(|v| !v.is_empty()).cloned(),
            verification: parse_view(r.get(2..11).unwrap_or(&[]))?,
        })
    }

    pub(super) async fn set_blocked(
        &self,
        key: &NumberKey,
        blocked: bool,
    ) -> Result<bool, StoreError> {
        // The per-number flag is what the scripts read; the set only serves listing. The set
        // is written first on block and last on unblock, so it never misses a blocked number.
        let flag = self.key(key, "b");
        let list = self.blocklist_key(&key.app);
        if blocked {
            self.query::<i64>(redis::cmd("SADD").arg(&list).arg(&key.e164))
                .await?;
            let set: Option<String> = self
                .query(redis::cmd("SET").arg(&flag).arg(1).arg("NX").arg("GET"))
                .await?;
            Ok(set.is_none())
        } else {
            let removed: i64 = self.query(redis::cmd("DEL").arg(&flag)).await?;
            self.query::<i64>(redis::cmd("SREM").arg(&list).arg(&key.e164))
                .await?;
            Ok(removed == 1)
        }
    }

    fn fraud_admin_key(&self, app: &str, suffix: &str) -> String {
        format!("{}:{{fraud:{app}}}:{suffix}", self.inner.prefix)
    }

    pub(super) async fn set_safe_listed(
        &self,
        app: &str,
        entry: &str,
        listed: bool,
    ) -> Result<bool, StoreError> {
        let op = if listed { "SADD" } else { "SREM" };
        let n: i64 = self
            .query(
                redis::cmd(op)
                    .arg(self.fraud_admin_key(app, "safe"))
                    .arg(entry),
            )
            .await?;
        Ok(n == 1)
    }

    /// The runtime safe list (sorted) and geo permissions (JSON) of `app`: one round trip
    /// (both keys share a hash tag, sent together on the multiplexed connection).
    pub(super) async fn fraud_admin(
        &self,
        app: &str,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let (mut safe, geo): (Vec<String>, Option<String>) = futures::future::try_join(
            self.query(redis::cmd("SMEMBERS").arg(self.fraud_admin_key(app, "safe"))),
            self.query(redis::cmd("GET").arg(self.fraud_admin_key(app, "geo"))),
        )
        .await?;
        safe.sort();
        Ok((safe, geo))
    }

    pub(super) async fn set_fraud_geo(&self, app: &str, geo: &str) -> Result<(), StoreError> {
        self.query::<()>(
            redis::cmd("SET")
                .arg(self.fraud_admin_key(app, "geo"))
                .arg(geo),
        )
        .await
    }

    pub(super) async fn blocked(&self, app: &str) -> Result<Vec<String>, StoreError> {
        let mut numbers: Vec<String> = self
            .query(redis::cmd("SMEMBERS").arg(self.blocklist_key(app)))
            .await?;
        numbers.sort();
        Ok(numbers)
    }
}

/// Parses `id, st, ch, at, c, e, va, r, vd` into a view (`None` when there is no
/// verification).
fn parse_view(f: &[String]) -> Result<Option<VerificationView>, StoreError> {
    let get = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
    if get(0).is_empty() {
        return Ok(None);
    }
    let corrupt = |what: &str| StoreError::Corrupt(format!("verification field {what}"));
    let state = match get(1) {
        "p" => VerificationState::Pending,
        "a" => VerificationState::Approved,
        "d" => VerificationState::Declined,
        _ => return Err(corrupt("st")),
    };
    let int = |i: usize, what: &str| get(i).parse::<i64>().map_err(|_| corrupt(what));
    Ok(Some(VerificationView {
        id: get(0).to_owned(),
        state,
        channel: get(2).parse().map_err(|_| corrupt("ch"))?,
        attempts: u32::try_from(int(3, "at")?).map_err(|_| corrupt("at"))?,
        created_at: int(4, "c")?,
        expires_at: int(5, "e")?,
        verified_at: match get(6) {
            "" => None,
            v => Some(v.parse().map_err(|_| corrupt("va"))?),
        },
        declined: DeclineReason::parse(get(7)),
        vendor_data: Some(get(8).to_owned()).filter(|v| !v.is_empty()),
    }))
}

impl RedisStore {
    fn counter_key(&self, key: &CounterKey) -> String {
        format!("{}:{{oc:{}}}", self.inner.prefix, key.0)
    }

    fn block_index_key(&self, app: &str) -> String {
        format!("{}:{{ocblocks:{app}}}", self.inner.prefix)
    }

    /// The keys and arguments of `counts` for `counter_fn.lua`'s `count_keys`, appended.
    fn counter_args(&self, inv: &mut redis::ScriptInvocation<'_>, now: Millis, counts: &[Count]) {
        inv.arg(now);
        for c in counts {
            inv.key(self.counter_key(&c.key))
                .arg(c.window.bucket_ms())
                .arg(c.window.buckets)
                .arg(c.window.span_ms + c.window.bucket_ms())
                .arg(c.add.len());
            for (field, by) in &c.add {
                inv.arg(field.code()).arg(*by);
            }
        }
    }

    /// Every count at once, in one round trip: on a single node one script call updates every
    /// counter (one EVALSHA instead of one per key); on a cluster each counter lives on its own
    /// slot, so each gets its call, sent together on the multiplexed connection.
    pub(super) async fn count(
        &self,
        now: Millis,
        counts: &[Count],
    ) -> Result<Vec<Tally>, StoreError> {
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        let invocation = |counts: &[Count]| {
            let mut inv = self.inner.scripts.counter.prepare_invoke();
            self.counter_args(&mut inv, now, counts);
            inv
        };
        let parse = |r: Vec<Vec<String>>, n: usize| -> Result<Vec<Tally>, StoreError> {
            if r.len() != n {
                return Err(StoreError::Corrupt(
                    "counter answered malformed data".into(),
                ));
            }
            r.iter().map(|t| parse_tally(t)).collect()
        };
        if matches!(self.inner.target, Target::Single(_)) {
            let inv = invocation(counts);
            return parse(self.run(&inv).await?, counts.len());
        }
        let calls = counts.iter().map(|c| {
            let inv = invocation(std::slice::from_ref(c));
            async move { parse(self.run(&inv).await?, 1).map(|mut t| t.remove(0)) }
        });
        futures::future::try_join_all(calls).await
    }

    pub(super) async fn block_counter(
        &self,
        app: &str,
        key: &CounterKey,
        until: Millis,
        now: Millis,
    ) -> Result<u32, StoreError> {
        let mut inv = self.inner.scripts.counter_block.prepare_invoke();
        inv.key(self.counter_key(key))
            .arg(until)
            .arg((until - now).max(1));
        let index = self.block_index_key(app);
        let (n, _): (i64, ()) = futures::future::try_join(
            self.run::<i64>(&inv),
            self.query::<()>(redis::cmd("ZADD").arg(&index).arg(until).arg(&key.0)),
        )
        .await?;
        // The index forgets blocks that ended.
        let _ = self
            .query::<()>(
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(&index)
                    .arg("-inf")
                    .arg(now),
            )
            .await;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    pub(super) async fn release_counter(
        &self,
        app: &str,
        key: &CounterKey,
    ) -> Result<bool, StoreError> {
        let mut release = self.inner.scripts.counter_release.prepare_invoke();
        release.key(self.counter_key(key));
        let (n, _): (i64, ()) = futures::future::try_join(
            self.run::<i64>(&release),
            self.query::<()>(
                redis::cmd("ZREM")
                    .arg(self.block_index_key(app))
                    .arg(&key.0),
            ),
        )
        .await?;
        Ok(n > 0)
    }

    pub(super) async fn blocked_counters(
        &self,
        app: &str,
        now: Millis,
    ) -> Result<Vec<(CounterKey, Millis, u32)>, StoreError> {
        let members: Vec<String> = self
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.block_index_key(app))
                    .arg(now + 1)
                    .arg("+inf"),
            )
            .await?;
        let states = members.iter().map(|m| async move {
            let v: Vec<Option<i64>> = self
                .query(
                    redis::cmd("HMGET")
                        .arg(self.counter_key(&CounterKey(m.clone())))
                        .arg("bu")
                        .arg("bn"),
                )
                .await?;
            Ok::<_, StoreError>((
                CounterKey(m.clone()),
                v.first().copied().flatten().unwrap_or(0),
                v.get(1).copied().flatten().unwrap_or(0),
            ))
        });
        let mut out: Vec<_> = futures::future::try_join_all(states)
            .await?
            .into_iter()
            .filter(|(_, until, _)| *until > now)
            .map(|(k, until, n)| (k, until, u32::try_from(n).unwrap_or(0)))
            .collect();
        out.sort_by(|a, b| a.0.0.cmp(&b.0.0));
        Ok(out)
    }
}

/// Whether `reservation` opened the verification `new_id`.
fn opened(reservation: &Reservation, new_id: &str) -> bool {
    matches!(reservation, Reservation::Reserved(r) if !r.joined && r.verification_id == new_id)
}

/// The deadline-index member of verification `id` of `key`.
pub(super) fn due_member(id: &str, key: &NumberKey) -> String {
    format!("{id}\t{}\t{}", key.app, key.e164)
}

fn parse_due_member(member: &str) -> Option<(&str, NumberKey)> {
    let mut parts = member.splitn(3, '\t');
    let id = parts.next()?;
    Some((id, NumberKey::new(parts.next()?, parts.next()?)))
}

impl RedisStore {
    /// Takes the verifications whose deadline came (at most `limit`), decides each one in one
    /// script on its number's slot, and returns those that ended pending: exactly once over
    /// every sweeper sharing this Redis. Entries are leased while they are looked at; one whose
    /// decision failed comes back when its lease ends.
    pub(super) async fn sweep_ended(&self, now: Millis, limit: usize) -> Result<Swept, StoreError> {
        let mut claim = self.inner.scripts.claim_due.prepare_invoke();
        claim
            .key(self.due_key())
            .arg(now)
            .arg(now + super::SWEEP_LEASE_MS)
            .arg(limit);
        let due: Vec<String> = self.run(&claim).await?;
        let decisions = due.iter().map(|member| async move {
            let Some((id, key)) = parse_due_member(member) else {
                return Ok::<_, StoreError>((member, None, None));
            };
            let mut inv = self.inner.scripts.end_verification.prepare_invoke();
            inv.key(self.key(&key, "v"))
                .key(self.key(&key, "xn"))
                .arg(now)
                .arg(id);
            let r: Vec<String> = self.run(&inv).await?;
            let field = |i: usize| r.get(i).map(String::as_str).unwrap_or("");
            let corrupt = || StoreError::Corrupt("end_verification answered malformed data".into());
            Ok(match field(0) {
                "ended" => {
                    let ended = EndedVerification {
                        verification_id: id.to_owned(),
                        attempts: field(1).parse().map_err(|_| corrupt())?,
                        channel: field(2).parse().ok(),
                        expires_at: field(3).parse().map_err(|_| corrupt())?,
                        key,
                    };
                    (member, Some(ended), None)
                }
                "later" => (
                    member,
                    None,
                    Some(field(1).parse::<i64>().map_err(|_| corrupt())?),
                ),
                _ => (member, None, None),
            })
        });
        let mut ended = Vec::new();
        let mut done = redis::cmd("ZREM");
        done.arg(self.due_key());
        let mut later = redis::cmd("ZADD");
        later.arg(self.due_key()).arg("XX");
        let (mut n_done, mut n_later) = (0, 0);
        for decision in futures::future::join_all(decisions).await {
            match decision {
                Ok((member, e, None)) => {
                    done.arg(member);
                    n_done += 1;
                    ended.extend(e);
                }
                Ok((member, _, Some(at))) => {
                    later.arg(at).arg(member);
                    n_later += 1;
                }
                // Left leased: it comes back when the lease ends.
                Err(e) => {
                    tracing::warn!(error = %e, "expiry sweep: a verification was not decided")
                }
            }
        }
        // A failure here only brings entries back after their lease; deciding them again
        // announces nothing twice.
        if n_done > 0 {
            let _ = self.query::<()>(&done).await;
        }
        if n_later > 0 {
            let _ = self.query::<()>(&later).await;
        }
        Ok(Swept {
            ended,
            more: due.len() >= limit,
        })
    }
}

fn parse_reservation(r: &[String], now: Millis) -> Result<Reservation, StoreError> {
    let field = |i: usize| r.get(i).map(String::as_str).unwrap_or("");
    let int = |i: usize| -> Result<i64, StoreError> {
        field(i)
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("reserve_send field {i}")))
    };
    Ok(match field(0) {
        "blocked" => Reservation::Blocked,
        "duplicate" => Reservation::Duplicate,
        "declined" => Reservation::Declined {
            retry_after_ms: int(1)?,
        },
        "throttled" => Reservation::Throttled {
            retry_after_ms: int(1)?,
            cooldown: field(2) == "1",
        },
        "reserved" => Reservation::Reserved(Reserved {
            verification_id: field(1).to_owned(),
            reserved_at: now,
            joined: field(2) == "1",
            seq: u32::try_from(int(3)?).map_err(|_| StoreError::Corrupt("seq".into()))?,
            expires_at: int(4)?,
            resends_left: u32::try_from(int(5)?.max(0)).unwrap_or(0),
            verified_for: Some(field(6).to_owned()).filter(|v| !v.is_empty()),
            previous_route: Some(field(7).to_owned()).filter(|v| !v.is_empty()),
        }),
        other => {
            return Err(StoreError::Corrupt(format!(
                "reserve_send answered {:?}",
                other.chars().take(16).collect::<String>()
            )));
        }
    })
}

fn parse_tally(r: &[String]) -> Result<Tally, StoreError> {
    let corrupt = || StoreError::Corrupt("counter answered malformed data".into());
    let int = |i: usize| -> Result<i64, StoreError> {
        r.get(i).and_then(|v| v.parse().ok()).ok_or_else(corrupt)
    };
    let mut tally = Tally {
        blocked_until: int(0)?,
        blocks: u32::try_from(int(1)?).unwrap_or(0),
        ..Tally::default()
    };
    for pair in r.get(2..).unwrap_or_default().chunks(2) {
        let [name, n] = pair else {
            return Err(corrupt());
        };
        if let Some(f) = Field::ALL.iter().find(|f| f.code() == name) {
            tally.sums[*f as usize] = n.parse().map_err(|_| corrupt())?;
        }
    }
    Ok(tally)
}
