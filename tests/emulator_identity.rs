//! The emulator's token services: IMDS (system- and user-assigned identities, the `Metadata`
//! header, string-valued times, injectable failures) and Arc HIMDS (the key-file challenge).

mod emulator_support;

use std::time::Duration;

use akv_sync_emulator::{EmulatorOptions, Fault, FaultAction, FaultTarget, IdentityRef};
use base64::Engine;
use emulator_support::{start, start_with, token_url};

const PUBLIC: &str = "https://vault.azure.net";
const USER: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

async fn body(resp: reqwest::Response) -> serde_json::Value {
    resp.json().await.unwrap()
}

#[tokio::test]
async fn imds_without_the_metadata_header_is_a_bad_request() {
    let h = start().await;
    let resp = h
        .http
        .get(token_url(&h.emu.imds_endpoint, PUBLIC, None))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(body(resp).await["error"], "invalid_request");
    assert!(h.emu.control().issued_tokens().is_empty());
}

#[tokio::test]
async fn imds_token_has_string_times_bearer_type_and_a_jwt() {
    let h = start().await;
    let resp = h
        .http
        .get(token_url(&h.emu.imds_endpoint, PUBLIC, None))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let b = body(resp).await;
    for key in ["expires_in", "expires_on", "not_before", "ext_expires_in"] {
        let v = b[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} must be a string"));
        assert!(v.parse::<u64>().is_ok(), "{key} = {v}");
    }
    assert_eq!(b["expires_in"], "86400");
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["resource"], PUBLIC);
    let token = b["access_token"].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], PUBLIC);
    assert_eq!(h.emu.control().issued_tokens(), vec![token.to_owned()]);
}

#[tokio::test]
async fn token_lifetime_is_configurable() {
    let h = start_with(EmulatorOptions {
        token_lifetime: Duration::from_secs(90),
        ..EmulatorOptions::default()
    })
    .await;
    let get = async || {
        let resp = h
            .http
            .get(token_url(&h.emu.imds_endpoint, PUBLIC, None))
            .header("Metadata", "true")
            .send()
            .await
            .unwrap();
        body(resp).await["expires_in"].clone()
    };
    assert_eq!(get().await, "90");
    h.emu.control().set_token_lifetime(Duration::from_secs(5));
    assert_eq!(get().await, "5");
}

#[tokio::test]
async fn user_assigned_identity_is_chosen_by_client_id_and_unknown_ids_are_not_found() {
    let h = start_with(EmulatorOptions {
        user_assigned: vec![USER.into()],
        ..EmulatorOptions::default()
    })
    .await;
    let resp = h
        .http
        .get(token_url(&h.emu.imds_endpoint, PUBLIC, Some(USER)))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body(resp).await["client_id"], USER);

    let resp = h
        .http
        .get(token_url(
            &h.emu.imds_endpoint,
            PUBLIC,
            Some("00000000-0000-0000-0000-000000000000"),
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":"invalid_request","error_description":"Identity not found"}"#
    );
    let counters = h.emu.control().counters();
    assert_eq!(
        counters.tokens_for(&IdentityRef::UserAssigned {
            client_id: USER.into()
        }),
        1
    );
    assert_eq!(counters.tokens_for(&IdentityRef::SystemAssigned), 0);
}

const USER_RESOURCE: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-web/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-web";

/// `GET …/oauth2/token` with `Metadata: true` and these query pairs; (status, body).
async fn imds_get(
    h: &emulator_support::Harness,
    pairs: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let resp = h
        .http
        .get(format!("{}/oauth2/token", h.emu.imds_endpoint))
        .query(&[("api-version", "2018-02-01"), ("resource", PUBLIC)])
        .query(pairs)
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), body(resp).await)
}

