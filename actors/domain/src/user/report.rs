//! A user's state as explained to people: `GET /v1/users/{id}`.

use super::*;

#[derive(Debug, Clone, serde::Serialize)]
pub struct UserReport {
    /// Aggregate name → count, exact decimal sum (as a string), or distinct count.
    pub aggregates: std::collections::BTreeMap<String, serde_json::Value>,
    pub restrictions: Vec<RestrictionReport>,
    /// What shadow rules would have restricted (they restrict nothing).
    pub would_restrict: Vec<RestrictionReport>,
    pub overrides: Vec<OverrideReport>,
    /// Rules whose restriction the tripwire withheld (until applied or the rule fires).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<String>,
    /// Windowed aggregates: their window and how many events they hold.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub windows: std::collections::BTreeMap<String, WindowReport>,
    /// The features restricted now (mask), overrides included.
    #[serde(skip)]
    pub restricted: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowReport {
    /// As configured (`"24h"`).
    pub window: String,
    /// Seconds with events (a count or sum), or values (a distinct count), inside it.
    pub entries: usize,
    /// Events merged beyond `max_events`: while above 0 the value is approximate.
    pub merged: u32,
    /// When the oldest entry leaves the window, ms since the epoch.
    pub next_aging_at_ms: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OverrideReport {
    pub feature: String,
    /// "allowed" or "restricted".
    pub state: &'static str,
    pub reason: String,
    pub by: String,
    pub at_ms: u64,
    pub at: String,
    pub expires_at_ms: Option<u64>,
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestrictionReport {
    pub rule: String,
    pub features: Vec<String>,
    /// The event that made the rule's condition hold (`<shard>-<ms>-<seq>`).
    pub event_id: EventRef,
    /// Event time, ms since the epoch.
    pub at_ms: u64,
    pub expires_at_ms: Option<u64>,
}

impl UserState {
    /// The report of this user of shard `shard`.
    /// The report as of `now_ms`: windowed aggregates aged to the present
    /// (on a copy; the shard's sweep frees the memory), so an explanation
    /// never shows events that left their window while the user was quiet.
    pub fn report_at(&self, model: &Model, shard: u32, now_ms: u64) -> UserReport {
        if self.windows.is_empty() {
            return self.report(model, shard);
        }
        let mut aged = self.clone();
        aged.advance_windows(model, now_ms);
        aged.report(model, shard)
    }

    pub fn report(&self, model: &Model, shard: u32) -> UserReport {
        let aggregates = model
            .aggregates
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let v = self.aggregate(model, i as u16);
                let shown = match a.kind {
                    AggregateKind::Sum => serde_json::Value::String(crate::Money(v).to_string()),
                    _ => serde_json::Value::from(v),
                };
                (a.name.to_string(), shown)
            })
            .collect();
        let suppressed: Vec<String> = self
            .restrictions
            .iter()
            .filter(|r| r.suppressed)
            .map(|r| model.rules[usize::from(r.rule)].name.to_string())
            .collect();
        let (would_restrict, restrictions) = self
            .restrictions
            .iter()
            .filter(|r| !r.suppressed)
            .map(|r| {
                let rule = &model.rules[usize::from(r.rule)];
                let report = RestrictionReport {
                    rule: rule.name.to_string(),
                    features: features_of(model, rule.features),
                    event_id: EventRef::new(shard, r.entry),
                    at_ms: r.at_ms,
                    expires_at_ms: r.expires_at_ms,
                };
                (rule.shadow(), report)
            })
            .partition::<Vec<_>, _>(|(shadow, _)| *shadow);
        let unzip = |v: Vec<(bool, RestrictionReport)>| v.into_iter().map(|(_, r)| r).collect();
        let (would_restrict, restrictions) = (unzip(would_restrict), unzip(restrictions));
        let overrides = self
            .overrides
            .iter()
            .map(|o| OverrideReport {
                feature: model.features[usize::from(o.feature)].to_string(),
                state: if o.allowed { "allowed" } else { "restricted" },
                reason: o.reason.to_string(),
                by: o.by.to_string(),
                at_ms: o.at_ms,
                at: crate::time::rfc3339_ms(o.at_ms),
                expires_at_ms: o.expires_at_ms,
                expires_at: o.expires_at_ms.map(crate::time::rfc3339_ms),
            })
            .collect();
        let windows = model
            .aggregates
            .iter()
            .filter_map(|a| match (a.slot, a.window) {
                (Slot::Window(w), Some(window)) => {
                    let state = self.windows.get(usize::from(w));
                    let report = WindowReport {
                        window: a.def.window.clone().unwrap_or_default(),
                        entries: state.map_or(0, |s| s.entries().len()),
                        merged: state.map_or(0, Window::merged),
                        next_aging_at_ms: state.and_then(|s| s.next_aging(window)).map(|s| u64::from(s) * 1000),
                    };
                    Some((a.name.to_string(), report))
                }
                _ => None,
            })
            .collect();
        UserReport {
            aggregates,
            restrictions,
            would_restrict,
            overrides,
            windows,
            suppressed,
            restricted: self.restricted(model),
        }
    }
}

/// Names of the features in a mask.
pub fn features_of(model: &Model, mask: u64) -> Vec<String> {
    model.features.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, f)| f.to_string()).collect()
}
