//! Phone intelligence: parse and normalise to E.164, region, country name, number
//! type, line type and carrier, all offline.
//!
//! Parsing and validation are libphonenumber's (the `rlibphonenumber` port, metadata
//! v9.0.42). Carrier and country names come from tables generated from the same
//! libphonenumber release by `tools/gen_phone_data.py`.
//!
//! Only numbers that libphonenumber judges *valid* come out of [`parse`]; a number that
//! merely has a plausible length is an error. Untrusted input never panics: it is
//! capped at [`MAX_INPUT_CHARS`] before the library sees it.

mod carrier;
#[rustfmt::skip]
mod carrier_table;
#[rustfmt::skip]
mod countries;
mod disposable;
mod live;
pub mod samples;

use rlibphonenumber::{
    PHONE_NUMBER_UTIL, ParseError, PhoneNumber, PhoneNumberType, PhoneNumberUtil, ValidationError,
    enums::Region, get_national_significant_number_owned,
};

pub use disposable::DisposableList;
pub use live::CarrierSource;

/// Version of the libphonenumber metadata used for parsing and for the carrier and
/// country tables.
pub const METADATA_VERSION: &str = carrier_table::DATA_VERSION;

/// Longest input [`parse`] accepts, in characters (libphonenumber's own limit).
pub const MAX_INPUT_CHARS: usize = 250;

/// E.164's longest number: 15 digits after the `+`.
pub const MAX_E164_DIGITS: usize = 15;

/// At most this many characters of a caller-supplied region are echoed in errors.
const REGION_ECHO_LIMIT: usize = 8;

/// What switchboard knows about a valid phone number, offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneInfo {
    /// E.164 form, `"+34600600600"`.
    pub e164: String,
    /// Country calling code, `34`.
    pub calling_code: u16,
    /// National significant number, `"600600600"` (the report's `phone_number`).
    pub subscriber: String,
    /// ISO 3166-1 alpha-2 region (`"ES"`) as libphonenumber's `getRegionCodeForNumber`
    /// decides it; `None` for non-geographic numbers (`+800`, `+882`, ...).
    pub region: Option<String>,
    /// English name of `region` (`"Spain"`); `""` when there is no region.
    pub country_name: &'static str,
    /// libphonenumber's number type. Never [`NumberType::Unknown`]: a number of
    /// unknown type is not valid and does not parse.
    pub number_type: NumberType,
    /// English name of the carrier the number range was originally allocated to.
    ///
    /// Same semantics as libphonenumber's `PhoneNumberToCarrierMapper.getNameForNumber`
    /// (Python `phonenumbers.carrier.name_for_number(n, "en")`): only for
    /// [`NumberType::Mobile`], [`NumberType::FixedLineOrMobile`] and
    /// [`NumberType::Pager`] numbers, `None` for every other type and when the range
    /// has no known carrier. Numbers may have been ported since: this is the
    /// allocation, not the current operator.
    pub carrier_name: Option<&'static str>,
    /// What a live lookup said about the line (see `PhoneInfo::with_live`); `None` from
    /// [`parse`].
    pub live: Option<std::sync::Arc<switchboard_providers::LineFacts>>,
}

impl PhoneInfo {
    /// `"+"` and the country calling code: `"+34"` (the report's `phone_number_prefix`).
    pub fn prefix(&self) -> String {
        format!("+{}", self.calling_code)
    }
}

/// libphonenumber's `PhoneNumberType`. Serialises as libphonenumber's names
/// (`"FIXED_LINE_OR_MOBILE"`), the same strings as [`NumberType::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NumberType {
    FixedLine,
    Mobile,
    /// The numbering plan does not tell fixed from mobile (all of NANPA: US, CA, ...).
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    /// A personal, follow-me number routed wherever its owner chooses.
    PersonalNumber,
    Pager,
    /// Universal access number: one company number routed to its offices.
    Uan,
    Voicemail,
    Unknown,
}

impl NumberType {
    /// Premium-rate or shared-cost ranges: sending to them costs the sender extra and
    /// they are the classic target of traffic pumping (`HIGH_RISK_PHONE_NUMBER`).
    pub fn is_premium_or_shared_cost(self) -> bool {
        matches!(self, Self::PremiumRate | Self::SharedCost)
    }

    /// Whether text channels (SMS, RCS, messaging apps) can reach the number at all.
    ///
    /// Yes for mobile, fixed-or-mobile (NANPA), VoIP and personal numbers. No for fixed
    /// lines (only a voice call reaches them), pagers (one-way paging networks, not
    /// reachable through SMS providers), and service ranges (toll-free, premium,
    /// shared-cost, UAN, voicemail). `Unknown` — which [`parse`] never returns — does
    /// not rule channels out: the provider's delivery status is then the judge.
    pub fn can_receive_messages(self) -> bool {
        matches!(
            self,
            Self::Mobile
                | Self::FixedLineOrMobile
                | Self::Voip
                | Self::PersonalNumber
                | Self::Unknown
        )
    }

