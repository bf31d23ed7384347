//! What the WhatsApp adapters (Meta's Cloud API, Vonage's Messages API) share, since both send
//! the same approved authentication template: its name rule, its components (copy-code button)
//! and the locale -> template-language mapping with its validation. Each adapter keeps its own
//! config keys; error messages name them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::FieldError;
use crate::text::normalize_locale;

/// Locale -> template language code, used unless the configured mapping overrides an entry.
const DEFAULT_LANGUAGES: &[(&str, &str)] = &[
    ("en", "en_US"),
    ("en-gb", "en_GB"),
    ("es", "es"),
    ("es-es", "es_ES"),
    ("es-mx", "es_MX"),
    ("pt", "pt_BR"),
    ("pt-br", "pt_BR"),
    ("pt-pt", "pt_PT"),
    ("fr", "fr"),
    ("de", "de"),
    ("ar", "ar"),
];

/// Template language for locales with no mapping, unless configured (serde default).
pub(crate) fn default_language() -> String {
    "en_US".to_owned()
}

/// Checks a template name under config key `key`: lowercase letters, digits and `_`, at most
/// 512 bytes.
pub(crate) fn check_template(key: &str, name: &str) -> Result<(), FieldError> {
    if name.is_empty()
        || name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(FieldError::new(
            key,
            "must be a template name (lowercase letters, digits and _)",
        ));
    }
    Ok(())
}

/// Checks the default language (config key `default_key`) and every language of the mapping
/// (`<languages_key>.<locale>`), then normalises the mapping's locales (`pt_BR` -> `pt-br`).
pub(crate) fn validate_languages(
    languages: &mut BTreeMap<String, String>,
    default: &str,
    languages_key: &str,
    default_key: &str,
) -> Result<(), FieldError> {
    let language_code = |c: &str| {
        !c.is_empty() && c.len() <= 16 && c.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    };
    if !language_code(default) {
        return Err(FieldError::new(
            default_key,
            "must be a WhatsApp language code such as en_US",
        ));
    }
    let mut normalized = BTreeMap::new();
    for (locale, code) in languages.iter() {
        if !language_code(code) {
            return Err(FieldError::new(
                format!("{languages_key}.{locale}"),
                "must be a WhatsApp language code such as pt_BR",
            ));
        }
        normalized.insert(normalize_locale(locale), code.clone());
    }
    *languages = normalized;
    Ok(())
}

/// The template language for a BCP 47 locale: the configured mapping (normalised by
/// [`validate_languages`]), then the defaults, for the full tag and then its language;
/// `default` otherwise.
pub(crate) fn language_for(
    languages: &BTreeMap<String, String>,
    default: &str,
    locale: &str,
) -> String {
    let full = normalize_locale(locale);
    let lang = full.split('-').next().unwrap_or_default().to_owned();
    for key in [&full, &lang] {
        if let Some(code) = languages.get(key) {
            return code.clone();
        }
        if let Some((_, code)) = DEFAULT_LANGUAGES.iter().find(|(l, _)| l == key) {
            return (*code).to_owned();
        }
    }
    default.to_owned()
}

/// A template's `language` object: the code with `"policy": "deterministic"`, the only policy
/// the Cloud API accepts (required by Meta's schema and by Vonage's `custom` WhatsApp message).
pub(crate) fn template_language(code: &str) -> Value {
    json!({ "policy": "deterministic", "code": code })
}

/// The components of the authentication template: the code as the body parameter and as the
/// `url` button parameter (the copy-code button).
pub(crate) fn template_components(code: &str) -> Value {
    json!([
        { "type": "body", "parameters": [ { "type": "text", "text": code } ] },
        {
            "type": "button",
            "sub_type": "url",
            "index": "0",
            "parameters": [ { "type": "text", "text": code } ]
        }
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_checked_under_the_adapter_keys_and_normalised() {
        let mut languages = BTreeMap::from([("pt_BR".to_owned(), "pt_BR".to_owned())]);
        validate_languages(&mut languages, "en_US", "languages", "default_language").unwrap();
        assert_eq!(language_for(&languages, "en_GB", "PT-br"), "pt_BR");
        assert_eq!(language_for(&languages, "en_GB", "de-AT"), "de");
        assert_eq!(language_for(&languages, "en_GB", "xx"), "en_GB");

        let mut bad = BTreeMap::from([("es".to_owned(), "es-MX".to_owned())]);
        let err = validate_languages(&mut bad, "en_US", "whatsapp_languages", "x").unwrap_err();
        assert_eq!(err.key, "whatsapp_languages.es");
        let err = validate_languages(&mut bad, "", "l", "whatsapp_default_language").unwrap_err();
        assert_eq!(err.key, "whatsapp_default_language");
    }
}
