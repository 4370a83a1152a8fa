//! Building the agent's real ports (identity, Key Vault, material + store).

use std::sync::Arc;

use akv_sync_actors::{Observer, Ports, StatusSink};
use akv_sync_config::Settings;

use crate::azure::RequestObserver;
use crate::azure::identity::IdentityClient;
use crate::azure::net::NetConfig;
use crate::azure::vault::KeyVaultClient;
use crate::store::install::StoreInstaller;

/// The agent's tokio runtime (`run`, `once`; the scale bench builds the same one).
///
/// Also caps glibc's malloc arenas first (see [`limit_malloc_arenas`]): the runtime's
/// threads are what would each get one.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// At most this many glibc malloc arenas.
pub const MALLOC_ARENAS: i32 = 2;

/// glibc gives threads their own malloc arena, up to 8 per core. The agent's threads (tokio
/// workers, the blocking pool for conversions and store calls) allocate and free converted
/// certificates and HTTP buffers, and each arena keeps its own freed memory: with 10,000
/// certificates the process held ~85 MiB of RSS for ~30 MiB of live heap. Two arenas (one
/// per core on a small VM) bring that to ~55 MiB (see BENCHMARKS.md). No effect on other C
/// libraries.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets an allocator parameter; it is thread-safe and has no
        // memory-safety preconditions. The result (0 on failure) only says whether the
        // limit took effect, and the agent works either way.
        let _ = unsafe { nix::libc::mallopt(nix::libc::M_ARENA_MAX, MALLOC_ARENAS) };
    }
}

/// The real ports: managed identity, Key Vault, material + store.
pub type RealPorts = Ports<IdentityClient, KeyVaultClient, StoreInstaller>;

/// Build the agent's ports for `settings`.
pub fn ports(
    settings: &Settings,
    status: Arc<dyn StatusSink>,
    observer: Arc<dyn Observer>,
    requests: Option<Arc<dyn RequestObserver>>,
) -> anyhow::Result<RealPorts> {
    let net = NetConfig::from_env()?;
    // Two clients: the identity endpoint is never proxied, Key Vault honours HTTPS_PROXY.
    let identity = IdentityClient::new(net.client()?, &settings.identity);
    Ok(assemble(
        settings,
        net.vault_client()?,
        identity,
        status,
        observer,
        requests,
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
    let identity =
        IdentityClient::with_endpoint(net.client()?, &settings.identity, identity_endpoint);
    Ok(assemble(
        settings,
        net.vault_client()?,
        identity,
        status,
        observer,
        None,
    ))
}

fn assemble(
    settings: &Settings,
    http: reqwest::Client,
    identity: IdentityClient,
    status: Arc<dyn StatusSink>,
    observer: Arc<dyn Observer>,
    requests: Option<Arc<dyn RequestObserver>>,
) -> RealPorts {
    tracing::info!(endpoint = identity.endpoint(), "identity endpoint");
    Ports {
        tokens: Arc::new(identity.with_observer(requests.clone())),
        secrets: Arc::new(KeyVaultClient::new(http).with_observer(requests)),
        installer: Arc::new(StoreInstaller::new(settings)),
        status,
        observer,
    }
}