    /// Whether the number can plausibly hold a WhatsApp / Telegram / Viber account:
    /// mobile-ish lines only (mobile, fixed-or-mobile), plus `Unknown` for the same
    /// reason as in [`NumberType::can_receive_messages`]. VoIP and personal numbers
    /// are excluded on purpose: the app networks restrict them and a failed app send
    /// only delays the code.
    pub fn can_have_apps(self) -> bool {
        matches!(self, Self::Mobile | Self::FixedLineOrMobile | Self::Unknown)
    }

    /// libphonenumber's name: `"FIXED_LINE"`, `"MOBILE"`, `"FIXED_LINE_OR_MOBILE"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FixedLine => "FIXED_LINE",
            Self::Mobile => "MOBILE",
            Self::FixedLineOrMobile => "FIXED_LINE_OR_MOBILE",
            Self::TollFree => "TOLL_FREE",
            Self::PremiumRate => "PREMIUM_RATE",
            Self::SharedCost => "SHARED_COST",
            Self::Voip => "VOIP",
            Self::PersonalNumber => "PERSONAL_NUMBER",
            Self::Pager => "PAGER",
            Self::Uan => "UAN",
            Self::Voicemail => "VOICEMAIL",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The report's `carrier.type`.
    ///
    /// `FixedLineOrMobile` maps to [`LineType::Unknown`]: libphonenumber cannot tell
    /// (every US and Canadian number is of that type) and we do not guess.
    pub fn line_type(self) -> LineType {
        match self {
            Self::Mobile => LineType::Mobile,
            Self::FixedLine => LineType::Landline,
            Self::Voip | Self::PersonalNumber => LineType::Voip,
            _ => LineType::Unknown,
        }
    }

    /// VoIP and personal numbers: not bound to a SIM or a place, cheap to obtain in
    /// bulk (`VOIP_NUMBER_DETECTED`). UAN ranges are not counted: they belong to
    /// companies, cannot receive messages and so never reach verification anyway.
    pub fn is_virtual(self) -> bool {
        matches!(self, Self::Voip | Self::PersonalNumber)
    }

    /// Whether libphonenumber's carrier data applies to this type (its `isMobile`).
    fn has_carrier(self) -> bool {
        matches!(self, Self::Mobile | Self::FixedLineOrMobile | Self::Pager)
    }
}

impl From<PhoneNumberType> for NumberType {
    fn from(t: PhoneNumberType) -> Self {
        match t {
            PhoneNumberType::FixedLine => Self::FixedLine,
            PhoneNumberType::Mobile => Self::Mobile,
            PhoneNumberType::FixedLineOrMobile => Self::FixedLineOrMobile,
            PhoneNumberType::TollFree => Self::TollFree,
            PhoneNumberType::PremiumRate => Self::PremiumRate,
            PhoneNumberType::SharedCost => Self::SharedCost,
            PhoneNumberType::VoIP => Self::Voip,
            PhoneNumberType::PersonalNumber => Self::PersonalNumber,
            PhoneNumberType::Pager => Self::Pager,
            PhoneNumberType::UAN => Self::Uan,
            PhoneNumberType::VoiceMail => Self::Voicemail,
            PhoneNumberType::Unknown => Self::Unknown,
        }
    }
}

/// The report's `carrier.type`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LineType {
    Mobile,
    Landline,
    Voip,
    Unknown,
}

impl LineType {
    /// The wire value: `"mobile"`, `"landline"`, `"voip"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::Landline => "landline",
            Self::Voip => "voip",
            Self::Unknown => "unknown",
        }
    }
}

/// Why an input is not a usable phone number. Messages are meant for end users and
/// never repeat the input (only a few characters of a bad region code).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the phone number is empty")]
    Empty,
    #[error("the phone number is longer than {MAX_INPUT_CHARS} characters")]
    InputTooLong,
    #[error(
        "unknown default region {0:?}: expected a two-letter ISO 3166-1 code of a country \
         with a telephone numbering plan, such as \"ES\""
    )]
    InvalidRegion(String),
    #[error(
        "the country calling code is missing or unknown: write the number in international \
         format (+ and country code) or give a default region"
    )]
    InvalidCountryCode,
    #[error("the input does not look like a phone number")]
    NotANumber,
    #[error("the phone number has too few digits")]
    TooShort,
    #[error("the phone number has too many digits")]
    TooLong,
    #[error("phone numbers with an extension cannot be verified")]
    HasExtension,
    #[error(
        "the phone number is not valid for country code +{calling_code}: no such number \
         length or range is assigned"
    )]
    NotValid { calling_code: u16 },
}

