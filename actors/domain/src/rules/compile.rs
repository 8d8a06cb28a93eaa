//! Compiling the `features`, `aggregates` and `rules` sections into a
//! `Model`. Every error names its key.

use ahash::AHashMap;

use super::*;
use crate::schema::{PropType, Schema};

impl Model {
    /// Compiles the config. An error names the key and what is wrong.
    pub fn compile(def: &ModelDef, accept_unknown_events: bool) -> Result<Model, String> {
        let layout =
            Layout { features: def.features.keys().cloned().collect(), rules: def.rules.keys().cloned().collect() };
        Self::compile_laid_out(def, &layout, &BTreeMap::new(), accept_unknown_events)
    }

    /// Every error of a rule set, each with its key (compiling stops at the
    /// first): features, then each aggregate and each rule on its own.
    pub fn errors(def: &ModelDef, accept_unknown_events: bool) -> Vec<String> {
        if let Err(e) = Schema::compile(&def.events, accept_unknown_events) {
            return vec![e];
        }
        let part = |aggregates: BTreeMap<String, AggregateDef>, rules: BTreeMap<String, RuleDef>| ModelDef {
            features: def.features.clone(),
            events: def.events.clone(),
            aggregates,
            rules,
        };
        let mut errors = Vec::new();
        if let Err(e) = Model::compile(&part(BTreeMap::new(), BTreeMap::new()), accept_unknown_events) {
            return vec![e];
        }
        let mut valid = BTreeMap::new();
        for (name, a) in &def.aggregates {
            let one = part([(name.clone(), a.clone())].into(), BTreeMap::new());
            match Model::compile(&one, accept_unknown_events) {
                Ok(_) => {
                    valid.insert(name.clone(), a.clone());
                }
                Err(e) => errors.push(e),
            }
        }
        for (name, r) in &def.rules {
            if let Err(e) =
                Model::compile(&part(valid.clone(), [(name.clone(), r.clone())].into()), accept_unknown_events)
            {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            if let Err(e) = Model::compile(def, accept_unknown_events) {
                errors.push(e);
            }
        }
        errors
    }

    /// Compiles a published version: features and rules at the positions
    /// `layout` gives them, `retired` rules kept (listening to nothing).
    pub fn compile_laid_out(
        def: &ModelDef,
        layout: &Layout,
        retired: &BTreeMap<String, RuleDef>,
        accept_unknown_events: bool,
    ) -> Result<Model, String> {
        let schema = Schema::compile(&def.events, accept_unknown_events)?;
        if def.features.len() > MAX_FEATURES || layout.features.len() > MAX_FEATURES {
            return Err(format!("features: at most {MAX_FEATURES} features"));
        }
        if def.rules.len() > MAX_RULES || layout.rules.len() > MAX_RULES {
            return Err(format!("rules: at most {MAX_RULES} rules"));
        }
        let (features, feature_descriptions) = compile_features(def, &layout.features)?;
        let (aggregates, slots) = compile_aggregates(def, &schema)?;
        let mut listening = vec![Vec::new(); schema.events.len()];
        let rules = compile_rules(def, layout, retired, (&schema, &features, &aggregates), &mut listening)?;
        let rules_by_event = listening.into_iter().map(Vec::into_boxed_slice).collect();
        let mut aggregates_by_event = vec![Vec::new(); schema.events.len()];
        for (i, a) in aggregates.iter().enumerate() {
            aggregates_by_event[usize::from(a.event)].push(i as u16);
        }
        Ok(Model {
            schema,
            features,
            feature_descriptions,
            rules,
            aggregates_by_event,
            rules_by_event,
            scalar_count: usize::from(slots[0]),
            set_count: usize::from(slots[1]),
            window_count: usize::from(slots[2]),
            windowed: aggregates
                .iter()
                .enumerate()
                .filter_map(|(i, a)| match (a.slot, a.window) {
                    (Slot::Window(w), Some(window)) => Some((i as u16, w, window)),
                    _ => None,
                })
                .collect(),
            aggregates,
        })
    }
}

type Features = (Vec<Box<str>>, Vec<Option<String>>);

fn compile_features(def: &ModelDef, order: &[String]) -> Result<Features, String> {
    let mut features: Vec<Box<str>> = Vec::new();
    let mut feature_descriptions = Vec::new();
    for name in order {
        let f = def.features.get(name).ok_or_else(|| format!("features.{name}: a rule set keeps every feature"))?;
        if !name.starts_with("can_") || name.len() <= 4 {
            return Err(format!("features.{name}: a feature name starts with \"can_\" (can_message)"));
        }
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(format!("features.{name}: use lowercase letters, digits and _"));
        }
        features.push(name.as_str().into());
        feature_descriptions.push(f.description.clone());
    }
    Ok((features, feature_descriptions))
}

