//! Verification records and idempotency records in Redis (keys listed in module `redis`).
//! A record and its lifecycle share the hash tag `{vr:APP:ID}`, so every record operation is
//! one script on one Cluster slot; the number's indexes live under the number's own tag, and
//! an idempotency key under `{idem:APP:SHA256(key)}`.

use std::sync::LazyLock;

use redis::Script;
use sha2::{Digest, Sha256};

use super::records::{
    Claim, Deletion, LifecycleEntry, MAX_LIFECYCLE, NewRecord, RecordHead, RecordUpdate, Review,
    VerificationRecord,
};
use super::{NumberKey, RedisStore, StoreError};
use crate::clock::Millis;
use crate::report::VerificationStatus;

static CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/record_create.lua")));
static UPDATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/record_update.lua")));
static REVIEW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/record_review.lua")));
static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/idempotency_claim.lua")));
static END: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/idempotency_end.lua")));
static INDEX: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/number_index.lua")));
static DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/delete_number.lua")));

/// How many of a number's newest verification ids a lookup by number reads to find the newest
/// that has a record.
const LATEST_SCAN: i64 = 8;

/// An optional text as stored: `''` for none, else `'v'` and the text (so an empty text
/// survives).
fn opt_in(v: Option<&str>) -> String {
    v.map(|v| format!("v{v}")).unwrap_or_default()
}

fn opt_out(v: &str) -> Option<String> {
    v.strip_prefix('v').map(str::to_owned)
}

fn head_of(n: &str, vd: &str, md: &str) -> RecordHead {
    RecordHead {
        phone_number: n.to_owned(),
        vendor_data: opt_out(vd),
        metadata: opt_out(md),
    }
}

impl RedisStore {
    fn record_key(&self, app: &str, id: &str) -> String {
        format!("{}:{{vr:{app}:{id}}}", self.prefix())
    }

    fn lifecycle_key(&self, app: &str, id: &str) -> String {
        format!("{}:l", self.record_key(app, id))
    }

    fn idempotency_key(&self, app: &str, key: &str) -> String {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        format!("{}:{{idem:{app}:{digest}}}", self.prefix())
    }

    /// Adds an idempotency key to the number's index of them (read when it is deleted).
    async fn index_idempotency_key(
        &self,
        key: &NumberKey,
        member: &str,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let mut inv = INDEX.prepare_invoke();
        inv.key(self.key(key, "ik")).arg(member).arg(ttl_ms);
        self.run::<i64>(&inv).await.map(|_| ())
    }

    pub(super) async fn create_record(
        &self,
        app: &str,
        r: &NewRecord<'_>,
    ) -> Result<(), StoreError> {
        let mut inv = CREATE.prepare_invoke();
        inv.key(self.record_key(app, r.verification_id))
            .key(self.lifecycle_key(app, r.verification_id))
            .arg(&r.head.phone_number)
            .arg(opt_in(r.head.vendor_data.as_deref()))
            .arg(opt_in(r.head.metadata.as_deref()))
            .arg(r.now)
            .arg(r.ttl_ms)
            .arg(VerificationStatus::NotFinished.as_str());
        // The number's index of its verifications was written with the reservation (on the
        // number's slot), so creating the record is one call.
        self.run::<i64>(&inv).await.map(|_| ())
    }

