//! Building the agent's real ports (identity, Key Vault, material + store).

use std::sync::Arc;

use akv_sync_actors::{Observer, Ports, StatusSink};
use akv_sync_config::Settings;

use crate::identity::IdentityClient;
use crate::install::StoreInstaller;
use crate::metrics::Metrics;
use crate::net::NetConfig;
use crate::vault::KeyVaultClient;

/// The real ports: managed identity, Key Vault, material + store.
pub type RealPorts = Ports<IdentityClient, KeyVaultClient, StoreInstaller>;

/// Build the agent's ports for `settings`.
pub fn ports(
    settings: &Settings,
    status: Arc<dyn StatusSink>,
    observer: Arc<dyn Observer>,
    metrics: Option<Arc<Metrics>>,
) -> anyhow::Result<RealPorts> {
    let http = NetConfig::from_env()?.client()?;
    let identity = IdentityClient::new(http.clone(), &settings.identity);
    Ok(assemble(
        settings, http, identity, status, observer, metrics,
    ))
}

/// Ports with an explicit network configuration and identity endpoint (the demo and tests
/// point them at the emulator this way instead of through the environment).
pub fn ports_with(
    settings: &Settings,
    net: &NetConfig,
    identity_endpoint: Option<String>,
    status: Arc<dyn StatusSink>,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<RealPorts> {
    let http = net.client()?;
    let identity =
        IdentityClient::with_endpoint(http.clone(), &settings.identity, identity_endpoint);
    Ok(assemble(settings, http, identity, status, observer, None))
}

fn assemble(
    settings: &Settings,
    http: reqwest::Client,
    identity: IdentityClient,
    status: Arc<dyn StatusSink>,
    observer: Arc<dyn Observer>,
    metrics: Option<Arc<Metrics>>,
) -> RealPorts {
    tracing::info!(endpoint = identity.endpoint(), "identity endpoint");
    Ports {
        tokens: Arc::new(identity.with_metrics(metrics.clone())),
        secrets: Arc::new(KeyVaultClient::new(http).with_metrics(metrics)),
        installer: Arc::new(StoreInstaller::new(settings)),
        status,
        observer,
    }
}