/// The aggregates, with how many scalar, set and window slots they take.
fn compile_aggregates(def: &ModelDef, schema: &Schema) -> Result<(Vec<Aggregate>, [u16; 3]), String> {
    let mut aggregates = Vec::with_capacity(def.aggregates.len());
    let mut slots = [0u16; 3];
    for (name, a) in &def.aggregates {
        let key = format!("aggregates.{name}");
        let event = schema
            .event_index(&a.event)
            .ok_or_else(|| format!("{key}.event: {:?} is not a declared event", a.event))?;
        let property = match (a.kind, &a.property) {
            (AggregateKind::Count, None) => None,
            (AggregateKind::Count, Some(_)) => return Err(format!("{key}.property: a count takes no property")),
            (_, None) => return Err(format!("{key}.property: required for {:?}", a.kind)),
            (kind, Some(p)) => {
                let (index, ty) = schema
                    .property_index(event, p)
                    .ok_or_else(|| format!("{key}.property: event {:?} declares no property {p:?}", a.event))?;
                if kind == AggregateKind::Sum && ty != PropType::Money {
                    return Err(format!("{key}.property: sums are of money properties (declare {p:?} as \"money\")"));
                }
                Some(index)
            }
        };
        let window = a.window.as_deref().map(|w| window_seconds(&key, w)).transpose()?;
        if a.max_events.is_some() && window.is_none() {
            return Err(format!("{key}.max_events: only a windowed aggregate keeps events (add window = \"24h\")"));
        }
        let max_events = a.max_events.unwrap_or(DEFAULT_MAX_EVENTS);
        if max_events == 0 {
            return Err(format!("{key}.max_events: at least 1"));
        }
        let (slot, n) = match (window, a.kind) {
            (Some(_), _) => (Slot::Window(slots[2]), 2),
            (None, AggregateKind::Distinct) => (Slot::Set(slots[1]), 1),
            (None, _) => (Slot::Scalar(slots[0]), 0),
        };
        slots[n] += 1;
        let unit = if a.kind == AggregateKind::Sum { SCALE } else { 1 };
        aggregates.push(Aggregate {
            name: name.as_str().into(),
            kind: a.kind,
            event,
            property,
            slot,
            unit,
            window,
            max_events,
            def: a.clone(),
        });
    }
    Ok((aggregates, slots))
}

/// A window's length in whole seconds, within `WINDOW_RANGE_S`.
fn window_seconds(key: &str, text: &str) -> Result<u32, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{key}.window: {text:?} is not a duration like \"24h\" ({e})"))?;
    let s = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    if d.subsec_nanos() != 0 || !WINDOW_RANGE_S.contains(&s) {
        return Err(format!("{key}.window: whole seconds from 1s to 90d, not {text:?}"));
    }
    Ok(s)
}

