//! `akv-sync demo`: the README's main command. Starts the emulator with sample certificates in
//! two vaults, runs the agent against it into a local folder, shows the initial sync, prints
//! the resulting tree, rotates one certificate and shows the link move, then keeps running
//! until Ctrl-C (or exits with `--once`). Needs no root and no Azure account.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use akv_sync_actors::{Agent, NewVersion, Observer, State};
use anyhow::Context;
use tokio::sync::mpsc;

use crate::azure::net::net_for_emulator;
use crate::cli::ports::ports_with;
use crate::log::{self, LogArgs, LogFormat};
use crate::status::LogStatus;
use akv_sync_emulator::generator::{CertSpec, Format, KeyKind};
use akv_sync_emulator::{EmulatorOptions, Seed};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the demo: settings.json, the store, the emulator's CA.
    #[arg(long, default_value = "demo-store")]
    pub dir: PathBuf,
    /// Exit after the rotation instead of running until Ctrl-C.
    #[arg(long)]
    pub once: bool,
    /// Log filter for the agent's own log lines (they go to stderr).
    #[arg(long, default_value = "warn")]
    pub log: String,
}

/// Forwards the writer's installs to the demo.
struct Installs(mpsc::UnboundedSender<Vec<NewVersion>>);
impl Observer for Installs {
    fn installed_batch(&self, batch: &[NewVersion]) {
        let _ = self.0.send(batch.to_vec());
    }
}

fn spec(key: KeyKind, chain_len: u8, format: Format, cn: &str) -> CertSpec {
    CertSpec {
        key,
        chain_len,
        format,
        subject_cn: cn.to_owned(),
        ..CertSpec::default()
    }
}

/// The sample certificates: (vault, name, spec).
fn samples() -> Vec<(&'static str, &'static str, CertSpec)> {
    vec![
        (
            "contoso",
            "web",
            spec(KeyKind::Rsa2048, 3, Format::Pkcs12, "www.contoso.com"),
        ),
        (
            "contoso",
            "api",
            spec(KeyKind::EcP256, 2, Format::Pem, "api.contoso.com"),
        ),
        (
            "fabrikam",
            "portal",
            spec(KeyKind::Rsa2048, 1, Format::Pkcs12, "portal.fabrikam.com"),
        ),
        (
            "fabrikam",
            "mtls",
            spec(KeyKind::EcP384, 2, Format::Pem, "mtls.fabrikam.com"),
        ),
    ]
}

fn settings_json(store: &Path) -> String {
    let certs: Vec<serde_json::Value> = samples()
        .iter()
        .map(|(vault, name, _)| {
            let mut c = serde_json::json!({
                "url": format!("https://{vault}.vault.azure.net/secrets/{name}"),
                "certificateStoreLocation": store.display().to_string(),
            });
            if *name == "web" {
                c["customSymbolicLinkName"] = "www-current".into();
            }
            c
        })
        .collect();
    let settings = serde_json::json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "5",
            "requireInitialSync": true,
            "observedCertificates": certs,
        },
        "akvSyncSettings": { "pollingJitter": 0.2 },
    });
    serde_json::to_string_pretty(&settings).expect("json")
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    log::init(
        &LogArgs {
            log_format: LogFormat::Text,
            log: args.log.clone(),
        },
        None,
        None,
    );
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(demo(dir, args.once))
}

