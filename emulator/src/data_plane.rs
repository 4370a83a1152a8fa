//! The Key Vault data plane: `GET /secrets/{name}[/{version}]`, answered with the headers,
//! bodies and errors of the real service (see `conformance/recorded/`).

use std::time::SystemTime;

use hyper::body::Incoming;
use hyper::header::{HeaderName, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use super::reply::{Reply, request_host};
use super::state::{EmulatorState, IdentityRef, Inner};

/// A Key Vault cloud: its host suffix, token audience and login authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CloudEndpoints {
    pub suffix: &'static str,
    pub audience: &'static str,
    pub authority: &'static str,
}

/// The clouds of SPEC §2.1.
pub(crate) const CLOUDS: [CloudEndpoints; 4] = [
    CloudEndpoints {
        suffix: "vault.azure.net",
        audience: "https://vault.azure.net",
        authority: "https://login.windows.net",
    },
    CloudEndpoints {
        suffix: "vault.azure.cn",
        audience: "https://vault.azure.cn",
        authority: "https://login.chinacloudapi.cn",
    },
    CloudEndpoints {
        suffix: "vault.usgovcloudapi.net",
        audience: "https://vault.usgovcloudapi.net",
        authority: "https://login.microsoftonline.us",
    },
    CloudEndpoints {
        suffix: "managedhsm.azure.net",
        audience: "https://managedhsm.azure.net",
        authority: "https://login.windows.net",
    },
];

/// `myvault.vault.azure.net` → (`myvault`, the public cloud). `host` is lowercase, no port.
pub(crate) fn split_host(host: &str) -> Option<(String, CloudEndpoints)> {
    CLOUDS.iter().find_map(|cloud| {
        let label = host.strip_suffix(cloud.suffix)?.strip_suffix('.')?;
        (!label.is_empty() && !label.contains('.')).then(|| (label.to_owned(), *cloud))
    })
}

