//! Reading request bodies: bounded in size and time, JSON only, and every failure an
//! `INVALID_REQUEST` naming the field — never axum's plain-text rejections.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::server::errors::ApiError;

/// Largest API request body.
pub const MAX_JSON_BODY: usize = 16 * 1024;
/// Largest batch lookup body: 1,000 numbers of up to 250 characters each.
pub const MAX_BATCH_BODY: usize = 256 * 1024;
/// Largest provider callback body (Meta batches statuses).
pub const MAX_CALLBACK_BODY: usize = 256 * 1024;
/// A body must have arrived this long after the headers.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads at most `limit` bytes of `body`.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let collect = async {
        let mut stream = body.into_data_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|_| ApiError::invalid("the request body could not be read"))?;
            if buf.len() + chunk.len() > limit {
                return Err(ApiError::invalid(format!(
                    "the request body is larger than {limit} bytes"
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(BODY_TIMEOUT, collect)
        .await
        .map_err(|_| ApiError::invalid("the request body did not arrive in time"))?
}

/// Reads and parses a JSON request body into `T`.
///
/// The content type must be JSON: besides being the contract, it makes a browser preflight a
/// cross-site request, so a web page cannot post to a local sidecar that runs without keys.
pub async fn json<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
    json_within(headers, body, MAX_JSON_BODY).await
}

/// [`json`] for a body of up to `limit` bytes.
pub async fn json_within<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    parse(&json_bytes_within(headers, body, limit).await?)
}

/// The raw bytes of a JSON request body (for a caller that needs them besides the parse).
pub async fn json_bytes(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    json_bytes_within(headers, body, MAX_JSON_BODY).await
}

async fn json_bytes_within(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::invalid(
            "the request body must be JSON, sent with `content-type: application/json`",
        ));
    }
    read(body, limit).await
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Parses `bytes` into `T`; an error names the field it is about (`options.code_size`).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::invalid(
                "the request body is empty: expected a JSON object",
            ));
        }
        // serde would read a struct from an array too, by position.
        Some(b) if *b != b'{' => {
            return Err(ApiError::invalid(
                "invalid request body: expected a JSON object",
            ));
        }
        Some(_) => {}
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(format!("the request body is not valid JSON: {inner}"))
        } else if path == "." {
            ApiError::invalid(format!("invalid request body: {inner}"))
        } else {
            ApiError::invalid(format!("invalid `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::http::types::SendBody;

    fn message(body: &str) -> String {
        parse::<SendBody>(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn errors_name_the_field() {
        let m = message(r#"{"phone_number": 5}"#);
        assert!(
            m.starts_with("invalid `phone_number`: invalid type: integer"),
            "{m}"
        );
        let m = message(r#"{"phone_number": "+1", "options": {"code_size": "six"}}"#);
        assert!(m.starts_with("invalid `options.code_size`"), "{m}");
        let m = message(r#"{"phone_number": "+1", "channel": "FAX"}"#);
        assert!(
            m.contains("`channel`") && m.contains("expected one of SMS"),
            "{m}"
        );
        let m = message(r#"{"phone_number": "+1", "colour": "red"}"#);
        assert!(m.contains("unknown field `colour`"), "{m}");
        let m = message(r#"{"channel": "SMS"}"#);
        assert!(m.contains("missing field `phone_number`"), "{m}");
    }

    #[test]
    fn bad_json_and_empty_bodies_are_explained() {
        assert!(message("").contains("empty"));
        assert!(message("{\"phone_number\": ").contains("not valid JSON"));
        assert!(message("{\"phone_number\": \"+1\"} trailing").contains("not valid JSON"));
        let m = message("[1]");
        assert!(m.starts_with("invalid request body"), "{m}");
    }
}
