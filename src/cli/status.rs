//! `akv-sync status`: what is installed for each observed certificate — the version the link
//! points at, its expiry, and the links. Reads only; works while the agent runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use akv_sync_config::layout;
use serde::Serialize;

use crate::cli::settings_file::load_or_exit;
use crate::observe::expiry::leaf_not_after;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Settings file.
    #[arg(long, env = "AKV_SYNC_SETTINGS")]
    pub settings: PathBuf,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// One certificate's installed state.
#[derive(Debug, Serialize)]
pub struct Row {
    pub certificate: String,
    pub link: PathBuf,
    pub installed: bool,
    pub version: Option<String>,
    pub file: Option<PathBuf>,
    pub not_after: Option<String>,
    pub days_left: Option<i64>,
    pub custom_link: Option<PathBuf>,
    pub custom_link_target: Option<String>,
}

fn link_target(link: &Path) -> Option<String> {
    std::fs::read_link(link)
        .ok()
        .map(|t| t.display().to_string())
}

pub fn rows(settings: &akv_sync_config::Settings) -> Vec<Row> {
    let now = crate::clock::now_unix();
    settings
        .certificates
        .iter()
        .map(|c| {
            let stem = c.url.stem();
            let link = c.link_path();
            let target = link_target(&link);
            let version = target
                .as_deref()
                .and_then(|t| layout::version_in(&stem, t))
                .map(str::to_owned);
            let file = target.as_ref().map(|t| c.store.join(t));
            let not_after = file.as_deref().and_then(leaf_not_after);
            let custom_link = c.custom_link_path();
            Row {
                certificate: c.secret_id(),
                installed: version.is_some() && not_after.is_some(),
                link,
                version,
                file,
                not_after: not_after.map(|t| {
                    humantime::format_rfc3339_seconds(
                        UNIX_EPOCH + Duration::from_secs(t.max(0) as u64),
                    )
                    .to_string()
                }),
                days_left: not_after.map(|t| (t - now).div_euclid(86_400)),
                custom_link_target: custom_link.as_deref().and_then(link_target),
                custom_link,
            }
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let parsed = match load_or_exit(&args.settings) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let rows = rows(&parsed.parsed.settings);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            match (&r.version, &r.not_after) {
                (Some(v), Some(exp)) => {
                    let mut line = format!(
                        "{}  {v}  expires {exp} ({} days)  {} -> {}.{v}",
                        r.certificate,
                        r.days_left.unwrap_or_default(),
                        r.link.display(),
                        r.link
                            .file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    );
                    if let (Some(l), Some(t)) = (&r.custom_link, &r.custom_link_target) {
                        line.push_str(&format!("  {} -> {t}", l.display()));
                    }
                    println!("{line}");
                }
                _ => println!(
                    "{}  not installed  ({} missing or unreadable)",
                    r.certificate,
                    r.link.display()
                ),
            }
        }
    }
    let missing = rows.iter().filter(|r| !r.installed).count();
    Ok(if missing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
