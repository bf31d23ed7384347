//! The hosted page's words in its six languages, and the choice of language and default country
//! from `Accept-Language`.

/// A page language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
    Pt,
    Fr,
    De,
    Ar,
}

impl Lang {
    pub const ALL: [Lang; 6] = [Lang::En, Lang::Es, Lang::Pt, Lang::Fr, Lang::De, Lang::Ar];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
            Lang::Pt => "pt",
            Lang::Fr => "fr",
            Lang::De => "de",
            Lang::Ar => "ar",
        }
    }

    pub fn parse(tag: &str) -> Option<Lang> {
        let lang = tag.split(['-', '_']).next()?.trim().to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == lang)
    }

    /// `rtl` for Arabic.
    pub fn dir(self) -> &'static str {
        if self == Lang::Ar { "rtl" } else { "ltr" }
    }

    /// The country a speaker of the language most likely dials from, when the browser names
    /// no region.
    fn default_region(self) -> &'static str {
        match self {
            Lang::En => "US",
            Lang::Es => "ES",
            Lang::Pt => "BR",
            Lang::Fr => "FR",
            Lang::De => "DE",
            Lang::Ar => "SA",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// `Accept-Language` entries, best first (by `q`, then order).
fn ranked(accept_language: &str) -> Vec<&str> {
    let mut tags: Vec<(f32, usize, &str)> = accept_language
        .split(',')
        .take(16)
        .enumerate()
        .filter_map(|(i, part)| {
            let mut it = part.split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (!tag.is_empty() && q > 0.0).then_some((q, i, tag))
        })
        .collect();
    tags.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    tags.into_iter().map(|(_, _, t)| t).collect()
}

/// The page language: the session's or workflow's when set, else the browser's best supported
/// one, else English.
pub fn choose(fixed: Option<&str>, accept_language: Option<&str>) -> Lang {
    fixed
        .and_then(Lang::parse)
        .or_else(|| {
            ranked(accept_language.unwrap_or_default())
                .into_iter()
                .find_map(Lang::parse)
        })
        .unwrap_or(Lang::En)
}

/// The country the number field starts on: the first region `Accept-Language` names
/// (`es-MX` -> MX), else the page language's usual one.
pub fn default_region(accept_language: Option<&str>, lang: Lang) -> String {
    ranked(accept_language.unwrap_or_default())
        .into_iter()
        .find_map(|tag| {
            let region = tag.split(['-', '_']).nth(1)?;
            (region.len() == 2
                && crate::phone::calling_code(&region.to_ascii_uppercase()).is_some())
            .then(|| region.to_ascii_uppercase())
        })
        .unwrap_or_else(|| lang.default_region().to_owned())
}

/// The words of the page, by key: `[en, es, pt, fr, de, ar]`.
const WORDS: &[(&str, [&str; 6])] = &[
    (
        "title",
        [
            "Verify your phone number",
            "Verifica tu número de teléfono",
            "Verifique seu número de telefone",
            "Vérifiez votre numéro de téléphone",
            "Bestätigen Sie Ihre Telefonnummer",
            "تحقق من رقم هاتفك",
        ],
    ),
    (
        "intro",
        [
            "We will send you a code to confirm this number is yours.",
            "Te enviaremos un código para confirmar que este número es tuyo.",
            "Enviaremos um código para confirmar que este número é seu.",
            "Nous vous enverrons un code pour confirmer que ce numéro est le vôtre.",
            "Wir senden Ihnen einen Code, um zu bestätigen, dass diese Nummer Ihnen gehört.",
            "سنرسل إليك رمزًا لتأكيد أن هذا الرقم لك.",
        ],
    ),
    (
        "country",
        ["Country", "País", "País", "Pays", "Land", "الدولة"],
    ),
    (
        "phone",
        [
            "Phone number",
            "Número de teléfono",
            "Número de telefone",
            "Numéro de téléphone",
            "Telefonnummer",
            "رقم الهاتف",
        ],
    ),
    (
        "phone_hint",
        [
            "Without the country code, e.g. 600 600 600",
            "Sin el prefijo del país, p. ej. 600 600 600",
            "Sem o código do país, ex.: 11 98765 4321",
            "Sans l'indicatif du pays, p. ex. 6 12 34 56 78",
            "Ohne Ländervorwahl, z. B. 151 23456789",
            "بدون رمز الدولة، مثل 50 123 4567",
        ],
    ),
    (
        "send",
        [
            "Send code",
            "Enviar código",
            "Enviar código",
            "Envoyer le code",
            "Code senden",
            "إرسال الرمز",
        ],
    ),
    (
        "continue",
        [
            "Continue",
            "Continuar",
            "Continuar",
            "Continuer",
            "Weiter",
            "متابعة",
        ],
    ),
    (
        "channel_title",
        [
            "How should we send your code?",
            "¿Cómo quieres recibir tu código?",
            "Como você quer receber seu código?",
            "Comment souhaitez-vous recevoir votre code ?",
            "Wie möchten Sie Ihren Code erhalten?",
            "كيف تريد أن نرسل لك الرمز؟",
        ],
    ),
    (
        "channel_legend",
        ["Channel", "Canal", "Canal", "Canal", "Kanal", "القناة"],
    ),
    (
        "sms",
        [
            "Text message (SMS)",
            "Mensaje de texto (SMS)",
            "Mensagem de texto (SMS)",
            "SMS",
            "SMS",
            "رسالة نصية (SMS)",
        ],
    ),
    (
        "whatsapp",
        [
            "WhatsApp",
            "WhatsApp",
            "WhatsApp",
            "WhatsApp",
            "WhatsApp",
            "واتساب",
        ],
    ),
    (
        "telegram",
        [
            "Telegram",
            "Telegram",
            "Telegram",
            "Telegram",
            "Telegram",
            "تيليجرام",
        ],
    ),
    (
        "rcs",
        [
            "RCS message",
            "Mensaje RCS",
            "Mensagem RCS",
            "Message RCS",
            "RCS-Nachricht",
            "رسالة RCS",
        ],
    ),
    (
        "viber",
        ["Viber", "Viber", "Viber", "Viber", "Viber", "فايبر"],
    ),
    (
        "call",
        [
            "Voice call",
            "Llamada de voz",
            "Chamada de voz",
            "Appel vocal",
            "Sprachanruf",
            "مكالمة صوتية",
        ],
    ),
    (
        "code_title",
        [
            "Enter your code",
            "Introduce tu código",
            "Digite seu código",
            "Saisissez votre code",
            "Code eingeben",
            "أدخل الرمز",
        ],
    ),
    (
        "code_sent",
        [
            "We sent a code to {phone}.",
            "Enviamos un código al {phone}.",
            "Enviamos um código para {phone}.",
            "Nous avons envoyé un code au {phone}.",
            "Wir haben einen Code an {phone} gesendet.",
            "أرسلنا رمزًا إلى {phone}.",
        ],
    ),
    (
        "code",
        [
            "Verification code",
            "Código de verificación",
            "Código de verificação",
            "Code de vérification",
            "Bestätigungscode",
            "رمز التحقق",
        ],
    ),
    (
        "verify",
        [
            "Verify",
            "Verificar",
            "Verificar",
            "Vérifier",
            "Bestätigen",
            "تحقق",
        ],
    ),
    (
        "resend",
        [
            "Send a new code",
            "Enviar un código nuevo",
            "Enviar um novo código",
            "Envoyer un nouveau code",
            "Neuen Code senden",
            "إرسال رمز جديد",
        ],
    ),
    (
        "resends_left",
        [
            "New codes left: {n}",
            "Códigos nuevos restantes: {n}",
            "Novos códigos restantes: {n}",
            "Nouveaux codes restants : {n}",
            "Verbleibende neue Codes: {n}",
            "الرموز الجديدة المتبقية: {n}",
        ],
    ),
    (
        "resent",
        [
            "We sent you a new code.",
            "Te enviamos un código nuevo.",
            "Enviamos um novo código.",
            "Nous vous avons envoyé un nouveau code.",
            "Wir haben Ihnen einen neuen Code gesendet.",
            "أرسلنا إليك رمزًا جديدًا.",
        ],
    ),
    (
        "cooldown",
        [
            "Please wait {n} s before asking for a new code.",
            "Espera {n} s antes de pedir un código nuevo.",
            "Aguarde {n} s antes de pedir um novo código.",
            "Veuillez patienter {n} s avant de demander un nouveau code.",
            "Bitte warten Sie {n} s, bevor Sie einen neuen Code anfordern.",
            "يرجى الانتظار {n} ث قبل طلب رمز جديد.",
        ],
    ),
    (
        "attempts_left",
        [
            "That code is not right. Attempts left: {n}",
            "El código no es correcto. Intentos restantes: {n}",
            "O código não está correto. Tentativas restantes: {n}",
            "Ce code n'est pas correct. Essais restants : {n}",
            "Der Code ist nicht richtig. Verbleibende Versuche: {n}",
            "الرمز غير صحيح. المحاولات المتبقية: {n}",
        ],
    ),
    (
        "approved",
        [
            "Your phone number is verified.",
            "Tu número de teléfono está verificado.",
            "Seu número de telefone foi verificado.",
            "Votre numéro de téléphone est vérifié.",
            "Ihre Telefonnummer ist bestätigt.",
            "تم التحقق من رقم هاتفك.",
        ],
    ),
    (
        "declined",
        [
            "We could not verify this phone number.",
            "No pudimos verificar este número de teléfono.",
            "Não foi possível verificar este número de telefone.",
            "Nous n'avons pas pu vérifier ce numéro de téléphone.",
            "Wir konnten diese Telefonnummer nicht bestätigen.",
            "تعذر التحقق من رقم الهاتف هذا.",
        ],
    ),
    (
        "in_review",
        [
            "Thank you. Your verification is being reviewed.",
            "Gracias. Tu verificación está en revisión.",
            "Obrigado. Sua verificação está em análise.",
            "Merci. Votre vérification est en cours d'examen.",
            "Danke. Ihre Bestätigung wird geprüft.",
            "شكرًا لك. يجري مراجعة عملية التحقق.",
        ],
    ),
    (
        "expired",
        [
            "This verification has expired. Please start again from the site that sent you here.",
            "Esta verificación ha caducado. Vuelve a empezar desde el sitio que te envió aquí.",
            "Esta verificação expirou. Recomece pelo site que enviou você para cá.",
            "Cette vérification a expiré. Recommencez depuis le site qui vous a envoyé ici.",
            "Diese Bestätigung ist abgelaufen. Bitte beginnen Sie erneut auf der Website, die Sie hierher geschickt hat.",
            "انتهت صلاحية عملية التحقق هذه. يرجى البدء من جديد من الموقع الذي أرسلك إلى هنا.",
        ],
    ),
    (
        "result_title",
        [
            "Verification result",
            "Resultado de la verificación",
            "Resultado da verificação",
            "Résultat de la vérification",
            "Ergebnis der Bestätigung",
            "نتيجة التحقق",
        ],
    ),
    (
        "handoff",
        [
            "On a computer? Scan this code with your phone to continue there.",
            "¿Estás en un ordenador? Escanea este código con tu móvil para seguir allí.",
            "Está em um computador? Escaneie este código com o celular para continuar nele.",
            "Sur un ordinateur ? Scannez ce code avec votre téléphone pour continuer dessus.",
            "Am Computer? Scannen Sie diesen Code mit Ihrem Telefon, um dort fortzufahren.",
            "هل تستخدم حاسوبًا؟ امسح هذا الرمز بهاتفك للمتابعة عليه.",
        ],
    ),
    (
        "qr_alt",
        [
            "QR code of this page's address",
            "Código QR de la dirección de esta página",
            "Código QR do endereço desta página",
            "Code QR de l'adresse de cette page",
            "QR-Code der Adresse dieser Seite",
            "رمز QR لعنوان هذه الصفحة",
        ],
    ),
    (
        "error_title",
        [
            "There is a problem",
            "Hay un problema",
            "Há um problema",
            "Il y a un problème",
            "Es gibt ein Problem",
            "توجد مشكلة",
        ],
    ),
    (
        "INVALID_PHONE_NUMBER",
        [
            "This phone number is not valid. Check the country and the number.",
            "Este número de teléfono no es válido. Revisa el país y el número.",
            "Este número de telefone não é válido. Verifique o país e o número.",
            "Ce numéro de téléphone n'est pas valide. Vérifiez le pays et le numéro.",
            "Diese Telefonnummer ist ungültig. Prüfen Sie Land und Nummer.",
            "رقم الهاتف هذا غير صالح. تحقق من الدولة والرقم.",
        ],
    ),
    (
        "INVALID_CODE",
        [
            "Enter the digits of the code you received.",
            "Introduce los dígitos del código que recibiste.",
            "Digite os números do código que você recebeu.",
            "Saisissez les chiffres du code reçu.",
            "Geben Sie die Ziffern des erhaltenen Codes ein.",
            "أدخل أرقام الرمز الذي تلقيته.",
        ],
    ),
    (
        "RESEND_LIMIT_EXCEEDED",
        [
            "Too many codes were sent to this number. Try again in {n} s.",
            "Se enviaron demasiados códigos a este número. Inténtalo de nuevo en {n} s.",
            "Muitos códigos foram enviados para este número. Tente de novo em {n} s.",
            "Trop de codes ont été envoyés à ce numéro. Réessayez dans {n} s.",
            "An diese Nummer wurden zu viele Codes gesendet. Versuchen Sie es in {n} s erneut.",
            "تم إرسال عدد كبير جدًا من الرموز إلى هذا الرقم. حاول مرة أخرى بعد {n} ث.",
        ],
    ),
    (
        "RATE_LIMITED",
        [
            "Too many requests. Try again in {n} s.",
            "Demasiadas solicitudes. Inténtalo de nuevo en {n} s.",
            "Solicitações demais. Tente de novo em {n} s.",
            "Trop de demandes. Réessayez dans {n} s.",
            "Zu viele Anfragen. Versuchen Sie es in {n} s erneut.",
            "طلبات كثيرة جدًا. حاول مرة أخرى بعد {n} ث.",
        ],
    ),
    (
        "BLOCKED",
        [
            "We cannot send a code to this number.",
            "No podemos enviar un código a este número.",
            "Não podemos enviar um código para este número.",
            "Nous ne pouvons pas envoyer de code à ce numéro.",
            "Wir können an diese Nummer keinen Code senden.",
            "لا يمكننا إرسال رمز إلى هذا الرقم.",
        ],
    ),
    (
        "CHANNEL_UNAVAILABLE",
        [
            "This channel cannot reach your number. Choose another one.",
            "Este canal no llega a tu número. Elige otro.",
            "Este canal não alcança seu número. Escolha outro.",
            "Ce canal ne peut pas joindre votre numéro. Choisissez-en un autre.",
            "Dieser Kanal erreicht Ihre Nummer nicht. Wählen Sie einen anderen.",
            "لا يمكن لهذه القناة الوصول إلى رقمك. اختر قناة أخرى.",
        ],
    ),
    (
        "UNDELIVERABLE",
        [
            "We could not deliver a code to this number. Check it or try another one.",
            "No pudimos entregar un código a este número. Revísalo o prueba otro.",
            "Não conseguimos entregar um código para este número. Verifique-o ou tente outro.",
            "Nous n'avons pas pu remettre de code à ce numéro. Vérifiez-le ou essayez-en un autre.",
            "Wir konnten keinen Code an diese Nummer zustellen. Prüfen Sie sie oder versuchen Sie eine andere.",
            "تعذر إيصال رمز إلى هذا الرقم. تحقق منه أو جرّب رقمًا آخر.",
        ],
    ),
    (
        "UNAVAILABLE",
        [
            "The service is busy. Please try again in a moment.",
            "El servicio está ocupado. Inténtalo de nuevo en un momento.",
            "O serviço está ocupado. Tente de novo em instantes.",
            "Le service est occupé. Réessayez dans un instant.",
            "Der Dienst ist ausgelastet. Bitte versuchen Sie es gleich noch einmal.",
            "الخدمة مشغولة. يرجى المحاولة بعد قليل.",
        ],
    ),
    (
        "FORM_EXPIRED",
        [
            "This form has expired. Please try again.",
            "Este formulario ha caducado. Inténtalo de nuevo.",
            "Este formulário expirou. Tente de novo.",
            "Ce formulaire a expiré. Veuillez réessayer.",
            "Dieses Formular ist abgelaufen. Bitte versuchen Sie es erneut.",
            "انتهت صلاحية هذا النموذج. يرجى المحاولة مرة أخرى.",
        ],
    ),
    (
        "not_found",
        [
            "This verification link is not valid or has expired.",
            "Este enlace de verificación no es válido o ha caducado.",
            "Este link de verificação não é válido ou expirou.",
            "Ce lien de vérification n'est pas valide ou a expiré.",
            "Dieser Bestätigungslink ist ungültig oder abgelaufen.",
            "رابط التحقق هذا غير صالح أو منتهي الصلاحية.",
        ],
    ),
    (
        "language",
        ["Language", "Idioma", "Idioma", "Langue", "Sprache", "اللغة"],
    ),
];

/// The word `key` in `lang` (English when missing; the key itself when unknown).
pub fn t(lang: Lang, key: &str) -> &'static str {
    WORDS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, words)| words[lang.index()])
}

/// [`t`] with `{n}` replaced.
pub fn tn(lang: Lang, key: &str, n: u64) -> String {
    t(lang, key).replace("{n}", &n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_exists_in_every_language() {
        for (key, words) in WORDS {
            for (i, w) in words.iter().enumerate() {
                assert!(!w.trim().is_empty(), "{key} in language {i}");
            }
            let placeholders = |w: &str| (w.contains("{n}"), w.contains("{phone}"));
            assert!(
                words
                    .iter()
                    .all(|w| placeholders(w) == placeholders(words[0])),
                "{key}: placeholders differ between languages"
            );
        }
    }

    #[test]
    fn the_browser_language_and_region_are_taken_in_q_order() {
        let header = Some("it-IT;q=0.9, es-MX;q=0.8, en;q=0.5");
        let lang = choose(None, header);
        assert_eq!(lang, Lang::Es);
        assert_eq!(default_region(header, lang), "IT");
        assert_eq!(choose(Some("ar"), header), Lang::Ar);
        assert_eq!(Lang::Ar.dir(), "rtl");
        assert_eq!(choose(None, Some("zz, *")), Lang::En);
        assert_eq!(default_region(Some("fr"), Lang::Fr), "FR");
    }
}
