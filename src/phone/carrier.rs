//! Offline carrier lookup: longest-prefix match over libphonenumber's carrier data.

use super::carrier_table::{KEYS, MAX_PREFIX_LEN, NAMES, VALUES};

/// English name of the carrier that was originally allocated the number whose E.164
/// digits (country calling code first, no `+`) are `digits`.
///
/// Tries the longest prefix first, like libphonenumber's `PrefixFileReader`.
/// Returns `None` when no prefix matches or when `digits` holds a non-digit.
/// This is a pure range lookup: whether a carrier *should* be reported for the
/// number's type is decided by the caller (see `super::parse`).
pub(crate) fn carrier_for_digits(digits: &[u8]) -> Option<&'static str> {
    // prefixes[n] = value of the first n + 1 digits.
    let mut prefixes = [0u32; MAX_PREFIX_LEN];
    let len = digits.len().min(MAX_PREFIX_LEN);
    let mut value = 0u32;
    for (slot, &b) in prefixes.iter_mut().zip(&digits[..len]) {
        if !b.is_ascii_digit() {
            return None;
        }
        // At most 9 digits: fits in a u32 (< 10^9).
        value = value * 10 + u32::from(b - b'0');
        *slot = value;
    }
    (0..len).rev().find_map(|n| {
        let keys = KEYS[n];
        keys.binary_search(&prefixes[n])
            .ok()
            .and_then(|i| VALUES[n].get(i))
            .and_then(|&name| NAMES.get(usize::from(name)).copied())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_consistent() {
        for n in 0..MAX_PREFIX_LEN {
            assert_eq!(KEYS[n].len(), VALUES[n].len(), "length {}", n + 1);
            assert!(
                KEYS[n].windows(2).all(|w| w[0] < w[1]),
                "keys of length {} not strictly sorted",
                n + 1
            );
            assert!(VALUES[n].iter().all(|&v| usize::from(v) < NAMES.len()));
            // n + 1 digits, the first one non-zero (no country code starts with 0).
            let lo = 10u32.pow(n as u32);
            assert!(KEYS[n].iter().all(|&k| k >= lo && k < lo * 10));
        }
    }

    #[test]
    fn longest_prefix_wins() {
        assert_eq!(carrier_for_digits(b"34600600600"), Some("Vodafone"));
        assert_eq!(carrier_for_digits(b"5511987654321"), Some("TIM"));
    }

    #[test]
    fn no_match_and_non_digits_give_none() {
        assert_eq!(carrier_for_digits(b""), None);
        assert_eq!(carrier_for_digits(b"0"), None);
        assert_eq!(carrier_for_digits(b"34x00600600"), None);
    }
}
