//! Simulated users' phone numbers: distinct numbers drawn from the mobile ranges of any
//! region (hand-picked ranges for the most common ones, libphonenumber's example mobile number
//! with random trailing digits for the others), each checked with switchboard's own parser to be a line of that country
//! that can receive messages and hold a messaging app (mobile; fixed-or-mobile where the
//! numbering plan does not tell them apart: NANPA, Mexico). The ranges are
//! `switchboard::phone::samples`.

use rand::rngs::SmallRng;

pub use switchboard::phone::samples::COUNTRIES;
use switchboard::phone::samples::candidate;

pub use switchboard::phone::samples::is_mobile_of as is_valid_mobile;

/// Whether numbers can be drawn for `country` (an ISO region with a mobile example).
pub fn drawable(country: &str) -> bool {
    COUNTRIES.contains(&country) || switchboard::phone::example_mobile(country).is_some()
}

/// A new valid number of `country`, not in `seen` (which it joins).
pub fn draw(
    rng: &mut SmallRng,
    country: &str,
    seen: &mut std::collections::HashSet<String>,
) -> anyhow::Result<String> {
    for _ in 0..10_000 {
        let Some(n) = candidate(rng, country) else {
            anyhow::bail!("no number ranges known for {country}");
        };
        if !seen.contains(&n) && is_valid_mobile(&n, country) {
            seen.insert(n.clone());
            return Ok(n);
        }
    }
    anyhow::bail!("could not draw a valid {country} mobile number in 10000 tries")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_country_yields_valid_mobiles() {
        let mut rng = SmallRng::seed_from_u64(7);
        for c in COUNTRIES {
            let mut seen = std::collections::HashSet::new();
            let mut tries = 0;
            while seen.len() < 50 {
                tries += 1;
                let n = candidate(&mut rng, c).unwrap();
                if is_valid_mobile(&n, c) {
                    seen.insert(n);
                }
                assert!(tries < 2000, "{c}: too many invalid candidates");
            }
        }
    }
}
