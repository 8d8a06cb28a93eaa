use super::*;
use actix_web::http::StatusCode;
use futures_util::FutureExt;
use std::future::Future;
use std::pin::Pin;

const A: Producer = Producer(1);
const B: Producer = Producer(2);

/// Polls once: still waiting?
fn pending<F: Future>(f: Pin<&mut F>) -> bool {
    f.now_or_never().is_none()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

#[test]
fn writes_past_the_slots_wait_in_order_and_take_a_slot_as_one_is_freed() {
    runtime().block_on(async {
        let gate = WriteGate::new(1, 10, Duration::from_secs(10));
        let first = gate.enter(A).await.unwrap();
        let (mut a, mut b) = (Box::pin(gate.enter(A)), Box::pin(gate.enter(A)));
        // Both wait: polled once, neither has a slot.
        assert!(pending(a.as_mut()));
        assert!(pending(b.as_mut()));
        assert_eq!((gate.in_flight(), gate.queued()), (3, 2));
        drop(first);
        let a = a.await.unwrap();
        assert!(pending(b.as_mut()), "the second waits for the first");
        drop(a);
        drop(b.await.unwrap());
        assert_eq!((gate.in_flight(), gate.queued()), (0, 0));
        assert!(gate.enter(A).await.is_ok(), "the slot is free again");
    });
}

#[test]
fn a_write_is_refused_at_once_when_the_queue_holds_more_than_the_delay() {
    runtime().block_on(async {
        let gate = WriteGate::new(1, 10, Duration::from_millis(20));
        let _held = gate.enter(A).await.unwrap();
        let mut waiting = Box::pin(gate.enter(A));
        assert!(pending(waiting.as_mut()));
        // Once the first waiter has waited past the delay, a newcomer is refused without waiting.
        tokio::time::sleep(Duration::from_millis(25)).await;
        let started = Instant::now();
        let refused = gate.enter(A).await.err().unwrap();
        assert!(started.elapsed() < Duration::from_millis(10));
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(1));
        let message = refused.body()["error"].as_str().unwrap().to_string();
        assert!(message.contains("longer than 20ms"), "{message}");
        // The waiter gives up after its limit, and holds nothing after.
        assert!(waiting.await.is_err());
        assert_eq!(gate.in_flight(), 1);
    });
}

#[test]
fn a_waiter_that_goes_away_passes_on_a_slot_handed_to_it() {
    runtime().block_on(async {
        let gate = WriteGate::new(1, 10, Duration::from_secs(10));
        let held = gate.enter(A).await.unwrap();
        let mut gone = Box::pin(gate.enter(A));
        let mut next = Box::pin(gate.enter(A));
        assert!(pending(gone.as_mut()));
        assert!(pending(next.as_mut()));
        drop(held); // hands the slot to `gone`...
        drop(gone); // ...which leaves before taking it
        assert!(next.await.is_ok(), "the slot went on to the next waiter");
    });
}

#[test]
fn the_cap_refuses_past_the_writes_in_the_service() {
    runtime().block_on(async {
        let gate = WriteGate::new(1, 1, Duration::from_secs(10));
        let _held = gate.enter(A).await.unwrap();
        let refused = gate.enter(A).await.err().unwrap();
        assert!(refused.body()["error"].as_str().unwrap().contains("too many writes in flight (limit 1)"));
        assert_eq!(gate.in_flight(), 1, "a refusal holds nothing");
    });
}

#[test]
fn a_producer_waits_one_turn_behind_a_flood_and_is_not_refused_for_it() {
    runtime().block_on(async {
        let gate = WriteGate::new(1, 100, Duration::from_millis(20));
        let held = gate.enter(A).await.unwrap();
        // A floods: three writes wait.
        let mut flood: Vec<_> = (0..3).map(|_| Box::pin(gate.enter(A))).collect();
        for f in &mut flood {
            assert!(pending(f.as_mut()));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        // A's oldest has waited past the bound: A's newcomer is refused...
        assert!(gate.enter(A).await.is_err(), "the flooding producer is refused");
        // ...B's is not: it waits its turn, which comes right after A's next.
        let mut b = Box::pin(gate.enter(B));
        assert!(pending(b.as_mut()), "B waits for a slot");
        drop(held);
        let first = flood.remove(0).await.unwrap();
        assert!(pending(b.as_mut()));
        drop(first);
        let b = b.await.expect("B's turn comes before A's later writes");
        assert!(pending(flood[0].as_mut()), "A's next write waits for B's");
        drop(b);
    });
}

#[test]
fn a_round_is_the_producers_waiting_times_the_time_between_handovers() {
    let mut q = Queue::default();
    let t = Instant::now();
    for ms in [0, 10, 20, 30] {
        q.handed_over(t + Duration::from_millis(ms), Duration::from_millis(50));
    }
    // 10 ms gaps, averaged from zero with weight 1/8: about 3.3 ms so far.
    assert!(q.handover_every > Duration::from_millis(3) && q.handover_every < Duration::from_millis(4));
    // An idle gap counts only up to the cap.
    q.handed_over(t + Duration::from_secs(60), Duration::from_millis(50));
    assert!(q.handover_every < Duration::from_millis(10), "{:?}", q.handover_every);
    q.handover_every = Duration::from_millis(10);
    for p in 0..5 {
        let (tx, _rx) = oneshot::channel();
        q.push(Producer(p), Waiter { since: t, wake: tx });
    }
    assert_eq!(q.round(t + Duration::from_secs(60)), Duration::from_millis(50));
    assert_eq!(q.round(t + Duration::from_secs(60) + Duration::from_millis(5)), Duration::from_millis(55));
}

#[test]
fn every_write_is_refused_when_a_round_of_turns_takes_too_long() {
    runtime().block_on(async {
        let gate = WriteGate::new(1, 100, Duration::from_millis(20));
        let _held = gate.enter(A).await.unwrap();
        let mut waiting = Box::pin(gate.enter(A));
        assert!(pending(waiting.as_mut()));
        // One producer waiting, a handover every 30 ms: a round of 30 ms is within 2 x 20 ms.
        gate.lock().handover_every = Duration::from_millis(30);
        let mut b = Box::pin(gate.enter(B));
        assert!(pending(b.as_mut()), "B waits its turn");
        // Two waiting: a round of 60 ms; a producer with nothing waiting is refused too.
        let refused = gate.enter(Producer(3)).await.err().expect("refused");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    });
}
