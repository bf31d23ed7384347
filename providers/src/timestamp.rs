//! Provider timestamps in receipts: RFC 3339 / ISO 8601 date-times (`2020-01-01T14:00:00.000Z`,
//! Infobip's `2019-11-09T16:00:00.000+0000`) to `SystemTime`, without a date-time dependency.
//! Anything unexpected gives `None` (the receipt then carries its receive time); never panics.

use std::time::{Duration, SystemTime};

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM)`; `None` for anything else or for a
/// time before 1970.
#[cfg_attr(not(any(feature = "vonage", feature = "infobip")), allow(dead_code))]
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let s = text.trim().as_bytes();
    if s.len() < 20 || s.len() > 40 || !text.is_ascii() {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |at: usize, c: u8| s.get(at) == Some(&c);
    let shape = sep(4, b'-')
        && sep(7, b'-')
        && matches!(s[10], b'T' | b't' | b' ')
        && sep(13, b':')
        && sep(16, b':');
    if !shape {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // 60 is a leap second; it is folded into the next one.
    if second > 60 {
        return None;
    }
    let mut at = 19;
    let mut nanos: u64 = 0;
    if s.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while s.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let digits = &s[start..at];
        if digits.is_empty() {
            return None;
        }
        for (i, d) in digits.iter().take(9).enumerate() {
            nanos += u64::from(d - b'0') * 10u64.pow(8 - i as u32);
        }
    }
    let offset_secs: i64 = match &s[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    let digit = |b: &u8| b.is_ascii_digit().then(|| i64::from(b - b'0'));
                    (digit(h1)? * 10 + digit(h2)?, digit(m1)? * 10 + digit(m2)?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos as u32))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
#[cfg_attr(not(any(feature = "vonage", feature = "infobip")), allow(dead_code))]
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds to `SystemTime` (`None` for negative or absurd values).
#[cfg_attr(not(feature = "telegram"), allow(dead_code))]
pub(crate) fn from_unix(secs: i64) -> Option<SystemTime> {
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(t: SystemTime) -> f64 {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(
            unix(parse_rfc3339("2020-01-01T14:00:00.000Z").unwrap()),
            1_577_887_200.0
        );
        assert_eq!(
            unix(parse_rfc3339("2019-11-09T16:00:00.000+0000").unwrap()),
            1_573_315_200.0
        );
        assert_eq!(
            unix(parse_rfc3339("2019-11-09T18:00:00+02:00").unwrap()),
            1_573_315_200.0
        );
        assert_eq!(
            unix(parse_rfc3339("2026-01-01T00:00:00.5Z").unwrap()),
            1_767_225_600.5
        );
        assert_eq!(
            unix(parse_rfc3339("2024-02-29T00:00:00Z").unwrap()),
            1_709_164_800.0
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            "",
            "2020-01-01",
            "2020-13-01T00:00:00Z",
            "2020-01-01T24:00:00Z",
            "2020-01-01T00:00:00",
            "2020-01-01T00:00:00+2",
            "1960-01-01T00:00:00Z",
            "2020-01-01T00:00:00.Z",
            "２０２０-01-01T00:00:00Z",
            "2020-01-01T00:00:00+99:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(from_unix(-1), None);
    }
}
