//! When a failed delivery is tried again: exponential back-off with a cap, and a bounded
//! number of attempts.
//!
//! No jitter: a node has a handful of channels, each retried by its own task, so there is no
//! herd of clients to spread out; a fixed schedule keeps the delivery log readable and the
//! tests exact.

use std::time::Duration;

/// Bounds on a schedule that configuration cannot exceed.
pub const ATTEMPTS_MAX: u32 = 20;
pub const DELAY_MAX: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first one included (at least 1, at most [`ATTEMPTS_MAX`]).
    pub attempts: u32,
    /// Wait after the first failure; each later one doubles it, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Backoff {
    /// 8 attempts, waiting 2, 4, 8, 16, 32, 64 and 128 s: about four minutes in all, long
    /// enough to ride out a receiver's restart, short enough that an alert is still news.
    fn default() -> Self {
        Self {
            attempts: 8,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffError {
    #[error("attempts must be between 1 and {ATTEMPTS_MAX}, not {0}")]
    Attempts(u32),
    #[error("delays must be positive, the first at most the largest, the largest at most {} s", DELAY_MAX.as_secs())]
    Delays,
}

impl Backoff {
    pub fn new(
        attempts: u32,
        first_delay: Duration,
        max_delay: Duration,
    ) -> Result<Self, BackoffError> {
        let backoff = Self {
            attempts,
            first_delay,
            max_delay,
        };
        backoff.check()?;
        Ok(backoff)
    }

    pub fn check(&self) -> Result<(), BackoffError> {
        if self.attempts == 0 || self.attempts > ATTEMPTS_MAX {
            return Err(BackoffError::Attempts(self.attempts));
        }
        if self.first_delay.is_zero()
            || self.first_delay > self.max_delay
            || self.max_delay > DELAY_MAX
        {
            return Err(BackoffError::Delays);
        }
        Ok(())
    }

    /// How long to wait after attempt `attempt` (1 for the first) failed, or `None` when it
    /// was the last. `asked` is what the receiver asked for (`Retry-After`): honoured, but
    /// never beyond `max_delay`, so a receiver cannot park a channel.
    pub fn after(&self, attempt: u32, asked: Option<Duration>) -> Option<Duration> {
        if attempt == 0 || attempt >= self.attempts {
            return None;
        }
        // 2^(attempt - 1), saturating long before it could overflow a Duration.
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        let exponential = self
            .first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay);
        let wait = asked.map_or(exponential, |asked| asked.max(exponential));
        Some(wait.min(self.max_delay))
    }

    /// The longest a channel spends on one event: every wait, without the attempts themselves.
    pub fn total_wait(&self) -> Duration {
        (1..self.attempts)
            .filter_map(|attempt| self.after(attempt, None))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn waits_double_up_to_the_cap_and_stop_after_the_last_attempt() {
        let backoff = Backoff::new(6, S(1), S(10)).expect("valid");
        let waits: Vec<_> = (1..=6).map(|a| backoff.after(a, None)).collect();
        assert_eq!(
            waits,
            [
                Some(S(1)),
                Some(S(2)),
                Some(S(4)),
                Some(S(8)),
                Some(S(10)),
                None
            ]
        );
        assert_eq!(backoff.after(0, None), None);
        assert_eq!(backoff.after(u32::MAX, None), None);
        assert_eq!(backoff.total_wait(), S(25));
        assert_eq!(Backoff::default().total_wait(), S(254));
    }

    #[test]
    fn a_receivers_retry_after_is_honoured_within_the_cap() {
        let backoff = Backoff::new(4, S(1), S(60)).expect("valid");
        assert_eq!(backoff.after(1, Some(S(30))), Some(S(30)));
        assert_eq!(backoff.after(1, Some(S(0))), Some(S(1)));
        assert_eq!(backoff.after(2, Some(S(86_400))), Some(S(60)));
    }

    #[test]
    fn huge_attempt_counts_saturate_instead_of_overflowing() {
        let backoff = Backoff {
            attempts: u32::MAX,
            first_delay: S(1),
            max_delay: S(3600),
        };
        assert_eq!(backoff.after(40, None), Some(S(3600)));
        assert_eq!(backoff.after(u32::MAX - 1, None), Some(S(3600)));
    }

    #[test]
    fn schedules_out_of_bounds_are_refused() {
        assert_eq!(Backoff::new(0, S(1), S(1)), Err(BackoffError::Attempts(0)));
        assert_eq!(
            Backoff::new(ATTEMPTS_MAX + 1, S(1), S(1)),
            Err(BackoffError::Attempts(ATTEMPTS_MAX + 1))
        );
        assert_eq!(Backoff::new(3, S(0), S(1)), Err(BackoffError::Delays));
        assert_eq!(Backoff::new(3, S(5), S(1)), Err(BackoffError::Delays));
        assert_eq!(Backoff::new(3, S(1), S(3601)), Err(BackoffError::Delays));
        assert!(Backoff::default().check().is_ok());
    }
}
