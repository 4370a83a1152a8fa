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

/// The human view: a header and one aligned row per certificate (columns padded to the
/// widest cell, so long certificate names and paths stay readable).
pub fn table(rows: &[Row]) -> String {
    const HEADER: [&str; 6] = [
        "CERTIFICATE",
        "VERSION",
        "EXPIRES",
        "DAYS",
        "LINK",
        "CUSTOM LINK",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let custom = match (&r.custom_link, &r.custom_link_target) {
                (Some(l), Some(t)) => format!("{} -> {t}", l.display()),
                _ => "-".to_owned(),
            };
            match (&r.version, &r.not_after) {
                (Some(v), Some(exp)) => [
                    r.certificate.clone(),
                    v.clone(),
                    exp.clone(),
                    r.days_left.unwrap_or_default().to_string(),
                    r.link.display().to_string(),
                    custom,
                ],
                _ => [
                    r.certificate.clone(),
                    "not installed".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    format!("{} (missing or unreadable)", r.link.display()),
                    custom,
                ],
            }
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADER.map(str::to_owned);
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(c);
            line.extend(std::iter::repeat_n(' ', w - c.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
        print!("{}", table(&rows));
    }
    // Refused by the settings: not in the table (they may have no usable URL), never synced.
    let refused = crate::cli::settings_file::refused(&parsed.parsed);
    for (id, why) in &refused {
        eprintln!("refused by the settings, not synced: {id}: {why}");
    }
    let missing = rows.iter().filter(|r| !r.installed).count() + refused.len();
    Ok(if missing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cert: &str, version: Option<&str>) -> Row {
        Row {
            certificate: cert.to_owned(),
            link: PathBuf::from(format!("/store/{cert}")),
            installed: version.is_some(),
            version: version.map(str::to_owned),
            file: None,
            not_after: version.map(|_| "2027-01-01T00:00:00Z".to_owned()),
            days_left: version.map(|_| 28),
            custom_link: None,
            custom_link_target: None,
        }
    }

    #[test]
    fn table_has_a_header_and_aligned_columns() {
        let rows = [
            row("vault.a-very-long-certificate-name", Some(&"a".repeat(32))),
            row("v.b", None),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("CERTIFICATE"), "{text}");
        // Every column starts at the same character offset on every line.
        for col in ["VERSION", "EXPIRES", "DAYS", "LINK"] {
            let at = lines[0].find(col).unwrap();
            for l in &lines[1..] {
                assert_eq!(&l[at - 2..at], "  ", "column {col} not aligned:\n{text}");
                assert_ne!(&l[at..at + 1], " ", "column {col} not aligned:\n{text}");
            }
        }
        assert!(lines[2].contains("not installed"), "{text}");
    }
}