fn compile_rules(
    def: &ModelDef,
    layout: &Layout,
    retired: &BTreeMap<String, RuleDef>,
    (schema, features, aggregates): (&Schema, &[Box<str>], &[Aggregate]),
    rules_by_event: &mut [Vec<u16>],
) -> Result<Vec<Rule>, String> {
    let by_name: AHashMap<&str, u16> = aggregates.iter().enumerate().map(|(i, a)| (&*a.name, i as u16)).collect();
    let mut rules = Vec::with_capacity(layout.rules.len());
    for (i, name) in layout.rules.iter().enumerate() {
        let key = format!("rules.{name}");
        let mask = features_mask(&key, retired.get(name).or(def.rules.get(name)), features)?;
        if let Some(r) = retired.get(name) {
            // Kept for the restrictions it made: listens to nothing, never evaluated.
            rules.push(Rule {
                name: name.as_str().into(),
                def: r.clone(),
                condition: Condition::default(),
                features: mask,
                restrict_for_ms: None,
                retired: true,
                restricts: if r.mode.is_enforce() { mask } else { 0 },
                clears: false,
                windowed: false,
            });
            continue;
        }
        let r = def.rules.get(name).ok_or_else(|| format!("{key}: in the layout but not in the rule set"))?;
        check_rule_name(&key, name)?;
        if r.on.is_empty() {
            return Err(format!("{key}.on: name at least one event"));
        }
        let mut on = Vec::with_capacity(r.on.len());
        for event in &r.on {
            let e = schema.event_index(event).ok_or_else(|| format!("{key}.on: {event:?} is not a declared event"))?;
            rules_by_event[usize::from(e)].push(i as u16);
            on.push(e);
        }
        let names = condition::cel::Names { aggregates, by_name: &by_name, schema, on: &on };
        let condition = condition::compile(&r.when, &names).map_err(|e| format!("{key}.when: {e}"))?;
        let clears = r.until == Until::ConditionClears;
        if clears && condition.reads_event() {
            return Err(format!(
                "{key}.until: \"condition_clears\" needs a condition over aggregates only \
                 (event.<property> is the applied event's, not a state that clears)"
            ));
        }
        let windowed = condition.aggregates().iter().any(|&a| aggregates[usize::from(a)].window.is_some());
        let restrict_for_ms = r.restrict_for.as_deref().map(|d| restrict_for(&key, d)).transpose()?;
        rules.push(Rule {
            name: name.as_str().into(),
            def: r.clone(),
            condition,
            features: mask,
            restrict_for_ms,
            retired: false,
            restricts: if r.mode.is_enforce() { mask } else { 0 },
            clears,
            windowed,
        });
    }
    Ok(rules)
}

/// Whether `name` can name a rule: 1 to 128 letters, digits, `_`, `-` or
/// `.` (it is part of URLs and metric labels).
pub fn is_rule_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_-.".contains(&b);
    !name.is_empty() && name.len() <= 128 && name.bytes().all(allowed)
}

/// A rule's name, or the error naming `key`.
fn check_rule_name(key: &str, name: &str) -> Result<(), String> {
    if !is_rule_name(name) {
        return Err(format!(
            "{key}: a rule name is 1 to 128 letters, digits, _, - or . (it is part of URLs and metric labels)"
        ));
    }
    Ok(())
}

/// `restrict_for`, in ms: at least a second.
fn restrict_for(key: &str, text: &str) -> Result<u64, String> {
    let ms = humantime::parse_duration(text)
        .map(|d| d.as_millis() as u64)
        .map_err(|e| format!("{key}.restrict_for: {text:?} is not a duration like \"30d\" ({e})"))?;
    if ms < 1000 {
        return Err(format!("{key}.restrict_for: must be at least 1s (leave it out to restrict until lifted)"));
    }
    Ok(ms)
}

/// The mask of the features a rule restricts.
fn features_mask(key: &str, rule: Option<&RuleDef>, features: &[Box<str>]) -> Result<u64, String> {
    let rule = rule.ok_or_else(|| format!("{key}: in the layout but not in the rule set"))?;
    if rule.restrict.is_empty() {
        return Err(format!("{key}.restrict: name at least one feature"));
    }
    let mut mask = 0u64;
    for f in &rule.restrict {
        let fi = features
            .iter()
            .position(|x| &**x == f)
            .ok_or_else(|| format!("{key}.restrict: {f:?} is not a declared feature (add [features.{f}])"))?;
        mask |= 1 << fi;
    }
    Ok(mask)
}
