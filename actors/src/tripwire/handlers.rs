//! The supervisor's own messages and its rollbacks (`on_trip = "rollback"`).

use std::sync::Arc;

use actix::prelude::*;
use metrics::{counter, gauge};

use super::{Tripwire, MAILBOX};
use crate::clock::now_ms;
use crate::messages::*;
use crate::metrics::*;

impl Tripwire {
    /// `on_trip = "rollback"`: this instance decided the trip, so it publishes
    /// the rule's earlier definition (if the version that changed it is
    /// recent), then re-arms the rule: the tripped state was the bad version's.
    pub(super) fn roll_back(&mut self, r: usize, ctx: &mut Context<Self>) {
        let Some(mut conn) = self.conn.clone() else { return };
        let (shared, within) = (Arc::clone(&self.shared), self.rollback_within.as_millis() as u64);
        // The window the trip counted, as the revert at the trip lifts it.
        let since = self.rules[r].since_ms.saturating_sub(self.settings.window_ms);
        let work = async move {
            let model = shared.model();
            let (name, accept) = (model.rules[r].name.to_string(), model.schema.accepts_unknown());
            let result = crate::lifecycle::rollback_rule(&mut conn, &shared.keys, &name, (within, since), accept).await;
            (name, result, conn)
        };
        ctx.spawn(work.into_actor(self).map(move |(name, result, conn), act, ctx| match result {
            Ok(Some(published)) => {
                tracing::warn!(rule = %name, version = published.record.version, "rule rolled back after tripping");
                let mut next = act.rules[r].clone();
                if let Some(change) = next.reset(now_ms()) {
                    act.propose(r, next, change, "tripwire".to_string(), conn, ctx);
                }
            }
            Ok(None) => tracing::info!(rule = %name, "tripped, but no recent version changed it: nothing to roll back"),
            Err(e) => {
                counter!(REDIS_ERRORS_TOTAL, "operation" => "rollback").increment(1);
                tracing::warn!(rule = %name, error = %e, "could not roll the rule back");
            }
        }));
    }
}

impl Actor for Tripwire {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        for rule in &self.shared.model().rules {
            gauge!(TRIPWIRE_TRIPPED, "rule" => rule.name.to_string()).set(0.0);
        }
        ctx.run_interval(self.tick, |this, ctx| this.sync(ctx));
    }
}

impl Handler<RulesFired> for Tripwire {
    type Result = ();

    fn handle(&mut self, msg: RulesFired, ctx: &mut Context<Self>) {
        self.pending.extend(msg.0);
        self.sync(ctx);
    }
}

impl Handler<Connect> for Tripwire {
    type Result = ();

    fn handle(&mut self, msg: Connect, ctx: &mut Context<Self>) {
        self.shards = msg.shards;
        if msg.conn.is_some() {
            self.conn = msg.conn;
            self.sync(ctx);
        }
    }
}

impl Handler<GetRuleStatus> for Tripwire {
    type Result = MessageResult<GetRuleStatus>;

    fn handle(&mut self, _: GetRuleStatus, _: &mut Context<Self>) -> Self::Result {
        let _ = self.grow();
        MessageResult((0..self.rules.len()).map(|r| self.status(r)).collect())
    }
}
