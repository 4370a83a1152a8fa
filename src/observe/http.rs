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
    let stale = metrics.stale(&ids, polling_interval.saturating_mul(2));
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

/// How the metrics address was unavailable before it could be served (in use, refused):
/// `/healthz` reports it, since it could not answer meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Unavailable {
    failures: u32,
    since: Option<std::time::SystemTime>,
    last_error: Option<String>,
}

impl Unavailable {
    /// One more failed attempt to listen.
    pub fn failed(&mut self, e: &std::io::Error) {
        self.failures = self.failures.saturating_add(1);
        self.since.get_or_insert_with(std::time::SystemTime::now);
        self.last_error = Some(e.to_string());
    }

    /// `/healthz`'s body: `ok`, then what kept the address from being served, if anything.
    fn healthz(&self, addr: Option<std::net::SocketAddr>) -> String {
        let mut body = String::from("ok\n");
        if let (Some(e), Some(since)) = (&self.last_error, self.since) {
            let waited = std::time::SystemTime::now()
                .duration_since(since)
                .unwrap_or_default()
                .as_secs();
            let addr = addr.map(|a| a.to_string()).unwrap_or_default();
            body.push_str(&format!(
                "metrics address {addr} was unavailable for {waited} s ({} failed attempt(s), last: {e}) before it was served; certificates kept syncing\n",
                self.failures
            ));
        }
        body
    }
}

/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send a request's header (also between requests of a connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection lives, whatever it does (a scrape takes milliseconds).
pub const CONNECTION_MAX_AGE: Duration = Duration::from_secs(60);

/// Serve `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown`.
///
/// Any local user can connect, so a connection must not be able to hold a descriptor for
/// long: at most [`MAX_CONNECTIONS`] at once (more are closed at once), each closed if its
/// request header is not in within [`HEADER_READ_TIMEOUT`], and after [`CONNECTION_MAX_AGE`]
/// in any case. HTTP/1.1 only.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: Readiness,
    unavailable: Unavailable,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let healthz = Arc::new(unavailable.healthz(listener.local_addr().ok()));
    let app = router(metrics, ready, healthz);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
            // Reap ended connections as we go.
            Some(_) = connections.join_next() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (or a connection reset before accept): not fatal; a
                // short pause keeps a full table from spinning this loop.
                tracing::debug!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics: connection limit reached; closing a new connection");
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_MAX_AGE, conn).await;
        });
    }
    connections.shutdown().await;
    Ok(())
}

fn router(metrics: Arc<Metrics>, ready: Readiness, healthz: Arc<String>) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let r = ready.clone();
    axum::Router::new()
        .route(
            "/healthz",
            get(move || {
                let body = healthz.clone();
                async move { (*body).clone() }
            }),
        )
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
        )
}