/// Headers every Key Vault answer carries (`Content-Type` and `Content-Length` come with the body).
fn with_service_headers(mut reply: Reply, client_request_id: Option<&str>) -> Reply {
    let fixed: [(&str, &str); 8] = [
        ("cache-control", "no-cache"),
        ("pragma", "no-cache"),
        ("expires", "-1"),
        (
            "strict-transport-security",
            "max-age=31536000;includeSubDomains",
        ),
        ("x-content-type-options", "nosniff"),
        (
            "x-ms-keyvault-network-info",
            "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;",
        ),
        ("x-ms-keyvault-region", "emulator"),
        ("x-ms-keyvault-service-version", "1.9.0.0-akv-sync-emulator"),
    ];
    for (name, value) in fixed {
        reply = reply.header(HeaderName::from_static(name), value);
    }
    // hyper adds `Date` on HTTP/1.1 only; Key Vault sends it on every answer.
    reply = reply.header(
        hyper::header::DATE,
        &httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    reply = reply.header(
        HeaderName::from_static("x-ms-request-id"),
        &super::generator::uuid_like(),
    );
    if let Some(id) = client_request_id {
        reply = reply.header(HeaderName::from_static("x-ms-client-request-id"), id);
    }
    reply
}

fn error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Reply {
    let mut body = json!({"error": {"code": code, "message": message}});
    if let Some(inner) = inner {
        body["error"]["innererror"] = json!({"code": inner});
    }
    Reply::json(status, &body)
}

fn challenge(tenant: &str, cloud: CloudEndpoints, message: &str) -> Reply {
    error(StatusCode::UNAUTHORIZED, "Unauthorized", message, None).header(
        WWW_AUTHENTICATE,
        &format!(
            "Bearer authorization=\"{}/{tenant}\", resource=\"{}\"",
            cloud.authority, cloud.audience
        ),
    )
}

/// Accept the api-versions Key Vault accepts: `7.N` or `7.N-preview[.M]` (any major ≥ 7), and
/// the date-style versions of today's SDKs (`2025-07-01`, `2026-04-01`, optionally
/// `-preview`): a real calendar date from 2025-07-01 on, when Key Vault moved from 7.6 to
/// dates. The dates before 7.0 (`2015-06-01`, `2016-10-01`) stay refused like 6.x.
fn api_version_ok(v: &str) -> bool {
    if let Some(date) = date_version(v.strip_suffix("-preview").unwrap_or(v)) {
        return date >= (2025, 7, 1);
    }
    let numeric = v.split('-').next().unwrap_or_default();
    let mut parts = numeric.split('.');
    match (
        parts.next().and_then(|m| m.parse::<u32>().ok()),
        parts.next().and_then(|m| m.parse::<u32>().ok()),
    ) {
        (Some(major), Some(_minor)) => major >= 7 && parts.next().is_none(),
        _ => false,
    }
}

/// `YYYY-MM-DD`, exactly, as a valid calendar date.
fn date_version(v: &str) -> Option<(u32, u32, u32)> {
    let b = v.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| {
        let part = &v[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse::<u32>().ok())
            .flatten()
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let days = time::util::days_in_month(month, i32::try_from(y).ok()?);
    (1..=u32::from(days)).contains(&d).then_some((y, m, d))
}

pub(crate) fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

pub(crate) fn handle(shared: &EmulatorState, req: &Request<Incoming>) -> Reply {
    let client_request_id = req
        .headers()
        .get("x-ms-client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    with_service_headers(answer(shared, req), client_request_id.as_deref())
}

fn answer(shared: &EmulatorState, req: &Request<Incoming>) -> Reply {
    let tenant = &shared.fixed.tenant;
    let Some((vault, cloud)) = request_host(req).and_then(|h| split_host(&h)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The host name is not a Key Vault host name ({vault}.vault.azure.net and the other clouds' suffixes).",
            None,
        );
    };
    let path = req.uri().path();
    let segments: Vec<&str> = path
        .strip_prefix("/secrets/")
        .map(|rest| rest.trim_end_matches('/').split('/').collect())
        .unwrap_or_default();
    let (name, version) = match segments.as_slice() {
        [name] if !name.is_empty() => (*name, None),
        [name, version] if !name.is_empty() && !version.is_empty() => (*name, Some(*version)),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "The requested path is not served by the emulator: use GET /secrets/{name}[/{version}].",
                None,
            );
        }
    };
    if req.method() != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The emulator serves only GET on secrets.",
            None,
        );
    }
    match query_param(req.uri().query(), "api-version") {
        None | Some("") => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "The request URI contains an invalid or missing api-version query parameter.",
                None,
            );
        }
        Some(v) if !api_version_ok(v) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                &format!(
                    "The specified version ({v}) is not recognized. Consider using the latest supported version (7.6)."
                ),
                None,
            );
        }
        Some(_) => {}
    }

    let token = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return challenge(
            tenant,
            cloud,
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
    };

    let mut inner = shared.lock();
    let identity = match inner.tokens.get(token) {
        None => {
            return challenge(
                tenant,
                cloud,
                "AKV10031: Invalid token: the token was not issued by a trusted issuer.",
            );
        }
        Some(info) if info.expires_at <= SystemTime::now() => {
            return challenge(
                tenant,
                cloud,
                "[TokenExpired] Error validating token: 'S2S12086'.",
            );
        }
        Some(info) if info.audience.trim_end_matches('/') != cloud.audience => {
            let found = info.audience.clone();
            return challenge(
                tenant,
                cloud,
                &format!(
                    "AKV10022: Invalid audience. Expected {}, found: {found}.",
                    cloud.audience
                ),
            );
        }
        Some(info) => info.identity.clone(),
    };

    if let Some(reply) = throttle(&mut inner, &vault) {
        return reply;
    }

    if inner.revoked.contains(&(vault.clone(), identity.clone())) {
        return forbidden(tenant, &vault, name, &identity);
    }

    answer_secret(&mut inner, &vault, cloud, name, version)
}

/// Count this request against the vault's limit; the 429 answer when past it.
fn throttle(inner: &mut Inner, vault: &str) -> Option<Reply> {
    let (limit, window) = inner.rate_limits.get_mut(vault)?;
    let now = tokio::time::Instant::now();
    let span = std::time::Duration::from_secs(10);
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= span)
    {
        window.pop_front();
    }
    if window.len() < limit.per10s as usize {
        window.push_back(now);
        return None;
    }
    let reply = error(
        StatusCode::TOO_MANY_REQUESTS,
        "Throttled",
        "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
        Some("VaultRequestTypeLimitReached"),
    );
    Some(match limit.retry_after {
        Some(secs) => reply.header(RETRY_AFTER, &secs.to_string()),
        None => reply,
    })
}

fn forbidden(tenant: &str, vault: &str, name: &str, identity: &IdentityRef) -> Reply {
    let message = format!(
        "Caller is not authorized to perform action on resource.\r\n\
         If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n\
         Caller: appid={};oid={};iss=https://sts.windows.net/{tenant}/\r\n\
         Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n\
         Resource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/emulator/providers/microsoft.keyvault/vaults/{vault}/secrets/{}'\r\n\
         Assignment: (not found)\r\n\
         DenyAssignmentId: null\r\n\
         DecisionReason: 'DeniedWithNoValidRBAC' \r\n\
         Vault: {vault};location=emulator\r\n",
        identity.app_id(),
        identity.object_id(),
        name.to_ascii_lowercase(),
    );
    error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &message,
        Some("ForbiddenByRbac"),
    )
}

