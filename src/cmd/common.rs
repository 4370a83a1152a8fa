//! Building the agent's real ports (identity, Key Vault, material + store).

use std::sync::Arc;

use akv_sync_actors::{Observer, Ports, StatusSink};
use akv_sync_config::Settings;

use crate::identity::IdentityClient;
use crate::install::StoreInstaller;
use crate::net::NetConfig;
use crate::vault::KeyVaultClient;

/// The real ports: managed identity, Key Vault, material + store.
pub type RealPorts = Ports<IdentityClient, KeyVaultClient, StoreInstaller>;

/// Build the agent's ports for `settings`.
pub fn ports(
    settings: &Settings,
    status: Arc<dyn StatusSink>,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<RealPorts> {
    let http = NetConfig::from_env()?.client()?;
    let identity = IdentityClient::new(http.clone(), &settings.identity);
    tracing::info!(endpoint = identity.endpoint(), "identity endpoint");
    Ok(Ports {
        tokens: Arc::new(identity),
        secrets: Arc::new(KeyVaultClient::new(http)),
        installer: Arc::new(StoreInstaller::new(settings)),
        status,
        observer,
    })
}
