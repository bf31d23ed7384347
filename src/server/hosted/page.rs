//! The hosted page's HTML: one server-rendered document per step, escaped by `maud`. No inline
//! script or style (the Content-Security-Policy forbids both): behaviour comes from
//! `/hosted/static/hosted.js`, looks from `hosted.css` and the brand's colour sheet.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use switchboard_providers::Channel;

use super::i18n::{Lang, t, tn};
use crate::hosted::SessionStatus;

/// What every step shows.
pub struct Frame<'a> {
    pub lang: Lang,
    pub brand: &'a str,
    /// Six hex digits (no `#`), validated.
    pub color: &'a str,
    /// `/session/TOKEN`: the forms post under it.
    pub base: &'a str,
    pub csrf: &'a str,
    /// The absolute session URL, for the desktop-to-phone QR code (phone and code steps).
    pub handoff_url: Option<&'a str>,
}

/// One step of the page.
pub enum Step<'a> {
    Phone {
        region: &'a str,
        number: &'a str,
        /// The number the session locked (shown, not editable).
        locked: Option<&'a str>,
        error: Option<String>,
    },
    Channel {
        /// The number as the user typed it, carried to the send.
        number: &'a str,
        region: &'a str,
        channels: &'a [Channel],
        error: Option<String>,
    },
    Code {
        /// The number, formatted for display.
        phone: &'a str,
        notice: Option<String>,
        error: Option<String>,
        resends_left: Option<u32>,
        /// Seconds before a resend is allowed.
        cooldown: Option<u64>,
    },
    Done {
        status: SessionStatus,
        callback: Option<&'a str>,
    },
    NotFound,
}

fn head(frame: &Frame<'_>, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            title { (title) " · " (frame.brand) }
            link rel="stylesheet" href="/hosted/static/hosted.css";
            link rel="stylesheet" href={ "/hosted/static/brand/" (frame.color) ".css" };
            script src="/hosted/static/hosted.js" defer {}
        }
    }
}

fn csrf(frame: &Frame<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(frame.csrf); }
}

fn alert(error: Option<&str>, lang: Lang) -> Markup {
    html! {
        @if let Some(e) = error {
            div.alert.error role="alert" id="error" {
                p.alert-title { (t(lang, "error_title")) }
                p { (e) }
            }
        }
    }
}

fn flag(region: &str) -> String {
    region
        .chars()
        .filter_map(|c| char::from_u32(0x1F1E6 + (c as u32).checked_sub('A' as u32)?))
        .collect()
}

fn countries(selected: &str) -> Markup {
    html! {
        @for (code, name) in crate::phone::country_names() {
            @if let Some(dial) = crate::phone::calling_code(code) {
                option value=(code) selected[code == selected] {
                    (flag(code)) " " (name) " (+" (dial) ")"
                }
            }
        }
    }
}

fn handoff(frame: &Frame<'_>) -> Markup {
    let Some(url) = frame.handoff_url else {
        return html! {};
    };
    let Ok(code) = qrcode::QrCode::new(url.as_bytes()) else {
        return html! {};
    };
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(144, 144)
        .quiet_zone(true)
        .build();
    let svg = svg.find("<svg").map_or("", |i| &svg[i..]).to_owned();
    html! {
        aside.handoff {
            div.qr role="img" aria-label=(t(frame.lang, "qr_alt")) { (PreEscaped(svg)) }
            p { (t(frame.lang, "handoff")) }
        }
    }
}

fn channel_word(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms => "sms",
        Channel::Whatsapp => "whatsapp",
        Channel::Telegram => "telegram",
        Channel::Rcs => "rcs",
        Channel::Viber => "viber",
        Channel::Call => "call",
    }
}

/// The whole document of `step`.
pub fn render(frame: &Frame<'_>, step: &Step<'_>) -> String {
    let lang = frame.lang;
    let title = match step {
        Step::Phone { .. } => t(lang, "title"),
        Step::Channel { .. } => t(lang, "channel_title"),
        Step::Code { .. } => t(lang, "code_title"),
        Step::Done { .. } | Step::NotFound => t(lang, "result_title"),
    };
    let body = match step {
        Step::Phone {
            region,
            number,
            locked,
            error,
        } => phone_step(frame, region, number, *locked, error.as_deref()),
        Step::Channel {
            number,
            region,
            channels,
            error,
        } => channel_step(frame, number, region, channels, error.as_deref()),
        Step::Code {
            phone,
            notice,
            error,
            resends_left,
            cooldown,
        } => code_step(
            frame,
            phone,
            notice.as_deref(),
            error.as_deref(),
            *resends_left,
            *cooldown,
        ),
        Step::Done { status, callback } => done_step(frame, *status, *callback),
        Step::NotFound => html! { p { (t(lang, "not_found")) } },
    };
    let step_name = match step {
        Step::Phone { .. } => "phone",
        Step::Channel { .. } => "channel",
        Step::Code { .. } => "code",
        Step::Done { .. } => "done",
        Step::NotFound => "not-found",
    };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) dir=(lang.dir()) {
            (head(frame, title))
            body data-step=(step_name) {
                main.card {
                    p.brand { (frame.brand) }
                    h1 { (title) }
                    (body)
                }
                @if matches!(step, Step::Phone { .. } | Step::Code { .. }) {
                    (handoff(frame))
                }
            }
        }
    }
    .into_string()
}

