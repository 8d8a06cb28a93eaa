//! Every Redis key the service uses, by name. Every key of shard S carries
//! the hash tag `{S}` (one Cluster slot per shard); the tripwire's keys share
//! `{tripwire}`. To add a key: a field or a method here, documented with its
//! type and what it holds.

/// The default `redis.key_prefix`.
pub const DEFAULT_PREFIX: &str = "rd";

/// The keys of one shard `S`.
#[derive(Debug, Clone)]
pub struct ShardKeys {
    /// Stream: the shard's log of events and operators' commands.
    pub events: String,
    /// Hash: user id → snapshot (`domain::snapshot`).
    pub users: String,
    /// String: id of the last entry reflected in the snapshot.
    pub offset: String,
    /// Hash: 16-byte event-id key → event time (ms), remembered producer event ids.
    pub dedup: String,
    /// Stream: the audit trail of the shard's users' changes.
    pub audit: String,
    /// Hash: `EventStats` fields (count and amount per event name).
    pub stats: String,
    /// Hash: user → restricted feature names (comma-joined), for instances that do not own the shard.
    pub restricted: String,
    /// String (expires): the owner's fencing token, `"<epoch> <owner id>"` (`store::fence`).
    pub lease: String,
    /// String (integer): the last epoch handed out; every lease acquisition increments it.
    pub epoch: String,
    /// Stream: restriction changes, each with the user's whole restricted set, that other instances follow.
    pub changes: String,
}

/// Key names of a deployment.
#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
    shards: Box<[ShardKeys]>,
}

impl Keys {
    pub fn new(prefix: &str, shards: u32) -> Self {
        let key = |s: u32, name: &str| format!("{prefix}:{{{s}}}:{name}");
        Keys {
            prefix: prefix.to_string(),
            shards: (0..shards)
                .map(|s| ShardKeys {
                    events: key(s, "events"),
                    users: key(s, "users"),
                    offset: key(s, "offset"),
                    dedup: key(s, "dedup"),
                    audit: key(s, "audit"),
                    stats: key(s, "stats"),
                    restricted: key(s, "restricted"),
                    lease: key(s, "lease"),
                    epoch: key(s, "epoch"),
                    changes: key(s, "changes"),
                })
                .collect(),
        }
    }

    /// The keys of shard `s`.
    pub fn shard(&self, s: u32) -> &ShardKeys {
        &self.shards[s as usize]
    }

