//! Pointing the agent at a local emulator: what `AKV_SYNC_CONNECT_TO` and `AKV_SYNC_CA_FILE`
//! do through the environment, as values (the demo, tests and benches use this).

use std::net::SocketAddr;

use akv_sync_config::Cloud;

use crate::net::{ConnectTo, NetConfig};

/// Every cloud's vault hosts go to `vault_addr`; the emulator's CA is trusted.
pub fn net_for_emulator(vault_addr: SocketAddr, ca_pem: &str) -> NetConfig {
    NetConfig {
        connect_to: Cloud::ALL
            .iter()
            .map(|c| ConnectTo::new(&format!("*.{}", c.suffix()), vault_addr))
            .collect(),
        extra_ca_pem: Some(ca_pem.as_bytes().to_vec()),
        extra_ca_path: Some("<emulator CA>".into()),
        request_timeout: None,
        proxy: None,
    }
}

/// The same, as the environment variables a child `akv-sync` process reads.
pub fn env_for_emulator(
    vault_addr: SocketAddr,
    ca_file: &std::path::Path,
    imds_endpoint: &str,
) -> Vec<(String, String)> {
    let connect_to: Vec<String> = Cloud::ALL
        .iter()
        .map(|c| format!("*.{}={vault_addr}", c.suffix()))
        .collect();
    vec![
        (crate::net::ENV_CONNECT_TO.into(), connect_to.join(",")),
        (
            crate::net::ENV_CA_FILE.into(),
            ca_file.display().to_string(),
        ),
        (
            crate::identity::ENV_IMDS_ENDPOINT.into(),
            imds_endpoint.into(),
        ),
    ]
}
