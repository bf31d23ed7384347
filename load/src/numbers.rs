//! The population of phone numbers the load runs over: distinct numbers drawn from the mobile
//! ranges of several countries, each one checked with switchboard's own parser (libphonenumber)
//! to be a valid *mobile* of the intended country before it is used. Mexico is the exception
//! libphonenumber forces: its plan does not tell mobile from fixed, so `FIXED_LINE_OR_MOBILE` is
//! accepted there (the engine treats it as able to receive SMS and WhatsApp).
//!
//! The pre-fill of the memory test uses a separate range (Spain 71x-74x) so its state never
//! collides with the load's numbers (Spain 6xx).

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, bail};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use switchboard::phone::{self, NumberType};

/// Countries the generator knows how to draw mobiles for.
pub const COUNTRIES: [&str; 8] = ["ES", "BR", "GB", "DE", "MX", "IN", "FR", "IT"];

/// Brazilian area codes (DDD).
const BR_DDD: [u8; 67] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69, 71, 73, 74, 75, 77,
    79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95, 96, 97, 98, 99,
];

/// Mexican area codes of the largest cities.
const MX_AREA: [&str; 8] = ["55", "33", "81", "222", "442", "656", "664", "998"];

fn digits(rng: &mut SmallRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// One candidate number (E.164) of `country`, not yet validated.
fn candidate(rng: &mut SmallRng, country: &str) -> String {
    match country {
        "ES" => format!("+346{}", digits(rng, 8)),
        "BR" => format!(
            "+55{}9{}{}",
            pick(rng, &BR_DDD),
            rng.random_range(6..10u8),
            digits(rng, 7)
        ),
        "GB" => format!("+447{}{}", pick(rng, b"45789") - b'0', digits(rng, 8)),
        "DE" => match rng.random_range(0..2u8) {
            0 => format!("+4915{}{}", pick(rng, b"1257") - b'0', digits(rng, 8)),
            _ => format!("+4917{}", digits(rng, 9)),
        },
        "MX" => {
            let area = pick(rng, &MX_AREA);
            format!("+52{area}{}", digits(rng, 10 - area.len()))
        }
        "IN" => format!("+91{}{}", rng.random_range(6..10u8), digits(rng, 9)),
        "FR" => format!("+336{}", digits(rng, 8)),
        "IT" => format!("+393{}{}", rng.random_range(2..10u8), digits(rng, 8)),
        other => unreachable!("unknown country {other}"),
    }
}

/// Whether `e164` is a valid mobile of `country` for the engine's own parser.
pub fn is_valid_mobile(e164: &str, country: &str) -> bool {
    match phone::parse(e164, None) {
        Ok(info) => {
            info.region.as_deref() == Some(country)
                && (info.number_type == NumberType::Mobile
                    || (country == "MX" && info.number_type == NumberType::FixedLineOrMobile))
        }
        Err(_) => false,
    }
}

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
    /// Candidates drawn and rejected by the parser (invalid, wrong type or wrong region).
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
        let n = candidate(&mut rng, country);
        if seen.contains(&n) || !is_valid_mobile(&n, country) {
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