impl PhoneError {
    /// Stable machine code: `"INVALID_REGION"` for a bad default region, otherwise
    /// `"INVALID_PHONE_NUMBER"`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRegion(_) => "INVALID_REGION",
            _ => "INVALID_PHONE_NUMBER",
        }
    }
}

impl From<ParseError> for PhoneError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::InvalidCountryCode => Self::InvalidCountryCode,
            ParseError::NotANumber(_) => Self::NotANumber,
            ParseError::TooShortAfterIdd | ParseError::TooShortNsn => Self::TooShort,
            ParseError::TooLongNsn => Self::TooLong,
        }
    }
}

/// Parses `input` into a valid number.
///
/// Accepts international input (`"+34 600 600 600"`, `"+34-600-600-600"`,
/// `"+1 (415) 555-2671"`, `"tel:+34600600600"`), and — only with `default_region` —
/// national input (`"600 600 600"`, `"(415) 555-2671"`) and the region's international
/// dialling prefix (`"0034600600600"` with `"ES"`). `default_region` is an ISO
/// 3166-1 alpha-2 code, case-insensitive; it is ignored for `+` input.
///
/// Only numbers libphonenumber's `isValidNumber` accepts come out as `Ok`.
/// Numbers with an extension are refused ([`PhoneError::HasExtension`]): a code
/// cannot be delivered to an extension.
pub fn parse(input: &str, default_region: Option<&str>) -> Result<PhoneInfo, PhoneError> {
    with_patterns(|util| parse_with(util, input, default_region))
}

thread_local! {
    /// This thread's own copy of the library's metadata and patterns, when it asked for one
    /// ([`own_patterns_on_this_thread`]); dropped with the thread.
    static OWN_PATTERNS: std::cell::OnceCell<Box<PhoneNumberUtil>> =
        const { std::cell::OnceCell::new() };
}

/// Gives the calling thread its own copy of libphonenumber's metadata and compiled patterns,
/// for a thread that parses many numbers alongside other such threads (bulk lookup).
///
/// The `regex` crate keeps each pattern's search cache in a pool whose fast path belongs to the
/// first thread that used the pattern; every other thread goes through a lock and a stack
/// push/pop on each match. With one shared copy, parallel parsing threads spend ~8% of their CPU
/// there (perf, bulk lookup on 2 threads). A copy costs the thread the metadata decode (~7 MiB,
/// ~15 ms) and the compilation of the patterns of each region it meets (~0.2 ms each).
pub fn own_patterns_on_this_thread() {
    OWN_PATTERNS.with(|own| {
        own.get_or_init(|| {
            Box::new(PhoneNumberUtil::new().expect("the embedded metadata decodes"))
        });
    });
}

/// Runs `f` with this thread's own patterns when it has them, else the process's.
fn with_patterns<R>(f: impl FnOnce(&PhoneNumberUtil) -> R) -> R {
    OWN_PATTERNS.with(|own| match own.get() {
        Some(util) => f(util),
        None => f(&PHONE_NUMBER_UTIL),
    })
}

fn parse_with(
    util: &PhoneNumberUtil,
    input: &str,
    default_region: Option<&str>,
) -> Result<PhoneInfo, PhoneError> {
    // libphonenumber's limit counts characters; bytes >= characters, so only count
    // when the cheap byte check is inconclusive.
    if input.len() > MAX_INPUT_CHARS
        && (input.len() > 4 * MAX_INPUT_CHARS || input.chars().count() > MAX_INPUT_CHARS)
    {
        return Err(PhoneError::InputTooLong);
    }
    if input.trim().is_empty() {
        return Err(PhoneError::Empty);
    }
    let default_region = default_region.map(parse_region).transpose()?;
    let number = parse_guarded(util, input, default_region)?;
    if number.extension.is_some() {
        return Err(PhoneError::HasExtension);
    }
    let calling_code =
        u16::try_from(number.country_code).map_err(|_| PhoneError::InvalidCountryCode)?;
    // libphonenumber: valid <=> the type found for the number's region is not UNKNOWN,
    // so one type lookup answers both questions.
    let number_type = NumberType::from(util.get_number_type(&number));
    if number_type == NumberType::Unknown {
        return Err(invalid_number_error(util, &number, calling_code));
    }
    let region = util
        .get_region_for_number(&number)
        .filter(|r| *r != Region::World);

    let subscriber = get_national_significant_number_owned(&number);
    let e164 = e164_string(calling_code, &subscriber);
    // libphonenumber accepts some national numbers (German ones up to 15 digits after +49)
    // that make more than E.164's 15 digits: no network delivers to them, and every answer
    // promises E.164.
    if e164.len() - 1 > MAX_E164_DIGITS {
        return Err(PhoneError::TooLong);
    }

    let carrier_name = if number_type.has_carrier() {
        carrier::carrier_for_digits(&e164.as_bytes()[1..])
    } else {
        None
    };
    let (region, country_name) = match region {
        Some(r) => {
            let code = r.as_region_str();
            (Some(code.as_str().to_owned()), country_name(code.as_str()))
        }
        None => (None, ""),
    };
    Ok(PhoneInfo {
        e164,
        calling_code,
        subscriber,
        region,
        country_name,
        number_type,
        carrier_name,
        live: None,
    })
}

