//! What restricts each restricted feature of a user, in one short string: the
//! read view keeps it beside the mask and `<prefix>:{S}:restricted` stores it,
//! so that a refusal (a gateway's 403, a bulk check) names its rule.
//!
//! The encoding: `feature:rule` for a feature a rule restricts, `feature`
//! alone for one an operator's override restricts, joined by commas
//! (`can_message:scam_rule,can_purchase`). Neither a feature's nor a rule's
//! name holds a comma or a colon. A set written before causes were stored
//! names its features alone, so its features read as overridden until the
//! owner writes the set again.

use super::UserState;
use crate::rules::Model;

/// Why a feature is restricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause<'a> {
    /// This rule restricted it.
    Rule(&'a str),
    /// An operator's override restricted it.
    Override,
}

impl UserState {
    /// The user's restricted features with their causes, encoded (empty when
    /// nothing is restricted). The first rule in force that restricts a
    /// feature is its cause; an override that restricts it beats every rule.
    pub fn causes(&self, model: &Model) -> String {
        let mask = self.restricted(model);
        let mut out = String::new();
        for (bit, feature) in model.features.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(feature);
            let overridden = self.overrides.iter().any(|o| usize::from(o.feature) == bit && !o.allowed);
            let rule = self
                .restrictions
                .iter()
                .filter(|r| !r.suppressed)
                .map(|r| &model.rules[usize::from(r.rule)])
                .find(|rule| rule.restricts & (1 << bit) != 0);
            if let (false, Some(rule)) = (overridden, rule) {
                out.push(':');
                out.push_str(&rule.name);
            }
        }
        out
    }
}

/// Each restricted feature of an encoded set, with its cause.
pub fn decode(encoded: &str) -> impl Iterator<Item = (&str, Cause<'_>)> {
    encoded.split(',').filter(|part| !part.is_empty()).map(|part| match part.split_once(':') {
        Some((feature, rule)) => (feature.trim(), Cause::Rule(rule.trim())),
        None => (part.trim(), Cause::Override),
    })
}

/// Why `feature` is restricted in an encoded set (`None`: it is not).
pub fn cause_of<'a>(encoded: &'a str, feature: &str) -> Option<Cause<'a>> {
    decode(encoded).find(|(f, _)| *f == feature).map(|(_, cause)| cause)
}

/// Encodes features with their causes (the inverse of [`decode`]).
pub fn encode<'a>(causes: impl IntoIterator<Item = (&'a str, Cause<'a>)>) -> String {
    let parts: Vec<String> = causes
        .into_iter()
        .map(|(feature, cause)| match cause {
            Cause::Rule(rule) => format!("{feature}:{rule}"),
            Cause::Override => feature.to_string(),
        })
        .collect();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_reads_rules_and_overrides_and_encoding_inverts_it() {
        let encoded = "can_message:scam_rule,can_purchase";
        let causes: Vec<_> = decode(encoded).collect();
        assert_eq!(causes, vec![("can_message", Cause::Rule("scam_rule")), ("can_purchase", Cause::Override)]);
        assert_eq!(encode(causes), encoded);
        assert_eq!(cause_of(encoded, "can_purchase"), Some(Cause::Override));
        assert_eq!(cause_of(encoded, "can_post"), None);
        assert_eq!(decode("").count(), 0);
    }
}