fn phone_step(
    frame: &Frame<'_>,
    region: &str,
    number: &str,
    locked: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let lang = frame.lang;
    html! {
        p.intro { (t(lang, "intro")) }
        (alert(error, lang))
        form method="post" action={ (frame.base) "/send" } novalidate {
            (csrf(frame))
            @if let Some(locked) = locked {
                p.locked { (t(lang, "phone")) ": " strong dir="ltr" { (locked) } }
                input type="hidden" name="phone_number" value=(locked);
            } @else {
                div.field {
                    label for="country" { (t(lang, "country")) }
                    select id="country" name="country" autocomplete="country" {
                        (countries(region))
                    }
                }
                div.field {
                    label for="phone_number" { (t(lang, "phone")) }
                    input id="phone_number" name="phone_number" type="tel" autocomplete="tel"
                        inputmode="tel" dir="ltr" required value=(number)
                        aria-describedby={ "phone_hint" @if error.is_some() { " error" } }
                        aria-invalid=[error.map(|_| "true")];
                    p.hint id="phone_hint" aria-live="polite" { (t(lang, "phone_hint")) }
                }
            }
            button type="submit" { (t(lang, "send")) }
        }
    }
}

fn channel_step(
    frame: &Frame<'_>,
    number: &str,
    region: &str,
    channels: &[Channel],
    error: Option<&str>,
) -> Markup {
    let lang = frame.lang;
    html! {
        (alert(error, lang))
        form method="post" action={ (frame.base) "/send" } {
            (csrf(frame))
            input type="hidden" name="phone_number" value=(number);
            input type="hidden" name="country" value=(region);
            input type="hidden" name="chosen" value="1";
            fieldset {
                legend { (t(lang, "channel_legend")) }
                @for (i, c) in channels.iter().enumerate() {
                    div.choice {
                        input type="radio" name="channel" id={ "channel-" (channel_word(*c)) }
                            value=(c.as_input()) required checked[i == 0];
                        label for={ "channel-" (channel_word(*c)) } { (t(lang, channel_word(*c))) }
                    }
                }
            }
            button type="submit" { (t(lang, "send")) }
        }
    }
}

fn code_step(
    frame: &Frame<'_>,
    phone: &str,
    notice: Option<&str>,
    error: Option<&str>,
    resends_left: Option<u32>,
    cooldown: Option<u64>,
) -> Markup {
    let lang = frame.lang;
    html! {
        @let (before, after) = t(lang, "code_sent").split_once("{phone}").unwrap_or(("", ""));
        p.intro { (before) bdi dir="ltr" { (phone) } (after) }
        @if let Some(n) = notice {
            p.notice role="status" { (n) }
        }
        (alert(error, lang))
        form method="post" action={ (frame.base) "/check" } novalidate {
            (csrf(frame))
            div.field {
                label for="code" { (t(lang, "code")) }
                input id="code" name="code" type="text" inputmode="numeric"
                    autocomplete="one-time-code" pattern="[0-9]*" maxlength="10" dir="ltr" required
                    aria-describedby=[error.map(|_| "error")]
                    aria-invalid=[error.map(|_| "true")];
            }
            button type="submit" { (t(lang, "verify")) }
        }
        form.resend method="post" action={ (frame.base) "/resend" } {
            (csrf(frame))
            button.secondary type="submit" data-cooldown=[cooldown] { (t(lang, "resend")) }
            @if let Some(secs) = cooldown {
                p.hint id="cooldown" aria-live="polite" data-template=(t(lang, "cooldown")) {
                    (tn(lang, "cooldown", secs))
                }
            }
            @if let Some(n) = resends_left {
                p.hint { (tn(lang, "resends_left", u64::from(n))) }
            }
        }
    }
}

fn done_step(frame: &Frame<'_>, status: SessionStatus, callback: Option<&str>) -> Markup {
    let lang = frame.lang;
    let (key, class) = match status {
        SessionStatus::Approved => ("approved", "ok"),
        SessionStatus::InReview => ("in_review", "ok"),
        SessionStatus::Declined => ("declined", "error"),
        _ => ("expired", "error"),
    };
    html! {
        div.result.(class) role="status" data-status=(status.as_str()) {
            p { (t(lang, key)) }
        }
        @if let Some(cb) = callback {
            a.button href=(cb) { (t(lang, "continue")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame<'a>() -> Frame<'a> {
        Frame {
            lang: Lang::En,
            brand: "Acme <b>",
            color: "1d4ed8",
            base: "/session/tok",
            csrf: "c\"srf",
            handoff_url: Some("https://otp.example.com/session/tok/"),
        }
    }

    #[test]
    fn the_phone_step_has_the_stable_hooks_and_escapes_what_it_shows() {
        let html = render(
            &frame(),
            &Step::Phone {
                region: "ES",
                number: "<script>",
                locked: None,
                error: None,
            },
        );
        assert!(html.contains(r#"name="phone_number" type="tel" autocomplete="tel""#));
        assert!(html.contains(r#"<button type="submit">"#));
        assert!(html.contains(r#"<option value="ES" selected>"#));
        assert!(html.contains("(+34)"));
        assert!(!html.contains("<script>\""), "the number is escaped");
        assert!(html.contains("Acme &lt;b&gt;"));
        assert!(html.contains("c&quot;srf"));
        assert!(html.contains("<svg"), "the QR code is inline");
        assert!(!html.contains("<script>") || !html.contains("</script><script"));
        assert!(!html.contains("style="), "no inline style under the CSP");
    }

    #[test]
    fn the_code_step_has_the_one_time_code_hook_and_arabic_is_right_to_left() {
        let mut f = frame();
        f.lang = Lang::Ar;
        let html = render(
            &f,
            &Step::Code {
                phone: "+34 600 60 06 00",
                notice: None,
                error: Some("x".into()),
                resends_left: Some(2),
                cooldown: Some(30),
            },
        );
        assert!(html.contains(
            r#"name="code" type="text" inputmode="numeric" autocomplete="one-time-code""#
        ));
        assert!(html.contains(r#"<html lang="ar" dir="rtl">"#));
        assert!(html.contains(r#"data-cooldown="30""#));
    }
}
