//! One-time codes: generation, keyed hashing and constant-time verification.
//!
//! * [`generate`] draws a code from the OS CSPRNG, uniform over all `10^length` values (leading
//!   zeros included) by rejection sampling, so no value is more likely than another.
//! * A code is only ever stored as a [`CodeDigest`]: a keyed hash under the server [`Pepper`],
//!   salted with a [`Salt`] (the engine derives it from the application and the number). See [`HashScheme`] for the two schemes and
//!   `docs/code-hashing.md` for why the default is HMAC and how argon2id's cost was measured.
//! * [`CodeHasher::find_match`] hashes a typed candidate once and compares it against every
//!   stored digest of the verification in constant time.
//!
//! # What goes into the hash
//!
//! For both schemes the hashed input is `salt || len-prefixed code`:
//!
//! * **argon2id**: argon2's `salt` is the 16-byte [`Salt`], its `secret` (the keyed input `K`
//!   of RFC 9106) is the pepper, and its password is `len(code) as u32 BE || code digits`.
//! * **HMAC-SHA256**: key = pepper, message =
//!   `"switchboard/code/v1" || salt || len(code) as u32 BE || code digits`. The leading label
//!   separates this use of the pepper from any other HMAC made with it.
//!
//! The salt is fixed-length and the code length-prefixed, so the encoding is injective: no two
//! different `(salt, code)` pairs hash the same bytes. The engine derives the salt from the
//! application and the E.164 number (`SHA-256("switchboard/code-salt/v1", app, e164)[..16]`):
//! public and deterministic, so a candidate is hashed before the single atomic store call of a
//! check. It binds a digest to its application and number: a digest copied into another
//! number's state is checked against another salt and can never match. It does not separate two
//! verifications of the same number; `docs/code-hashing.md` says what that costs.
//!
//! The salt is per number, not per code: a verification holds up to `1 + max_resends` valid
//! codes (resends keep the earlier codes acceptable), all hashed with the same salt, so one
//! check is one hash of the candidate whatever the number of codes.
//!
//! # The pepper is the protection
//!
//! A 6-digit code has 10^6 values; no affordable work factor makes brute force of a leaked
//! digest infeasible for someone who also has the pepper. What protects a leaked store (a Redis
//! dump) is that the pepper lives outside it: without the pepper a digest cannot be tested
//! against a single candidate. The work factor only slows down an attacker who has both. The
//! figures are in `docs/code-hashing.md`.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, mpsc};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use zeroize::{Zeroize, Zeroizing};

use crate::providers::OneTimeCode;

/// Code length used when the configuration does not choose one.
pub const DEFAULT_LENGTH: u8 = 6;
/// Shortest code [`generate`] produces.
pub const MIN_LENGTH: u8 = 4;
/// Longest code [`generate`] produces (10^10 still fits a `u64` with room for rejection).
pub const MAX_LENGTH: u8 = 10;

/// Bytes in a [`Salt`].
pub const SALT_LEN: usize = 16;
/// Bytes in a [`CodeDigest`].
pub const DIGEST_LEN: usize = 32;
/// Shortest accepted [`Pepper`]: 256 bits of key material, the HMAC-SHA256 key size.
pub const MIN_PEPPER_LEN: usize = 32;
/// A configured pepper whose bytes take fewer distinct values than this is refused as low
/// entropy (`"aaaa…"`, `"abab…"`): 32 random bytes take about 30 distinct values, and fewer
/// than 16 happens by chance with probability below 10^-12.
const MIN_PEPPER_DISTINCT_BYTES: usize = 16;

/// Default argon2id memory cost, in KiB. Chosen by measurement: see `docs/code-hashing.md`.
pub const DEFAULT_ARGON2_MEMORY_KIB: u32 = 512;
/// Default argon2id passes over memory.
pub const DEFAULT_ARGON2_ITERATIONS: u32 = 1;
/// Default argon2id lanes.
pub const DEFAULT_ARGON2_PARALLELISM: u32 = 1;

/// Largest accepted `memory_kib` (1 GiB). Every concurrent hash allocates this much.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 1024 * 1024;
/// Largest accepted `iterations`.
pub const MAX_ARGON2_ITERATIONS: u32 = 64;
/// Largest accepted `parallelism`. argon2 0.5 computes lanes one after the other, so more lanes
/// add no speed here; the bound only catches typos.
pub const MAX_ARGON2_PARALLELISM: u32 = 16;

/// The default scheme: HMAC-SHA256 keyed with the pepper (about 0.3 µs per hash). Without the
/// pepper no candidate can be tested offline whatever the scheme, and with it no affordable work
/// factor saves a 6-digit code within its validity (`docs/code-hashing.md`), so the default
/// spends no CPU on a work factor; production refuses to start without a pepper.
pub const DEFAULT_SCHEME: HashScheme = HashScheme::HmacSha256;

/// argon2id with the measured parameters above (about 0.17 ms per hash on the reference 2-core
/// box): `hashing = { scheme = "argon2id" }`.
pub const DEFAULT_ARGON2: HashScheme = HashScheme::Argon2id {
    memory_kib: DEFAULT_ARGON2_MEMORY_KIB,
    iterations: DEFAULT_ARGON2_ITERATIONS,
    parallelism: DEFAULT_ARGON2_PARALLELISM,
};

/// Label prefixed to the HMAC message (domain separation of the pepper).
const HMAC_LABEL: &[u8] = b"switchboard/code/v1";

