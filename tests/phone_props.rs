//! `phone::parse` never panics on untrusted input, and what it returns is coherent.

use std::cell::Cell;
use std::sync::Once;

use proptest::prelude::*;
use switchboard::phone::{self, DisposableList, NumberType, PhoneInfo};

thread_local! {
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// `phone::parse` turns a library panic into an error as a last resort, which would
/// hide it from these tests; a panic hook records every panic so `check` still sees it.
fn record_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.with(|p| p.set(true));
            default(info);
        }));
    });
}

/// 2000 cases per property by default; `PROPTEST_CASES=200000` for a long run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

const REGIONS: &[Option<&str>] = &[
    None,
    Some("US"),
    Some("ES"),
    Some("GB"),
    Some("BR"),
    Some("IT"),
    Some("RU"),
    Some("es"),
    Some("XX"),
    Some("001"),
    Some(""),
    Some("\u{e9}\u{e9}"),
];

/// Inputs that broke phone parsers before (the published RFC 3966 advisories of the
/// `phonenumber` crate, GHSA-whhr-7f2w-qqj2 and GHSA-mjw4-jj88-v687) or that aim at
/// the same slicing paths in rlibphonenumber: empty components, a `tel:` after the
/// phone-context, multibyte characters on boundaries, huge and degenerate inputs.
const CRAFTED: &[&str] = &[
    ".;phone-context=",
    "+dwPAA;phone-context=AA",
    ";phone-context=",
    "tel:;phone-context=+",
    "tel:+;phone-context=",
    "+;phone-context=",
    "tel:;phone-context=",
    "+;phone-context=\u{e9}",
    "tel:\u{e9};phone-context=+\u{e9}",
    "+1;phone-context=\u{e9}\u{e9}\u{e9}",
    "+\u{80};phone-context=",
    "tel:0;phone-context=+\u{10000}",
    "+\u{1F4A9};phone-context=\u{1F4A9}",
    "tel:+\u{FF1B}phone-context=",
    "+\u{FFFC};phone-context=\u{FFFC}",
    ";phone-context=+1;tel:",
    "600600600;phone-context=+34;tel:",
    "tel:600600600;phone-context=+34;isub=1",
    "tel:600600600;isub=;phone-context=+34",
    "+34600600600;ext=",
    "+34600600600 ext. ",
    "+34600600600 x99999999999999999999999",
    "+34 6\u{0}00 600 600",
    "\u{0}",
    "+\u{FF0B}34600600600",
    "+99999999999999999999",
    "+1 99999999999999999999",
    "0000000000000000000000",
    "00",
    "000",
    "+0",
    "+00",
    "(((((((((((((((((((((((((((((((((((((())))))))))))))))))))))))))))))))))",
    "------------------------------------------------------------------------",
    "#*#*#*#*#*#*#*",
    "\u{202E}+34600600600",
];

fn assert_coherent(input: &str, region: Option<&str>, info: &PhoneInfo) {
    let digits = info
        .e164
        .strip_prefix('+')
        .unwrap_or_else(|| panic!("{input:?}: e164 {:?} has no '+'", info.e164));
    assert!(
        (2..=17).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
        "{input:?}: bad e164 {:?}",
        info.e164
    );
    assert_eq!(
        info.e164,
        format!("{}{}", info.prefix(), info.subscriber),
        "{input:?}"
    );
    assert_ne!(info.number_type, NumberType::Unknown, "{input:?}");
    if let Some(r) = &info.region {
        assert_eq!(r.len(), 2, "{input:?}");
        assert!(!info.country_name.is_empty(), "{input:?}");
    }
    // The E.164 form is a fixed point: it parses to the same information.
    let again = phone::parse(&info.e164, region)
        .unwrap_or_else(|e| panic!("{input:?}: e164 {} does not re-parse: {e}", info.e164));
    assert_eq!(&again, info, "{input:?}");
}

fn check(input: &str, region: Option<&str>) {
    record_panics();
    PANICKED.with(|p| p.set(false));
    let parsed = phone::parse(input, region);
    assert!(
        !PANICKED.with(Cell::get),
        "parse panicked internally on {input:?} with region {region:?}"
    );
    match parsed {
        Ok(info) => assert_coherent(input, region.filter(|r| r.len() == 2), &info),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(matches!(
                e.code(),
                "INVALID_PHONE_NUMBER" | "INVALID_REGION"
            ));
        }
    }
}

#[test]
fn crafted_inputs_never_panic() {
    for input in CRAFTED {
        for region in REGIONS {
            check(input, *region);
        }
    }
}

fn region() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(REGIONS)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn parse_never_panics_on_arbitrary_strings(input in any::<String>(), region in region()) {
        check(&input, region);
    }

    #[test]
    fn parse_never_panics_on_plus_and_digits(input in "\\+[0-9]{0,40}", region in region()) {
        check(&input, region);
    }

    #[test]
    fn parse_never_panics_on_phone_like_text(
        input in "(tel:)?[+＋]?[0-9０-９٠-٩ ().\\-/x#*;=a-z]{0,60}(;phone-context=[+0-9a-z.\\-]{0,12})?",
        region in region(),
    ) {
        check(&input, region);
    }

    #[test]
    fn parse_never_panics_on_long_inputs(input in "[+0-9 ]{200,400}", region in region()) {
        check(&input, region);
    }

    #[test]
    fn disposable_list_never_panics(
        entries in prop::collection::vec(any::<String>(), 0..8),
        probe in any::<String>(),
    ) {
        if let Ok(list) = DisposableList::new(&entries) {
            let _ = list.contains(&probe);
        }
    }

    #[test]
    fn disposable_prefix_matches_exactly_the_numbers_that_start_with_it(
        prefix in "[1-9][0-9]{0,6}",
        rest in "[0-9]{0,8}",
        other in "[1-9][0-9]{1,14}",
    ) {
        let list = DisposableList::new([format!("+{prefix}*")]).expect("valid entry");
        let inside = format!("+{prefix}{rest}");
        prop_assert_eq!(list.contains(&inside), inside.len() <= 16);
        prop_assert_eq!(list.contains(&format!("+{other}")), other.starts_with(&prefix));
    }
}
