//! The planner: the ordered candidates for one send.

use switchboard_providers::Channel;

use super::table::{Route, RouteTable};
use crate::phone::NumberType;

/// What the planner needs to know about one send.
#[derive(Clone, Copy, Debug)]
pub struct PlanRequest<'a> {
    pub country: Option<&'a str>,
    pub number_type: NumberType,
    /// A channel the caller pinned: only its routes are tried.
    pub pinned: Option<Channel>,
    /// A channel the caller prefers: its routes come first, the rest follow.
    pub preferred: Option<Channel>,
    /// The workflow's own channel order, replacing the table's when set.
    pub workflow_preference: Option<&'a [Channel]>,
}

/// Whether `channel` can reach a line of this type at all.
pub fn channel_fits(channel: Channel, number_type: NumberType) -> bool {
    if !number_type.can_receive_messages() {
        return channel == Channel::Call;
    }
    !channel.needs_app() || number_type.can_have_apps()
}

/// Orders the routes for one send: pinned channel only (when pinned); line-type gating
/// (a landline gets voice only, no app channel where the line cannot have the app); then the
/// preferred channel first, the preference order, and price within a channel. Voice comes
/// last unless it is the only way.
pub fn plan(table: &RouteTable, req: &PlanRequest<'_>) -> Vec<Route> {
    let country = table.for_country(req.country);
    let order: &[Channel] = req.workflow_preference.unwrap_or(&country.preference);
    let rank = |c: Channel| -> (u8, usize) {
        if req.preferred == Some(c) {
            return (0, 0);
        }
        if c == Channel::Call {
            // Voice is the last resort wherever the table lists it.
            return (3, 0);
        }
        match order.iter().position(|x| *x == c) {
            Some(i) => (1, i),
            // Unlisted channels follow the listed ones.
            None => (2, 0),
        }
    };
    let mut routes: Vec<Route> = country
        .routes
        .iter()
        .filter(|r| req.pinned.is_none_or(|p| p == r.channel))
        .filter(|r| channel_fits(r.channel, req.number_type))
        .cloned()
        .collect();
    routes.sort_by(|a, b| {
        rank(a.channel)
            .cmp(&rank(b.channel))
            .then(a.channel.cmp(&b.channel))
            .then(a.price.total_cmp(&b.price))
    });
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
currency = "USD"
[default]
preference = ["sms", "whatsapp", "call"]
routes = [
  { channel = "call", provider = "twilio", price = 0.09 },
  { channel = "sms", provider = "twilio", price = 0.05 },
  { channel = "sms", provider = "infobip", price = 0.04 },
  { channel = "whatsapp", provider = "meta_whatsapp", price = 0.03 },
]
[countries.BR]
preference = ["whatsapp", "sms", "call"]
routes = [
  { channel = "sms", provider = "twilio", price = 0.05 },
  { channel = "whatsapp", provider = "meta_whatsapp", price = 0.0068 },
  { channel = "call", provider = "twilio", price = 0.03 },
  { channel = "telegram", provider = "telegram", price = 0.01 },
]
"#;

    fn req(country: &'static str, number_type: NumberType) -> PlanRequest<'static> {
        PlanRequest {
            country: Some(country),
            number_type,
            pinned: None,
            preferred: None,
            workflow_preference: None,
        }
    }

    fn names(routes: &[Route]) -> Vec<String> {
        routes
            .iter()
            .map(|r| format!("{}:{}", r.channel, r.provider))
            .collect()
    }

    #[test]
    fn preference_order_then_unlisted_channels_then_voice_last() {
        let t = RouteTable::from_toml(TABLE).unwrap();
        let plan = plan(&t, &req("BR", NumberType::Mobile));
        assert_eq!(
            names(&plan),
            [
                "whatsapp:meta_whatsapp",
                "sms:twilio",
                "telegram:telegram",
                "call:twilio"
            ]
        );
    }

    #[test]
    fn cheapest_provider_first_within_a_channel() {
        let t = RouteTable::from_toml(TABLE).unwrap();
        let plan = plan(&t, &req("FR", NumberType::Mobile));
        assert_eq!(
            names(&plan),
            [
                "sms:infobip",
                "sms:twilio",
                "whatsapp:meta_whatsapp",
                "call:twilio"
            ]
        );
    }

    #[test]
    fn landline_gets_voice_only() {
        let t = RouteTable::from_toml(TABLE).unwrap();
        let plan = plan(&t, &req("BR", NumberType::FixedLine));
        assert_eq!(names(&plan), ["call:twilio"]);
    }

    #[test]
    fn pinned_channel_is_the_only_channel_tried() {
        let t = RouteTable::from_toml(TABLE).unwrap();
        let mut r = req("FR", NumberType::Mobile);
        r.pinned = Some(Channel::Sms);
        assert_eq!(names(&plan(&t, &r)), ["sms:infobip", "sms:twilio"]);
    }

    #[test]
    fn preferred_channel_goes_first_and_the_rest_follow() {
        let t = RouteTable::from_toml(TABLE).unwrap();
        let mut r = req("FR", NumberType::Mobile);
        r.preferred = Some(Channel::Call);
        assert_eq!(
            names(&plan(&t, &r)),
            [
                "call:twilio",
                "sms:infobip",
                "sms:twilio",
                "whatsapp:meta_whatsapp"
            ]
        );
    }
}