/// Why a code operation failed. No message ever contains a code, a salt's owner or the pepper.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodeError {
    /// A code length outside `MIN_LENGTH..=MAX_LENGTH`.
    #[error("code length {length} is outside {min}..={max}")]
    InvalidLength { length: u8, min: u8, max: u8 },
    /// A hashing parameter (or the pepper's size) is out of range; the message names the field.
    #[error("invalid code hashing parameters: {0}")]
    InvalidParams(String),
    /// A stored value (salt, digest, pepper) is not the expected hex; names which one.
    #[error("malformed {what}: expected {expected_len} bytes as hex")]
    Malformed {
        what: &'static str,
        expected_len: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed")]
    Rng,
    /// The hashing pool is gone or a hashing task panicked.
    #[error("internal error in the code hasher")]
    Internal,
}

/// Generates a code of `length` digits (4..=10), uniform over all `10^length` values.
///
/// Uses the OS CSPRNG directly (no user-space state to leak or fork). A 64-bit draw is accepted
/// only below the largest multiple of `10^length` that fits in a `u64`, then reduced: every code
/// is reached by exactly the same number of accepted draws, so there is no modulo bias. The
/// rejection chance is below 10^10 / 2^64 ≈ 5.4e-10 per draw.
pub fn generate(length: u8) -> Result<OneTimeCode, CodeError> {
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        return Err(CodeError::InvalidLength {
            length,
            min: MIN_LENGTH,
            max: MAX_LENGTH,
        });
    }
    let bound = 10u64.pow(u32::from(length));
    let value = uniform_below(bound, || OsRng.try_next_u64().map_err(|_| CodeError::Rng))?;
    Ok(OneTimeCode::new(format!(
        "{value:0width$}",
        width = usize::from(length)
    )))
}

/// The smallest draw that must be rejected for `bound`: the largest multiple of `bound` that
/// fits in `u64` arithmetic (`2^64 - (2^64 mod bound)`), or `None` when `bound` divides 2^64.
fn rejection_zone(bound: u64) -> Option<u64> {
    debug_assert!(bound > 0);
    // 2^64 mod bound, computed without 128-bit arithmetic: (2^64 - bound) mod bound.
    let excess = bound.wrapping_neg() % bound;
    if excess == 0 {
        None
    } else {
        Some(0u64.wrapping_sub(excess))
    }
}

/// A uniform value in `0..bound` from uniform 64-bit draws, by rejection.
fn uniform_below(
    bound: u64,
    mut draw: impl FnMut() -> Result<u64, CodeError>,
) -> Result<u64, CodeError> {
    let zone = rejection_zone(bound);
    loop {
        let x = draw()?;
        if zone.is_none_or(|z| x < z) {
            return Ok(x % bound);
        }
    }
}

