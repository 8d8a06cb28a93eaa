//! Retrying with exponential backoff, and logging a condition once rather
//! than on every retry. Every loop that waits for Redis uses these, so a
//! reconnect behaves the same wherever it happens.

use std::future::Future;
use std::time::Duration;

/// How a retry loop waits: from `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryParams {
    pub initial: Duration,
    pub max: Duration,
}

impl RetryParams {
    /// Reconnecting to Redis: fast at first (a restart takes well under a
    /// second), then every 2 s so a long outage costs Redis nothing.
    pub const REDIS: RetryParams = RetryParams { initial: Duration::from_millis(50), max: Duration::from_secs(2) };

    pub fn backoff(self) -> Backoff {
        Backoff { params: self, next: self.initial }
    }
}

/// The state of one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    params: RetryParams,
    next: Duration,
}

impl Backoff {
    /// The delay before the next attempt; the one after is twice as long (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.params.max);
        delay
    }

    /// Sleeps for the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// An attempt succeeded: the next failure waits the initial delay again.
    pub fn reset(&mut self) {
        self.next = self.params.initial;
    }
}

/// Runs `attempt` until it succeeds, waiting with backoff between failures;
/// `failed` sees each error (to count or log it).
pub async fn until_ok<T, E, F, Fut>(params: RetryParams, mut attempt: F, mut failed: impl FnMut(&E)) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = params.backoff();
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(e) => {
                failed(&e);
                backoff.wait().await;
            }
        }
    }
}

/// A condition (Redis unreachable, writes failing) logged when it starts and
/// when it ends, not on every occurrence.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogOnce {
    on: bool,
}

impl LogOnce {
    /// The condition holds; true only when it did not before (log it then).
    pub fn start(&mut self) -> bool {
        !std::mem::replace(&mut self.on, true)
    }

    /// The condition ended; true only when it held before (log that then).
    pub fn end(&mut self) -> bool {
        std::mem::replace(&mut self.on, false)
    }

    pub fn is_on(&self) -> bool {
        self.on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets() {
        let mut b = RetryParams { initial: Duration::from_millis(100), max: Duration::from_millis(500) }.backoff();
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn log_once_reports_only_the_edges() {
        let mut l = LogOnce::default();
        assert!(!l.end());
        assert!(l.start());
        assert!(!l.start());
        assert!(l.is_on());
        assert!(l.end());
        assert!(!l.end());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn until_ok_retries_until_success_and_sees_each_failure() {
        let mut attempts = 0;
        let mut seen = Vec::new();
        let quick = RetryParams { initial: Duration::from_millis(1), max: Duration::from_millis(1) };
        let value = until_ok(
            quick,
            || {
                attempts += 1;
                let n = attempts;
                async move {
                    if n < 3 {
                        Err(n)
                    } else {
                        Ok(n * 10)
                    }
                }
            },
            |e: &i32| seen.push(*e),
        )
        .await;
        assert_eq!(value, 30);
        assert_eq!(seen, [1, 2]);
    }
}
