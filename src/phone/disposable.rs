//! Lists of disposable (temporary, throw-away) numbers and ranges: the shipped one
//! (`data/disposable_numbers.txt`, see `tools/refresh_disposable.py` for its source and
//! licence) and the configured ones.

use std::collections::HashSet;
use std::sync::OnceLock;

use super::MAX_E164_DIGITS;

/// The shipped list: numbers seen on public receive-SMS websites.
const BUILTIN: &str = include_str!("../../data/disposable_numbers.txt");

/// How much of a bad entry an error message repeats.
const ECHO_LIMIT: usize = 24;

/// Disposable numbers and number ranges, built once from configuration.
///
/// Each entry is either an E.164 number (`"+4915510000000"`) or an E.164 prefix
/// ending with `*` (`"+4915510*"`), which matches every number that starts with
/// those digits. Surrounding whitespace is ignored; nothing else is normalised, so a
/// typo in the config fails loudly at load instead of silently matching nothing.
#[derive(Clone, Debug, Default)]
pub struct DisposableList {
    /// Exact numbers, digits only (no `+`).
    exact: HashSet<Box<str>>,
    /// Prefixes, digits only (no `+`, no `*`).
    prefixes: HashSet<Box<str>>,
    /// Distinct prefix lengths, ascending, so a lookup probes each length once.
    prefix_lens: Vec<usize>,
    /// Whether the shipped list counts too.
    builtin: bool,
}

impl DisposableList {
    /// Builds the list; the error names the first bad entry.
    pub fn new<I, S>(entries: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Self::default();
        for (position, entry) in entries.into_iter().enumerate() {
            let raw = entry.as_ref();
            let entry = raw.trim();
            let (body, is_prefix) = match entry.strip_suffix('*') {
                Some(body) => (body, true),
                None => (entry, false),
            };
            let digits = body
                .strip_prefix('+')
                .filter(|d| is_e164_digits(d))
                .ok_or_else(|| bad_entry(position, raw))?;
            if is_prefix {
                list.prefixes.insert(digits.into());
            } else {
                list.exact.insert(digits.into());
            }
        }
        let mut lens: Vec<usize> = list.prefixes.iter().map(|p| p.len()).collect();
        lens.sort_unstable();
        lens.dedup();
        list.prefix_lens = lens;
        Ok(list)
    }

    /// The same list with the shipped one added (`true`) or not.
    pub fn with_builtin(mut self, builtin: bool) -> Self {
        self.builtin = builtin;
        self
    }

