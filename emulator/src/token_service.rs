//! The token services: IMDS (`/metadata/identity/oauth2/token`, `Metadata: true`) and Azure
//! Arc's HIMDS (the same, behind a `Basic realm=<key file>` challenge).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hyper::body::Incoming;
use hyper::header::WWW_AUTHENTICATE;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::data_plane::query_param as query;
use super::reply::Reply;
use super::state::{EmulatorState, IdentityRef, Server, TokenInfo};

const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks common to IMDS and HIMDS; the requested resource when they pass.
fn common_checks(req: &Request<Incoming>) -> Result<String, Reply> {
    if req.uri().path().trim_end_matches('/') != TOKEN_PATH {
        return Err(oauth_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested path is not served: use /metadata/identity/oauth2/token.",
        ));
    }
    let metadata = req
        .headers()
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !metadata {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        ));
    }
    let q = req.uri().query();
    if query(q, "api-version").is_none_or(str::is_empty) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        ));
    }
    match query(q, "resource").map(percent_decode) {
        Some(r) if !r.is_empty() => Ok(r),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required audience parameter not specified",
        )),
    }
}

/// Issue a token to `identity` for `resource` and answer it in IMDS's shape (all strings).
fn issue(shared: &EmulatorState, server: Server, identity: IdentityRef, resource: &str) -> Reply {
    let mut inner = shared.lock();
    let lifetime = inner.token_lifetime;
    let now = SystemTime::now();
    let now_s = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let exp_s = now_s + lifetime.as_secs();
    let audience = resource.trim_end_matches('/').to_owned();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "akv-sync-emulator"});
    let claims = json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{}/", shared.fixed.tenant),
        "iat": now_s, "nbf": now_s, "exp": exp_s,
        "appid": identity.app_id(),
        "oid": identity.object_id(),
        "sub": identity.object_id(),
        "tid": shared.fixed.tenant,
        "idtyp": "app",
    });
    let token = format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string()),
        b64.encode(rand::random::<[u8; 32]>()),
    );
    inner.tokens.insert(
        token.clone(),
        TokenInfo {
            identity: identity.clone(),
            audience,
            expires_at: now + lifetime,
        },
    );
    inner.issued_tokens.push(token.clone());
    *inner
        .tokens_issued
        .entry((server, identity.to_string()))
        .or_default() += 1;
    let mut body = json!({
        "access_token": token,
        "expires_in": lifetime.as_secs().to_string(),
        "expires_on": exp_s.to_string(),
        "ext_expires_in": lifetime.as_secs().to_string(),
        "not_before": now_s.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    });
    if server == Server::Imds {
        body["client_id"] = json!(identity.app_id());
    }
    Reply::json(StatusCode::OK, &body)
}

/// `GET /metadata/identity/oauth2/token?api-version=…&resource=…[&client_id=…|&msi_res_id=…]`
/// (`mi_res_id` is IMDS's other name for `msi_res_id`).
pub(crate) fn imds(shared: &EmulatorState, req: &Request<Incoming>) -> Reply {
    let resource = match common_checks(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let q = req.uri().query();
    let client_id = query(q, "client_id").map(percent_decode);
    let resource_id = query(q, "msi_res_id")
        .or_else(|| query(q, "mi_res_id"))
        .map(percent_decode);
    if query(q, "object_id").is_some() {
        // The emulator knows identities by client id or resource id only.
        return not_found_identity();
    }
    let identity = {
        let inner = shared.lock();
        match (client_id, resource_id) {
            (Some(_), Some(_)) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Only one of client_id, object_id or msi_res_id may be specified",
                );
            }
            (Some(id), None) => {
                if !inner.user_assigned.contains(&id.to_ascii_lowercase()) {
                    return not_found_identity();
                }
                IdentityRef::UserAssigned { client_id: id }
            }
            (None, Some(id)) => {
                if !inner
                    .user_assigned_resources
                    .contains(&id.to_ascii_lowercase())
                {
                    return not_found_identity();
                }
                IdentityRef::UserAssignedByResourceId { resource_id: id }
            }
            (None, None) if inner.system_assigned => IdentityRef::SystemAssigned,
            (None, None) => {
                let mut users = inner
                    .user_assigned
                    .iter()
                    .map(|id| IdentityRef::UserAssigned {
                        client_id: id.clone(),
                    })
                    .chain(inner.user_assigned_resources.iter().map(|id| {
                        IdentityRef::UserAssignedByResourceId {
                            resource_id: id.clone(),
                        }
                    }));
                match (users.next(), users.next()) {
                    (Some(only), None) => only,
                    (None, _) => return not_found_identity(),
                    (Some(_), Some(_)) => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_request",
                            "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
                        );
                    }
                }
            }
        }
    };
    issue(shared, Server::Imds, identity, &resource)
}

fn not_found_identity() -> Reply {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "Identity not found",
    )
}

/// HIMDS: without `Authorization`, 401 and a fresh key file named in `WWW-Authenticate`;
/// with `Authorization: Basic <that file's contents>`, a token for the Arc identity.
pub(crate) fn arc(shared: &EmulatorState, req: &Request<Incoming>) -> Reply {
    let resource = match common_checks(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let presented = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, secret) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| secret.trim().to_owned())
        });
    if let Some(secret) = presented {
        let file = shared.lock().arc_keys.remove(&secret);
        if let Some(file) = file {
            let _ = std::fs::remove_file(file);
            return issue(shared, Server::Arc, IdentityRef::Arc, &resource);
        }
    }
    match write_key_file(shared) {
        Ok(path) => oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Unauthorized request: read the key file named in WWW-Authenticate and send its contents as Basic authorization.",
        )
        .header(WWW_AUTHENTICATE, &format!("Basic realm={}", path.display())),
        Err(err) => {
            tracing::error!(dir = %shared.fixed.arc_token_dir.display(), %err, "emulator: cannot write an Arc key file");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The emulator could not write the challenge key file.",
            )
        }
    }
}

/// A new random secret in `<arc_token_dir>/<uuid>.key` (mode 0640, like HIMDS's).
fn write_key_file(shared: &EmulatorState) -> std::io::Result<std::path::PathBuf> {
    let dir = &shared.fixed.arc_token_dir;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.key", super::generator::uuid_like()));
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    file.write_all(secret.as_bytes())?;
    shared.lock().arc_keys.insert(secret, path.clone());
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn resource_is_percent_decoded() {
        assert_eq!(
            percent_decode("https%3A%2F%2Fvault.azure.net"),
            "https://vault.azure.net"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
