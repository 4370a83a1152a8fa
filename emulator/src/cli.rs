//! `akv-sync emulator`: run the local Key Vault + IMDS + Arc emulator until SIGINT/SIGTERM.
//!
//! Prints one JSON line on stdout once every listener is open (`vault_addr`, `imds_endpoint`,
//! `arc_endpoint`, `ca_file`, `admin_url`, `tenant`), so scripts can read it and go on.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::{EmulatorOptions, KeyKind, Seed};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Create a certificate at start (repeatable): VAULT/NAME, optionally :pem or :pkcs12
    /// (the default), e.g. `--seed myvault/web:pem`.
    #[arg(long = "seed", value_name = "VAULT/NAME[:pem|pkcs12]")]
    pub seeds: Vec<Seed>,
    /// Key of the seeded certificates: rsa2048 (Key Vault's default), rsa3072, rsa4096,
    /// ecP256, ecP384, ecP521 or ecP256K (secp256k1). RSA generation is slow in debug builds.
    #[arg(long, value_name = "KIND", default_value = "rsa2048")]
    pub seed_key: KeyKind,
    /// Directory for the emulator's files (its CA certificate, `ca.pem`); it must not exist
    /// yet and is created 0700. Default: `$TMPDIR/akv-sync-emulator-<random>`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Address to listen on; other than loopback only with --allow-remote.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub listen: IpAddr,
    /// Accept a non-loopback --listen address (the admin API has no authentication).
    #[arg(long)]
    pub allow_remote: bool,
    /// Port of the Key Vault (HTTPS) listener; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub vault_port: u16,
    /// Port of the IMDS listener; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub imds_port: u16,
    /// Port of the Arc HIMDS listener; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub arc_port: u16,
    /// Port of the admin API; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub admin_port: u16,
    /// Where Arc challenge key files are written; default `arc-tokens` in the state folder
    /// (HIMDS itself uses /var/opt/azcmagent/tokens).
    #[arg(long, value_name = "DIR")]
    pub arc_token_dir: Option<PathBuf>,
    /// A user-assigned identity IMDS knows (repeatable): its client id (asked for with
    /// `client_id=`), or its resource id `/subscriptions/…/userAssignedIdentities/NAME` (asked
    /// for with `msi_res_id=` only).
    #[arg(long = "user-assigned", value_name = "CLIENT_ID|RESOURCE_ID")]
    pub user_assigned: Vec<String>,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 86400)]
    pub token_lifetime: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    // Listen for signals before announcing, so a SIGTERM right after the line is not lost.
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let defaults = EmulatorOptions::default();
    let opts = EmulatorOptions {
        listen: args.listen,
        allow_remote: args.allow_remote,
        vault_port: args.vault_port,
        imds_port: args.imds_port,
        arc_port: args.arc_port,
        admin_port: args.admin_port,
        state_dir: args.state_dir.unwrap_or(defaults.state_dir.clone()),
        seeds: args
            .seeds
            .into_iter()
            .map(|mut seed| {
                seed.spec.key = args.seed_key;
                seed
            })
            .collect(),
        arc_token_dir: args.arc_token_dir.unwrap_or_default(),
        user_assigned: args.user_assigned,
        token_lifetime: std::time::Duration::from_secs(args.token_lifetime),
        ..defaults
    };
    let emulator = crate::start(opts)
        .await
        .context("cannot start the emulator")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", emulator.startup_info()).context("cannot write to stdout")?;
        out.flush().context("cannot write to stdout")?;
    }
    tokio::select! {
        _ = term.recv() => tracing::info!("emulator: SIGTERM, stopping"),
        _ = int.recv() => tracing::info!("emulator: SIGINT, stopping"),
    }
    emulator.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
