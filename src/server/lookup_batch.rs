//! Batch lookup, shared by `POST /v3/phone/lookup/batch/` and the `LookupBatch` RPC: the phone
//! reports of up to [`MAX_LOOKUP_BATCH`] numbers in one call, in the order they were given.
//!
//! A number that is not a valid phone number gets its own `INVALID_PHONE_NUMBER` result and does
//! not fail the call; everything that concerns the whole call (authentication, the application,
//! `region`, `vendor_data`, a store that is down) fails it as a single lookup would.

use futures::StreamExt;

use super::errors::ApiError;
use crate::Engine;
use crate::report::PhoneReport;

/// Most numbers one batch may carry.
pub const MAX_LOOKUP_BATCH: usize = 1_000;

/// Lookups of one batch in flight at once: with the Redis store, each is a round trip.
const CONCURRENCY: usize = 32;

/// The error code of a batch with more than [`MAX_LOOKUP_BATCH`] numbers.
pub const BATCH_TOO_LARGE: &str = "BATCH_TOO_LARGE";

/// One number's answer.
pub type LookupResult = Result<PhoneReport, ApiError>;

/// The report of each of `numbers` (or why it is not a valid number), in order.
pub async fn lookup_batch(
    engine: &Engine,
    numbers: &[String],
    region: Option<&str>,
    vendor_data: Option<&str>,
    app: &str,
) -> Result<Vec<LookupResult>, ApiError> {
    if numbers.is_empty() {
        return Err(ApiError::invalid(
            "invalid `phone_numbers`: give 1 to 1,000 numbers",
        ));
    }
    if numbers.len() > MAX_LOOKUP_BATCH {
        return Err(ApiError::new(
            BATCH_TOO_LARGE,
            format!(
                "a batch carries at most {MAX_LOOKUP_BATCH} numbers; this one has {}: split it",
                numbers.len()
            ),
        ));
    }
    // A bad region is the call's error, not each number's.
    if let Some(region) = region {
        crate::phone::check_region(region).map_err(|e| ApiError::from(crate::Error::from(e)))?;
    }
    let mut results = Vec::with_capacity(numbers.len());
    // Owned numbers: a stream of borrowed ones trips the compiler's higher-ranked lifetime
    // check of `Send` futures.
    let mut lookups = futures::stream::iter(numbers.to_vec())
        .map(|number| async move { engine.lookup(&number, region, vendor_data, Some(app)).await })
        .buffered(CONCURRENCY);
    while let Some(result) = lookups.next().await {
        results.push(match result {
            Ok(report) => Ok(report),
            Err(e @ crate::Error::InvalidPhone(_)) => Err(ApiError::from(e)),
            Err(e) => return Err(ApiError::from(e)),
        });
    }
    Ok(results)
}
