//! Mobile-range number candidates for test traffic: the load test's population, the fraud
//! drill and the delivery-economics simulator draw from these ranges and keep the candidates
//! the parser confirms.

use rand::Rng;

/// Countries [`candidate`] draws numbers for from hand-picked ranges; any other region is
/// drawn around libphonenumber's example mobile number.
pub const COUNTRIES: [&str; 14] = [
    "AR", "BR", "CO", "DE", "ES", "FR", "GB", "ID", "IN", "IT", "MX", "NG", "TR", "US",
];

/// Brazilian area codes (DDD).
const BR_DDD: [u8; 67] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69, 71, 73, 74, 75, 77,
    79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95, 96, 97, 98, 99,
];

/// Mexican area codes of the largest cities.
const MX_AREA: [&str; 8] = ["55", "33", "81", "222", "442", "656", "664", "998"];

/// US area codes of large cities.
const US_AREA: [&str; 10] = [
    "212", "213", "312", "415", "617", "305", "512", "206", "404", "702",
];

/// Nigerian mobile prefixes.
const NG_PREFIX: [&str; 12] = [
    "803", "806", "813", "816", "703", "706", "810", "814", "903", "805", "807", "802",
];

/// Indonesian mobile prefixes (after the trunk 0).
const ID_PREFIX: [&str; 10] = [
    "811", "812", "813", "821", "822", "852", "856", "857", "877", "878",
];

fn digits<R: Rng + ?Sized>(rng: &mut R, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

fn pick<'a, T, R: Rng + ?Sized>(rng: &mut R, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// One candidate number (E.164) of `country` drawn from its mobile ranges, not validated:
/// check it with [`super::parse`] before use. For a region not in [`COUNTRIES`], the
/// trailing digits (3 to 6 of them) of its example mobile number are drawn at random; `None`
/// for a region without one.
pub fn candidate<R: Rng + ?Sized>(rng: &mut R, country: &str) -> Option<String> {
    Some(match country {
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
        "US" => format!(
            "+1{}{}{}",
            pick(rng, &US_AREA),
            rng.random_range(2..10u8),
            digits(rng, 6)
        ),
        "NG" => format!("+234{}{}", pick(rng, &NG_PREFIX), digits(rng, 7)),
        "ID" => format!("+62{}{}", pick(rng, &ID_PREFIX), digits(rng, 8)),
        "CO" => format!("+573{}{}", rng.random_range(0..3u8), digits(rng, 8)),
        "AR" => format!("+54911{}", digits(rng, 8)),
        "TR" => format!("+905{}{}", rng.random_range(0..6u8), digits(rng, 8)),
        _ => return around_example(rng, country),
    })
}

/// The example mobile number of `region` with its last 3 to 6 digits (never more than all
/// but two) drawn at random.
fn around_example<R: Rng + ?Sized>(rng: &mut R, region: &str) -> Option<String> {
    let (calling_code, nsn) = super::example_mobile(region)?;
    let most = nsn.len().saturating_sub(2).clamp(1, 6);
    let drawn = rng.random_range(most.min(3)..=most);
    let kept = &nsn[..nsn.len() - drawn];
    Some(format!("+{calling_code}{kept}{}", digits(rng, drawn)))
}

/// Whether `e164` is a line of `country` that can receive messages and hold a messaging app:
/// mobile, or fixed-or-mobile where the numbering plan does not tell them apart (Mexico, NANPA).
pub fn is_mobile_of(e164: &str, country: &str) -> bool {
    super::parse(e164, None).is_ok_and(|info| {
        info.region.as_deref() == Some(country)
            && matches!(
                info.number_type,
                super::NumberType::Mobile | super::NumberType::FixedLineOrMobile
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_country_yields_mobiles_the_parser_accepts() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for c in COUNTRIES {
            let ok = (0..2000)
                .filter_map(|_| candidate(&mut rng, c))
                .filter(|n| {
                    super::super::parse(n, None).is_ok_and(|i| {
                        i.region.as_deref() == Some(c) && i.number_type.can_receive_messages()
                    })
                })
                .count();
            assert!(ok >= 50, "{c}: {ok} of 2000 candidates valid");
        }
        assert_eq!(candidate(&mut rng, "ZZ"), None);
    }

    #[test]
    fn regions_without_hand_picked_ranges_yield_many_distinct_mobiles() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        for c in ["JP", "ZA", "PH", "KE", "PL", "VN", "SA", "EG"] {
            let distinct: std::collections::HashSet<String> = (0..4000)
                .filter_map(|_| candidate(&mut rng, c))
                .filter(|n| is_mobile_of(n, c))
                .collect();
            assert!(
                distinct.len() >= 500,
                "{c}: {} distinct mobiles",
                distinct.len()
            );
        }
    }
}