    pub(super) async fn discard_record(&self, app: &str, id: &str) -> Result<(), StoreError> {
        // One slot: the record and its lifecycle share a hash tag.
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.record_key(app, id))
            .arg(self.lifecycle_key(app, id));
        self.query::<i64>(&cmd).await.map(|_| ())
    }

    pub(super) async fn update_record(
        &self,
        app: &str,
        id: &str,
        u: &RecordUpdate<'_>,
        entry: &str,
    ) -> Result<Option<RecordHead>, StoreError> {
        let mut inv = UPDATE.prepare_invoke();
        inv.key(self.record_key(app, id))
            .key(self.lifecycle_key(app, id))
            .arg(entry)
            .arg(u.status.unwrap_or(""))
            .arg(u8::from(u.check))
            .arg(u.channel.unwrap_or(""))
            .arg(u.now)
            .arg(MAX_LIFECYCLE)
            .arg(VerificationStatus::Approved.as_str());
        let r: Option<Vec<String>> = self.run(&inv).await?;
        Ok(r.map(|h| {
            let get = |i: usize| h.get(i).map(String::as_str).unwrap_or("");
            head_of(get(0), get(1), get(2))
        }))
    }

    pub(super) async fn review_record(
        &self,
        app: &str,
        id: &str,
        status: &str,
        entry: &str,
        now: Millis,
    ) -> Result<Review, StoreError> {
        let mut inv = REVIEW.prepare_invoke();
        inv.key(self.record_key(app, id))
            .key(self.lifecycle_key(app, id))
            .arg(status)
            .arg(entry)
            .arg(now)
            .arg(MAX_LIFECYCLE)
            .arg(VerificationStatus::InReview.as_str())
            .arg(VerificationStatus::Approved.as_str());
        let r: Vec<String> = self.run(&inv).await?;
        let get = |i: usize| r.get(i).map(String::as_str).unwrap_or("");
        match get(0) {
            "resolved" => Ok(Review::Resolved(head_of(get(1), get(2), get(3)))),
            "notfound" => Ok(Review::NotFound),
            "not_in_review" => Ok(Review::NotInReview(get(1).to_owned())),
            _ => Err(StoreError::Corrupt("review answered nothing known".into())),
        }
    }

    pub(super) async fn record(
        &self,
        app: &str,
        id: &str,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        let (fields, entries): (std::collections::HashMap<String, String>, Vec<String>) =
            futures::future::try_join(
                self.query(redis::cmd("HGETALL").arg(self.record_key(app, id))),
                self.query(
                    redis::cmd("LRANGE")
                        .arg(self.lifecycle_key(app, id))
                        .arg(0)
                        .arg(-1),
                ),
            )
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
        let corrupt = |k: &str| StoreError::Corrupt(format!("record field {k}"));
        Ok(Some(VerificationRecord {
            verification_id: id.to_owned(),
            head: head_of(get("n"), get("vd"), get("md")),
            status: get("st").to_owned(),
            created_at: get("c").parse().map_err(|_| corrupt("c"))?,
            channel: Some(get("ch").to_owned()).filter(|c| !c.is_empty()),
            attempts: get("a").parse().map_err(|_| corrupt("a"))?,
            verified_at: match get("va") {
                "" => None,
                v => Some(v.parse().map_err(|_| corrupt("va"))?),
            },
            lifecycle: entries
                .iter()
                .map(|e| LifecycleEntry::decode(e))
                .collect::<Result<_, _>>()?,
        }))
    }

    pub(super) async fn latest_record_id(
        &self,
        key: &NumberKey,
        _now: Millis,
    ) -> Result<Option<String>, StoreError> {
        // The index gets an id when the verification opens, its record when a provider took
        // the code: the newest ids may have no record yet (a send in flight) or none at all (an
        // outcome never known). The newest few are enough to step over those.
        let newest: Vec<String> = self
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.key(key, "ids"))
                    .arg(-LATEST_SCAN)
                    .arg(-1),
            )
            .await?;
        for id in newest.into_iter().rev() {
            let exists: i64 = self
                .query(redis::cmd("EXISTS").arg(self.record_key(&key.app, &id)))
                .await?;
            if exists == 1 {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    pub(super) async fn claim_idempotency(
        &self,
        app: &str,
        key: &str,
        fingerprint: &str,
        lease_ms: i64,
    ) -> Result<Claim, StoreError> {
        let mut inv = CLAIM.prepare_invoke();
        inv.key(self.idempotency_key(app, key))
            .arg(fingerprint)
            .arg(lease_ms);
        let r: Vec<String> = self.run(&inv).await?;
        match r.first().map(String::as_str) {
            Some("claimed") => Ok(Claim::Claimed),
            Some("pending") => Ok(Claim::Pending),
            Some("mismatch") => Ok(Claim::Mismatch),
            Some("done") => Ok(Claim::Done(r.get(1).cloned().unwrap_or_default())),
            _ => Err(StoreError::Corrupt("claim answered nothing known".into())),
        }
    }

    pub(super) async fn complete_idempotency(
        &self,
        app: &str,
        key: &str,
        number: Option<&NumberKey>,
        answer: &str,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let redis_key = self.idempotency_key(app, key);
        let mut inv = END.prepare_invoke();
        inv.key(&redis_key).arg(answer).arg(ttl_ms);
        self.run::<i64>(&inv).await?;
        match number {
            Some(n) => self.index_idempotency_key(n, &redis_key, ttl_ms).await,
            None => Ok(()),
        }
    }

    pub(super) async fn abandon_idempotency(&self, app: &str, key: &str) -> Result<(), StoreError> {
        let mut inv = END.prepare_invoke();
        inv.key(self.idempotency_key(app, key)).arg("").arg(0);
        self.run::<i64>(&inv).await.map(|_| ())
    }

    pub(super) async fn delete_number(&self, key: &NumberKey) -> Result<Deletion, StoreError> {
        let mut inv = DELETE.prepare_invoke();
        for suffix in ["v", "sv", "s", "b", "vf", "ids", "ik", "xn"] {
            inv.key(self.key(key, suffix));
        }
        let r: Vec<String> = self.run(&inv).await?;
        let ids_len: usize = r
            .get(2)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("delete answered nothing known".into()))?;
        let ids = r.get(3..3 + ids_len).unwrap_or_default();
        let idem_keys = r.get(3 + ids_len..).unwrap_or_default();
        // The blocklist's listing set lives under the application's tag.
        let _: i64 = self
            .query(
                redis::cmd("SREM")
                    .arg(self.blocklist_key(&key.app))
                    .arg(&key.e164),
            )
            .await?;
        let mut deletion = Deletion {
            limit_state: r.first().is_some_and(|v| v == "1"),
            blocklist_entry: r.get(1).is_some_and(|v| v == "1"),
            ..Deletion::default()
        };
        // Its verifications' entries in the deadline index (on the index's own slot): a
        // deleted number's verifications end unannounced.
        if !ids.is_empty() {
            let mut zrem = redis::cmd("ZREM");
            zrem.arg(self.due_key());
            for id in ids {
                zrem.arg(super::redis::due_member(id, key));
            }
            let _: i64 = self.query(&zrem).await?;
        }
        for id in ids {
            let entries: Vec<String> = self
                .query(
                    redis::cmd("LRANGE")
                        .arg(self.lifecycle_key(&key.app, id))
                        .arg(0)
                        .arg(-1),
                )
                .await?;
            for entry in entries
                .iter()
                .filter_map(|e| LifecycleEntry::decode(e).ok())
            {
                if let (Some(p), Some(m)) = (entry.provider, entry.provider_message_id) {
                    let n: i64 = self
                        .query(redis::cmd("DEL").arg(self.delivery_key(&p, &m)))
                        .await?;
                    deletion.delivery_references += n as u32;
                }
            }
            let n: i64 = self
                .query(
                    redis::cmd("DEL")
                        .arg(self.record_key(&key.app, id))
                        .arg(self.lifecycle_key(&key.app, id)),
                )
                .await?;
            deletion.verifications += u32::from(n > 0);
        }
        for k in idem_keys {
            let n: i64 = self.query(redis::cmd("DEL").arg(k)).await?;
            deletion.idempotency_records += n as u32;
        }
        Ok(deletion)
    }
}
