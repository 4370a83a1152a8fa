//! The agent's HTTP client against the emulator: trust, host mapping, HTTP/2.

use akv_sync::azure::net::net_for_emulator;
use akv_sync_emulator::EmulatorOptions;

#[tokio::test]
async fn the_vault_client_speaks_http2_where_offered_and_verifies_the_vault_name() {
    let dir = tempfile::tempdir().unwrap();
    let em = akv_sync_emulator::start(EmulatorOptions {
        state_dir: dir.path().join("emulator"),
        arc_token_dir: dir.path().join("arc"),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let client = net_for_emulator(em.vault_addr, &em.ca_pem)
        .client()
        .unwrap();
    let resp = client
        .get("https://myvault.vault.azure.net/secrets/c1?api-version=7.4")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "the unauthenticated challenge");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);

    // Without the emulator's CA the same request fails verification.
    let mut untrusted = net_for_emulator(em.vault_addr, &em.ca_pem);
    untrusted.extra_ca_pem = None;
    let err = untrusted
        .client()
        .unwrap()
        .get("https://myvault.vault.azure.net/secrets/c1?api-version=7.4")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}
