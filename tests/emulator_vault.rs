//! The Key Vault data plane of the emulator, over real TLS: challenge → token → secret, every
//! error answer, several vaults and clouds, the rate limit and fault injection.

mod emulator_support;

use akv_sync_emulator::{Fault, FaultAction, FaultTarget, Format, IdentityRef, RateLimit};
use base64::Engine;
use emulator_support::{Harness, ec_spec, error_codes, start};

const PUBLIC: &str = "https://vault.azure.net";
const CHALLENGE: &str = "Bearer authorization=\"https://login.windows.net/12345678-1234-1234-1234-123456789012\", resource=\"https://vault.azure.net\"";

fn is_version(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

async fn with_cert(format: Format) -> (Harness, String) {
    let h = start().await;
    let v = h
        .emu
        .control()
        .create_certificate("myvault", "c1", ec_spec(format))
        .unwrap();
    (h, v)
}

#[tokio::test]
async fn unauthenticated_request_gets_the_bearer_challenge() {
    let (h, _) = with_cert(Format::Pkcs12).await;
    let resp = h
        .vault_get(
            "https://myvault.vault.azure.net/secrets/c1/?api-version=7.3",
            None,
        )
        .await;
    assert_eq!(resp.status(), 401);
    let headers = resp.headers().clone();
    assert_eq!(headers["www-authenticate"], CHALLENGE);
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert_eq!(
        headers["x-ms-client-request-id"],
        "0f6a8f5e-0000-4000-8000-000000000001"
    );
    for name in ["x-ms-request-id", "x-ms-keyvault-service-version", "date"] {
        assert!(headers.contains_key(name), "{name} missing");
    }
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}"#
    );
}

#[tokio::test]
async fn challenge_then_imds_token_then_pkcs12_secret() {
    let (h, version) = with_cert(Format::Pkcs12).await;
    let url = "https://myvault.vault.azure.net/secrets/c1?api-version=7.4";
    let first = h.vault_get(url, None).await;
    assert_eq!(first.status(), 401);
    // The challenge names the audience to ask IMDS for.
    let challenge = first.headers()["www-authenticate"].to_str().unwrap();
    let resource = challenge
        .split("resource=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"');
    let token = h.imds_token(resource, None).await;
    let resp = h.vault_get(url, Some(&token)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["contentType"], "application/x-pkcs12");
    assert_eq!(body["managed"], true);
    assert_eq!(
        body["id"],
        format!("https://myvault.vault.azure.net/secrets/c1/{version}")
    );
    assert_eq!(
        body["kid"],
        format!("https://myvault.vault.azure.net/keys/c1/{version}")
    );
    assert!(is_version(&version));
    let a = &body["attributes"];
    assert_eq!(a["enabled"], true);
    for key in ["nbf", "exp", "created", "updated", "recoverableDays"] {
        assert!(a[key].is_i64(), "attributes.{key} must be an integer");
    }
    assert!(a["recoveryLevel"].is_string());

    // Key Vault's PFX has the absent password: strict readers refuse the empty one.
    let pfx = base64::engine::general_purpose::STANDARD
        .decode(body["value"].as_str().unwrap())
        .unwrap();
    assert!(p12_keystore::KeyStore::from_pkcs12(&pfx, "", Default::default()).is_err());
    let m = akv_sync_material::convert(
        body["value"].as_str().unwrap(),
        body["contentType"].as_str().unwrap(),
        0,
    )
    .unwrap();
    // OpenSSL, like Windows, tries both and opens it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pfx"), &pfx).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkcs12", "-in", "c.pfx", "-passin", "pass:", "-nokeys"])
        .current_dir(dir.path())
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("BEGIN CERTIFICATE")
            .count(),
        1 + m.chain.len()
    );
    let (_, leaf) = x509_parser::parse_x509_certificate(&m.leaf).unwrap();
    assert_eq!(
        leaf.validity().not_before.timestamp(),
        a["nbf"].as_i64().unwrap()
    );
    assert_eq!(h.emu.control().served_secrets().len(), 1);
}