fn answer_secret(
    inner: &mut Inner,
    vault: &str,
    cloud: CloudEndpoints,
    name: &str,
    version: Option<&str>,
) -> Reply {
    let not_found = || {
        let shown = match version {
            Some(v) => format!("{name}/{v}"),
            None => name.to_owned(),
        };
        error(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            &format!(
                "A secret with (name/id) {shown} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
            None,
        )
    };
    let Some(secret) = inner
        .vaults
        .get(vault)
        .and_then(|v| v.secrets.get(&name.to_ascii_lowercase()))
    else {
        return not_found();
    };
    let found = match version {
        None => secret.versions.last(),
        Some(v) => secret
            .versions
            .iter()
            .find(|x| x.id.eq_ignore_ascii_case(v)),
    };
    let Some(found) = found else {
        return not_found();
    };
    if !found.enabled {
        return error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            Some("SecretDisabled"),
        );
    }
    let base = format!("https://{vault}.{}", cloud.suffix);
    let mut attributes = serde_json::Map::new();
    attributes.insert("enabled".into(), json!(true));
    if let Some(nbf) = found.nbf {
        attributes.insert("nbf".into(), json!(nbf));
    }
    if let Some(exp) = found.exp {
        attributes.insert("exp".into(), json!(exp));
    }
    attributes.insert("created".into(), json!(found.created));
    attributes.insert("updated".into(), json!(found.updated));
    attributes.insert("recoveryLevel".into(), json!("Recoverable+Purgeable"));
    attributes.insert("recoverableDays".into(), json!(90));

    // Field order as the real service writes it.
    let mut body = serde_json::Map::new();
    body.insert("value".into(), json!(found.value.as_str()));
    if let Some(ct) = &found.content_type {
        body.insert("contentType".into(), json!(ct));
    }
    body.insert(
        "id".into(),
        json!(format!("{base}/secrets/{}/{}", secret.name, found.id)),
    );
    if found.managed {
        body.insert("managed".into(), json!(true));
    }
    body.insert("attributes".into(), serde_json::Value::Object(attributes));
    if found.managed {
        body.insert(
            "kid".into(),
            json!(format!("{base}/keys/{}/{}", secret.name, found.id)),
        );
    } else {
        body.insert("tags".into(), json!({}));
    }
    let served = (
        vault.to_owned(),
        name.to_ascii_lowercase(),
        found.id.clone(),
    );
    inner.served.insert(served);
    Reply::json(StatusCode::OK, &serde_json::Value::Object(body))
        .header(
            HeaderName::from_static("x-ms-keyvault-rbac-assignment-id"),
            &super::generator::uuid_like(),
        )
        .header(
            HeaderName::from_static("x-ms-keyvault-rbac-cache"),
            "ra_age=0;da_age=0;rd_age=0;brd_age=0;ra_notif_age=0;dec_lev=1;",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_every_cloud_split_into_vault_and_cloud() {
        let (v, c) = split_host("myvault.vault.azure.net").unwrap();
        assert_eq!(
            (v.as_str(), c.audience),
            ("myvault", "https://vault.azure.net")
        );
        let (_, c) = split_host("x.vault.azure.cn").unwrap();
        assert_eq!(c.audience, "https://vault.azure.cn");
        let (_, c) = split_host("x.vault.usgovcloudapi.net").unwrap();
        assert_eq!(c.audience, "https://vault.usgovcloudapi.net");
        let (_, c) = split_host("x.managedhsm.azure.net").unwrap();
        assert_eq!(c.audience, "https://managedhsm.azure.net");
        assert!(split_host("vault.azure.net").is_none());
        assert!(split_host("a.b.vault.azure.net").is_none());
        assert!(split_host("127.0.0.1").is_none());
    }

    #[test]
    fn api_versions_from_7_0_on_are_accepted() {
        for ok in ["7.0", "7.3", "7.4-preview.1", "7.6", "8.0"] {
            assert!(api_version_ok(ok), "{ok}");
        }
        for ok in [
            "2025-07-01",
            "2026-04-01",
            "2026-04-01-preview",
            "2028-02-29",
        ] {
            assert!(api_version_ok(ok), "{ok}");
        }
        for bad in [
            "2016-10-01",
            "2015-06-01",
            "6.9",
            "7",
            "abc",
            "7.x",
            "2025-13-01",
            "2025-02-29",
            "2025-7-1",
            "20250701",
            "2025-07-01x",
            "2025-07-01-",
            "+025-07-01",
            "2025-07-01-beta",
        ] {
            assert!(!api_version_ok(bad), "{bad}");
        }
    }
}
