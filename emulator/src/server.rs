//! The HTTP plumbing shared by the four listeners: accept (with TLS for the vault), serve
//! HTTP/1.1 and HTTP/2 with hyper, apply injected faults, count requests, stop on cancel.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::faults::FaultAction;
use super::reply::{JSON, Reply, request_host};
use super::state::{EmulatorState, Server};
use super::{admin, data_plane, token_service};

/// The response body: whole, or cut off after a prefix with an error (hyper then closes the
/// connection, so the client sees fewer bytes than `Content-Length` promised).
pub(crate) enum Body {
    Full(Option<Bytes>),
    Truncated {
        prefix: Option<Bytes>,
        /// 0: prefix not sent; 1: sent; 2: one `Pending` given so hyper flushed it; 3: failed.
        stage: u8,
    },
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        Poll::Ready(match this {
            Body::Full(data) => data.take().map(|d| Ok(Frame::data(d))),
            Body::Truncated { prefix, stage } => match *stage {
                0 => {
                    *stage = 1;
                    prefix.take().map(|p| Ok(Frame::data(p)))
                }
                1 => {
                    // Without this pause hyper may drop the buffered head and prefix unsent.
                    *stage = 2;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                2 => {
                    *stage = 3;
                    Some(Err(io::Error::other("injected fault: truncated body")))
                }
                _ => None,
            },
        })
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Truncated { .. } => SizeHint::default(),
        }
    }
}

/// What hyper gets back when a fault asks to drop the connection.
#[derive(Debug, thiserror::Error)]
#[error("injected fault: connection reset")]
pub(crate) struct ResetConnection;

/// Accept connections on `listener` until `cancel`, serving each in a task of `tracker`.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    server: Server,
    shared: Arc<EmulatorState>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    tracing::warn!(?server, %err, "emulator: accept failed");
                    // Out of descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let cancel = cancel.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(tls_stream, server, shared, cancel).await
                        }
                        Ok(Err(err)) => tracing::debug!(%err, "emulator: TLS handshake failed"),
                        Err(_) => tracing::debug!("emulator: TLS handshake timed out"),
                    }
                }
                None => serve_connection(stream, server, shared, cancel).await,
            }
        });
    }
}

async fn serve_connection<I>(
    io: I,
    server: Server,
    shared: Arc<EmulatorState>,
    cancel: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(shared.clone(), server, req));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::select! {
        () = cancel.cancelled() => {}
        result = conn => if let Err(err) = result {
            tracing::debug!(%err, "emulator: connection ended with an error");
        },
    }
}

async fn handle(
    shared: Arc<EmulatorState>,
    server: Server,
    req: Request<Incoming>,
) -> Result<Response<Body>, ResetConnection> {
    let path = req.uri().path().to_owned();
    let vault_label = match server {
        Server::Vault => {
            request_host(&req).and_then(|h| data_plane::split_host(&h).map(|(v, _)| v))
        }
        _ => None,
    };
    let mut truncate = false;
    let mut forced: Option<Reply> = None;
    if let Some(fault) = shared.take_fault(server, vault_label.as_deref(), &path) {
        match fault.action {
            FaultAction::Delay { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
            }
            FaultAction::Reset => {
                shared.count_request(server, vault_label.as_deref(), &path, 0);
                return Err(ResetConnection);
            }
            FaultAction::Status {
                status,
                body,
                retry_after,
            } => forced = Some(fault_reply(server, status, body, retry_after)),
            FaultAction::GarbageBody => {
                forced = Some(Reply {
                    status: StatusCode::OK,
                    headers: vec![(CONTENT_TYPE, HeaderValue::from_static(JSON))],
                    body: Bytes::from_static(b"\x00\xffnot json at all<html>{\"value\":"),
                })
            }
            FaultAction::TruncatedBody => truncate = true,
        }
    }
    let reply = match forced {
        Some(reply) => reply,
        None => match server {
            Server::Vault => data_plane::handle(&shared, &req),
            Server::Imds => token_service::imds(&shared, &req),
            Server::Arc => token_service::arc(&shared, &req),
            Server::Admin => admin::handle(&shared, req).await,
        },
    };
    let status = reply.status.as_u16();
    shared.count_request(server, vault_label.as_deref(), &path, status);
    Ok(into_response(reply, truncate))
}

fn fault_reply(
    server: Server,
    status: u16,
    body: Option<String>,
    retry_after: Option<u32>,
) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = match body {
        Some(b) => Bytes::from(b),
        None => Bytes::from(match server {
            // Key Vault's error shape.
            Server::Vault => serde_json::json!({"error": {
                "code": reason.replace(' ', ""),
                "message": format!("Injected fault: {reason}."),
            }})
            .to_string(),
            // IMDS and HIMDS's OAuth-style error shape.
            _ => serde_json::json!({
                "error": reason.to_ascii_lowercase().replace(' ', "_"),
                "error_description": format!("Injected fault: {reason}."),
            })
            .to_string(),
        }),
    };
    let mut reply = Reply {
        status,
        headers: vec![(CONTENT_TYPE, HeaderValue::from_static(JSON))],
        body,
    };
    if let Some(secs) = retry_after {
        reply = reply.header(RETRY_AFTER, &secs.to_string());
    }
    reply
}

fn into_response(reply: Reply, truncate: bool) -> Response<Body> {
    let len = reply.body.len();
    let body = if truncate && len > 0 {
        Body::Truncated {
            prefix: Some(reply.body.slice(..len / 2)),
            stage: 0,
        }
    } else {
        Body::Full(Some(reply.body))
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    for (name, value) in reply.headers {
        headers.append(name, value);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    response
}
