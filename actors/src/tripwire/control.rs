//! Operators' trips and resets: read the rule's state, change it, compare-and-set.

use actix::prelude::*;

use super::Tripwire;
use crate::clock::now_ms;
use crate::domain::SharedRule;
use crate::messages::{Control, ControlTripwire, RuleStatus};
use crate::store::tripwire as store;

impl Handler<ControlTripwire> for Tripwire {
    type Result = ResponseActFuture<Self, Result<RuleStatus, String>>;

    fn handle(&mut self, msg: ControlTripwire, _: &mut Context<Self>) -> Self::Result {
        let r = usize::from(msg.rule);
        let Some(conn) = self.conn.clone() else {
            return Box::pin(fut::ready(Err("redis is not reachable yet".to_string())));
        };
        let shared = std::sync::Arc::clone(&self.shared);
        // Read the current state, change it, compare-and-set; again if someone else changed it first.
        let attempt = async move {
            let model = shared.model();
            let (mut conn, keys, rule) = (conn, &shared.keys, model.rules[r].tripwire_key());
            let rule = &*rule;
            for _ in 0..10 {
                let stored = store::rule_state(&mut conn, keys, rule).await?;
                let mut next: SharedRule = serde_json::from_str(&stored).unwrap_or_default();
                let now = now_ms();
                let change = match msg.action {
                    Control::Trip => next.force_trip(now),
                    Control::Reset => next.reset(now),
                };
                let json = serde_json::to_string(&next).unwrap_or_default();
                if store::compare_and_set(&mut conn, keys, rule, &stored, &json).await? {
                    return Ok((stored, json, next, change));
                }
            }
            Err(redis::RedisError::from((redis::ErrorKind::Client, "the tripwire state kept changing; try again")))
        };
        let by = msg.by;
        Box::pin(attempt.into_actor(self).map(move |result, act, ctx| {
            let (_, json, next, change) = result.map_err(|e: redis::RedisError| e.to_string())?;
            act.stored[r] = json;
            if msg.action == Control::Reset {
                // A fresh window: nothing in it yet (the next sync counts from now).
                act.hits[r] = 0;
            }
            act.rules[r] = next;
            if let Some(change) = change {
                act.changed(r, change, &by, ctx);
                act.audit(r, change, &by, ctx);
            }
            Ok(act.status(r))
        }))
    }
}
