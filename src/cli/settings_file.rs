//! THE settings reader: every command that takes a settings file (`run`, `once`, `status`,
//! `validate`, `handler enable`, the demo, a SIGHUP reload) reads it with [`read`], so they all
//! give a file the same verdict.
//!
//! Reading is: the bytes (any I/O error names the file) → text ([`akv_sync_config::decode`]:
//! UTF-8, or UTF-16 with a warning) → the checked model ([`akv_sync_config::parse`]) → the
//! checks only this host can make ([`host_checks`]: that each ACL user and group exists, by
//! name or by numeric id, and which folders keep a granted reader out). A host-check error
//! belongs to one certificate: `validate` reports it and exits 2; the daemon logs it and syncs
//! the other certificates (the store refuses that certificate's grant at install).

use std::path::{Path, PathBuf};

use akv_sync_config::{
    ConfigError, Detected, ErrorKind, ObservedCertificate, Parsed, Principal, Settings, Warning,
};

/// Settings that cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum SettingsFileError {
    #[error("cannot read settings file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} error(s) in settings file {}", errors.len(), path.display())]
    Invalid {
        path: PathBuf,
        errors: Vec<ConfigError>,
        /// The wrapper and schema that could still be told apart.
        detected: Detected,
    },
}

impl SettingsFileError {
    /// One line naming the file and every error in it (for a status file or stderr).
    pub fn detail(&self) -> String {
        match self {
            SettingsFileError::Invalid { path, errors, .. } => {
                let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                format!(
                    "invalid settings in {}: {}",
                    path.display(),
                    list.join("; ")
                )
            }
            other => other.to_string(),
        }
    }
}

/// Usable settings: the model, every warning (decoding, parsing, host), and the errors of
/// single certificates that only this host could find.
#[derive(Debug)]
pub struct Loaded {
    pub parsed: Parsed,
    pub host_errors: Vec<ConfigError>,
}

/// Read, decode, parse and (with `host`) check the settings file at `path`.
pub fn read(path: &Path, host: bool) -> Result<Loaded, SettingsFileError> {
    let bytes = std::fs::read(path).map_err(|source| SettingsFileError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |errors, detected| SettingsFileError::Invalid {
        path: path.to_owned(),
        errors,
        detected,
    };
    let (text, decode_warnings) =
        akv_sync_config::decode(bytes).map_err(|e| invalid(vec![e], Detected::default()))?;
    let mut parsed = akv_sync_config::parse(&text)
        .map_err(|errors| invalid(errors, akv_sync_config::detect(&text)))?;
    parsed.warnings.splice(0..0, decode_warnings);
    let host_errors = if host {
        let (errors, warnings) = host_checks(&parsed.settings);
        parsed.warnings.extend(warnings);
        errors
    } else {
        Vec::new()
    };
    Ok(Loaded {
        parsed,
        host_errors,
    })
}

/// [`read`] for the agent's commands: every error printed to stderr, the settings or the
/// error.
pub fn load_settings(path: &Path) -> Result<Loaded, SettingsFileError> {
    read(path, true).inspect_err(|e| {
        if let SettingsFileError::Invalid { errors, .. } = e {
            for err in errors {
                eprintln!("{}: {err}", path.display());
            }
        }
    })
}

/// [`load_settings`] for a command: the settings, or the exit code 2 after saying why.
pub fn load_or_exit(path: &Path) -> Result<Loaded, std::process::ExitCode> {
    load_settings(path).map_err(|e| {
        eprintln!("akv-sync: {e}");
        std::process::ExitCode::from(2)
    })
}

/// Log which wrapper and schema were found, every warning, and each certificate's host error.
pub fn log_parsed(loaded: &Loaded) {
    let parsed = &loaded.parsed;
    tracing::debug!(
        wrapper = parsed.settings.wrapper.description(),
        schema = parsed.settings.schema.as_str(),
        "settings found"
    );
    for w in &parsed.warnings {
        tracing::warn!(path = %w.path, "{}", w.message);
    }
    for e in &parsed.refused {
        tracing::error!(path = %e.path, "{}; this certificate is not synced, the others are", e.message);
    }
    for e in &loaded.host_errors {
        tracing::error!(path = %e.path, "{}", e.message);
    }
}

/// The certificates the settings refused, one per entry: its JSON path (the id the status
/// names it by, as it may have no usable URL) and every mistake in it.
pub fn refused(parsed: &Parsed) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for e in &parsed.refused {
        let entry = akv_sync_config::certificate_entry(&e.path).unwrap_or(&e.path);
        let why = match e.path[entry.len()..].trim_start_matches('.') {
            "" => e.message.clone(),
            inner => format!("{inner}: {}", e.message),
        };
        match out.iter_mut().find(|(id, _)| id == entry) {
            Some((_, all)) => {
                all.push_str("; ");
                all.push_str(&why);
            }
            None => out.push((entry.to_owned(), why)),
        }
    }
    out
}

