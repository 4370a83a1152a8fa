//! Per-vault admission: bounded concurrency toward each vault, and a pause of the whole vault
//! when it throttles (429). Every watcher of a vault goes through the same [`VaultLimiter`], so a
//! `Retry-After` seen by one watcher holds back all of them (SPEC §2.2).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::backoff::throttle_delay;
use crate::clock::{MAX_RETRY_AFTER, after};

/// Admission to one vault.
pub struct VaultLimiter {
    permits: Arc<Semaphore>,
    throttle: Mutex<Throttle>,
}

#[derive(Default)]
struct Throttle {
    paused_until: Option<Instant>,
    streak: u32,
}

impl VaultLimiter {
    fn new(max_concurrency: usize) -> Self {
        VaultLimiter {
            permits: Arc::new(Semaphore::new(max_concurrency.max(1))),
            throttle: Mutex::new(Throttle::default()),
        }
    }

    /// Wait until the vault is not paused and a request slot is free.
    pub async fn admit(&self) -> OwnedSemaphorePermit {
        loop {
            self.wait_pause().await;
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .expect("vault semaphore is never closed");
            // A throttle may have started while we queued for the slot.
            if self.pause_deadline().is_none() {
                return permit;
            }
        }
    }

    async fn wait_pause(&self) {
        while let Some(until) = self.pause_deadline() {
            tokio::time::sleep_until(until).await;
        }
    }

    fn pause_deadline(&self) -> Option<Instant> {
        let mut t = self.throttle.lock().expect("throttle lock");
        match t.paused_until {
            Some(until) if Instant::now() < until => Some(until),
            _ => {
                t.paused_until = None;
                None
            }
        }
    }

    /// The vault answered 429: pause it for `retry_after` (at most [`MAX_RETRY_AFTER`]),
    /// else by the growing schedule. Returns the pause applied.
    ///
    /// 429s that arrive while the vault is already paused answer requests sent before the
    /// pause began (they were in flight together): they are the same throttle and do not grow
    /// the streak, else one burst of concurrent requests would jump straight to the cap.
    pub fn throttled(&self, retry_after: Option<Duration>) -> Duration {
        let mut t = self.throttle.lock().expect("throttle lock");
        let already_paused = t.paused_until.is_some_and(|u| Instant::now() < u);
        if !already_paused || t.streak == 0 {
            t.streak += 1;
        }
        let pause = retry_after.map_or_else(
            || throttle_delay(t.streak),
            |asked| asked.min(MAX_RETRY_AFTER),
        );
        let until = after(Instant::now(), pause);
        t.paused_until = Some(t.paused_until.map_or(until, |u| u.max(until)));
        pause
    }

    /// A request succeeded: the throttle streak starts over.
    pub fn succeeded(&self) {
        self.throttle.lock().expect("throttle lock").streak = 0;
    }
}

/// One [`VaultLimiter`] per vault host, created on first use.
pub struct Vaults {
    max_concurrency: usize,
    limiters: Mutex<HashMap<String, Arc<VaultLimiter>>>,
}

impl Vaults {
    pub fn new(max_concurrency: usize) -> Self {
        Vaults {
            max_concurrency,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    pub fn limiter(&self, host: &str) -> Arc<VaultLimiter> {
        let mut limiters = self.limiters.lock().expect("vault limiters lock");
        limiters
            .entry(host.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(VaultLimiter::new(self.max_concurrency)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_every_request_to_the_vault() {
        let vaults = Vaults::new(4);
        let limiter = vaults.limiter("v.vault.azure.net");
        let start = Instant::now();
        limiter.throttled(Some(Duration::from_secs(7)));
        // Another watcher of the same vault (host case differs) waits the same pause.
        let _p = vaults.limiter("V.vault.azure.net").admit().await;
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_retry_after_pauses_the_vault_for_the_cap_only() {
        let limiter = Vaults::new(1).limiter("v");
        let start = Instant::now();
        // 136 years, then the largest a Duration holds: neither overflows nor pauses longer.
        assert_eq!(
            limiter.throttled(Some(Duration::from_secs(u64::from(u32::MAX)))),
            MAX_RETRY_AFTER
        );
        assert_eq!(limiter.throttled(Some(Duration::MAX)), MAX_RETRY_AFTER);
        let _p = limiter.admit().await;
        assert_eq!(start.elapsed(), MAX_RETRY_AFTER);
    }

    #[tokio::test(start_paused = true)]
    async fn throttles_without_retry_after_grow_and_reset_on_success() {
        let limiter = Vaults::new(1).limiter("v");
        assert_eq!(limiter.throttled(None), Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(limiter.throttled(None), Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(limiter.throttled(None), Duration::from_secs(4));
        limiter.succeeded();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(limiter.throttled(None), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_429s_answering_requests_in_flight_together_is_one_throttle() {
        let limiter = Vaults::new(16).limiter("v");
        // Sixteen requests were in flight; all come back 429 before the first pause ends.
        for _ in 0..16 {
            assert_eq!(limiter.throttled(None), Duration::from_secs(1));
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        // The next request, sent after the pause, is throttled again: the streak grows once.
        assert_eq!(limiter.throttled(None), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_per_vault_is_bounded() {
        let vaults = Vaults::new(2);
        let limiter = vaults.limiter("v");
        let a = limiter.admit().await;
        let _b = limiter.admit().await;
        let third = tokio::time::timeout(Duration::from_secs(1), limiter.admit()).await;
        assert!(third.is_err(), "a third request must wait for a slot");
        drop(a);
        let _c = limiter.admit().await;
        // Other vaults are not held back.
        let _d = vaults.limiter("other").admit().await;
    }
}
