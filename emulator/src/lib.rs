//! A local Azure for tests and the demo: Key Vault, IMDS and Arc emulator over real TLS.
//!
//! [`start`] binds four loopback listeners (ephemeral ports by default, so parallel tests never
//! collide) and serves until [`Emulator::shutdown`] (or drop):
//! - the **Key Vault data plane** over HTTPS with a CA generated at start (written to
//!   [`Emulator::ca_file`]); every vault is served on the one address, told apart by the `Host`
//!   header (`{vault}.vault.azure.net` and the other clouds' suffixes), each cloud's token
//!   audience enforced;
//! - **IMDS** and **Azure Arc HIMDS** token endpoints over plain HTTP;
//! - an **admin API** (plain HTTP, JSON) with the operations of [`Control`].
//!
//! The answers copy the real services' shapes (headers, error bodies, attributes), checked
//! against the recorded sessions in `conformance/recorded/`.

mod admin;
pub mod cli;
mod control;
mod counters;
mod data_plane;
mod faults;
pub mod generator;
mod reply;
mod server;
mod service;
mod spec;
mod state;
mod token_service;
mod x509;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use control::{Control, ControlError};
pub use counters::{Counters, RequestCount, TokenCount};
pub use faults::{Fault, FaultAction, FaultTarget, RateLimit};
pub use generator::{CertSpec, Format, KeyKind};
pub use service::Server;
pub use state::IdentityRef;

/// Host names the vault's server certificate covers.
pub const SERVER_NAMES: [&str; 7] = [
    "*.vault.azure.net",
    "*.vault.azure.cn",
    "*.vault.usgovcloudapi.net",
    "*.managedhsm.azure.net",
    "localhost",
    "127.0.0.1",
    "::1",
];

/// How to start the emulator. `Default` gives loopback, ephemeral ports, a fresh state
/// directory with a random name under the system temp dir (Arc key files inside it), no
/// seeds, a system-assigned identity and 24-hour tokens.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Address every listener binds (loopback unless `allow_remote`).
    pub listen: IpAddr,
    /// Accept a `listen` address other than loopback: the admin API has no authentication.
    pub allow_remote: bool,
    /// Ports; 0 = pick a free one.
    pub vault_port: u16,
    pub imds_port: u16,
    pub arc_port: u16,
    pub admin_port: u16,
    /// Where `ca.pem` is written: a folder that must not exist yet, created 0700.
    pub state_dir: PathBuf,
    /// Certificates created before the listeners open.
    pub seeds: Vec<Seed>,
    /// Where Arc challenge key files are written (HIMDS uses `/var/opt/azcmagent/tokens`);
    /// empty (the default): `arc-tokens` inside `state_dir`.
    pub arc_token_dir: PathBuf,
    /// Tenant named in challenges and tokens.
    pub tenant: String,
    /// Whether IMDS has a system-assigned identity (requests without `client_id`).
    pub system_assigned: bool,
    /// The user-assigned identities IMDS knows: client ids (asked for with `client_id`), and
    /// resource ids starting with `/subscriptions/` (asked for with `msi_res_id`; an identity
    /// given by resource id is known by that only).
    pub user_assigned: Vec<String>,
    /// Lifetime of issued tokens.
    pub token_lifetime: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            allow_remote: false,
            vault_port: 0,
            imds_port: 0,
            arc_port: 0,
            admin_port: 0,
            state_dir: default_state_dir(),
            seeds: Vec::new(),
            arc_token_dir: PathBuf::new(),
            tenant: "12345678-1234-1234-1234-123456789012".to_owned(),
            system_assigned: true,
            user_assigned: Vec::new(),
            token_lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

/// `$TMPDIR/akv-sync-emulator-<32 random hex digits>`: no other user can guess it and create
/// it first (and [`start`] refuses a folder that exists).
fn default_state_dir() -> PathBuf {
    let name = hex::encode(rand::random::<[u8; 16]>());
    std::env::temp_dir().join(format!("akv-sync-emulator-{name}"))
}

/// Create `dir` afresh, mode 0700 (its parents as needed); an existing `dir` is refused, for
/// in a shared folder such as /tmp someone else may have made it, with links planted in it.
fn create_state_dir(dir: &std::path::Path) -> Result<(), EmulatorError> {
    use std::os::unix::fs::DirBuilderExt;
    let failed = |source| EmulatorError::StateDir {
        path: dir.to_path_buf(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => EmulatorError::StateDirExists {
                path: dir.to_path_buf(),
            },
            _ => failed(source),
        })
}