async fn demo(dir: PathBuf, once: bool) -> anyhow::Result<ExitCode> {
    let store = dir.join("store");
    println!("akv-sync demo — everything runs on this machine, on loopback.\n");

    let seeds = samples()
        .into_iter()
        .map(|(vault, name, spec)| Seed {
            vault: vault.into(),
            name: name.into(),
            spec,
        })
        .collect();
    let emulator = akv_sync_emulator::start(EmulatorOptions {
        state_dir: dir.join("emulator"),
        arc_token_dir: dir.join("emulator/arc-tokens"),
        seeds,
        ..EmulatorOptions::default()
    })
    .await
    .context("cannot start the emulator")?;
    println!(
        "1. Emulator started: Key Vault (TLS) at {}, IMDS at {}",
        emulator.vault_addr, emulator.imds_endpoint
    );
    println!("   vaults: contoso (web: PKCS#12 RSA chain of 3, api: PEM EC P-256)");
    println!("           fabrikam (portal: PKCS#12 self-signed RSA, mtls: PEM EC P-384)\n");

    let settings_path = dir.join("settings.json");
    std::fs::write(&settings_path, settings_json(&store))?;
    let parsed = super::settings_file::read(&settings_path, false)
        .map_err(|e| anyhow::anyhow!("demo settings invalid: {e:?}"))?
        .parsed;
    let settings = parsed.settings;
    println!(
        "2. Settings written to {} (the extension's own schema,",
        settings_path.display()
    );
    println!("   real vault URLs such as https://contoso.vault.azure.net/secrets/web).\n");

    let (tx, mut installs) = mpsc::unbounded_channel();
    let net = net_for_emulator(emulator.vault_addr, &emulator.ca_pem);
    let ports = ports_with(
        &settings,
        &net,
        Some(emulator.imds_endpoint.clone()),
        Arc::new(LogStatus),
        Arc::new(Installs(tx)),
    )?;
    println!("3. Agent started (requireInitialSync: true); initial sync:");
    let agent = Agent::start(&settings, ports);
    let mut view = agent.gate().subscribe();
    let mut last = String::new();
    let status = loop {
        let v = view.borrow_and_update().clone();
        if v.status.message != last {
            println!("   [{}] {}", v.status.state.as_str(), v.status.message);
            last = v.status.message.clone();
        }
        if v.status.state != State::Transitioning {
            break v.status;
        }
        if view.changed().await.is_err() {
            break v.status;
        }
    };
    if status.state != State::Success {
        agent.shutdown().await;
        emulator.shutdown().await;
        anyhow::bail!("initial sync did not succeed: {}", status.message);
    }

    println!("\n4. The store, {}:", store.display());
    print_tree(&store)?;
    for row in crate::cli::status::rows(&settings) {
        println!(
            "   {:<16} version {}  expires {}",
            row.certificate,
            row.version.as_deref().unwrap_or("-"),
            row.not_after.as_deref().unwrap_or("-")
        );
    }

    // Drain the initial installs before rotating.
    while installs.try_recv().is_ok() {}
    let control = emulator.control();
    let new_version = control
        .rotate("contoso", "web")
        .context("rotate contoso/web")?;
    println!("\n5. Rotated contoso/web in the vault: new version {new_version}.");
    println!("   Waiting for the agent's next poll (every 5 s, ±20 %)…");
    let moved = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(batch) = installs.recv().await {
            if let Some(i) = batch.iter().find(|i| i.version == new_version) {
                return Some(i.clone());
            }
        }
        None
    })
    .await;
    match moved {
        Ok(Some(i)) => {
            println!(
                "   The link moved: contoso.web -> contoso.web.{} (previous {} kept).",
                i.version,
                i.previous_version.as_deref().unwrap_or("-")
            );
            println!(
                "   www-current -> {}",
                std::fs::read_link(store.join("www-current"))?.display()
            );
        }
        _ => println!("   The rotation was not picked up within 60 s."),
    }

    // Name this very binary: on a fresh clone (`cargo run -- demo`) `akv-sync` is not on PATH.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "akv-sync".to_owned());
    println!("\nTry, in another terminal:");
    println!("   {exe} status --settings {}", settings_path.display());
    println!("   {exe} validate --settings {}", settings_path.display());
    if !once {
        println!("\nThe agent keeps polling; press Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
    }
    agent.shutdown().await;
    emulator.shutdown().await;
    println!("Stopped. The files stay in {}.", store.display());
    Ok(ExitCode::SUCCESS)
}

fn print_tree(store: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(store)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(e.path())?;
        if meta.file_type().is_symlink() {
            println!("   {name} -> {}", std::fs::read_link(e.path())?.display());
        } else {
            println!(
                "   {name}  ({} bytes, mode {:o})",
                meta.len(),
                meta.permissions().mode() & 0o777
            );
        }
    }
    Ok(())
}