/// What only this host can tell: each ACL user and group must exist (names and numeric ids
/// alike: the store refuses a grant to an id nobody has), an error of that certificate; and,
/// with `traverseAncestors` off, each folder above a store that keeps a granted reader out, a
/// warning.
pub fn host_checks(settings: &Settings) -> (Vec<ConfigError>, Vec<Warning>) {
    if !settings.acl_enabled {
        return (Vec::new(), Vec::new());
    }
    (check_principals(settings), blocked_readers(settings))
}

fn check_principals(settings: &Settings) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for cert in &settings.certificates {
        for (i, grant) in cert.acls.iter().enumerate() {
            let entry = format!("{}.acls[{i}]", cert.json_path);
            if let Some(p) = &grant.user {
                let found = match p {
                    Principal::Name(n) => nix::unistd::User::from_name(n).map(|u| u.is_some()),
                    Principal::Id(id) => {
                        nix::unistd::User::from_uid((*id).into()).map(|u| u.is_some())
                    }
                };
                if let Some(e) = principal_error(&entry, "user", p, found, cert) {
                    errors.push(e);
                }
            }
            if let Some(p) = &grant.group {
                let found = match p {
                    Principal::Name(n) => nix::unistd::Group::from_name(n).map(|g| g.is_some()),
                    Principal::Id(id) => {
                        nix::unistd::Group::from_gid((*id).into()).map(|g| g.is_some())
                    }
                };
                if let Some(e) = principal_error(&entry, "group", p, found, cert) {
                    errors.push(e);
                }
            }
        }
    }
    errors
}

fn principal_error(
    entry: &str,
    what: &str,
    principal: &Principal,
    found: nix::Result<bool>,
    cert: &ObservedCertificate,
) -> Option<ConfigError> {
    let message = match found {
        Ok(true) => return None,
        Ok(false) => {
            let create = if what == "user" {
                "useradd"
            } else {
                "groupadd"
            };
            format!(
                "found the {what} \"{principal}\", which does not exist on this host; expected an existing {what} name or numeric id. The certificate `{}` ({}) would fail; the others are not affected. Create it ({create}), fix the entry, or use --no-host-checks when validating for another machine",
                cert.json_path,
                cert.id()
            )
        }
        Err(e) => format!("could not look up the {what} \"{principal}\" on this host: {e}"),
    };
    Some(ConfigError {
        kind: ErrorKind::UnknownPrincipal,
        path: format!("{entry}.{what}"),
        message,
    })
}

fn blocked_readers(settings: &Settings) -> Vec<Warning> {
    let mut warnings = Vec::new();
    if settings.agent.traverse_ancestors {
        return warnings;
    }
    for cert in &settings.certificates {
        let Ok(grants) = crate::store::resolve_grants(&cert.acls) else {
            continue;
        };
        let ids: Vec<_> = grants.iter().map(|g| (g.kind, g.id)).collect();
        for b in crate::store::blocked_ancestors(&cert.store, &ids) {
            let Some(g) = grants.iter().find(|g| (g.kind, g.id) == (b.kind, b.id)) else {
                continue;
            };
            let kind = match g.kind {
                crate::store::GrantKind::User => "user",
                crate::store::GrantKind::Group => "group",
            };
            warnings.push(Warning {
                path: format!("{}.acls", cert.json_path),
                message: format!(
                    "{} keeps {kind} {:?} out of {}: its ACL grant does nothing while `akvSyncSettings.traverseAncestors` is false; turn it on, or give {:?} traverse on that folder",
                    b.folder.display(),
                    g.name,
                    cert.store.display(),
                    g.name,
                ),
            });
        }
    }
    warnings
}