/// Write a new file `path` (never an existing file or a link), mode 0644.
fn write_new(path: &std::path::Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

/// A certificate to create at start: `VAULT/NAME[:pem|pkcs12]` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub vault: String,
    pub name: String,
    pub spec: CertSpec,
}

/// Why a `--seed` value could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error("seed {0:?} has no '/': write VAULT/NAME[:pem|pkcs12]")]
    MissingSlash(String),
    #[error("seed {0:?} has an empty vault or certificate name: write VAULT/NAME[:pem|pkcs12]")]
    EmptyName(String),
    #[error("seed {seed:?} asks for format {format:?}: use pem or pkcs12")]
    UnknownFormat { seed: String, format: String },
}

impl FromStr for Seed {
    type Err = SeedError;

    fn from_str(s: &str) -> Result<Seed, SeedError> {
        let (path, format) = match s.rsplit_once(':') {
            Some((path, f)) => {
                let format = match f.to_ascii_lowercase().as_str() {
                    "pem" => Format::Pem,
                    "pkcs12" | "pfx" => Format::Pkcs12,
                    _ => {
                        return Err(SeedError::UnknownFormat {
                            seed: s.to_owned(),
                            format: f.to_owned(),
                        });
                    }
                };
                (path, format)
            }
            None => (s, Format::Pkcs12),
        };
        let (vault, name) = path
            .split_once('/')
            .ok_or_else(|| SeedError::MissingSlash(s.to_owned()))?;
        if vault.is_empty() || name.is_empty() {
            return Err(SeedError::EmptyName(s.to_owned()));
        }
        Ok(Seed {
            vault: vault.to_owned(),
            name: name.to_owned(),
            spec: CertSpec {
                format,
                subject_cn: name.to_owned(),
                ..CertSpec::default()
            },
        })
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the state folder {path} already exists; give a new one (it is created 0700, so that no one else can plant files in it)"
    )]
    StateDirExists { path: PathBuf },
    #[error(
        "refusing to listen on {addr}: the admin API has no authentication; use a loopback address, or --allow-remote"
    )]
    RemoteListen { addr: IpAddr },
    #[error("cannot write the CA certificate to {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the TLS certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot create seed certificate {vault}/{name}: {source}")]
    Seed {
        vault: String,
        name: String,
        #[source]
        source: ControlError,
    },
}

/// A running emulator. Dropping it stops the listeners too; [`Emulator::shutdown`] also waits
/// for every connection task to end.
pub struct Emulator {
    /// Serves every vault host name (HTTPS).
    pub vault_addr: SocketAddr,
    /// `http://IP:PORT/metadata/identity` (append `/oauth2/token`).
    pub imds_endpoint: String,
    /// `http://IP:PORT/metadata/identity` of the Arc HIMDS listener.
    pub arc_endpoint: String,
    /// PEM file of the CA that issued the vault's server certificate.
    pub ca_file: PathBuf,
    pub ca_pem: String,
    /// `http://IP:PORT` of the admin API (endpoints under `/admin/`).
    pub admin_url: String,
    pub tenant: String,
    control: Control,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("vault_addr", &self.vault_addr)
            .field("imds_endpoint", &self.imds_endpoint)
            .field("arc_endpoint", &self.arc_endpoint)
            .field("ca_file", &self.ca_file)
            .field("admin_url", &self.admin_url)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// A handle to change what is served, from this process.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// The one JSON object `akv-sync emulator` prints at start.
    pub fn startup_info(&self) -> serde_json::Value {
        serde_json::json!({
            "vault_addr": self.vault_addr.to_string(),
            "imds_endpoint": self.imds_endpoint,
            "arc_endpoint": self.arc_endpoint,
            "ca_file": self.ca_file,
            "admin_url": self.admin_url,
            "tenant": self.tenant,
        })
    }

    /// Stop accepting, close every connection, and wait for all tasks to end.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

struct Tls {
    ca_pem: String,
    server_config: rustls::ServerConfig,
}

/// A CA (P-256) and a server certificate for [`SERVER_NAMES`] issued by it.
fn make_tls() -> Result<Tls, EmulatorError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("akv-sync emulator CA {}", &generator::uuid_like()[..8]),
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca = rcgen::CertifiedIssuer::self_signed(
        ca_params,
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
    )?;

    let mut params = CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "vault.azure.net");
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &ca)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), ca.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: ca.pem(),
        server_config,
    })
}

async fn bind(what: &'static str, ip: IpAddr, port: u16) -> Result<TcpListener, EmulatorError> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| EmulatorError::Bind { what, addr, source })
}

