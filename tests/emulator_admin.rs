//! The emulator's admin HTTP API (the `Control` operations over the wire) and the
//! `akv-sync emulator` binary itself (one JSON line, then serve until SIGTERM).

mod emulator_support;

use std::time::Duration;

use emulator_support::{Harness, https_client_for, start, token_url};
use serde_json::{Value, json};

const PUBLIC: &str = "https://vault.azure.net";

/// `{admin_url}/admin/{path}`: the status and the JSON answer (`null` when empty).
async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}/admin/{path}", h.emu.admin_url);
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = h.http.request(method, url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, value)
}

async fn status_of(h: &Harness, path: &str) -> u16 {
    let token = h.imds_token(PUBLIC, None).await;
    h.vault_get(
        &format!("https://av.vault.azure.net{path}?api-version=7.4"),
        Some(&token),
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test]
async fn admin_api_drives_every_control_operation() {
    let h = start().await;
    assert_eq!(admin(&h, "GET", "health", None).await.0, 200);

    // Create (EC for speed), then rotate: two versions, the newest current.
    let spec = json!({"key": "ecP256", "format": "pem", "chainLen": 3, "subjectCn": "web"});
    let (s, v1) = admin(&h, "POST", "vaults/av/certificates/web", Some(spec)).await;
    assert_eq!(s, 200);
    let v1 = v1["version"].as_str().unwrap().to_owned();
    let (s, v2) = admin(&h, "POST", "vaults/av/certificates/web/rotate", None).await;
    assert_eq!(s, 200);
    let v2 = v2["version"].as_str().unwrap().to_owned();
    let (_, listing) = admin(&h, "GET", "vaults/av/secrets/web", None).await;
    assert_eq!(listing["current"], v2.as_str());
    assert_eq!(listing["versions"], json!([v1, v2]));
    let served = h.secret_json("av", "/secrets/web").await;
    assert_eq!(
        pem::parse_many(served["value"].as_str().unwrap())
            .unwrap()
            .len(),
        4
    );

    // Raw secret.
    let (s, _) = admin(
        &h,
        "PUT",
        "vaults/av/secrets/raw",
        Some(json!({"value": "garbage", "contentType": "application/x-pkcs12"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        h.secret_json("av", "/secrets/raw").await["value"],
        "garbage"
    );

    // Disable / enable a version.
    let path = format!("vaults/av/secrets/web/versions/{v2}/disable");
    assert_eq!(admin(&h, "POST", &path, None).await.0, 204);
    assert_eq!(status_of(&h, "/secrets/web").await, 403);
    let path = format!("vaults/av/secrets/web/versions/{v2}/enable");
    assert_eq!(admin(&h, "POST", &path, None).await.0, 204);
    assert_eq!(status_of(&h, "/secrets/web").await, 200);

    // Revoke / grant.
    let system = json!({"kind": "systemAssigned"});
    assert_eq!(
        admin(&h, "POST", "vaults/av/revoke", Some(system.clone()))
            .await
            .0,
        204
    );
    assert_eq!(status_of(&h, "/secrets/web").await, 403);
    assert_eq!(
        admin(&h, "POST", "vaults/av/grant", Some(system)).await.0,
        204
    );
    assert_eq!(status_of(&h, "/secrets/web").await, 200);

    // Faults.
    let fault = json!({"target": "vault", "path": "/secrets/web", "count": 1,
                       "action": {"kind": "status", "status": 500}});
    assert_eq!(admin(&h, "POST", "faults", Some(fault)).await.0, 204);
    assert_eq!(status_of(&h, "/secrets/web").await, 500);
    assert_eq!(status_of(&h, "/secrets/web").await, 200);
    let forever = json!({"target": "vault", "action": {"kind": "status", "status": 502}});
    admin(&h, "POST", "faults", Some(forever)).await;
    assert_eq!(status_of(&h, "/secrets/web").await, 502);
    assert_eq!(admin(&h, "DELETE", "faults", None).await.0, 204);
    assert_eq!(status_of(&h, "/secrets/web").await, 200);

    // Rate limit.
    let limit = json!({"per10s": 1, "retryAfter": 2});
    assert_eq!(
        admin(&h, "PUT", "vaults/av/rate-limit", Some(limit))
            .await
            .0,
        204
    );
    assert_eq!(status_of(&h, "/secrets/web").await, 200);
    assert_eq!(status_of(&h, "/secrets/web").await, 429);
    assert_eq!(
        admin(&h, "DELETE", "vaults/av/rate-limit", None).await.0,
        204
    );
    assert_eq!(status_of(&h, "/secrets/web").await, 200);

    // User-assigned identity, token lifetime, token expiry.
    let id = json!({"clientId": "12121212-3434-5656-7878-909090909090"});
    assert_eq!(admin(&h, "POST", "identities", Some(id)).await.0, 204);
    h.imds_token(PUBLIC, Some("12121212-3434-5656-7878-909090909090"))
        .await;
    // One known by resource id only (asked for with `msi_res_id`); one of the two, not both.
    let resource = "/subscriptions/12121212-3434-5656-7878-909090909090/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-admin";
    let id = json!({"resourceId": resource});
    assert_eq!(admin(&h, "POST", "identities", Some(id)).await.0, 204);
    let both = json!({"clientId": "12121212-3434-5656-7878-909090909090", "resourceId": resource});
    assert_eq!(admin(&h, "POST", "identities", Some(both)).await.0, 400);
    let resp = h
        .http
        .get(format!("{}/oauth2/token", h.emu.imds_endpoint))
        .query(&[
            ("api-version", "2018-02-01"),
            ("resource", PUBLIC),
            ("msi_res_id", resource),
        ])
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        admin(&h, "PUT", "token-lifetime", Some(json!({"seconds": 120})))
            .await
            .0,
        204
    );
    let token = h.imds_token(PUBLIC, None).await;
    assert_eq!(admin(&h, "POST", "tokens/expire", None).await.0, 204);
    let resp = h
        .vault_get(
            "https://av.vault.azure.net/secrets/web?api-version=7.4",
            Some(&token),
        )
        .await;
    assert_eq!(resp.status(), 401);

    // Counters.
    let (s, counters) = admin(&h, "GET", "counters", None).await;
    assert_eq!(s, 200);
    let total_429: u64 = counters["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["server"] == "vault" && r["status"] == 429)
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total_429, 1);
    assert!(counters["tokensIssued"].as_array().unwrap().len() >= 2);
}

#[tokio::test]
async fn admin_api_rejects_bad_requests_with_clear_errors() {
    let h = start().await;
    let (s, b) = admin(
        &h,
        "POST",
        "vaults/av/certificates/web",
        Some(json!({"chainLen": 9, "key": "ecP256"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("chain length 9"));
    let (s, b) = admin(
        &h,
        "POST",
        "vaults/av/certificates/web",
        Some(json!({"colour": "blue"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("colour"));
    let (s, _) = admin(&h, "POST", "vaults/av/certificates/nope/rotate", None).await;
    assert_eq!(s, 404);
    let (s, _) = admin(
        &h,
        "POST",
        "vaults/av/secrets/nope/versions/abc/disable",
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = admin(&h, "GET", "no/such/endpoint", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn binary_prints_one_json_line_serves_seeds_and_stops_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_akv-sync"))
        .arg("emulator")
        .args(["--seed", "demo/web:pem", "--seed", "demo/api"])
        .args(["--seed-key", "ecP256"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--arc-token-dir")
        .arg(dir.path().join("arc"))
        .args(["--listen", "127.0.0.1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .expect("the emulator announces itself")
        .unwrap()
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    for key in [
        "vault_addr",
        "imds_endpoint",
        "arc_endpoint",
        "ca_file",
        "admin_url",
    ] {
        assert!(info[key].is_string(), "{key} missing from {line}");
    }
    let ca_pem = std::fs::read_to_string(info["ca_file"].as_str().unwrap()).unwrap();
    let vault_addr = info["vault_addr"].as_str().unwrap().parse().unwrap();
    let imds = info["imds_endpoint"].as_str().unwrap();
    assert!(imds.starts_with("http://127.0.0.1:") && imds.ends_with("/metadata/identity"));

    let http = emulator_support::http_client();
    let token: Value = http
        .get(token_url(imds, PUBLIC, None))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let https = https_client_for(&ca_pem, vault_addr).build().unwrap();
    for (name, content_type) in [
        ("web", "application/x-pem-file"),
        ("api", "application/x-pkcs12"),
    ] {
        let resp = https
            .get(format!(
                "https://demo.vault.azure.net/secrets/{name}?api-version=7.4"
            ))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["contentType"], content_type);
    }

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the emulator stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    // Nothing more than the one line.
    assert_eq!(lines.next_line().await.unwrap(), None);
}

#[tokio::test]
async fn binary_refuses_a_malformed_seed() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_akv-sync"))
        .args(["emulator", "--seed", "no-slash"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-slash"));
}