    /// Shards the names were made for.
    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    pub fn events(&self, s: u32) -> &str {
        &self.shard(s).events
    }
    pub fn users(&self, s: u32) -> &str {
        &self.shard(s).users
    }
    pub fn offset(&self, s: u32) -> &str {
        &self.shard(s).offset
    }
    pub fn dedup(&self, s: u32) -> &str {
        &self.shard(s).dedup
    }
    pub fn audit(&self, s: u32) -> &str {
        &self.shard(s).audit
    }
    pub fn stats(&self, s: u32) -> &str {
        &self.shard(s).stats
    }
    pub fn restricted(&self, s: u32) -> &str {
        &self.shard(s).restricted
    }
    pub fn changes(&self, s: u32) -> &str {
        &self.shard(s).changes
    }
    pub fn lease(&self, s: u32) -> &str {
        &self.shard(s).lease
    }
    pub fn epoch(&self, s: u32) -> &str {
        &self.shard(s).epoch
    }
    /// String (expires within a minute): written when a fenced write of the
    /// owner at `epoch` is refused, to fail that write's own `WATCH` only
    /// (`store::fence`).
    pub fn spoil(&self, s: u32, epoch: u64) -> String {
        format!("{}:spoil:{epoch}", self.shard(s).lease)
    }
    /// List: a user's changes as JSON, newest first: `<prefix>:{S}:history:<user>`.
    pub fn history(&self, s: u32, user_id: &str) -> String {
        format!("{}:{{{s}}}:history:{user_id}", self.prefix)
    }
    /// Hash: rule name → its shared tripwire state as JSON (`domain::SharedRule`).
    pub fn tripwire_state(&self) -> String {
        format!("{}:{{tripwire}}:state", self.prefix)
    }
    /// Hash: shard → users, written by each shard's owner: the tripwire's population.
    pub fn tripwire_population(&self) -> String {
        format!("{}:{{tripwire}}:population", self.prefix)
    }
    /// Hash: second of event time → restrictions rule `rule` made in it.
    pub fn tripwire_hits(&self, rule: &str) -> String {
        format!("{}:{{tripwire}}:hits:{rule}", self.prefix)
    }
    /// Hash: rule → users it restricted (a shadow rule: would have) all time;
    /// `<rule>:overlap` → of those, users an enforced rule had restricted already.
    pub fn tripwire_totals(&self) -> String {
        format!("{}:{{tripwire}}:totals", self.prefix)
    }
    /// Hash: shard → the fencing token of its newest owner (`"<epoch> <owner>"`),
    /// written by each owner when it takes the lease; the tripwire's writes on
    /// a shard's behalf are fenced against it.
    pub fn tripwire_owners(&self) -> String {
        format!("{}:{{tripwire}}:owners", self.prefix)
    }
    /// Hash: "<rule>\n<instance>" → "<grant> <ms>", each instance's restriction budget.
    pub fn tripwire_reserved(&self) -> String {
        format!("{}:{{tripwire}}:reserved", self.prefix)
    }
    /// Hash: reason → events refused at the edge (not per shard).
    pub fn rejects(&self) -> String {
        format!("{}:stats:rejects", self.prefix)
    }
    /// String: when the stats were last reset (ms since the epoch).
    pub fn stats_since(&self) -> String {
        format!("{}:stats:since", self.prefix)
    }
    /// Stream: the tripwire's audit trail.
    pub fn tripwire_audit(&self) -> String {
        format!("{}:audit:tripwire", self.prefix)
    }
    /// Hash: rule-set version → its `VersionRecord` as JSON.
    pub fn rule_versions(&self) -> String {
        format!("{}:{{rules}}:versions", self.prefix)
    }
    /// String: the current rule-set version (the deployment's truth).
    pub fn rules_current(&self) -> String {
        format!("{}:{{rules}}:current", self.prefix)
    }
    /// String: the rule-set version shard `s`'s snapshot was taken under.
    pub fn shard_rules(&self, s: u32) -> String {
        format!("{}:{{{s}}}:rules", self.prefix)
    }
    /// Stream: the feed (changes, tripwire changes, versions) in one order.
    pub fn feed(&self) -> String {
        format!("{}:feed", self.prefix)
    }
    /// Hash: stored feed subscription name → its JSON (filters, condition, acknowledged id).
    pub fn subscriptions(&self) -> String {
        format!("{}:subscriptions", self.prefix)
    }
    /// Hash: a chart series' counts in one hour (`store::minutes`), field:
    /// the minute within the hour.
    pub fn minutes(&self, series: &str, hour: u64) -> String {
        format!("{}:{{minutes}}:{series}:{hour}", self.prefix)
    }
    /// Stream: entries that could not be applied, with the reason.
    pub fn deadletter(&self) -> String {
        format!("{}:deadletter", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_key_carries_the_shard_hash_tag() {
        let keys = Keys::new("rd", 4);
        let k = keys.shard(3);
        for name in [
            &k.events,
            &k.users,
            &k.offset,
            &k.dedup,
            &k.audit,
            &k.stats,
            &k.restricted,
            &k.lease,
            &k.epoch,
            &k.changes,
        ] {
            assert!(name.starts_with("rd:{3}:"), "{name}");
        }
        assert_eq!(keys.events(3), "rd:{3}:events");
        assert_eq!(keys.lease(0), "rd:{0}:lease");
        assert_eq!(keys.history(2, "u"), "rd:{2}:history:u");
        assert!(keys.tripwire_hits("r").contains("{tripwire}"));
    }
}