#[tokio::test]
async fn pem_secret_is_served_key_first() {
    let (h, _) = with_cert(Format::Pem).await;
    let body = h.secret_json("myvault", "/secrets/c1/").await;
    assert_eq!(body["contentType"], "application/x-pem-file");
    let value = body["value"].as_str().unwrap();
    assert!(value.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(value.contains("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn rotation_makes_a_new_current_version_and_old_versions_stay_readable() {
    let (h, v1) = with_cert(Format::Pem).await;
    let v2 = h.emu.control().rotate("myvault", "c1").unwrap();
    assert_ne!(v1, v2);
    assert_eq!(
        h.emu.control().current_version("myvault", "c1"),
        Some(v2.clone())
    );
    let latest = h.secret_json("myvault", "/secrets/c1").await;
    assert!(latest["id"].as_str().unwrap().ends_with(&v2));
    let pinned = h.secret_json("myvault", &format!("/secrets/c1/{v1}")).await;
    assert!(pinned["id"].as_str().unwrap().ends_with(&v1));
    assert_ne!(latest["value"], pinned["value"]);
    let served = h.emu.control().served_secrets();
    assert_eq!(served.len(), 2);
    assert!(served.contains(&latest["value"].as_str().unwrap().to_owned()));
}

#[tokio::test]
async fn missing_or_too_old_api_version_is_a_bad_request() {
    let (h, _) = with_cert(Format::Pem).await;
    let token = h.imds_token(PUBLIC, None).await;
    for url in [
        "https://myvault.vault.azure.net/secrets/c1",
        "https://myvault.vault.azure.net/secrets/c1?api-version=2016-10-01",
    ] {
        let resp = h.vault_get(url, Some(&token)).await;
        assert_eq!(resp.status(), 400, "{url}");
        assert_eq!(error_codes(resp).await.0, "BadParameter");
    }
}

#[tokio::test]
async fn date_style_api_versions_are_served_and_malformed_ones_refused() {
    let (h, _) = with_cert(Format::Pem).await;
    let token = h.imds_token(PUBLIC, None).await;
    // Today's SDKs send date-style versions; the agent sends its own 7.x one.
    for v in [
        "2025-07-01",
        "2026-04-01",
        "7.0",
        "7.6",
        akv_sync::azure::vault::API_VERSION,
    ] {
        let url = format!("https://myvault.vault.azure.net/secrets/c1?api-version={v}");
        let resp = h.vault_get(&url, Some(&token)).await;
        assert_eq!(resp.status(), 200, "{v}");
    }
    for v in [
        "2025-13-01",
        "2025-02-30",
        "2025-7-1",
        "20250701",
        "2025-07-01x",
        "2025-07-01-",
        "v2025-07-01",
        "7.6.1",
    ] {
        let url = format!("https://myvault.vault.azure.net/secrets/c1?api-version={v}");
        let resp = h.vault_get(&url, Some(&token)).await;
        assert_eq!(resp.status(), 400, "{v}");
        assert_eq!(error_codes(resp).await.0, "BadParameter", "{v}");
    }
}

#[tokio::test]
async fn unknown_and_expired_tokens_get_401_with_the_challenge() {
    let (h, _) = with_cert(Format::Pem).await;
    let url = "https://myvault.vault.azure.net/secrets/c1?api-version=7.4";
    let resp = h.vault_get(url, Some("eyJ.not.issued")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], CHALLENGE);
    assert_eq!(error_codes(resp).await.0, "Unauthorized");

    let token = h.imds_token(PUBLIC, None).await;
    assert_eq!(h.vault_get(url, Some(&token)).await.status(), 200);
    h.emu.control().expire_tokens();
    let resp = h.vault_get(url, Some(&token)).await;
    assert_eq!(resp.status(), 401);
    let (code, _, message) = error_codes(resp).await;
    assert_eq!(code, "Unauthorized");
    assert!(message.contains("TokenExpired"));
}

#[tokio::test]
async fn token_for_another_cloud_is_an_invalid_audience() {
    let (h, _) = with_cert(Format::Pem).await;
    let public = h.imds_token(PUBLIC, None).await;
    let china = h.imds_token("https://vault.azure.cn", None).await;
    let cn_url = "https://myvault.vault.azure.cn/secrets/c1?api-version=7.4";

    let resp = h.vault_get(cn_url, Some(&public)).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer authorization=\"https://login.chinacloudapi.cn/12345678-1234-1234-1234-123456789012\", resource=\"https://vault.azure.cn\""
    );
    let (code, _, message) = error_codes(resp).await;
    assert_eq!(code, "Unauthorized");
    assert!(
        message.starts_with("AKV10022: Invalid audience."),
        "{message}"
    );

    let resp = h.vault_get(cn_url, Some(&china)).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["id"]
            .as_str()
            .unwrap()
            .starts_with("https://myvault.vault.azure.cn/secrets/c1/")
    );

    // And the other way round: a China token on the public cloud.
    let resp = h
        .vault_get(
            "https://myvault.vault.azure.net/secrets/c1?api-version=7.4",
            Some(&china),
        )
        .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn revoked_identity_is_forbidden_until_granted_again() {
    let (h, _) = with_cert(Format::Pem).await;
    let control = h.emu.control();
    control.add_user_assigned_identity("11111111-2222-3333-4444-555555555555");
    control.revoke("MyVault", &IdentityRef::SystemAssigned);
    let url = "https://myvault.vault.azure.net/secrets/c1?api-version=7.4";
    let system = h.imds_token(PUBLIC, None).await;
    let resp = h.vault_get(url, Some(&system)).await;
    assert_eq!(resp.status(), 403);
    let (code, inner, message) = error_codes(resp).await;
    assert_eq!(code, "Forbidden");
    assert_eq!(inner.as_deref(), Some("ForbiddenByRbac"));
    assert!(message.contains("secrets/getSecret/action"));

    // Another identity on the same vault is unaffected.
    let user = h
        .imds_token(PUBLIC, Some("11111111-2222-3333-4444-555555555555"))
        .await;
    assert_eq!(h.vault_get(url, Some(&user)).await.status(), 200);

    control.grant("myvault", &IdentityRef::SystemAssigned);
    assert_eq!(h.vault_get(url, Some(&system)).await.status(), 200);
}

#[tokio::test]
async fn disabled_version_is_forbidden_with_secret_disabled() {
    let (h, v1) = with_cert(Format::Pem).await;
    h.emu
        .control()
        .disable_version("myvault", "c1", &v1)
        .unwrap();
    let token = h.imds_token(PUBLIC, None).await;
    for path in ["/secrets/c1".to_owned(), format!("/secrets/c1/{v1}")] {
        let resp = h
            .vault_get(
                &format!("https://myvault.vault.azure.net{path}?api-version=7.4"),
                Some(&token),
            )
            .await;
        assert_eq!(resp.status(), 403, "{path}");
        let (code, inner, _) = error_codes(resp).await;
        assert_eq!(code, "Forbidden");
        assert_eq!(inner.as_deref(), Some("SecretDisabled"));
    }
    h.emu
        .control()
        .enable_version("myvault", "c1", &v1)
        .unwrap();
    h.secret_json("myvault", "/secrets/c1").await;
}

#[tokio::test]
async fn unknown_secret_and_unknown_version_are_secret_not_found() {
    let (h, _) = with_cert(Format::Pem).await;
    let token = h.imds_token(PUBLIC, None).await;
    for path in [
        "/secrets/nope",
        "/secrets/c1/0123456789abcdef0123456789abcdef",
    ] {
        let resp = h
            .vault_get(
                &format!("https://myvault.vault.azure.net{path}?api-version=7.4"),
                Some(&token),
            )
            .await;
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(error_codes(resp).await.0, "SecretNotFound");
    }
    // The same name in another vault is another secret.
    let resp = h
        .vault_get(
            "https://othervault.vault.azure.net/secrets/c1?api-version=7.4",
            Some(&token),
        )
        .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn several_vaults_and_case_insensitive_names() {
    let h = start().await;
    let control = h.emu.control();
    control
        .set_raw_secret("vault-a", "s", "from a", "text/plain")
        .unwrap();
    control
        .set_raw_secret("vault-b", "s", "from b", "")
        .unwrap();
    let a = h.secret_json("VAULT-A", "/secrets/S").await;
    let b = h.secret_json("vault-b", "/secrets/s").await;
    assert_eq!(a["value"], "from a");
    assert_eq!(a["contentType"], "text/plain");
    assert_eq!(b["value"], "from b");
    // A plain secret: no `managed`, no `kid`, no content type when none was set.
    assert!(b.get("managed").is_none() && b.get("kid").is_none() && b.get("contentType").is_none());
    assert!(a["attributes"].get("nbf").is_none());
}

#[tokio::test]
async fn raw_secret_is_served_verbatim() {
    let h = start().await;
    let junk = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n";
    h.emu
        .control()
        .set_raw_secret("myvault", "bad", junk, "application/x-pem-file")
        .unwrap();
    let body = h.secret_json("myvault", "/secrets/bad").await;
    assert_eq!(body["value"], junk);
    assert_eq!(body["contentType"], "application/x-pem-file");
}

#[tokio::test]
async fn rate_limit_answers_throttled_past_the_limit_with_and_without_retry_after() {
    let (h, _) = with_cert(Format::Pem).await;
    let token = h.imds_token(PUBLIC, None).await;
    let url = "https://myvault.vault.azure.net/secrets/c1?api-version=7.4";
    for retry_after in [Some(7), None] {
        h.emu.control().set_rate_limit(
            "myvault",
            Some(RateLimit {
                per10s: 2,
                retry_after,
            }),
        );
        assert_eq!(h.vault_get(url, Some(&token)).await.status(), 200);
        assert_eq!(h.vault_get(url, Some(&token)).await.status(), 200);
        let resp = h.vault_get(url, Some(&token)).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            retry_after.map(|s| s.to_string())
        );
        let (code, inner, _) = error_codes(resp).await;
        assert_eq!(code, "Throttled");
        assert_eq!(inner.as_deref(), Some("VaultRequestTypeLimitReached"));
    }
    // Other vaults are not limited; removing the limit lifts it.
    h.emu.control().set_rate_limit("myvault", None);
    assert_eq!(h.vault_get(url, Some(&token)).await.status(), 200);
    assert_eq!(
        h.emu
            .control()
            .counters()
            .vault_requests("myvault", Some(429)),
        2
    );
}

#[tokio::test]
async fn status_fault_applies_n_times_then_normal_answers_resume() {
    let (h, _) = with_cert(Format::Pem).await;
    let token = h.imds_token(PUBLIC, None).await;
    h.emu.control().inject_fault(
        Fault::new(
            FaultTarget::Vault,
            "/secrets/c1*",
            FaultAction::Status {
                status: 503,
                body: None,
                retry_after: Some(3),
            },
        )
        .times(2),
    );
    let url = "https://myvault.vault.azure.net/secrets/c1?api-version=7.4";
    for _ in 0..2 {
        let resp = h.vault_get(url, Some(&token)).await;
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "3");
        assert_eq!(error_codes(resp).await.0, "ServiceUnavailable");
    }
    assert_eq!(h.vault_get(url, Some(&token)).await.status(), 200);
    let counters = h.emu.control().counters();
    assert_eq!(counters.vault_requests("myvault", Some(503)), 2);
    assert_eq!(counters.vault_requests("myvault", Some(200)), 1);
}