/// `"+"`, the calling code, the national significant number. Built by hand: `write!`
/// measured ~45 ns per number here, a noticeable share of a ~1.5 µs parse.
fn e164_string(calling_code: u16, subscriber: &str) -> String {
    let mut e164 = String::with_capacity(1 + 3 + subscriber.len());
    e164.push('+');
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    let mut rest = calling_code;
    loop {
        start -= 1;
        // `rest % 10` is a single digit.
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &d in &digits[start..] {
        e164.push(char::from(d));
    }
    e164.push_str(subscriber);
    e164
}

/// English name of an ISO 3166-1 alpha-2 region libphonenumber supports
/// (`"ES"` -> `"Spain"`), case-insensitive; `""` for anything else.
pub fn country_name(region: &str) -> &'static str {
    let Ok(code) = <[u8; 2]>::try_from(region.as_bytes()) else {
        return "";
    };
    let code = code.map(|b| b.to_ascii_uppercase());
    countries::COUNTRY_NAMES
        .binary_search_by_key(&code, |(c, _)| *c)
        .map_or("", |i| countries::COUNTRY_NAMES[i].1)
}

/// Pays libphonenumber's one-time costs up front instead of on live requests.
///
/// `PHONE_NUMBER_UTIL` decodes its metadata on first use (~15 ms, ~7 MiB), and each region's
/// regular expressions are compiled the first time a number of that region is parsed (~0.2 ms
/// per region with the vendored patch, see `vendor/rlibphonenumber/Readme.md`). This parses the
/// example numbers of every region, so no request pays for either. Measured cost: ~0.15-0.2 s
/// of one core and ~20 MiB of resident memory — the compiled expressions of all regions (what a
/// lazily warmed process reaches once it has seen every region). `switchboard serve` calls it
/// at startup. Returns how many example numbers parsed as valid.
pub fn warm_up() -> usize {
    const TYPES: [PhoneNumberType; 11] = [
        PhoneNumberType::FixedLine,
        PhoneNumberType::Mobile,
        PhoneNumberType::FixedLineOrMobile,
        PhoneNumberType::TollFree,
        PhoneNumberType::PremiumRate,
        PhoneNumberType::SharedCost,
        PhoneNumberType::VoIP,
        PhoneNumberType::PersonalNumber,
        PhoneNumberType::Pager,
        PhoneNumberType::UAN,
        PhoneNumberType::VoiceMail,
    ];
    let util = &*PHONE_NUMBER_UTIL;
    let mut parsed = 0;
    for region in util.get_supported_regions() {
        let code = region.as_region_str();
        for t in TYPES {
            let Ok(example) = util.get_example_number_for_type_and_region(region, t) else {
                continue;
            };
            // International and national input (the national significant number,
            // which runs the region's national-prefix rules). Library formatting is
            // avoided on purpose: it would compile the formatting patterns too, which
            // parsing never uses.
            let nsn = get_national_significant_number_owned(&example);
            let Ok(calling_code) = u16::try_from(example.country_code) else {
                continue;
            };
            parsed += usize::from(parse(&e164_string(calling_code, &nsn), None).is_ok());
            parsed += usize::from(parse(&nsn, Some(code.as_str())).is_ok());
        }
    }
    for calling_code in util.get_supported_global_network_calling_codes() {
        if let (Ok(example), Ok(calling_code)) = (
            util.get_example_number_for_non_geo_entity(calling_code),
            u16::try_from(calling_code),
        ) {
            let nsn = get_national_significant_number_owned(&example);
            parsed += usize::from(parse(&e164_string(calling_code, &nsn), None).is_ok());
        }
    }
    parsed
}