    /// The shipped list's numbers, parsed once per process: the digits as sorted integers
    /// (0.6 MB for ~77,000 numbers, where strings in a hash set take ~8 MB). Lines that are not
    /// exact E.164 numbers are skipped; the test below checks there are none.
    fn builtin() -> &'static [u64] {
        static LIST: OnceLock<Vec<u64>> = OnceLock::new();
        LIST.get_or_init(|| {
            let mut numbers: Vec<u64> = Self::entries_of(BUILTIN)
                .into_iter()
                .filter_map(|e| e.strip_prefix('+').filter(|d| is_e164_digits(d)))
                .filter_map(|d| d.parse().ok())
                .collect();
            numbers.sort_unstable();
            numbers.dedup();
            numbers
        })
    }

    /// Whether the shipped list has `e164`.
    fn in_builtin(e164: &str) -> bool {
        e164.strip_prefix('+')
            .filter(|d| is_e164_digits(d))
            .and_then(|d| d.parse::<u64>().ok())
            .is_some_and(|n| Self::builtin().binary_search(&n).is_ok())
    }

    /// The entries of a list file: one per line; blank lines and `#` comment lines skipped.
    pub fn entries_of(text: &str) -> Vec<&str> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }

    /// Whether the E.164 number (`"+4915510123456"`) is listed or falls in a listed range
    /// (the shipped list included, when it is on). Anything that is not E.164 is never
    /// contained.
    pub fn contains(&self, e164: &str) -> bool {
        self.contains_own(e164) || (self.builtin && Self::in_builtin(e164))
    }

    fn contains_own(&self, e164: &str) -> bool {
        let Some(digits) = e164.strip_prefix('+').filter(|d| is_e164_digits(d)) else {
            return false;
        };
        self.exact.contains(digits)
            || self
                .prefix_lens
                .iter()
                .take_while(|&&len| len <= digits.len())
                .any(|&len| self.prefixes.contains(&digits[..len]))
    }

    /// Number of distinct entries (numbers and prefixes).
    pub fn len(&self) -> usize {
        self.exact.len() + self.prefixes.len()
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// 1 to 15 ASCII digits, the first one non-zero (no country code starts with 0).
fn is_e164_digits(digits: &str) -> bool {
    (1..=MAX_E164_DIGITS).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

fn bad_entry(position: usize, raw: &str) -> String {
    let shown: String = raw.chars().take(ECHO_LIMIT).collect();
    let ellipsis = if raw.chars().nth(ECHO_LIMIT).is_some() {
        "..."
    } else {
        ""
    };
    format!(
        "disposable number entry #{} {shown:?}{ellipsis} is invalid: expected an E.164 number \
         (\"+4915510000000\") or an E.164 prefix ending with '*' (\"+4915510*\"): '+', then 1 to \
         {MAX_E164_DIGITS} digits not starting with 0",
        position + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_entries_match_only_the_same_number() {
        let list = DisposableList::new(["+4915510000001"]).expect("valid list");
        assert!(list.contains("+4915510000001"));
        assert!(!list.contains("+4915510000002"));
        assert!(!list.contains("+491551000000"));
        assert!(!list.contains("+49155100000012"));
    }

    #[test]
    fn prefix_entries_match_every_number_in_the_range() {
        let list = DisposableList::new(["+4915510*", "+447700900*"]).expect("valid list");
        assert!(list.contains("+4915510123456"));
        assert!(list.contains("+4915510"));
        assert!(list.contains("+447700900123"));
        assert!(!list.contains("+4915511123456"));
        assert!(!list.contains("+491551"));
    }

    #[test]
    fn non_e164_lookups_are_never_contained() {
        let list = DisposableList::new(["+4915510*"]).expect("valid list");
        assert!(!list.contains("4915510123456"));
        assert!(!list.contains("+49 15510 123456"));
        assert!(!list.contains(""));
        assert!(!list.contains("+"));
    }

    #[test]
    fn whitespace_around_entries_is_ignored_and_duplicates_collapse() {
        let list = DisposableList::new([" +4915510* ", "+4915510*", "\t+15005550006\n"])
            .expect("valid list");
        assert_eq!(list.len(), 2);
        assert!(list.contains("+15005550006"));
    }

    #[test]
    fn the_shipped_list_parses_and_counts_only_when_on() {
        let lines = DisposableList::entries_of(BUILTIN);
        // Every line is an exact E.164 number: none is skipped.
        assert!(DisposableList::new(&lines).is_ok());
        assert!(lines.iter().all(|l| !l.ends_with('*')));
        assert_eq!(DisposableList::builtin().len(), lines.len());
        assert!(lines.len() > 50_000, "{}", lines.len());
        let first = lines[0];
        // Digits are not a prefix match: one more or one fewer is not listed.
        let longer = format!("{first}1");
        assert!(
            !DisposableList::default()
                .with_builtin(true)
                .contains(&longer)
        );
        assert!(
            !DisposableList::default()
                .with_builtin(true)
                .contains(&first[..first.len() - 1])
        );
        let own = DisposableList::new(["+34600600600"]).unwrap();
        assert!(!own.contains(first));
        assert!(own.clone().with_builtin(true).contains(first));
        assert!(own.with_builtin(true).contains("+34600600600"));
    }

    #[test]
    fn list_files_skip_blank_and_comment_lines() {
        let text = "# source: ours\n\n+4915510123456\n  +44770090*  \n#+1\n";
        assert_eq!(
            DisposableList::entries_of(text),
            ["+4915510123456", "+44770090*"]
        );
    }

    #[test]
    fn empty_list_contains_nothing() {
        let list = DisposableList::new(Vec::<String>::new()).expect("valid list");
        assert!(list.is_empty());
        assert_eq!(list.len(), 0);
        assert!(!list.contains("+34600600600"));
    }

    #[test]
    fn bad_entries_are_rejected_with_a_message_naming_them() {
        for bad in [
            "",
            "*",
            "+*",
            "+",
            "4915510*",
            "+49 155*",
            "+49155*10",
            "+0123",
            "+49-155",
            "++49",
            "+1234567890123456",
            "+12*3",
        ] {
            let err = DisposableList::new(["+34600600600", bad]).expect_err(bad);
            assert!(err.contains("entry #2"), "{err}");
            assert!(err.contains(&format!("{:?}", bad)), "{err}");
        }
    }

    #[test]
    fn bad_entry_message_truncates_long_entries() {
        let long = "x".repeat(500);
        let err = DisposableList::new([long.as_str()]).expect_err("invalid");
        assert!(err.len() < 300, "{err}");
        assert!(err.contains("..."));
    }
}