#[tokio::test]
async fn fault_limited_to_one_vault_leaves_the_others_alone() {
    let h = start().await;
    let c = h.emu.control();
    c.set_raw_secret("a", "s", "x", "").unwrap();
    c.set_raw_secret("b", "s", "y", "").unwrap();
    c.inject_fault(
        Fault::new(
            FaultTarget::Vault,
            "*",
            FaultAction::Status {
                status: 500,
                body: Some("{}".into()),
                retry_after: None,
            },
        )
        .on_vault("A"),
    );
    let token = h.imds_token(PUBLIC, None).await;
    let status = async |v: &str| {
        let url = format!("https://{v}.vault.azure.net/secrets/s?api-version=7.4");
        h.vault_get(&url, Some(&token)).await.status()
    };
    assert_eq!(status("a").await, 500);
    assert_eq!(status("b").await, 200);
    c.clear_faults();
    assert_eq!(status("a").await, 200);
}

#[tokio::test]
async fn reset_garbage_and_truncated_faults_break_the_answer_as_asked() {
    let (h, _) = with_cert(Format::Pem).await;
    let token = h.imds_token(PUBLIC, None).await;
    let c = h.emu.control();
    let url = "https://myvault.vault.azure.net/secrets/c1?api-version=7.4";

    c.inject_fault(Fault::new(FaultTarget::Vault, "*", FaultAction::Reset).times(1));
    let err = h
        .https
        .get(url)
        .bearer_auth(&token)
        .send()
        .await
        .expect_err("a reset connection gives no answer");
    assert!(!err.is_status());

    c.inject_fault(Fault::new(FaultTarget::Vault, "*", FaultAction::GarbageBody).times(1));
    let resp = h.vault_get(url, Some(&token)).await;
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err());

    c.inject_fault(Fault::new(FaultTarget::Vault, "*", FaultAction::TruncatedBody).times(1));
    let resp = h.vault_get(url, Some(&token)).await;
    assert_eq!(resp.status(), 200);
    let promised = resp.content_length().unwrap();
    assert!(promised > 0);
    assert!(resp.bytes().await.is_err(), "the body must end early");

    // Every fault used up: normal service again.
    assert_eq!(h.vault_get(url, Some(&token)).await.status(), 200);
    assert_eq!(c.counters().vault_requests("myvault", Some(0)), 1);
}

