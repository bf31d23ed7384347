//! Phone parsing, with and without a default region.
//!
//! Input: one selector byte, then the number as UTF-8. Selector 0-31: no region; 32-254: one
//! of libphonenumber's regions; 255: the text before the first `\n` is the region (any string).
//! Invariants: a number that parses is valid E.164 (`+`, at most 15 digits) and parses again,
//! without a region, to the same facts.

use std::sync::OnceLock;

use switchboard::phone;

pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (region, number) = match selector {
        0..=31 => (None, rest),
        255 => {
            let (region, number) = super::split_line(rest);
            let Ok(region) = std::str::from_utf8(region) else {
                return;
            };
            (Some(region.to_owned()), number)
        }
        s => {
            let regions = regions();
            (Some(regions[usize::from(s) % regions.len()].clone()), rest)
        }
    };
    let Ok(number) = std::str::from_utf8(number) else {
        return;
    };
    let Ok(info) = phone::parse(number, region.as_deref()) else {
        return;
    };
    let digits = &info.e164[1..];
    assert!(info.e164.starts_with('+'), "E.164 starts with +");
    assert!(
        !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()),
        "E.164 is 1-15 digits"
    );
    assert_eq!(
        info.e164,
        format!("{}{}", info.prefix(), info.subscriber),
        "E.164 is the prefix and the subscriber number"
    );
    let again = phone::parse(&info.e164, None).expect("a parsed number's E.164 parses again");
    assert_eq!(again, info, "parsing its own E.164 gives the same facts");
}

fn regions() -> &'static [String] {
    static REGIONS: OnceLock<Vec<String>> = OnceLock::new();
    REGIONS.get_or_init(phone::supported_regions)
}
