//! The population of phone numbers the load runs over: distinct numbers drawn from the mobile
//! ranges of several countries, each one checked with switchboard's own parser (libphonenumber)
//! to be a valid *mobile* of the intended country before it is used. Where a numbering plan does
//! not tell mobile from fixed (Mexico, NANPA), libphonenumber answers `FIXED_LINE_OR_MOBILE`,
//! which is accepted too (the engine treats it as able to receive SMS and WhatsApp). The ranges
//! are `switchboard::phone::samples`.
//!
//! The pre-fill of the memory test uses a separate range (Spain 71x-74x) so its state never
//! collides with the load's numbers (Spain 6xx).

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, bail};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Countries the generator knows how to draw mobiles for.
pub use switchboard::phone::samples::COUNTRIES;
use switchboard::phone::samples::candidate;

pub use switchboard::phone::samples::is_mobile_of as is_valid_mobile;

/// Country weights, from `ES=20,BR=20,...`.
pub fn parse_weights(spec: &str) -> anyhow::Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (c, w) = part
            .split_once('=')
            .with_context(|| format!("country weight `{part}` is not CC=weight"))?;
        let c = c.trim().to_ascii_uppercase();
        if !COUNTRIES.contains(&c.as_str()) {
            bail!("country {c} unknown; known: {}", COUNTRIES.join(", "));
        }
        out.push((c, w.trim().parse().context("weight")?));
    }
    if out.iter().map(|(_, w)| w).sum::<u32>() == 0 {
        bail!("country weights sum to 0");
    }
    Ok(out)
}

/// The population: distinct valid mobiles, and how many of each country.
pub struct Population {
    pub numbers: Vec<String>,
    pub by_country: BTreeMap<String, usize>,
    /// Candidates drawn and rejected (invalid, wrong type or wrong region, or on the shipped
    /// disposable list).
    pub rejected: usize,
}

/// Draws `size` distinct valid mobiles with the given country weights, reproducibly from `seed`.
pub fn generate(size: usize, weights: &[(String, u32)], seed: u64) -> Population {
    let mut rng = SmallRng::seed_from_u64(seed);
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    let mut seen = HashSet::with_capacity(size);
    let mut numbers = Vec::with_capacity(size);
    let mut by_country = BTreeMap::new();
    let mut rejected = 0;
    // Numbers on the shipped disposable list are refused by the sidecar by design
    // (DISPOSABLE_NUMBER_DETECTED); the population of real users leaves them out.
    let shipped = switchboard::phone::DisposableList::default().with_builtin(true);
    while numbers.len() < size {
        let mut roll = rng.random_range(0..total);
        let country = weights
            .iter()
            .find(|(_, w)| {
                if roll < *w {
                    true
                } else {
                    roll -= w;
                    false
                }
            })
            .map(|(c, _)| c.as_str())
            .expect("weights cover the roll");
        let n = candidate(&mut rng, country).expect("weights name only countries of COUNTRIES");
        if seen.contains(&n) || !is_valid_mobile(&n, country) || shipped.contains(&n) {
            rejected += 1;
            continue;
        }
        seen.insert(n.clone());
        numbers.push(n);
        *by_country.entry(country.to_owned()).or_insert(0) += 1;
    }
    Population {
        numbers,
        by_country,
        rejected,
    }
}

/// The `i`-th number of the pre-fill range: Spain 71x-74x (10^7 numbers per leading pair),
/// disjoint from the load's Spanish numbers (6xx).
pub fn prefill_number(i: usize) -> String {
    format!("+347{}{:07}", 1 + (i / 10_000_000) % 4, i % 10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_country_yields_valid_mobiles() {
        for c in COUNTRIES {
            let pop = generate(50, &[(c.to_owned(), 1)], 7);
            assert_eq!(pop.numbers.len(), 50);
            assert!(
                pop.rejected < 500,
                "{c}: {} rejected for 50 numbers",
                pop.rejected
            );
            for n in &pop.numbers {
                assert!(is_valid_mobile(n, c), "{n}");
            }
        }
    }

    #[test]
    fn prefill_numbers_are_valid_spanish_mobiles_outside_the_load_range() {
        for i in [0, 1, 9_999_999, 10_000_000, 39_999_999] {
            let n = prefill_number(i);
            assert!(is_valid_mobile(&n, "ES"), "{n}");
            assert!(!n.starts_with("+346"));
        }
    }
}
