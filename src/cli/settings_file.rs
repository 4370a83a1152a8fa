//! Reading a settings file for the commands that take `--settings`.

use std::path::Path;

use akv_sync_config::{Parsed, Schema, Wrapper};

/// Settings could not be used; every problem was already printed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read settings file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{count} error(s) in settings file {path}")]
    Invalid { path: String, count: usize },
}

/// Log which wrapper and schema were found, and every warning.
pub fn log_parsed(parsed: &Parsed) {
    tracing::debug!(
        wrapper = wrapper_name(parsed.settings.wrapper),
        schema = schema_name(parsed.settings.schema),
        "settings found"
    );
    for w in &parsed.warnings {
        tracing::warn!(path = %w.path, "{}", w.message);
    }
}

/// Read and parse a settings file; print every error to stderr.
pub fn load_settings(path: &Path) -> Result<Parsed, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Unreadable {
        path: path.display().to_string(),
        source,
    })?;
    match akv_sync_config::parse(&text) {
        Ok(parsed) => Ok(parsed),
        Err(errors) => {
            for e in &errors {
                eprintln!("{}: {e}", path.display());
            }
            Err(LoadError::Invalid {
                path: path.display().to_string(),
                count: errors.len(),
            })
        }
    }
}

pub fn wrapper_name(w: Wrapper) -> &'static str {
    match w {
        Wrapper::Bare => "bare settings object",
        Wrapper::ArmResource => "ARM extension resource",
        Wrapper::HandlerSettings => "VM-agent handler settings",
    }
}

pub fn schema_name(s: Schema) -> &'static str {
    match s {
        Schema::V2 => "1.x/2.x",
        Schema::V3 => "3.x",
    }
}

/// [`load_settings`] for a command: the settings, or the exit code 2 after saying why.
pub fn load_or_exit(path: &Path) -> Result<Parsed, std::process::ExitCode> {
    load_settings(path).map_err(|e| {
        eprintln!("akv-sync: {e}");
        std::process::ExitCode::from(2)
    })
}
