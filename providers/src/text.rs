//! Localised message text. A message carries the brand and the code, nothing else: no links,
//! no user data, so it cannot be turned into a phishing or spam vehicle.

/// Renders the code message for `locale` (a BCP 47 tag; only the language part is used).
/// Unknown languages fall back to English.
pub fn render(locale: &str, brand: &str, code: &str) -> String {
    match language(locale).as_str() {
        "es" => format!("Tu código de {brand} es {code}"),
        "pt" => format!("Seu código {brand} é {code}"),
        "fr" => format!("Votre code {brand} est {code}"),
        "de" => format!("Ihr {brand}-Code lautet {code}"),
        "ar" => format!("رمز {brand} الخاص بك هو {code}"),
        _ => format!("Your {brand} code is {code}"),
    }
}

/// The language part of a BCP 47 tag (`pt-BR`, `pt_BR` -> `pt`), lowercase.
pub(crate) fn language(locale: &str) -> String {
    locale
        .split(['-', '_'])
        .next()
        .unwrap_or("en")
        .to_ascii_lowercase()
}

/// A BCP 47 tag as a lookup key: trimmed, lowercase, `_` as `-` (`pt_BR` -> `pt-br`).
#[cfg(any(feature = "twilio", feature = "meta_whatsapp", feature = "vonage"))]
pub(crate) fn normalize_locale(locale: &str) -> String {
    locale.trim().to_ascii_lowercase().replace('_', "-")
}

/// The entry of `by_locale` (keys normalised with [`normalize_locale`]) for a locale: the full
/// tag, then its language; `None` when neither is there.
#[cfg(feature = "twilio")]
pub(crate) fn for_locale<'a>(
    by_locale: &'a std::collections::BTreeMap<String, String>,
    locale: &str,
) -> Option<&'a str> {
    let full = normalize_locale(locale);
    let lang = full.split('-').next().unwrap_or_default();
    by_locale
        .get(&full)
        .or_else(|| by_locale.get(lang))
        .map(String::as_str)
}

/// Languages with their own template.
pub const LANGUAGES: [&str; 6] = ["en", "es", "pt", "fr", "de", "ar"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_carries_brand_and_code() {
        for lang in LANGUAGES {
            let text = render(lang, "Acme", "042917");
            assert!(
                text.contains("Acme") && text.contains("042917"),
                "{lang}: {text}"
            );
        }
    }

    #[test]
    fn region_subtags_and_unknown_languages_are_handled() {
        assert_eq!(render("pt-BR", "Acme", "1234"), "Seu código Acme é 1234");
        assert_eq!(render("xx", "Acme", "1234"), "Your Acme code is 1234");
        assert_eq!(render("", "Acme", "1234"), "Your Acme code is 1234");
    }
}
