//! What watches the reconciler: metrics and the health endpoints ([`metrics`]), reload hooks
//! ([`hook`]) and expiry warnings ([`expiry`]).

pub mod expiry;
pub mod hook;
pub mod metrics;