/// True when `code` could have come from [`generate`]: 4..=10 ASCII digits.
pub fn is_well_formed(code: &OneTimeCode) -> bool {
    let digits = code.expose();
    (usize::from(MIN_LENGTH)..=usize::from(MAX_LENGTH)).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The server-side secret keying every digest. Kept out of the code store (Redis): a dump of
/// the store without the pepper cannot be brute forced at all.
///
/// `Debug` prints `<redacted>`; the bytes are zeroized on drop. Not `Clone`, so the secret is
/// held in one place (a [`CodeHasher`] shares it behind an `Arc`).
pub struct Pepper(Box<[u8]>);

impl Pepper {
    /// Takes ownership of secret bytes; at least [`MIN_PEPPER_LEN`] of them.
    pub fn new(bytes: Vec<u8>) -> Result<Self, CodeError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < MIN_PEPPER_LEN {
            return Err(CodeError::InvalidParams(format!(
                "pepper must be at least {MIN_PEPPER_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        Ok(Pepper(bytes.as_slice().into()))
    }

    /// Decodes a configured pepper: hex (64 characters or more) or base64 (standard or URL-safe,
    /// padded or not) of at least [`MIN_PEPPER_LEN`] random bytes. Surrounding whitespace is
    /// ignored. Refuses text that is neither, too short, or visibly low entropy (one repeated
    /// character, a short repeated pattern). The error never echoes the input.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        use base64::Engine as _;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let text = text.trim();
        let bytes = if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
        };
        let bytes = Zeroizing::new(bytes.ok_or_else(|| {
            CodeError::InvalidParams(format!(
                "pepper must be hex or base64 of at least {MIN_PEPPER_LEN} random bytes \
                 (e.g. `head -c32 /dev/urandom | base64`)"
            ))
        })?);
        if bytes.len() < MIN_PEPPER_LEN {
            return Err(CodeError::InvalidParams(format!(
                "pepper must decode to at least {MIN_PEPPER_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let mut seen = [false; 256];
        bytes.iter().for_each(|b| seen[usize::from(*b)] = true);
        if seen.iter().filter(|s| **s).count() < MIN_PEPPER_DISTINCT_BYTES {
            return Err(CodeError::InvalidParams(
                "pepper looks low-entropy (few distinct bytes); generate it with \
                 `head -c32 /dev/urandom | base64`"
                    .into(),
            ));
        }
        Pepper::new(bytes.to_vec())
    }

    /// Decodes a hex pepper (as kept in an environment variable or a secret file). Surrounding
    /// whitespace is ignored. The error never echoes the input.
    pub fn from_hex(hex_str: &str) -> Result<Self, CodeError> {
        let bytes = hex::decode(hex_str.trim()).map_err(|_| CodeError::Malformed {
            what: "pepper",
            expected_len: MIN_PEPPER_LEN,
        })?;
        Pepper::new(bytes)
    }

    /// A fresh random 32-byte pepper (for tests, development and `keygen`-style tooling).
    pub fn random() -> Result<Self, CodeError> {
        let mut bytes = Zeroizing::new(vec![0u8; 32]);
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| CodeError::Rng)?;
        Ok(Pepper(bytes.as_slice().into()))
    }

    fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pepper {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// A 16-byte salt (not a secret). The engine derives it per application and number;
/// [`Salt::random`] serves callers that keep a random salt next to their digests.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Salt([u8; SALT_LEN]);

impl Salt {
    /// A fresh salt from the OS CSPRNG.
    pub fn random() -> Result<Self, CodeError> {
        let mut bytes = [0u8; SALT_LEN];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| CodeError::Rng)?;
        Ok(Salt(bytes))
    }

    /// Wraps known bytes (tests, fixtures).
    pub const fn from_bytes(bytes: [u8; SALT_LEN]) -> Self {
        Salt(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; SALT_LEN] {
        &self.0
    }

    /// Lowercase hex, 32 characters: the form kept in the store.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`Salt::to_hex`] output (either case).
    pub fn from_hex(hex_str: &str) -> Result<Self, CodeError> {
        decode_fixed(hex_str, "salt").map(Salt)
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Salt({})", self.to_hex())
    }
}

/// A keyed hash of a code. Equality is constant time; `Debug` shows only the first 4 hex digits.
#[derive(Clone, Copy)]
pub struct CodeDigest([u8; DIGEST_LEN]);

impl CodeDigest {
    /// Wraps known bytes (tests, fixtures).
    pub const fn from_bytes(bytes: [u8; DIGEST_LEN]) -> Self {
        CodeDigest(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    /// Lowercase hex, 64 characters: the form kept in the store.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`CodeDigest::to_hex`] output (either case).
    pub fn from_hex(hex_str: &str) -> Result<Self, CodeError> {
        decode_fixed(hex_str, "code digest").map(CodeDigest)
    }
}

impl ConstantTimeEq for CodeDigest {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for CodeDigest {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for CodeDigest {}

impl fmt::Debug for CodeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeDigest({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

fn decode_fixed<const N: usize>(hex_str: &str, what: &'static str) -> Result<[u8; N], CodeError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(hex_str, &mut out).map_err(|_| CodeError::Malformed {
        what,
        expected_len: N,
    })?;
    Ok(out)
}

macro_rules! hex_serde {
    ($ty:ty, $expecting:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                <$ty>::from_hex(&s).map_err(|_| serde::de::Error::custom($expecting))
            }
        }
    };
}

hex_serde!(Salt, "a salt as 32 hex characters");
hex_serde!(CodeDigest, "a code digest as 64 hex characters");

/// How codes are hashed. In configuration:
///
/// ```toml
/// hashing = { scheme = "argon2id", memory_kib = 512, iterations = 1, parallelism = 1 }
/// hashing = { scheme = "hmac-sha256" }
/// ```
///
/// The default is `hmac-sha256` ([`DEFAULT_SCHEME`]). Omitted argon2id fields take the measured
/// defaults ([`DEFAULT_ARGON2`]); unknown fields are refused.
/// Changing the scheme or its parameters changes every digest, so codes in flight at the
/// switch (at most one validity period, 5 minutes) stop verifying.
/// Deserialising validates the parameters, so a bad value fails at configuration load with
/// the field named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case", try_from = "SchemeConfig")]
pub enum HashScheme {
    /// argon2id (RFC 9106, version 0x13), the pepper as argon2's secret input.
    Argon2id {
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
    /// HMAC-SHA256 keyed with the pepper: about a microsecond, no work factor.
    HmacSha256,
}

/// The configuration form of [`HashScheme`]. serde ignores unknown fields next to the tag of a
/// unit variant, so `hmac-sha256` is an empty struct variant here to make
/// `deny_unknown_fields` apply to it too.
#[derive(Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case", deny_unknown_fields)]
enum SchemeConfig {
    Argon2id {
        #[serde(default = "default_memory_kib")]
        memory_kib: u32,
        #[serde(default = "default_iterations")]
        iterations: u32,
        #[serde(default = "default_parallelism")]
        parallelism: u32,
    },
    HmacSha256 {},
}

impl TryFrom<SchemeConfig> for HashScheme {
    type Error = CodeError;

    fn try_from(config: SchemeConfig) -> Result<Self, CodeError> {
        let scheme = match config {
            SchemeConfig::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => HashScheme::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            },
            SchemeConfig::HmacSha256 {} => HashScheme::HmacSha256,
        };
        scheme.validate()?;
        Ok(scheme)
    }
}

fn default_memory_kib() -> u32 {
    DEFAULT_ARGON2_MEMORY_KIB
}
fn default_iterations() -> u32 {
    DEFAULT_ARGON2_ITERATIONS
}
fn default_parallelism() -> u32 {
    DEFAULT_ARGON2_PARALLELISM
}

impl Default for HashScheme {
    fn default() -> Self {
        DEFAULT_SCHEME
    }
}

impl HashScheme {
    /// Checks the parameters; the message names the offending field.
    pub fn validate(&self) -> Result<(), CodeError> {
        self.argon2_params().map(|_| ())
    }

    fn argon2_params(&self) -> Result<Option<Params>, CodeError> {
        let HashScheme::Argon2id {
            memory_kib,
            iterations,
            parallelism,
        } = *self
        else {
            return Ok(None);
        };
        let invalid = |msg: String| Err(CodeError::InvalidParams(msg));
        if !(1..=MAX_ARGON2_PARALLELISM).contains(&parallelism) {
            return invalid(format!(
                "parallelism must be in 1..={MAX_ARGON2_PARALLELISM}, got {parallelism}"
            ));
        }
        if !(1..=MAX_ARGON2_ITERATIONS).contains(&iterations) {
            return invalid(format!(
                "iterations must be in 1..={MAX_ARGON2_ITERATIONS}, got {iterations}"
            ));
        }
        let min_memory = 8 * parallelism;
        if !(min_memory..=MAX_ARGON2_MEMORY_KIB).contains(&memory_kib) {
            return invalid(format!(
                "memory_kib must be in {min_memory}..={MAX_ARGON2_MEMORY_KIB} \
                 (at least 8 per unit of parallelism), got {memory_kib}"
            ));
        }
        Params::new(memory_kib, iterations, parallelism, Some(DIGEST_LEN))
            .map(Some)
            .map_err(|e| CodeError::InvalidParams(format!("argon2 rejected the parameters: {e}")))
    }
}

/// Hashes codes with the pepper and compares them in constant time. Cheap to clone: everything
/// is behind one `Arc`.
///
/// Argon2 work runs on a fixed pool of `max_concurrency` threads owned by the hasher, never on
/// the runtime's worker threads. Each pool thread allocates its `memory_kib` working memory
/// once and reuses it for every hash, so argon2's memory is bounded by
/// `max_concurrency × memory_kib` for the life of the process. (Allocating it per hash on
/// tokio's blocking pool let glibc keep a freed 512 KiB block in the arena of every blocking
/// thread that ever hashed: 85-156 MiB of peak RSS under load, see `docs/performance.md`.)
/// Callers wait for one of `max_concurrency` permits first, as cheap parked futures; the permit
/// moves into the job, so a caller that gives up (drops the future) cannot queue more hashes
/// than there are threads. The working memory is zeroized when the hasher, and with it the
/// pool, is dropped; between hashes it holds only state that the next hash overwrites.
///
/// HMAC-SHA256 is computed inline: a microsecond of work is far below the cost of the thread
/// hop (and below tokio's guidance for what must leave the worker threads).
#[derive(Clone)]
pub struct CodeHasher {
    inner: Arc<Inner>,
}

struct Inner {
    key: Arc<Keyed>,
    scheme: HashScheme,
    /// The argon2 threads; `None` for HMAC. Dropping it closes the queue and the threads exit.
    pool: Option<mpsc::Sender<Job>>,
    permits: Arc<Semaphore>,
    max_concurrency: NonZeroUsize,
    #[cfg(test)]
    hash_threads: Arc<parking_lot::Mutex<Vec<std::thread::ThreadId>>>,
}

/// What a digest depends on besides its input, shared with the argon2 threads.
struct Keyed {
    pepper: Pepper,
    argon2_params: Option<Params>,
}

/// One argon2 hash for a pool thread.
struct Job {
    digits: Zeroizing<Vec<u8>>,
    salt: Salt,
    reply: oneshot::Sender<CodeDigest>,
    permit: OwnedSemaphorePermit,
}

impl fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeHasher")
            .field("pepper", &self.inner.key.pepper)
            .field("scheme", &self.inner.scheme)
            .field("max_concurrency", &self.inner.max_concurrency)
            .finish()
    }
}

impl CodeHasher {
    /// Validates `scheme` (errors name the field) and `max_concurrency` (at least 1; a good
    /// value is the number of cores), and for argon2id starts `max_concurrency` hashing threads.
    pub fn new(
        pepper: Pepper,
        scheme: HashScheme,
        max_concurrency: usize,
    ) -> Result<Self, CodeError> {
        let argon2_params = scheme.argon2_params()?;
        let max_concurrency = NonZeroUsize::new(max_concurrency)
            .filter(|n| n.get() <= MAX_HASH_THREADS)
            .ok_or_else(|| {
                CodeError::InvalidParams(format!(
                    "max_concurrency must be in 1..={MAX_HASH_THREADS}, got {max_concurrency}"
                ))
            })?;
        let key = Arc::new(Keyed {
            pepper,
            argon2_params,
        });
        #[cfg(test)]
        let hash_threads = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let pool = match key.argon2_params {
            None => None,
            Some(_) => Some(start_pool(
                &key,
                max_concurrency,
                #[cfg(test)]
                &hash_threads,
            )?),
        };
        Ok(CodeHasher {
            inner: Arc::new(Inner {
                key,
                scheme,
                pool,
                permits: Arc::new(Semaphore::new(max_concurrency.get())),
                max_concurrency,
                #[cfg(test)]
                hash_threads,
            }),
        })
    }

    pub fn scheme(&self) -> HashScheme {
        self.inner.scheme
    }

    pub fn max_concurrency(&self) -> usize {
        self.inner.max_concurrency.get()
    }

    /// Hashes on the calling thread, with memory of its own. For benches, tests and blocking
    /// contexts; async code uses [`CodeHasher::digest`].
    pub fn digest_blocking(&self, code: &OneTimeCode, salt: &Salt) -> CodeDigest {
        let key = &self.inner.key;
        let digits = code.expose().as_bytes();
        match &key.argon2_params {
            Some(params) => {
                let mut memory = Zeroizing::new(vec![Block::default(); params.block_count()]);
                key.argon2(params, digits, salt, &mut memory)
            }
            None => key.hmac(digits, salt),
        }
    }

    /// Hashes a code (argon2 on the hasher's own threads, see the type's docs).
    pub async fn digest(&self, code: &OneTimeCode, salt: &Salt) -> Result<CodeDigest, CodeError> {
        let Some(pool) = &self.inner.pool else {
            return Ok(self.inner.key.hmac(code.expose().as_bytes(), salt));
        };
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| CodeError::Internal)?;
        let (reply, answer) = oneshot::channel();
        pool.send(Job {
            // The thread needs owned digits; this copy is wiped when the job ends.
            digits: Zeroizing::new(code.expose().as_bytes().to_vec()),
            salt: *salt,
            reply,
            permit,
        })
        .map_err(|_| CodeError::Internal)?;
        answer.await.map_err(|_| CodeError::Internal)
    }

    /// Checks a typed candidate against the digests of one verification (all made with `salt`).
    ///
    /// The candidate is hashed once; its digest is compared with every stored digest in
    /// constant time, with no early exit, and the index of the first match is returned.
    ///
    /// A candidate that is not 4..=10 ASCII digits can never match a generated code and is
    /// answered `Ok(None)` without hashing. That shortcut's timing depends only on the
    /// candidate, which the caller already knows, never on a stored digest or the pepper, so
    /// it leaks nothing about the secret.
    pub async fn find_match(
        &self,
        candidate: &OneTimeCode,
        salt: &Salt,
        digests: &[CodeDigest],
    ) -> Result<Option<usize>, CodeError> {
        if !is_well_formed(candidate) {
            return Ok(None);
        }
        let hashed = self.digest(candidate, salt).await?;
        Ok(position_ct(&hashed, digests))
    }
}

/// Most argon2 threads one hasher may start.
const MAX_HASH_THREADS: usize = 1024;

/// Starts the argon2 threads. They share one queue and exit when its sender is dropped.
fn start_pool(
    key: &Arc<Keyed>,
    threads: NonZeroUsize,
    #[cfg(test)] hash_threads: &Arc<parking_lot::Mutex<Vec<std::thread::ThreadId>>>,
) -> Result<mpsc::Sender<Job>, CodeError> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(parking_lot::Mutex::new(queue));
    for i in 0..threads.get() {
        let key = Arc::clone(key);
        let queue = Arc::clone(&queue);
        #[cfg(test)]
        let hash_threads = Arc::clone(hash_threads);
        std::thread::Builder::new()
            .name(format!("switchboard-argon2-{i}"))
            .spawn(move || {
                let Some(params) = &key.argon2_params else {
                    return;
                };
                let mut memory = Zeroizing::new(vec![Block::default(); params.block_count()]);
                loop {
                    // The lock is held only while this thread waits for the next job.
                    let next = queue.lock().recv();
                    let Ok(Job {
                        digits,
                        salt,
                        reply,
                        permit,
                    }) = next
                    else {
                        return;
                    };
                    #[cfg(test)]
                    hash_threads.lock().push(std::thread::current().id());
                    let digest = key.argon2(params, &digits, &salt, &mut memory);
                    // The permit goes back before the caller hears the answer.
                    drop(permit);
                    // A caller that gave up has dropped the receiver; nothing to tell it.
                    let _ = reply.send(digest);
                }
            })
            .map_err(|_| CodeError::Internal)?;
    }
    Ok(jobs)
}

/// Index of the first digest equal to `needle`, comparing all of them in constant time.
fn position_ct(needle: &CodeDigest, digests: &[CodeDigest]) -> Option<usize> {
    let mut found = Choice::from(0);
    let mut index = 0u64;
    for (i, digest) in digests.iter().enumerate() {
        let hit = needle.ct_eq(digest) & !found;
        index.conditional_assign(&(i as u64), hit);
        found |= hit;
    }
    bool::from(found).then_some(index as usize)
}

impl Keyed {
    /// argon2id over `u32 BE length || digits`, the pepper as argon2's secret, in `memory`.
    fn argon2(
        &self,
        params: &Params,
        digits: &[u8],
        salt: &Salt,
        memory: &mut [Block],
    ) -> CodeDigest {
        let mut password = Zeroizing::new(Vec::with_capacity(4 + digits.len()));
        password.extend_from_slice(&length_prefix(digits));
        password.extend_from_slice(digits);
        let mut out = [0u8; DIGEST_LEN];
        // Both calls fail only for parameters, salt, secret or memory sizes that `new` and the
        // types already rule out (secret < 4 GiB, salt 16 bytes, output 32 bytes, memory sized
        // by the same parameters).
        Argon2::new_with_secret(
            self.pepper.expose(),
            Algorithm::Argon2id,
            Version::V0x13,
            params.clone(),
        )
        .and_then(|argon2| {
            argon2.hash_password_into_with_memory(&password, &salt.0, &mut out, memory)
        })
        .expect("argon2 inputs are validated by CodeHasher::new");
        CodeDigest(out)
    }

    fn hmac(&self, digits: &[u8], salt: &Salt) -> CodeDigest {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.pepper.expose())
            .expect("HMAC accepts keys of any length");
        mac.update(HMAC_LABEL);
        mac.update(&salt.0);
        mac.update(&length_prefix(digits));
        mac.update(digits);
        CodeDigest(mac.finalize().into_bytes().into())
    }
}

/// The code's length as 4 big-endian bytes, hashed before the digits.
fn length_prefix(digits: &[u8]) -> [u8; 4] {
    u32::try_from(digits.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEPPER: [u8; 32] = [7; 32];
    const SALT: Salt = Salt::from_bytes([1; SALT_LEN]);
    /// Cheap argon2id so the tests stay fast in debug builds.
    const TEST_ARGON2: HashScheme = HashScheme::Argon2id {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn hasher(scheme: HashScheme) -> CodeHasher {
        CodeHasher::new(Pepper::new(PEPPER.to_vec()).unwrap(), scheme, 2).unwrap()
    }

    fn code(s: &str) -> OneTimeCode {
        OneTimeCode::new(s)
    }

    fn chi_square(counts: &[u64]) -> f64 {
        let total: u64 = counts.iter().sum();
        let expected = total as f64 / counts.len() as f64;
        counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn generated_digits_are_uniform_at_every_position() {
        // 100k codes x 10 positions = 1M digits. A per-digit `u8 % 10` (26/256 vs 25/256)
        // gives chi-square ≈ 365 here; an unbiased generator averages 9 (9 degrees of
        // freedom) and exceeds 60 with probability ~1e-9.
        let mut counts = [0u64; 10];
        for _ in 0..100_000 {
            let c = generate(10).unwrap();
            for b in c.expose().bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        let chi2 = chi_square(&counts);
        assert!(chi2 < 60.0, "digit counts {counts:?}, chi-square {chi2}");
    }

    #[test]
    fn first_digit_of_default_codes_is_uniform_including_zero() {
        let mut counts = [0u64; 10];
        for _ in 0..20_000 {
            let c = generate(DEFAULT_LENGTH).unwrap();
            counts[usize::from(c.expose().as_bytes()[0] - b'0')] += 1;
        }
        // Leading zeros are kept, so '0' leads as often as any digit.
        assert!(counts[0] > 1_500, "counts {counts:?}");
        let chi2 = chi_square(&counts);
        assert!(
            chi2 < 60.0,
            "first-digit counts {counts:?}, chi-square {chi2}"
        );
    }

    #[test]
    fn rejection_zone_is_the_largest_multiple_of_the_bound() {
        for length in MIN_LENGTH..=MAX_LENGTH {
            let bound = 10u64.pow(u32::from(length));
            let zone = rejection_zone(bound).unwrap();
            assert_eq!(zone % bound, 0);
            // The zone is the top: one more multiple of `bound` would overflow 2^64.
            assert!(zone.checked_add(bound).is_none());
        }
        assert_eq!(rejection_zone(1 << 10), None);
    }

    #[test]
    fn draws_in_the_biased_tail_are_rejected() {
        // u64::MAX % 10^6 would favour low codes; those draws must be discarded.
        let bound = 1_000_000;
        let zone = rejection_zone(bound).unwrap();
        let mut draws = vec![zone - 1, zone, u64::MAX].into_iter().rev();
        // First draws u64::MAX and `zone` (both rejected), then `zone - 1` (accepted).
        let v = uniform_below(bound, || Ok(draws.next().unwrap())).unwrap();
        assert_eq!(v, (zone - 1) % bound);
        assert_eq!(draws.next(), None);
    }

    #[test]
    fn rng_failure_is_reported() {
        assert_eq!(
            uniform_below(10, || Err(CodeError::Rng)),
            Err(CodeError::Rng)
        );
    }

    #[test]
    fn lengths_four_and_ten_are_generated_as_digits() {
        for length in [MIN_LENGTH, DEFAULT_LENGTH, MAX_LENGTH] {
            for _ in 0..100 {
                let c = generate(length).unwrap();
                assert_eq!(c.len(), usize::from(length));
                assert!(is_well_formed(&c));
            }
        }
    }

    #[test]
    fn lengths_outside_four_to_ten_are_rejected() {
        for length in [0, 1, 3, 11, 255] {
            assert_eq!(
                generate(length),
                Err(CodeError::InvalidLength {
                    length,
                    min: 4,
                    max: 10
                })
            );
        }
    }

    #[test]
    fn digest_is_deterministic_for_same_salt_and_pepper() {
        for scheme in [TEST_ARGON2, HashScheme::HmacSha256] {
            let a = hasher(scheme).digest_blocking(&code("123456"), &SALT);
            let b = hasher(scheme).digest_blocking(&code("123456"), &SALT);
            assert_eq!(a, b, "{scheme:?}");
        }
    }

    #[test]
    fn digest_differs_by_pepper_salt_code_and_scheme() {
        for scheme in [TEST_ARGON2, HashScheme::HmacSha256] {
            let h = hasher(scheme);
            let base = h.digest_blocking(&code("123456"), &SALT);
            let other_pepper = CodeHasher::new(Pepper::new(vec![8; 32]).unwrap(), scheme, 1)
                .unwrap()
                .digest_blocking(&code("123456"), &SALT);
            let other_salt = h.digest_blocking(&code("123456"), &Salt::from_bytes([2; 16]));
            let other_code = h.digest_blocking(&code("123457"), &SALT);
            let leading_zero = h.digest_blocking(&code("0123456"), &SALT);
            for d in [other_pepper, other_salt, other_code, leading_zero] {
                assert_ne!(base, d, "{scheme:?}");
            }
        }
        let argon = hasher(TEST_ARGON2).digest_blocking(&code("123456"), &SALT);
        let hmac = hasher(HashScheme::HmacSha256).digest_blocking(&code("123456"), &SALT);
        assert_ne!(argon, hmac);
    }

    #[test]
    fn argon2_digest_uses_the_pepper_as_argon2_secret() {
        // Recompute with the argon2 crate directly: password = u32 BE length || digits.
        let params = Params::new(64, 1, 1, Some(32)).unwrap();
        let argon2 =
            Argon2::new_with_secret(&PEPPER, Algorithm::Argon2id, Version::V0x13, params).unwrap();
        let mut expected = [0u8; 32];
        argon2
            .hash_password_into(b"\0\0\0\x06123456", SALT.as_bytes(), &mut expected)
            .unwrap();
        let got = hasher(TEST_ARGON2).digest_blocking(&code("123456"), &SALT);
        assert_eq!(got, CodeDigest::from_bytes(expected));
    }

    #[tokio::test]
    async fn find_match_returns_the_index_of_the_matching_code_among_three() {
        for scheme in [TEST_ARGON2, HashScheme::HmacSha256] {
            let h = hasher(scheme);
            let salt = Salt::random().unwrap();
            let codes = ["482913", "000417", "999999"];
            let mut digests = Vec::new();
            for c in codes {
                digests.push(h.digest(&code(c), &salt).await.unwrap());
            }
            for (i, c) in codes.iter().enumerate() {
                assert_eq!(h.find_match(&code(c), &salt, &digests).await, Ok(Some(i)));
            }
        }
    }

    #[tokio::test]
    async fn find_match_returns_first_index_when_a_resend_repeats_a_code() {
        let h = hasher(HashScheme::HmacSha256);
        let d = h.digest(&code("123456"), &SALT).await.unwrap();
        let other = h.digest(&code("654321"), &SALT).await.unwrap();
        let found = h.find_match(&code("123456"), &SALT, &[other, d, d]).await;
        assert_eq!(found, Ok(Some(1)));
    }

    #[tokio::test]
    async fn find_match_is_none_for_a_wrong_code_or_another_salt() {
        for scheme in [TEST_ARGON2, HashScheme::HmacSha256] {
            let h = hasher(scheme);
            let digests = [
                h.digest(&code("111111"), &SALT).await.unwrap(),
                h.digest(&code("222222"), &SALT).await.unwrap(),
            ];
            assert_eq!(
                h.find_match(&code("333333"), &SALT, &digests).await,
                Ok(None)
            );
            let other_salt = Salt::from_bytes([9; 16]);
            assert_eq!(
                h.find_match(&code("111111"), &other_salt, &digests).await,
                Ok(None)
            );
            assert_eq!(h.find_match(&code("111111"), &SALT, &[]).await, Ok(None));
        }
    }

    #[tokio::test]
    async fn malformed_candidates_never_match_and_are_not_hashed() {
        let h = hasher(TEST_ARGON2);
        let digests = [h.digest(&code("123456"), &SALT).await.unwrap()];
        let hashed_before = h.inner.hash_threads.lock().len();
        for bad in [
            "12345a",
            " 123456",
            "123456 ",
            "",
            "123",
            "12345678901",
            "１２３４５６",
            "-12345",
        ] {
            assert_eq!(h.find_match(&code(bad), &SALT, &digests).await, Ok(None));
        }
        assert_eq!(h.inner.hash_threads.lock().len(), hashed_before);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_digest_runs_argon2_off_the_runtime_thread() {
        let h = hasher(TEST_ARGON2);
        let d = h.digest(&code("123456"), &SALT).await.unwrap();
        assert_eq!(d, h.digest_blocking(&code("123456"), &SALT));
        let threads = h.inner.hash_threads.lock().clone();
        assert_eq!(threads.len(), 1);
        assert_ne!(threads[0], std::thread::current().id());
        // The permit went back to the pool.
        assert_eq!(h.inner.permits.available_permits(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_digests_run_on_at_most_max_concurrency_reused_threads() {
        let h = hasher(TEST_ARGON2);
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move { h.digest(&code(&format!("{i:06}")), &SALT).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let expected = h.digest_blocking(&code(&format!("{i:06}")), &SALT);
            assert_eq!(t.await.unwrap().unwrap(), expected);
        }
        let threads = h.inner.hash_threads.lock().clone();
        assert_eq!(threads.len(), 16);
        let distinct: std::collections::HashSet<_> = threads.into_iter().collect();
        // The same threads (and their working memory) serve every hash.
        assert!(distinct.len() <= h.max_concurrency(), "{distinct:?}");
        assert_eq!(h.inner.permits.available_permits(), h.max_concurrency());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_that_give_up_do_not_leak_permits_or_stall_the_pool() {
        let h = hasher(TEST_ARGON2);
        for i in 0..32 {
            // Polled once (queued or waiting for a permit), then dropped.
            let h = h.clone();
            let _ = tokio::time::timeout(std::time::Duration::ZERO, async move {
                h.digest(&code(&format!("{i:06}")), &SALT).await
            })
            .await;
        }
        let d = h.digest(&code("123456"), &SALT).await.unwrap();
        assert_eq!(d, h.digest_blocking(&code("123456"), &SALT));
        // Abandoned jobs still run to the end; then every permit is back.
        for _ in 0..1000 {
            if h.inner.permits.available_permits() == h.max_concurrency() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(h.inner.permits.available_permits(), h.max_concurrency());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let pepper = Pepper::new(b"super-secret-pepper-bytes-0123456".to_vec()).unwrap();
        let pepper_dbg = format!("{pepper:?}");
        assert_eq!(pepper_dbg, "Pepper(<redacted>)");

        let c = code("482913");
        assert!(!format!("{c:?}").contains("482913"));

        let h = CodeHasher::new(pepper, HashScheme::HmacSha256, 1).unwrap();
        let hasher_dbg = format!("{h:?}");
        assert!(hasher_dbg.contains("<redacted>"));
        assert!(!hasher_dbg.contains("secret"));

        let d = h.digest_blocking(&c, &SALT);
        let digest_dbg = format!("{d:?}");
        let full = d.to_hex();
        assert!(!digest_dbg.contains(&full[..8]), "{digest_dbg}");
        assert_eq!(digest_dbg, format!("CodeDigest({}…)", &full[..4]));
    }

    #[test]
    fn errors_never_echo_secret_input() {
        let err = Pepper::from_hex("deadbeefzz-secret").unwrap_err();
        assert!(!err.to_string().contains("secret"));
        let err = Pepper::new(b"short".to_vec()).unwrap_err();
        assert!(!err.to_string().contains("short"));
    }

    #[test]
    fn salt_and_digest_round_trip_through_hex_and_serde() {
        let salt = Salt::random().unwrap();
        assert_eq!(Salt::from_hex(&salt.to_hex()), Ok(salt));
        assert_eq!(salt.to_hex().len(), 32);
        let d = hasher(HashScheme::HmacSha256).digest_blocking(&code("123456"), &salt);
        assert_eq!(CodeDigest::from_hex(&d.to_hex()), Ok(d));
        assert_eq!(CodeDigest::from_hex(&d.to_hex().to_uppercase()), Ok(d));

        let json = serde_json::to_string(&(salt, d)).unwrap();
        let back: (Salt, CodeDigest) = serde_json::from_str(&json).unwrap();
        assert_eq!(back, (salt, d));

        assert!(matches!(
            Salt::from_hex("00"),
            Err(CodeError::Malformed { what: "salt", .. })
        ));
        assert!(CodeDigest::from_hex(&"g".repeat(64)).is_err());
        assert!(serde_json::from_str::<Salt>("\"xyz\"").is_err());
    }

    #[test]
    fn peppers_shorter_than_32_bytes_are_refused() {
        assert!(Pepper::new(vec![1; 31]).is_err());
        assert!(Pepper::new(vec![1; 32]).is_ok());
        assert!(Pepper::from_hex(&"ab".repeat(32)).is_ok());
        assert!(Pepper::from_hex(&"ab".repeat(8)).is_err());
        assert!(Pepper::random().is_ok());
    }

    #[derive(Debug, Deserialize)]
    struct Config {
        hashing: HashScheme,
    }

    #[test]
    fn scheme_deserializes_from_toml_config() {
        let c: Config = toml::from_str(
            r#"hashing = { scheme = "argon2id", memory_kib = 512, iterations = 2, parallelism = 1 }"#,
        )
        .unwrap();
        assert_eq!(
            c.hashing,
            HashScheme::Argon2id {
                memory_kib: 512,
                iterations: 2,
                parallelism: 1
            }
        );
        let c: Config = toml::from_str(r#"hashing = { scheme = "hmac-sha256" }"#).unwrap();
        assert_eq!(c.hashing, HashScheme::HmacSha256);
        let c: Config = toml::from_str(r#"hashing = { scheme = "argon2id" }"#).unwrap();
        assert_eq!(c.hashing, DEFAULT_ARGON2);
        assert_eq!(HashScheme::default(), HashScheme::HmacSha256);
        // Serialising gives back the configuration form.
        let json = serde_json::to_value(DEFAULT_ARGON2).unwrap();
        assert_eq!(json["scheme"], "argon2id");
        assert_eq!(
            serde_json::from_value::<HashScheme>(json).unwrap(),
            DEFAULT_ARGON2
        );
        let json = serde_json::to_string(&HashScheme::HmacSha256).unwrap();
        assert_eq!(json, r#"{"scheme":"hmac-sha256"}"#);
    }

    #[test]
    fn scheme_config_refuses_unknown_fields_and_schemes() {
        for bad in [
            r#"hashing = { scheme = "argon2id", memory = 512 }"#,
            r#"hashing = { scheme = "hmac-sha256", memory_kib = 512 }"#,
            r#"hashing = { scheme = "bcrypt" }"#,
            r#"hashing = { memory_kib = 512 }"#,
            r#"hashing = { scheme = "argon2id", memory_kib = 4 }"#,
        ] {
            assert!(toml::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_argon2_params_are_named_in_the_error() {
        let pepper = || Pepper::new(PEPPER.to_vec()).unwrap();
        let cases = [
            (64, 1, 0, "parallelism"),
            (64, 1, 17, "parallelism"),
            (64, 0, 1, "iterations"),
            (64, 65, 1, "iterations"),
            (7, 1, 1, "memory_kib"),
            (31, 1, 4, "memory_kib"),
            (MAX_ARGON2_MEMORY_KIB + 1, 1, 1, "memory_kib"),
        ];
        for (memory_kib, iterations, parallelism, field) in cases {
            let scheme = HashScheme::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            };
            let err = CodeHasher::new(pepper(), scheme, 1).unwrap_err();
            let CodeError::InvalidParams(msg) = &err else {
                panic!("{err:?}")
            };
            assert!(msg.starts_with(field), "{msg}");
        }
        let err = CodeHasher::new(pepper(), HashScheme::HmacSha256, 0).unwrap_err();
        assert!(err.to_string().contains("max_concurrency"));
        assert!(DEFAULT_SCHEME.validate().is_ok() && DEFAULT_ARGON2.validate().is_ok());
    }
}
