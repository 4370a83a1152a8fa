//! Time arithmetic on numbers that may come from the network.
//!
//! `Instant + Duration` panics on overflow; a `Retry-After` or `expires_in` is whatever a
//! server said. Every deadline built from such a number goes through [`after`], and every
//! such number is capped where it enters (see [`MAX_RETRY_AFTER`] and [`MAX_TOKEN_LIFETIME`]).

use std::time::Duration;

use tokio::time::Instant;

/// The longest a vault's `Retry-After` pauses it. Key Vault's own throttling windows are
/// seconds; a larger value is honoured as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The longest a token is trusted, whatever `expires_in` said (IMDS tokens live about 24 h).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// About thirty years: the deadline used when `from + d` does not fit in an `Instant`.
const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);

/// `from + d`, saturating instead of panicking when the sum does not fit.
pub fn after(from: Instant, d: Duration) -> Instant {
    from.checked_add(d)
        .or_else(|| from.checked_add(FAR))
        .unwrap_or(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn after_saturates_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(365 * 86_400));
    }
}