#[tokio::test]
async fn user_assigned_identity_known_by_resource_id_is_chosen_by_msi_res_id_only() {
    let h = start_with(EmulatorOptions {
        system_assigned: false,
        user_assigned: vec![USER_RESOURCE.into()],
        ..EmulatorOptions::default()
    })
    .await;
    // `msi_res_id` (URL-encoded by the query builder), in any case, and its alias `mi_res_id`.
    let (status, _) = imds_get(&h, &[("msi_res_id", USER_RESOURCE)]).await;
    assert_eq!(status, 200);
    let lower = USER_RESOURCE.to_ascii_lowercase();
    let (status, _) = imds_get(&h, &[("mi_res_id", lower.as_str())]).await;
    assert_eq!(status, 200);
    // Another resource id, a client id, or both selectors: refused.
    let other = USER_RESOURCE.replace("id-web", "id-api");
    let (status, b) = imds_get(&h, &[("msi_res_id", other.as_str())]).await;
    assert_eq!(
        (status, b["error_description"].as_str()),
        (400, Some("Identity not found"))
    );
    let (status, b) = imds_get(&h, &[("client_id", USER)]).await;
    assert_eq!(
        (status, b["error_description"].as_str()),
        (400, Some("Identity not found"))
    );
    let (status, b) = imds_get(&h, &[("client_id", USER), ("msi_res_id", USER_RESOURCE)]).await;
    assert_eq!(
        (status, b["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let counters = h.emu.control().counters();
    assert_eq!(
        counters.tokens_for(&IdentityRef::UserAssignedByResourceId {
            resource_id: USER_RESOURCE.into()
        }),
        2
    );
    assert_eq!(counters.tokens_for(&IdentityRef::SystemAssigned), 0);

    // One added at run time is known by resource id too.
    let added = USER_RESOURCE.replace("id-web", "id-added");
    h.emu.control().add_user_assigned_resource(&added);
    let (status, _) = imds_get(&h, &[("msi_res_id", added.as_str())]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn vm_without_a_system_identity_answers_identity_not_found() {
    let h = start_with(EmulatorOptions {
        system_assigned: false,
        ..EmulatorOptions::default()
    })
    .await;
    let resp = h
        .http
        .get(token_url(&h.emu.imds_endpoint, PUBLIC, None))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(body(resp).await["error_description"], "Identity not found");
}

#[tokio::test]
async fn imds_failures_404_410_429_500_can_be_injected() {
    let h = start().await;
    let control = h.emu.control();
    for status in [404u16, 410, 429, 500] {
        control.inject_fault(
            Fault::new(
                FaultTarget::Imds,
                "/metadata/identity/oauth2/token",
                FaultAction::Status {
                    status,
                    body: None,
                    retry_after: None,
                },
            )
            .times(1),
        );
        let resp = h
            .http
            .get(token_url(&h.emu.imds_endpoint, PUBLIC, None))
            .header("Metadata", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        assert!(body(resp).await["error"].is_string());
    }
    // Faults used up; the vault listener was never affected.
    let token = h.imds_token(PUBLIC, None).await;
    assert!(!token.is_empty());
    let c = control.counters();
    assert_eq!(
        c.server_requests(akv_sync_emulator::Server::Imds, Some(410)),
        1
    );
    assert_eq!(c.tokens_for(&IdentityRef::SystemAssigned), 1);
}

#[tokio::test]
async fn arc_challenges_with_a_key_file_then_issues_a_token_for_its_contents() {
    let h = start().await;
    let url = token_url(&h.emu.arc_endpoint, PUBLIC, None);
    let first = h
        .http
        .get(&url)
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 401);
    let challenge = first.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let path = challenge.strip_prefix("Basic realm=").unwrap();
    let path = std::path::Path::new(path);
    assert!(path.starts_with(h.dir.path().join("arc-tokens")));
    assert_eq!(path.extension().unwrap(), "key");
    let secret = std::fs::read_to_string(path).unwrap();
    assert!(secret.len() <= 4096);

    // A wrong secret is challenged again.
    let wrong = h
        .http
        .get(&url)
        .header("Metadata", "true")
        .header("Authorization", "Basic not-the-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let resp = h
        .http
        .get(&url)
        .header("Metadata", "true")
        .header("Authorization", format!("Basic {secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let b = body(resp).await;
    assert!(b["expires_on"].is_string());
    let token = b["access_token"].as_str().unwrap();

    // The Arc token opens the vault like any other.
    h.emu
        .control()
        .set_raw_secret("arcvault", "s", "hello", "")
        .unwrap();
    let resp = h
        .vault_get(
            "https://arcvault.vault.azure.net/secrets/s?api-version=7.4",
            Some(token),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(h.emu.control().counters().tokens_for(&IdentityRef::Arc), 1);
}

#[tokio::test]
async fn arc_also_requires_the_metadata_header() {
    let h = start().await;
    let resp = h
        .http
        .get(token_url(&h.emu.arc_endpoint, PUBLIC, None))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