/// Start the emulator: generate its CA, write `ca.pem`, create the seeds, open the listeners.
pub async fn start(opts: EmulatorOptions) -> Result<Emulator, EmulatorError> {
    if !opts.listen.is_loopback() && !opts.allow_remote {
        return Err(EmulatorError::RemoteListen { addr: opts.listen });
    }
    create_state_dir(&opts.state_dir)?;
    let tls = make_tls()?;
    let ca_file = opts.state_dir.join("ca.pem");
    write_new(&ca_file, tls.ca_pem.as_bytes()).map_err(|source| EmulatorError::CaFile {
        path: ca_file.clone(),
        source,
    })?;
    let arc_token_dir = if opts.arc_token_dir.as_os_str().is_empty() {
        opts.state_dir.join("arc-tokens")
    } else {
        opts.arc_token_dir.clone()
    };

    let shared = Arc::new(state::EmulatorState::new(
        state::Fixed {
            tenant: opts.tenant.clone(),
            arc_token_dir,
        },
        opts.system_assigned,
        &opts.user_assigned,
        opts.token_lifetime,
    ));
    let control = Control {
        shared: shared.clone(),
    };
    let seeds = opts.seeds.clone();
    let seeding = control.clone();
    tokio::task::spawn_blocking(move || {
        for seed in seeds {
            seeding
                .create_certificate(&seed.vault, &seed.name, seed.spec)
                .map_err(|source| EmulatorError::Seed {
                    vault: seed.vault,
                    name: seed.name,
                    source,
                })?;
        }
        Ok::<(), EmulatorError>(())
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;

    let vault_l = bind("the vault (HTTPS)", opts.listen, opts.vault_port).await?;
    let imds_l = bind("IMDS", opts.listen, opts.imds_port).await?;
    let arc_l = bind("Arc HIMDS", opts.listen, opts.arc_port).await?;
    let admin_l = bind("the admin API", opts.listen, opts.admin_port).await?;
    let local = |l: &TcpListener| {
        l.local_addr()
            .unwrap_or_else(|_| SocketAddr::new(opts.listen, 0))
    };
    let (vault_addr, imds_addr, arc_addr, admin_addr) = (
        local(&vault_l),
        local(&imds_l),
        local(&arc_l),
        local(&admin_l),
    );

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.server_config));
    for (listener, tls, which) in [
        (vault_l, Some(acceptor), Server::Vault),
        (imds_l, None, Server::Imds),
        (arc_l, None, Server::Arc),
        (admin_l, None, Server::Admin),
    ] {
        tracker.spawn(server::serve(
            listener,
            tls,
            which,
            shared.clone(),
            cancel.clone(),
            tracker.clone(),
        ));
    }
    tracing::info!(%vault_addr, %imds_addr, %arc_addr, %admin_addr, "emulator: listening");
    Ok(Emulator {
        vault_addr,
        imds_endpoint: format!("http://{imds_addr}/metadata/identity"),
        arc_endpoint: format!("http://{arc_addr}/metadata/identity"),
        ca_file,
        ca_pem: tls.ca_pem,
        admin_url: format!("http://{admin_addr}"),
        tenant: opts.tenant,
        control,
        cancel,
        tracker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn emulators_started_with_defaults_keep_their_own_ca_file() {
        let mut opts = EmulatorOptions::default();
        let dir = opts.state_dir.clone();
        opts.arc_token_dir = dir.join("arc");
        let a = start(opts).await.unwrap();
        let b = start(EmulatorOptions::default()).await.unwrap();
        assert_ne!(a.ca_file, b.ca_file);
        assert_eq!(std::fs::read_to_string(&a.ca_file).unwrap(), a.ca_pem);
        assert_ne!(a.ca_pem, b.ca_pem);
        let dirs = [dir, b.ca_file.parent().unwrap().to_owned()];
        a.shutdown().await;
        b.shutdown().await;
        for d in dirs {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn seed_reads_vault_name_and_format() {
        let s: Seed = "v1/c1:pem".parse().unwrap();
        assert_eq!((s.vault.as_str(), s.name.as_str()), ("v1", "c1"));
        assert_eq!(s.spec.format, Format::Pem);
        let s: Seed = "v1/c1".parse().unwrap();
        assert_eq!(s.spec.format, Format::Pkcs12);
        assert_eq!(
            "v1c1".parse::<Seed>(),
            Err(SeedError::MissingSlash("v1c1".into()))
        );
        assert!(matches!(
            "v1/c1:der".parse::<Seed>(),
            Err(SeedError::UnknownFormat { .. })
        ));
        assert!(matches!(
            "/c1".parse::<Seed>(),
            Err(SeedError::EmptyName(_))
        ));
    }
}
