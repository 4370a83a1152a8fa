//! `/metrics`, `/healthz` and `/readyz` over HTTP, on the opt-in loopback address
//! (`akvSyncSettings.metricsAddress`).

use std::sync::Arc;
use std::time::Duration;

use akv_sync_actors::{GateHandle, State};

use super::metrics::Metrics;

/// `/readyz`'s verdict.
pub fn readiness(
    gate: &GateHandle,
    metrics: &Metrics,
    polling_interval: Duration,
) -> Result<(), String> {
    let view = gate.view();
    if view.status.state != State::Success {
        return Err(format!("not ready: {}", view.status.message));
    }
    let ids: Vec<String> = view.certificates.keys().cloned().collect();
    let stale = metrics.stale(&ids, polling_interval * 2);
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not ready: no successful check for over two polling intervals: {}",
            stale.join(", ")
        ))
    }
}

/// Decides `/readyz`: `Ok` when ready, else why not.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Serve `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: Readiness,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let r = ready.clone();
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let r = r.clone();
                async move {
                    match r() {
                        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let (m, r) = (metrics.clone(), ready.clone());
                async move {
                    // Rendering may read installed files (expiry): off the async threads.
                    let text = tokio::task::spawn_blocking(move || m.render(r().is_ok()))
                        .await
                        .unwrap_or_default();
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