#[tokio::test]
async fn delay_fault_holds_the_answer_back() {
    let (h, _) = with_cert(Format::Pem).await;
    let token = h.imds_token(PUBLIC, None).await;
    h.emu.control().inject_fault(
        Fault::new(
            FaultTarget::Vault,
            "*",
            FaultAction::Delay { millis: 30_000 },
        )
        .times(1),
    );
    let impatient = emulator_support::https_client_builder(&h.emu)
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let url = "https://myvault.vault.azure.net/secrets/c1?api-version=7.4";
    let err = impatient
        .get(url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    // Only that one request was delayed.
    let resp = impatient.get(url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn server_certificate_covers_every_cloud_and_loopback_names() {
    let (h, _) = with_cert(Format::Pem).await;
    for host in [
        "x.vault.azure.net",
        "x.vault.azure.cn",
        "x.vault.usgovcloudapi.net",
        "x.managedhsm.azure.net",
    ] {
        let resp = h
            .vault_get(&format!("https://{host}/secrets/c1?api-version=7.4"), None)
            .await;
        assert_eq!(resp.status(), 401, "{host}");
    }
    let port = h.emu.vault_addr.port();
    // By address or localhost: TLS verifies, and the emulator says it is not a vault host.
    for url in [
        format!("https://127.0.0.1:{port}/secrets/c1?api-version=7.4"),
        format!("https://localhost:{port}/secrets/c1?api-version=7.4"),
    ] {
        let resp = h.vault_get(&url, None).await;
        assert_eq!(resp.status(), 400, "{url}");
        assert_eq!(error_codes(resp).await.0, "BadParameter");
    }
}

#[tokio::test]
async fn requests_are_counted_by_vault_path_and_status() {
    let (h, _) = with_cert(Format::Pem).await;
    let token = h.imds_token(PUBLIC, None).await;
    let url = "https://myvault.vault.azure.net/secrets/c1?api-version=7.4";
    h.vault_get(url, None).await;
    h.vault_get(url, Some(&token)).await;
    h.vault_get(url, Some(&token)).await;
    let counters = h.emu.control().counters();
    let row = counters
        .requests
        .iter()
        .find(|r| r.status == 200 && r.vault.as_deref() == Some("myvault"))
        .unwrap();
    assert_eq!((row.path.as_str(), row.count), ("/secrets/c1", 2));
    assert_eq!(counters.vault_requests("myvault", Some(401)), 1);
    assert_eq!(counters.tokens_for(&IdentityRef::SystemAssigned), 1);
    // The same value served twice is listed once.
    assert_eq!(h.emu.control().served_secrets().len(), 1);
    // Serializable for the admin API and reports.
    let json = serde_json::to_value(&counters).unwrap();
    assert!(json["requests"].is_array() && json["tokensIssued"].is_array());
}

#[tokio::test]
async fn http2_clients_get_the_same_answers_and_faults() {
    let (h, _) = with_cert(Format::Pem).await;
    let token = h.imds_token(PUBLIC, None).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            pem::parse(&h.emu.ca_pem)
                .unwrap()
                .contents()
                .to_vec()
                .into(),
        )
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let port = h.emu.vault_addr.port();
    let h2 = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve("myvault.vault.azure.net", h.emu.vault_addr)
        .no_proxy()
        .build()
        .unwrap();
    let url = format!("https://myvault.vault.azure.net:{port}/secrets/c1?api-version=7.4");

    let resp = h2.get(&url).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], CHALLENGE);
    assert!(resp.headers().contains_key("date"));
    let resp = h2.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let c = h.emu.control();
    c.inject_fault(Fault::new(FaultTarget::Vault, "*", FaultAction::TruncatedBody).times(1));
    let resp = h2.get(&url).bearer_auth(&token).send().await.unwrap();
    assert!(resp.bytes().await.is_err(), "the body must end early");
    c.inject_fault(Fault::new(FaultTarget::Vault, "*", FaultAction::Reset).times(1));
    assert!(h2.get(&url).bearer_auth(&token).send().await.is_err());
    let resp = h2.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn shutdown_closes_every_listener() {
    let h = start().await;
    let addrs = [
        h.emu.vault_addr,
        h.emu.imds_endpoint[7..]
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap(),
        h.emu.admin_url[7..].parse().unwrap(),
    ];
    for addr in addrs {
        tokio::net::TcpStream::connect(addr).await.unwrap();
    }
    h.emu.shutdown().await;
    for addr in addrs {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still open"
        );
    }
}
