//! The tripwire supervisor: a rule trips when its share of the population
//! crosses the threshold, re-arms when the share falls back, and an
//! operator's reset re-arms it too.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use loadtest::spawn::Redis;
use restrictd_actors::clock::now_ms;
use restrictd_actors::messages::{Connect, Control, ControlTripwire, Fired, GetRuleStatus, RulesFired};
use restrictd_actors::shared::Shared;
use restrictd_actors::tripwire::Tripwire;
use restrictd_domain::{TripState, TripwireSettings};

use crate::support::{connect, eventually, shared};

/// Half the population, at least two users, in a 5-minute window.
fn settings() -> TripwireSettings {
    TripwireSettings { window_ms: 300_000, threshold_ppm: 500_000, min_restricted: 2, cooldown_ms: None }
}

/// `users` users on each of the four shards, all recovered here.
fn population(shared: &Shared, users: u64) {
    shared.leased.store(true, Ordering::Release);
    for s in 0..4 {
        shared.users[s].store(users, Ordering::Relaxed);
        shared.mark_caught_up(s as u32, 0);
    }
}

async fn start(redis: &Redis, shared: &Arc<Shared>) -> Addr<Tripwire> {
    let tripwire = Tripwire::new(settings(), Duration::from_millis(20), Arc::clone(shared)).start();
    tripwire.send(Connect { shards: Vec::new(), conn: Some(connect(&redis.url()).await) }).await.unwrap();
    tripwire
}

#[actix_rt::test]
async fn a_rule_trips_over_the_threshold_and_rearms_when_the_population_grows() {
    let redis = Redis::start();
    let shared = shared();
    population(&shared, 1);
    let tripwire = start(&redis, &shared).await;
    let rule = shared.model().rule_index("scam_message_rule").unwrap() as u16;

    let now = now_ms();
    tripwire.do_send(RulesFired(vec![Fired { rule, at_ms: now, overlap: false, suppressed: false }]));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = tripwire.send(GetRuleStatus).await.unwrap().swap_remove(usize::from(rule));
        if status.restricted_in_window == 1 {
            assert_eq!(status.state, TripState::Armed, "one restriction is under min_restricted");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the window never counted the restriction");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    tripwire.do_send(RulesFired(vec![
        Fired { rule, at_ms: now, overlap: false, suppressed: false },
        Fired { rule, at_ms: now, overlap: false, suppressed: false },
    ]));
    eventually("3 of 4 users trips the rule", || shared.tripped.contains(rule)).await;
    let status = tripwire.send(GetRuleStatus).await.unwrap();
    assert_eq!((status[usize::from(rule)].restricted_in_window, status[usize::from(rule)].trips), (3, 1));

    population(&shared, 100);
    eventually("3 of 400 users re-arms the rule", || !shared.tripped.contains(rule)).await;
    let audit = redis.cli(&["XRANGE", "rd:audit:tripwire", "-", "+"]);
    assert!(audit.contains(r#""change":"tripped""#) && audit.contains(r#""change":"rearmed""#), "{audit}");
}

#[actix_rt::test]
async fn an_operator_trips_and_resets_a_rule() {
    let redis = Redis::start();
    let shared = shared();
    population(&shared, 1000);
    let tripwire = start(&redis, &shared).await;
    let rule = shared.model().rule_index("chargeback_ratio_rule").unwrap() as u16;
    let control = |action| ControlTripwire { rule, action, by: "admin:ops".into() };

    let status = tripwire.send(control(Control::Trip)).await.unwrap().unwrap();
    assert!(status.forced && status.state == TripState::Tripped);
    assert!(shared.tripped.contains(rule), "shards see the trip at once");

    let status = tripwire.send(control(Control::Reset)).await.unwrap().unwrap();
    assert_eq!(status.state, TripState::Armed);
    assert!(!shared.tripped.contains(rule));
    let audit = redis.cli(&["XRANGE", "rd:audit:tripwire", "-", "+"]);
    assert_eq!(audit.matches("admin:ops").count(), 2, "{audit}");
}
