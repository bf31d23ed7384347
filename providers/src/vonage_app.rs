//! A Vonage application's credentials: its id and RSA private key, and the application JWTs
//! (RS256) they sign. The Messages API and the Identity Insights API both authenticate with
//! one: `{"application_id", "iat", "exp", "jti"}`, signed with the key the dashboard issued.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::json;

use crate::config::FieldError;
use crate::{DeliveryError, Secret};

/// Lifetime of the application JWTs we mint (one per request).
const APP_JWT_LIFETIME: Duration = Duration::from_secs(900);

/// An application id and its private key. `Debug` shows the id only.
pub struct ApplicationKey {
    application_id: String,
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for ApplicationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationKey")
            .field("application_id", &self.application_id)
            .finish_non_exhaustive()
    }
}

impl ApplicationKey {
    /// Parses the PEM private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`), with real
    /// newlines or `\n` escapes (as environment variables often carry it). The error names
    /// `private_key` and never echoes the key.
    pub fn new(application_id: &str, pem: &str) -> Result<Self, FieldError> {
        Ok(ApplicationKey {
            application_id: application_id.to_owned(),
            key: parse_private_key(pem)?,
            rng: SystemRandom::new(),
        })
    }

    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// An application JWT (RS256) issued at `now`, valid for 15 minutes, with a random `jti`.
    /// `provider` names the adapter in the error.
    pub fn token(&self, provider: &str, now: SystemTime) -> Result<String, DeliveryError> {
        let failed = || {
            DeliveryError::config(provider, "cannot sign the application JWT").with_code("jwt_sign")
        };
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| failed())?
            .as_secs();
        let mut jti = [0u8; 16];
        self.rng.fill(&mut jti).map_err(|_| failed())?;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = json!({
            "application_id": self.application_id,
            "iat": iat,
            "exp": iat + APP_JWT_LIFETIME.as_secs(),
            "jti": hex::encode(jti),
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| failed())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

fn parse_private_key(pem: &str) -> Result<RsaKeyPair, FieldError> {
    let invalid = || {
        FieldError::new(
            "private_key",
            "must be the application's RSA private key in PEM (PKCS#8 or PKCS#1)",
        )
    };
    let pem = pem.replace("\\n", "\n");
    let mut label = None;
    let mut body = String::new();
    for line in pem.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("-----BEGIN ") {
            label = Some(rest.trim_end_matches('-').trim().to_owned());
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    let der = STANDARD.decode(body.as_bytes()).map_err(|_| invalid())?;
    match label.as_deref() {
        Some("PRIVATE KEY") => RsaKeyPair::from_pkcs8(&der).map_err(|_| invalid()),
        Some("RSA PRIVATE KEY") => RsaKeyPair::from_der(&der).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// A Vonage identifier: 1 to `max` ASCII letters and digits, and the `extra` bytes.
pub(crate) fn token_like(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// Checks an `api_key` as Vonage issues them; the error names the key.
pub(crate) fn check_api_key(key: &str) -> Result<(), FieldError> {
    if token_like(key, 64, b"") {
        Ok(())
    } else {
        Err(FieldError::new(
            "api_key",
            "must be a Vonage API key (letters and digits)",
        ))
    }
}

/// Checks the `application_id` + `private_key` pair of a config table: both or neither; the
/// error names the key. `true` when both are there. The key itself is parsed by
/// [`ApplicationKey::new`].
pub(crate) fn check_application(
    application_id: Option<&str>,
    private_key: Option<&Secret>,
) -> Result<bool, FieldError> {
    match (application_id, private_key) {
        (Some(id), Some(key)) => {
            if !token_like(id, 64, b"-") {
                return Err(FieldError::new(
                    "application_id",
                    "must be a Vonage application id (letters, digits and -)",
                ));
            }
            if key.is_empty() {
                return Err(FieldError::new("private_key", "missing"));
            }
            Ok(true)
        }
        (Some(_), None) => Err(FieldError::new("private_key", "missing")),
        (None, Some(_)) => Err(FieldError::new("application_id", "missing")),
        (None, None) => Ok(false),
    }
}
