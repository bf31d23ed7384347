//! Small JSON documents that are not per-number state: API-defined workflows and webhook
//! destinations (admin data, no TTL, listed per collection), hosted sessions and their indexes
//! (values with a TTL), and a due index the session sweeper takes from exactly once.
//!
//! Redis layout (every key under its own hash tag, one command each):
//! - a collection is a hash `{prefix}:{doc:NAME}` (field = id, value = JSON);
//! - a value is a string `{prefix}:{val:NAME}` with a TTL;
//! - a due index is a sorted set `{prefix}:{due:NAME}` (score = when it is due); [`Store::take_due`]
//!   removes what it returns in one script, so each entry is taken by one caller.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use redis::Script;

use super::{Store, StoreError};
use crate::clock::Millis;

const TAKE_DUE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due do redis.call('ZREM', KEYS[1], due[i]) end
return due
";

/// The in-process copy of the documents.
#[derive(Clone, Default)]
pub struct MemoryDocuments(Arc<Mutex<Documents>>);

#[derive(Default)]
struct Documents {
    collections: HashMap<String, BTreeMap<String, String>>,
    values: HashMap<String, (String, Millis)>,
    due: HashMap<String, BTreeMap<(Millis, String), ()>>,
}

impl std::fmt::Debug for MemoryDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDocuments").finish_non_exhaustive()
    }
}

impl Store {
    /// Writes document `id` of `collection` (replacing it).
    pub async fn put_document(
        &self,
        collection: &str,
        id: &str,
        json: &str,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.documents()
                    .0
                    .lock()
                    .collections
                    .entry(collection.to_owned())
                    .or_default()
                    .insert(id.to_owned(), json.to_owned());
                Ok(())
            }
            Store::Redis(r) => {
                r.query::<()>(
                    redis::cmd("HSET")
                        .arg(r.document_key("doc", collection))
                        .arg(id)
                        .arg(json),
                )
                .await
            }
        }
    }

    /// Document `id` of `collection`.
    pub async fn document(&self, collection: &str, id: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m
                .documents()
                .0
                .lock()
                .collections
                .get(collection)
                .and_then(|c| c.get(id).cloned())),
            Store::Redis(r) => {
                r.query(
                    redis::cmd("HGET")
                        .arg(r.document_key("doc", collection))
                        .arg(id),
                )
                .await
            }
        }
    }

    /// Every document of `collection` as (id, JSON), sorted by id.
    pub async fn documents(&self, collection: &str) -> Result<Vec<(String, String)>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m
                .documents()
                .0
                .lock()
                .collections
                .get(collection)
                .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()),
            Store::Redis(r) => {
                let all: BTreeMap<String, String> = r
                    .query(redis::cmd("HGETALL").arg(r.document_key("doc", collection)))
                    .await?;
                Ok(all.into_iter().collect())
            }
        }
    }

    /// Removes document `id` of `collection`; false when there was none.
    pub async fn delete_document(&self, collection: &str, id: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m
                .documents()
                .0
                .lock()
                .collections
                .get_mut(collection)
                .and_then(|c| c.remove(id))
                .is_some()),
            Store::Redis(r) => {
                let n: i64 = r
                    .query(
                        redis::cmd("HDEL")
                            .arg(r.document_key("doc", collection))
                            .arg(id),
                    )
                    .await?;
                Ok(n == 1)
            }
        }
    }

    /// Writes value `name` until `now + ttl_ms`. With `only_new`, only when it does not exist
    /// yet; returns whether it was written.
    pub async fn put_value(
        &self,
        name: &str,
        json: &str,
        ttl_ms: i64,
        now: Millis,
        only_new: bool,
    ) -> Result<bool, StoreError> {
        let ttl_ms = ttl_ms.max(1);
        match self {
            Store::Memory(m) => {
                let mut docs = m.documents().0.lock();
                docs.values.retain(|_, (_, until)| *until > now);
                if only_new && docs.values.contains_key(name) {
                    return Ok(false);
                }
                docs.values
                    .insert(name.to_owned(), (json.to_owned(), now + ttl_ms));
                Ok(true)
            }
            Store::Redis(r) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(r.document_key("val", name))
                    .arg(json)
                    .arg("PX")
                    .arg(ttl_ms);
                if only_new {
                    cmd.arg("NX");
                }
                let written: Option<String> = r.query(&cmd).await?;
                Ok(written.is_some())
            }
        }
    }

    /// Value `name`, unless it expired by `now`.
    pub async fn value(&self, name: &str, now: Millis) -> Result<Option<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m
                .documents()
                .0
                .lock()
                .values
                .get(name)
                .filter(|(_, until)| *until > now)
                .map(|(v, _)| v.clone())),
            Store::Redis(r) => {
                r.query(redis::cmd("GET").arg(r.document_key("val", name)))
                    .await
            }
        }
    }

    /// Adds `member` to due index `name`, due at `at`.
    pub async fn add_due(&self, name: &str, member: &str, at: Millis) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.documents()
                    .0
                    .lock()
                    .due
                    .entry(name.to_owned())
                    .or_default()
                    .insert((at, member.to_owned()), ());
                Ok(())
            }
            Store::Redis(r) => {
                r.query::<()>(
                    redis::cmd("ZADD")
                        .arg(r.document_key("due", name))
                        .arg(at)
                        .arg(member),
                )
                .await
            }
        }
    }

    /// Takes (removes and returns) up to `limit` members of due index `name` due by `now`.
    /// Each member is returned to one caller only, however many take at once.
    pub async fn take_due(
        &self,
        name: &str,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(m) => {
                let mut docs = m.documents().0.lock();
                let Some(index) = docs.due.get_mut(name) else {
                    return Ok(Vec::new());
                };
                let taken: Vec<(Millis, String)> = index
                    .keys()
                    .take_while(|(at, _)| *at <= now)
                    .take(limit)
                    .cloned()
                    .collect();
                for k in &taken {
                    index.remove(k);
                }
                Ok(taken.into_iter().map(|(_, m)| m).collect())
            }
            Store::Redis(r) => {
                let script = Script::new(TAKE_DUE);
                let mut take = script.prepare_invoke();
                take.key(r.document_key("due", name)).arg(now).arg(limit);
                r.run(&take).await
            }
        }
    }
}

impl super::RedisStore {
    fn document_key(&self, kind: &str, name: &str) -> String {
        format!("{}:{{{kind}:{name}}}", self.prefix())
    }
}