/// The example mobile number libphonenumber's metadata gives for `region` (its
/// fixed-or-mobile example where the numbering plan does not tell the two apart), as
/// (calling code, national significant number); `None` for a region without one.
pub fn example_mobile(region: &str) -> Option<(u16, String)> {
    let region = parse_region(region).ok()?;
    let util = &*PHONE_NUMBER_UTIL;
    let example = [PhoneNumberType::Mobile, PhoneNumberType::FixedLineOrMobile]
        .into_iter()
        .find_map(|t| util.get_example_number_for_type_and_region(region, t).ok())?;
    let calling_code = u16::try_from(example.country_code).ok()?;
    Some((
        calling_code,
        get_national_significant_number_owned(&example),
    ))
}

/// Every region with its English name, sorted by code (the hosted page's country list).
pub fn country_names() -> impl Iterator<Item = (&'static str, &'static str)> {
    countries::COUNTRY_NAMES
        .iter()
        .map(|(code, name)| (std::str::from_utf8(code).unwrap_or_default(), *name))
}

/// An E.164 number written for people, in international format (`+34 600 60 06 00`); `None`
/// when it does not parse.
pub fn international(e164: &str) -> Option<String> {
    let util = &*PHONE_NUMBER_UTIL;
    let number = parse_guarded(util, e164, None).ok()?;
    Some(
        util.format(&number, rlibphonenumber::PhoneNumberFormat::International)
            .into_owned(),
    )
}

/// The country calling code of `region` (`ES` -> 34); `None` for a region without one.
pub fn calling_code(region: &str) -> Option<u16> {
    let region = parse_region(region).ok()?;
    u16::try_from(PHONE_NUMBER_UTIL.get_country_code_for_region(region)?).ok()
}

/// A default region must be a two-letter code of a region with metadata
/// (`"001"`, the non-geographic pseudo-region, cannot give national numbers meaning).
/// Every region code `parse` accepts as a default region (`ES`, `US`, ...), sorted: the regions
/// with a numbering plan. The OpenAPI document lists them.
pub fn supported_regions() -> Vec<String> {
    let mut regions: Vec<String> = PHONE_NUMBER_UTIL
        .get_supported_regions()
        .map(|r| r.as_region_str().as_str().to_owned())
        .filter(|code| parse_region(code).is_ok())
        .collect();
    regions.sort_unstable();
    regions
}

/// Whether `region` is usable as [`parse`]'s default region (same rules, same error), for
/// callers that check one region once for many numbers.
pub fn check_region(region: &str) -> Result<(), PhoneError> {
    parse_region(region).map(|_| ())
}

fn parse_region(region: &str) -> Result<Region, PhoneError> {
    Region::from_code(region)
        .ok()
        .filter(|r| {
            *r != Region::World && PHONE_NUMBER_UTIL.get_country_code_for_region(*r).is_some()
        })
        .ok_or_else(|| PhoneError::InvalidRegion(region.chars().take(REGION_ECHO_LIMIT).collect()))
}

/// `util.parse`, shielded from the library's known panic and, as a last
/// resort, from unknown ones.
fn parse_guarded(
    util: &PhoneNumberUtil,
    input: &str,
    region: Option<Region>,
) -> Result<PhoneNumber, PhoneError> {
    // rlibphonenumber 2.2.15 slices `input[after "tel:" .. ";phone-context="]` and
    // panics when the first "tel:" comes after the phone-context. libphonenumber's
    // Python port takes an empty slice there, so such input never yields a valid
    // number: refuse it up front.
    if input.as_bytes().contains(&b';')
        && let (Some(context), Some(tel)) = (input.find(";phone-context="), input.find("tel:"))
        && tel > context
    {
        return Err(PhoneError::NotANumber);
    }
    // `parse` only reads shared, immutable data, so a panic cannot leave broken state
    // behind; turning it into an error keeps one bad input from taking a task down.
    match std::panic::catch_unwind(|| util.parse(input, region)) {
        Ok(parsed) => Ok(parsed?),
        Err(_) => {
            tracing::error!("phone number parser panicked; input refused as not a number");
            Err(PhoneError::NotANumber)
        }
    }
}

