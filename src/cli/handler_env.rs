//! `HandlerEnvironment.json`: the folders the VM agent gives an extension (log, config,
//! status). Its own module so the handler's commands and its service both read it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The parts of `HandlerEnvironment.json` we use.
#[derive(Debug, Clone, Deserialize)]
pub struct HandlerEnvironment {
    #[serde(rename = "logFolder")]
    pub log_folder: PathBuf,
    #[serde(rename = "configFolder")]
    pub config_folder: PathBuf,
    #[serde(rename = "statusFolder")]
    pub status_folder: PathBuf,
}

#[derive(Deserialize)]
struct EnvEntry {
    #[serde(rename = "handlerEnvironment")]
    handler_environment: HandlerEnvironment,
}

/// Read `HandlerEnvironment.json` from `dir`.
pub fn read_environment(dir: &Path) -> anyhow::Result<HandlerEnvironment> {
    let path = dir.join("HandlerEnvironment.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let entries: Vec<EnvEntry> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a HandlerEnvironment array", path.display()))?;
    entries
        .into_iter()
        .next()
        .map(|e| e.handler_environment)
        .with_context(|| format!("{} is an empty array", path.display()))
}
