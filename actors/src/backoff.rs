//! Retry schedules.
//!
//! **Initial sync** (SPEC §4): a certificate's first download is tried at most
//! [`MAX_ATTEMPTS`] = 25 times. After failed attempt *n* the watcher waits
//! `min(2^n s, 60 s)`, each delay spread by ±20 % so that a fleet does not retry in step:
//!
//! | after attempt | 1 | 2 | 3 | 4  | 5  | 6 … 24 |
//! |---------------|---|---|---|----|----|--------|
//! | wait (s)      | 2 | 4 | 8 | 16 | 32 | 60     |
//!
//! 24 waits in all: 62 s + 19 × 60 s = 1,202 s, about 20 minutes from the first attempt to
//! the 25th (±20 %). Then the gate reports `error` for that certificate, and the watcher
//! goes on checking at the polling interval.
//!
//! **Throttling** (SPEC §2.2): a 429 without `Retry-After` pauses the whole vault for
//! 1, 2, 4, 8, 16 … s (at most 60 s) as its consecutive throttles grow.

use std::time::Duration;

use rand::Rng;

/// Attempts of a certificate's first download before the gate gives up on it.
pub const MAX_ATTEMPTS: u32 = 25;

const CAP: Duration = Duration::from_secs(60);

/// The wait after failed attempt `attempt` (1-based), before jitter.
pub fn initial_sync_delay(attempt: u32) -> Duration {
    let secs = 1u64.checked_shl(attempt.min(16)).unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(CAP)
}

/// The pause of a vault after its `streak`-th consecutive 429 without `Retry-After` (1-based).
pub fn throttle_delay(streak: u32) -> Duration {
    let secs = 1u64
        .checked_shl(streak.saturating_sub(1).min(16))
        .unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(CAP)
}

/// `d` spread uniformly by ±`fraction` (0.0–1.0).
pub fn jittered(d: Duration, fraction: f64) -> Duration {
    if fraction <= 0.0 || d.is_zero() {
        return d;
    }
    let f = rand::rng().random_range(-fraction..=fraction);
    // As `d.mul_f64`, saturating: any u64 of seconds is a valid polling interval.
    Duration::try_from_secs_f64(d.as_secs_f64() * (1.0 + f).max(0.0)).unwrap_or(Duration::MAX)
}

/// Sum of the waits between the first and the last of [`MAX_ATTEMPTS`] attempts, before jitter.
pub fn initial_sync_total() -> Duration {
    (1..MAX_ATTEMPTS).map(initial_sync_delay).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_sync_schedule_grows_then_caps() {
        let waits: Vec<u64> = (1..=7).map(|n| initial_sync_delay(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(initial_sync_delay(1000), CAP);
    }

    #[test]
    fn jitter_of_the_largest_interval_does_not_overflow() {
        // pollingIntervalInS takes any u64; spreading it must not panic the watcher.
        for _ in 0..100 {
            let d = jittered(Duration::MAX, 0.2);
            assert!(d >= Duration::MAX.mul_f64(0.75));
        }
    }

    #[test]
    fn initial_sync_takes_about_twenty_minutes_in_all() {
        assert_eq!(initial_sync_total(), Duration::from_secs(1202));
    }

    #[test]
    fn throttle_schedule_is_one_two_four_eight_sixteen() {
        let waits: Vec<u64> = (1..=6).map(|n| throttle_delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32]);
        assert_eq!(throttle_delay(40), CAP);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(100), 0.2);
            assert!(d >= Duration::from_secs(80) && d <= Duration::from_secs(120));
        }
        assert_eq!(
            jittered(Duration::from_secs(5), 0.0),
            Duration::from_secs(5)
        );
    }
}
