//! # akv-sync-actors
//!
//! The reconciler of akv-sync, in the design card's shape:
//!
//! ```text
//!             settings ──► supervisor ──spawns──► watcher (one per observed certificate)
//!                                                   │  token ◄── token actor (one per process,
//!                                                   │             single flight, early refresh)
//!                                                   │  secret ◄── Key Vault (per-vault limiter:
//!                                                   │             bounded concurrency, 429 pause)
//!                                                   │  prepare (blocking pool: parse, order, verify)
//!                                                   ▼
//!                                            writer actor (the only code that touches the store)
//!                                                   │
//!                      status sink ◄── gate ◄───────┘ (first-download results)
//! ```
//!
//! ## Why plain tokio tasks, not actix
//!
//! The design card names actix; what it needs is the *shape* (supervisor, one watcher per
//! certificate, shared token and writer actors, a gate). We build that shape with plain tokio
//! tasks in Alice Ryhl's actor pattern (a private struct owning its state and its `Receiver`, a
//! message enum with `oneshot` replies, a cheap `Clone` handle), because:
//!
//! - actix is passively maintained (0.13.5, 2024);
//! - actix's `Actor::start()` needs its `LocalSet` and panics under `#[tokio::test]`, while the
//!   backoff and polling tests here rely on `#[tokio::test(start_paused = true)]`;
//! - every actor of an actix arbiter shares one thread, so thousands of watchers would share it
//!   with PFX parsing unless everything were moved by hand to `spawn_blocking`; tokio's
//!   work-stealing scheduler spreads watchers over all cores;
//! - actix's `Supervisor` restarts at once with no delay or limit, so the 25-attempt backoff would
//!   be ours either way.
//!
//! `tokio-util`'s `CancellationToken` and `TaskTracker` give graceful shutdown, and a `watch`
//! channel publishes readiness.
//!
//! Every clock read goes through `tokio::time`, so tests run in paused time.

pub mod backoff;
pub mod clock;
pub mod died;
pub mod gate;
pub mod limiter;
pub mod port;
pub mod supervisor;
pub mod token;
pub mod watcher;
pub mod writer;

pub use gate::{FirstSync, GateHandle, GateView};
pub use port::*;
pub use supervisor::{Agent, OnceResult, Ports, ReloadSummary, run_once};
pub use token::TokenHandle;
pub use watcher::{Cause, CheckError, certificate_id};