/// The most precise reason a parsed number is not valid.
fn invalid_number_error(
    util: &PhoneNumberUtil,
    number: &PhoneNumber,
    calling_code: u16,
) -> PhoneError {
    match util.is_possible_number_with_reason(number) {
        Err(ValidationError::TooShort) => PhoneError::TooShort,
        Err(ValidationError::TooLong) => PhoneError::TooLong,
        Err(ValidationError::InvalidCountryCode) => PhoneError::InvalidCountryCode,
        Err(ValidationError::InvalidLength) | Ok(_) => PhoneError::NotValid { calling_code },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str, region: Option<&str>) -> PhoneInfo {
        match parse(input, region) {
            Ok(info) => info,
            Err(e) => panic!("{input:?} with {region:?} should parse: {e}"),
        }
    }

    #[test]
    fn a_thread_with_its_own_patterns_parses_exactly_like_the_shared_ones() {
        let inputs: Vec<(&str, Option<&str>)> = vec![
            ("+34600600600", None),
            ("600 600 600", Some("es")),
            ("+1 (415) 555-2671", None),
            ("+44 7400 123456", None),
            ("+49 1512 3456789", None),
            ("+81 90-1234-5678", None),
            ("+5511987654321", None),
            ("+34 600 600 600 ext. 12", None),
            ("0034600600600", Some("ES")),
            ("+999123", None),
            ("not a number", None),
        ];
        let shared: Vec<_> = inputs.iter().map(|(i, r)| parse(i, *r)).collect();
        let own = std::thread::spawn(move || {
            own_patterns_on_this_thread();
            assert!(OWN_PATTERNS.with(|own| own.get().is_some()));
            inputs.iter().map(|(i, r)| parse(i, *r)).collect::<Vec<_>>()
        })
        .join()
        .expect("the parsing thread finished");
        assert_eq!(shared, own);
        assert!(OWN_PATTERNS.with(|own| own.get().is_none()));
    }

    #[test]
    fn spanish_mobile_is_vodafone_mobile_in_spain() {
        let info = ok("+34600600600", None);
        assert_eq!(info.e164, "+34600600600");
        assert_eq!(info.calling_code, 34);
        assert_eq!(info.prefix(), "+34");
        assert_eq!(info.subscriber, "600600600");
        assert_eq!(info.region.as_deref(), Some("ES"));
        assert_eq!(info.country_name, "Spain");
        assert_eq!(info.number_type, NumberType::Mobile);
        assert_eq!(info.line_type(), LineType::Mobile);
        assert_eq!(info.carrier_name, Some("Vodafone"));
        assert!(!info.is_virtual());
    }

    #[test]
    fn us_number_is_fixed_line_or_mobile_and_line_type_unknown() {
        let info = ok("+14155552671", None);
        assert_eq!(info.region.as_deref(), Some("US"));
        assert_eq!(info.country_name, "United States");
        assert_eq!(info.calling_code, 1);
        assert_eq!(info.subscriber, "4155552671");
        assert_eq!(info.number_type, NumberType::FixedLineOrMobile);
        assert_eq!(info.line_type(), LineType::Unknown);
        assert!(!info.is_virtual());
    }

    #[test]
    fn numbers_longer_than_e164_are_refused_though_libphonenumber_calls_them_valid() {
        // German fixed-line numbers of 15 national digits: valid for libphonenumber, 17 digits
        // in E.164 (found by the `phone` fuzz target).
        for input in ["+490611345555555678", "+4 9 5551 9 5551 91101"] {
            assert_eq!(parse(input, None), Err(PhoneError::TooLong), "{input:?}");
        }
        assert_eq!(ok("+4930123456", None).e164, "+4930123456");
    }

    #[test]
    fn brazilian_mobile_is_tim() {
        let info = ok("+5511987654321", None);
        assert_eq!(info.region.as_deref(), Some("BR"));
        assert_eq!(info.country_name, "Brazil");
        assert_eq!(info.subscriber, "11987654321");
        assert_eq!(info.number_type, NumberType::Mobile);
        assert_eq!(info.carrier_name, Some("TIM"));
    }

    #[test]
    fn uk_7911_range_belongs_to_guernsey_and_jt() {
        // +44 7911 12xxxx is allocated to Guernsey in libphonenumber's metadata.
        let info = ok("+447911123456", None);
        assert_eq!(info.calling_code, 44);
        assert_eq!(info.region.as_deref(), Some("GG"));
        assert_eq!(info.country_name, "Guernsey");
        assert_eq!(info.number_type, NumberType::Mobile);
        assert_eq!(info.carrier_name, Some("JT"));
    }

    #[test]
    fn formatted_international_inputs_normalise_to_the_same_e164() {
        for input in [
            "+34 600 600 600",
            "+34-600-600-600",
            "+34.600.600.600",
            "+34 (600) 600600",
            " +34600600600 ",
            "tel:+34-600-600-600",
            "+３４６００６００６００", // full-width digits
        ] {
            assert_eq!(ok(input, None).e164, "+34600600600", "{input:?}");
        }
    }

    #[test]
    fn national_input_needs_and_uses_the_default_region() {
        assert_eq!(ok("600 600 600", Some("ES")).e164, "+34600600600");
        assert_eq!(ok("(415) 555-2671", Some("US")).e164, "+14155552671");
        assert_eq!(ok("07400 123456", Some("GB")).e164, "+447400123456");
        assert_eq!(ok("0034600600600", Some("ES")).e164, "+34600600600");
        assert_eq!(ok("600600600", Some("es")).e164, "+34600600600");
        assert_eq!(
            parse("600 600 600", None),
            Err(PhoneError::InvalidCountryCode)
        );
    }

    #[test]
    fn default_region_is_ignored_for_international_input() {
        let info = ok("+34600600600", Some("US"));
        assert_eq!(info.region.as_deref(), Some("ES"));
    }

    #[test]
    fn unknown_default_region_is_invalid_region() {
        for region in ["XX", "ZZ", "001", "ESP", "", "E", "1\u{0}"] {
            let err = parse("600600600", Some(region)).expect_err(region);
            assert!(
                matches!(err, PhoneError::InvalidRegion(_)),
                "{region:?}: {err:?}"
            );
            assert_eq!(err.code(), "INVALID_REGION");
        }
    }

    #[test]
    fn invalid_region_error_echoes_only_a_short_prefix() {
        let long = "A".repeat(200);
        let err = parse("600600600", Some(&long)).expect_err("invalid region");
        assert_eq!(err, PhoneError::InvalidRegion("AAAAAAAA".into()));
        assert!(err.to_string().len() < 200);
    }

    #[test]
    fn garbage_input_is_invalid_phone_number() {
        let cases: &[(&str, PhoneError)] = &[
            ("", PhoneError::Empty),
            ("   \t", PhoneError::Empty),
            ("hello", PhoneError::NotANumber),
            ("++", PhoneError::NotANumber),
            ("+", PhoneError::NotANumber),
            ("+999 123 456 789", PhoneError::InvalidCountryCode),
            ("+34 6", PhoneError::TooShort),
            ("+34 600", PhoneError::TooShort),
            ("+34 600 600 600 600 600 600", PhoneError::TooLong),
            ("+34 900 000 000 000 000", PhoneError::TooLong),
            ("+34 500 600 600", PhoneError::NotValid { calling_code: 34 }),
            ("+1 415 555 2671 ext. 12", PhoneError::HasExtension),
        ];
        for (input, want) in cases {
            let err = parse(input, None).expect_err(input);
            assert_eq!(&err, want, "{input:?}");
            assert_eq!(err.code(), "INVALID_PHONE_NUMBER");
        }
    }

    #[test]
    fn input_over_the_length_cap_is_rejected_before_parsing() {
        let long = format!("+34600600600{}", " ".repeat(MAX_INPUT_CHARS));
        assert_eq!(parse(&long, None), Err(PhoneError::InputTooLong));
        let huge = "9".repeat(100_000);
        assert_eq!(parse(&huge, None), Err(PhoneError::InputTooLong));
        // Counted in characters, not bytes: 240 two-byte spaces are fine.
        let wide = format!("+34600600600{}", "\u{a0}".repeat(230));
        assert!(wide.len() > MAX_INPUT_CHARS);
        assert_eq!(ok(&wide, None).e164, "+34600600600");
    }

    #[test]
    fn tel_prefix_after_phone_context_is_refused_without_panicking() {
        // rlibphonenumber 2.2.15 panics on this shape of RFC 3966 input.
        for input in [";phone-context=+1;tel:", "600600600;phone-context=+34;tel:"] {
            assert_eq!(parse(input, None), Err(PhoneError::NotANumber), "{input:?}");
            assert_eq!(
                parse(input, Some("ES")),
                Err(PhoneError::NotANumber),
                "{input:?}"
            );
        }
        // Well-formed RFC 3966 input still parses.
        let info = ok("tel:600600600;phone-context=+34", None);
        assert_eq!(info.e164, "+34600600600");
    }

    #[test]
    fn error_messages_do_not_echo_the_input() {
        let input = "+34 500 600 600 secret";
        let err = parse(input, None).expect_err("invalid");
        assert!(!err.to_string().contains("500 600"), "{err}");
    }

    #[test]
    fn non_geographic_numbers_have_no_region_or_country() {
        let info = ok("+80012345678", None);
        assert_eq!(info.calling_code, 800);
        assert_eq!(info.region, None);
        assert_eq!(info.country_name, "");
        assert_eq!(info.number_type, NumberType::TollFree);
        assert_eq!(info.carrier_name, None);
    }

    #[test]
    fn carrier_is_only_reported_for_mobile_like_types() {
        // Spanish fixed line: the +34 9 prefixes carry no carrier name for fixed lines.
        let fixed = ok("+34912345678", None);
        assert_eq!(fixed.number_type, NumberType::FixedLine);
        assert_eq!(fixed.line_type(), LineType::Landline);
        assert_eq!(fixed.carrier_name, None);
    }

    #[test]
    fn line_type_mapping_follows_the_report_contract() {
        use NumberType::*;
        let cases = [
            (Mobile, LineType::Mobile, false),
            (FixedLine, LineType::Landline, false),
            (Voip, LineType::Voip, true),
            (PersonalNumber, LineType::Voip, true),
            (FixedLineOrMobile, LineType::Unknown, false),
            (TollFree, LineType::Unknown, false),
            (PremiumRate, LineType::Unknown, false),
            (SharedCost, LineType::Unknown, false),
            (Pager, LineType::Unknown, false),
            (Uan, LineType::Unknown, false),
            (Voicemail, LineType::Unknown, false),
            (Unknown, LineType::Unknown, false),
        ];
        for (t, line, virt) in cases {
            assert_eq!(t.line_type(), line, "{t:?}");
            assert_eq!(t.is_virtual(), virt, "{t:?}");
        }
    }

    #[test]
    fn voip_number_is_virtual() {
        // UK 056 range is VoIP.
        let info = ok("+445612345678", None);
        assert_eq!(info.number_type, NumberType::Voip);
        assert_eq!(info.line_type(), LineType::Voip);
        assert!(info.is_virtual());
    }

    #[test]
    fn premium_and_shared_cost_are_high_risk_and_cannot_receive_messages() {
        use NumberType::*;
        assert!(PremiumRate.is_premium_or_shared_cost());
        assert!(SharedCost.is_premium_or_shared_cost());
        assert!(!TollFree.is_premium_or_shared_cost());
        assert!(!Mobile.is_premium_or_shared_cost());
        let premium = ok("+34803123456", None);
        assert_eq!(premium.number_type, PremiumRate);
        assert!(!premium.number_type.can_receive_messages());
    }

    #[test]
    fn message_and_app_capability_by_type() {
        use NumberType::*;
        for t in [Mobile, FixedLineOrMobile, Voip, PersonalNumber, Unknown] {
            assert!(t.can_receive_messages(), "{t:?}");
        }
        for t in [
            FixedLine,
            TollFree,
            PremiumRate,
            SharedCost,
            Pager,
            Uan,
            Voicemail,
        ] {
            assert!(!t.can_receive_messages(), "{t:?}");
        }
        for t in [Mobile, FixedLineOrMobile, Unknown] {
            assert!(t.can_have_apps(), "{t:?}");
        }
        for t in [FixedLine, Voip, PersonalNumber, Pager, TollFree, Uan] {
            assert!(!t.can_have_apps(), "{t:?}");
        }
    }

    #[test]
    fn number_type_serialises_as_libphonenumber_names() {
        use NumberType::*;
        for t in [
            FixedLine,
            Mobile,
            FixedLineOrMobile,
            TollFree,
            PremiumRate,
            SharedCost,
            Voip,
            PersonalNumber,
            Pager,
            Uan,
            Voicemail,
            Unknown,
        ] {
            let json = serde_json::to_string(&t).expect("serialise");
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
    }

    #[test]
    fn line_type_serialises_lowercase_and_round_trips() {
        for t in [
            LineType::Mobile,
            LineType::Landline,
            LineType::Voip,
            LineType::Unknown,
        ] {
            let json = serde_json::to_string(&t).expect("serialise");
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            let back: LineType = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, t);
        }
    }

    #[test]
    fn warm_up_parses_the_example_numbers_of_every_region() {
        // ~245 regions, several types each, international and national input.
        assert!(warm_up() > 1_500);
    }

    #[test]
    fn e164_string_joins_calling_code_and_subscriber() {
        assert_eq!(e164_string(1, "4155552671"), "+14155552671");
        assert_eq!(e164_string(34, "600600600"), "+34600600600");
        assert_eq!(e164_string(882, "1234"), "+8821234");
        assert_eq!(e164_string(u16::MAX, "0"), "+655350");
    }

    #[test]
    fn country_name_lookup_is_case_insensitive_and_total() {
        assert_eq!(country_name("ES"), "Spain");
        assert_eq!(country_name("es"), "Spain");
        assert_eq!(country_name("XK"), "Kosovo");
        assert_eq!(country_name("ZZ"), "");
        assert_eq!(country_name("001"), "");
        assert_eq!(country_name(""), "");
    }

    #[test]
    fn every_supported_region_has_a_country_name() {
        for region in PHONE_NUMBER_UTIL.get_supported_regions() {
            let code = region.as_region_str();
            assert!(!country_name(code.as_str()).is_empty(), "{code}");
        }
    }
}
