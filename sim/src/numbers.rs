//! Simulated users' phone numbers: distinct numbers drawn from the mobile ranges of the
//! countries below, each checked with switchboard's own parser to be a line of that country
//! that can receive messages and hold a messaging app (mobile; fixed-or-mobile where the
//! numbering plan does not tell them apart: NANPA, Mexico). The ranges are
//! `switchboard::phone::samples`.

use rand::rngs::SmallRng;
use switchboard::phone::{self, NumberType};

pub use switchboard::phone::samples::COUNTRIES;
use switchboard::phone::samples::candidate;

/// Whether `e164` is a line of `country` that can receive messages and hold WhatsApp.
pub fn is_valid_mobile(e164: &str, country: &str) -> bool {
    match phone::parse(e164, None) {
        Ok(info) => {
            info.region.as_deref() == Some(country)
                && matches!(
                    info.number_type,
                    NumberType::Mobile | NumberType::FixedLineOrMobile
                )
                && info.number_type.can_have_apps()
        }
        Err(_) => false,
    }
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
