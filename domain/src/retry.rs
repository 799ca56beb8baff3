//! Exponential backoff with jitter between the attempts of a job.

use std::time::Duration;

/// How long to wait before the next attempt.
///
/// The n-th retry waits `base · 2^(n−1)`, capped at `max`, then scaled by a jitter
/// factor in `[1 − jitter, 1]` so that jobs failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub base: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Share of the delay that is randomised, in `[0, 1]`.
    pub jitter: f64,
}

impl Backoff {
    /// The delay after `failed_attempts` failures (1 = the first attempt failed).
    ///
    /// `unit` is a random number in `[0, 1)`; passing it in keeps this function pure.
    pub fn delay(&self, failed_attempts: u32, unit: f64) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(62);
        let uncapped = self.base.saturating_mul(1u32 << exponent.min(31));
        let capped = uncapped.min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter * unit.clamp(0.0, 1.0);
        capped.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.5,
        }
    }

    #[test]
    fn without_jitter_each_retry_doubles_the_wait() {
        let waits: Vec<_> = (1..=6).map(|n| backoff().delay(n, 0.0)).collect();
        let secs: Vec<_> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32]);
    }

    #[test]
    fn the_wait_never_exceeds_the_cap() {
        assert_eq!(backoff().delay(7, 0.0), Duration::from_secs(60));
        assert_eq!(backoff().delay(u32::MAX, 0.0), Duration::from_secs(60));
    }

    #[test]
    fn jitter_shortens_the_wait_by_at_most_its_share() {
        let b = backoff();
        assert_eq!(b.delay(3, 0.999_999).as_millis(), 2000);
        for unit in [0.0, 0.25, 0.5, 0.75, 0.99] {
            let d = b.delay(3, unit);
            assert!(
                d <= Duration::from_secs(4) && d >= Duration::from_secs(2),
                "{d:?}"
            );
        }
    }

    #[test]
    fn zero_failures_waits_the_base() {
        assert_eq!(backoff().delay(0, 0.0), Duration::from_secs(1));
    }
}
