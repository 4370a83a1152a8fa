//! # akv-sync-actors
//!
//! The reconciler (filled by the Reconciler issue).
