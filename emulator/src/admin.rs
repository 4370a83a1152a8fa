//! The admin HTTP API (plain HTTP, JSON, loopback): the [`Control`] operations over the wire,
//! for the demo, scripts and tests in other processes. Documented in the README.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::control::{Control, ControlError};
use super::faults::{Fault, RateLimit};
use super::generator::CertSpec;
use super::reply::Reply;
use super::state::{EmulatorState, IdentityRef};

const MAX_BODY: usize = 1 << 20;

fn fail(status: StatusCode, message: impl std::fmt::Display) -> Reply {
    Reply::json(status, &json!({"error": message.to_string()}))
}

fn no_content() -> Reply {
    Reply {
        status: StatusCode::NO_CONTENT,
        headers: Vec::new(),
        body: bytes::Bytes::new(),
    }
}

fn control_error(err: ControlError) -> Reply {
    let status = match err {
        ControlError::SecretNotFound { .. } | ControlError::VersionNotFound { .. } => {
            StatusCode::NOT_FOUND
        }
        _ => StatusCode::BAD_REQUEST,
    };
    fail(status, err)
}

fn version(result: Result<String, ControlError>) -> Reply {
    match result {
        Ok(v) => Reply::json(StatusCode::OK, &json!({"version": v})),
        Err(e) => control_error(e),
    }
}

/// Parse the body as JSON; an empty body counts as `{}`.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSecret {
    value: String,
    #[serde(default)]
    content_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewIdentity {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    resource_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Lifetime {
    seconds: u64,
}

pub(crate) async fn handle(shared: &Arc<EmulatorState>, req: Request<Incoming>) -> Reply {
    let control = Control {
        shared: shared.clone(),
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return fail(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")),
    };
    match route(&control, &method, &path, &body).await {
        Ok(reply) | Err(reply) => reply,
    }
}

async fn route(
    control: &Control,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<Reply, Reply> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let Some(rest) = segs.strip_prefix(&["admin"]) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            "admin endpoints live under /admin/",
        ));
    };
    Ok(match (method.as_str(), rest) {
        ("GET", ["health"]) => Reply::json(StatusCode::OK, &json!({"ok": true})),
        ("GET", ["counters"]) => Reply::json(
            StatusCode::OK,
            &serde_json::to_value(control.counters()).unwrap_or_default(),
        ),
        ("POST", ["faults"]) => {
            control.inject_fault(parse::<Fault>(body)?);
            no_content()
        }
        ("DELETE", ["faults"]) => {
            control.clear_faults();
            no_content()
        }
        ("POST", ["identities"]) => {
            match parse::<NewIdentity>(body)? {
                NewIdentity {
                    client_id: Some(id),
                    resource_id: None,
                } => control.add_user_assigned_identity(&id),
                NewIdentity {
                    client_id: None,
                    resource_id: Some(id),
                } => control.add_user_assigned_resource(&id),
                _ => {
                    return Err(fail(
                        StatusCode::BAD_REQUEST,
                        "give exactly one of clientId and resourceId",
                    ));
                }
            }
            no_content()
        }
        ("POST", ["tokens", "expire"]) => {
            control.expire_tokens();
            no_content()
        }
        ("PUT", ["token-lifetime"]) => {
            let seconds = parse::<Lifetime>(body)?.seconds;
            control.set_token_lifetime(Duration::from_secs(seconds));
            no_content()
        }
        ("POST", ["vaults", vault, "certificates", name]) => {
            let spec: CertSpec = parse(body)?;
            let (c, v, n) = (control.clone(), vault.to_string(), name.to_string());
            // Key generation is slow: keep it off the async workers.
            version(
                tokio::task::spawn_blocking(move || c.create_certificate(&v, &n, spec))
                    .await
                    .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?,
            )
        }
        ("POST", ["vaults", vault, "certificates", name, "rotate"]) => {
            let (c, v, n) = (control.clone(), vault.to_string(), name.to_string());
            version(
                tokio::task::spawn_blocking(move || c.rotate(&v, &n))
                    .await
                    .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?,
            )
        }
        ("PUT", ["vaults", vault, "secrets", name]) => {
            let raw: RawSecret = parse(body)?;
            version(control.set_raw_secret(vault, name, &raw.value, &raw.content_type))
        }
        ("GET", ["vaults", vault, "secrets", name]) => match control.current_version(vault, name) {
            Some(current) => Reply::json(
                StatusCode::OK,
                &json!({"current": current, "versions": control.versions(vault, name)}),
            ),
            None => control_error(ControlError::SecretNotFound {
                vault: vault.to_string(),
                name: name.to_string(),
            }),
        },
        (
            "POST",
            [
                "vaults",
                vault,
                "secrets",
                name,
                "versions",
                v,
                action @ ("disable" | "enable"),
            ],
        ) => {
            let result = if *action == "disable" {
                control.disable_version(vault, name, v)
            } else {
                control.enable_version(vault, name, v)
            };
            match result {
                Ok(()) => no_content(),
                Err(e) => control_error(e),
            }
        }
        ("POST", ["vaults", vault, action @ ("grant" | "revoke")]) => {
            let identity: IdentityRef = parse(body)?;
            if *action == "grant" {
                control.grant(vault, &identity);
            } else {
                control.revoke(vault, &identity);
            }
            no_content()
        }
        ("PUT", ["vaults", vault, "rate-limit"]) => {
            control.set_rate_limit(vault, Some(parse::<RateLimit>(body)?));
            no_content()
        }
        ("DELETE", ["vaults", vault, "rate-limit"]) => {
            control.set_rate_limit(vault, None);
            no_content()
        }
        _ => fail(
            StatusCode::NOT_FOUND,
            format!("no admin endpoint {method} {path} (see the README)"),
        ),
    })
}
