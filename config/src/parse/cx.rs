//! What every section parser shares: the walk's context (`Cx`: errors and warnings), the keys
//! each object may hold, small readers of values, and the imports they all use. A leaf: the
//! section parsers (`parse.rs` and `parse/*.rs`) import it, it imports none of them.

#![allow(unused_imports)]

pub(super) use std::borrow::Cow;
pub(super) use std::collections::{HashMap, HashSet};
pub(super) use std::path::{Component, Path, PathBuf};
pub(super) use std::time::Duration;

pub(super) use serde_json::{Map, Value};

pub(super) use crate::error::{ConfigError, ErrorKind, Parsed, Warning};
pub(super) use crate::json_path::{ROOT_PATH, at, certificate_entry, idx};
pub(super) use crate::model::{
    AclGrant, AgentSettings, DEFAULT_IMDS_ENDPOINT, DEFAULT_POLLING_INTERVAL, DEFAULT_STORE_V2,
    DEFAULT_STORE_V3, ExtraOutputs, Hook, HookSpec, Identity, LoggingSettings, ObservedCertificate,
    Principal, Schema, Settings, Wrapper,
};
pub(super) use crate::names::{closest, describe, is_guid, is_placeholder, quote, unsafe_reason};
pub(super) use crate::relax::{Relaxed, relax};
pub(super) use crate::url::{certificate_url, identity_endpoint, logging_endpoint};

/// A polling interval below this many seconds is accepted with a warning.
pub(super) const MIN_QUIET_POLLING_S: u64 = 60;

/// Default time limit of a hook (`timeoutInS`).
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) const POWERSHELL_HINT: &str = "In PowerShell, build the settings as a hashtable and pass it with -Settings, or read the file unchanged with (Get-Content -Raw settings.json) and pass it with -SettingString; with the Azure CLI, pass --settings @settings.json";

pub(super) const SETTINGS_KEYS: &[&str] = &[
    "secretsManagementSettings",
    "authenticationSettings",
    "loggingSettings",
    "akvSyncSettings",
];
pub(super) const SECRETS_KEYS: &[&str] = &[
    "pollingIntervalInS",
    "requireInitialSync",
    "aclEnabled",
    "linkOnRenewal",
    "certificateStoreName",
    "certificateStoreLocation",
    "observedCertificates",
];
pub(super) const CERTIFICATE_KEYS: &[&str] = &[
    "url",
    "certificateStoreLocation",
    "customSymbolicLinkName",
    "acls",
    "certificateStoreName",
    "akvSync",
];
pub(super) const AUTH_KEYS: &[&str] = &["msiEndpoint", "msiClientId"];
pub(super) const LOGGING_KEYS: &[&str] = &["logger", "endpoint", "format", "servicename"];
pub(super) const AGENT_KEYS: &[&str] = &[
    "onChange",
    "metricsAddress",
    "expiryWarningDays",
    "pruneKeepVersions",
    "maxConcurrencyPerVault",
    "pollingJitter",
    "traverseAncestors",
];
pub(super) const CERT_EXT_KEYS: &[&str] = &["outputs", "onChange"];
pub(super) const OUTPUT_KEYS: &[&str] = &[
    "cert",
    "chain",
    "fullchain",
    "privkey",
    "certDer",
    "pfx",
    "pfxPasswordFile",
    "pfxFriendlyName",
];
pub(super) const HOOK_KEYS: &[&str] = &["command", "reloadUnit", "timeoutInS"];
pub(super) const ACL_KEYS: &[&str] = &["user", "group"];

/// Errors and warnings collected along the walk.
#[derive(Default)]
pub(super) struct Cx {
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<Warning>,
}

impl Cx {
    pub(super) fn err(&mut self, kind: ErrorKind, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            kind,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    pub(super) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    pub(super) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Warn about each key of `obj` that is not in `known`, suggesting the closest known key.
    pub(super) fn unknown_keys(&mut self, obj: &Map<String, Value>, path: &str, known: &[&str]) {
        self.unknown_keys_except(obj, path, known, &[]);
    }

    /// [`Cx::unknown_keys`], leaving alone the keys in `reported` (already dealt with).
    pub(super) fn unknown_keys_except(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        known: &[&str],
        reported: &[&str],
    ) {
        let unknown = |k: &&String| !known.contains(&k.as_str()) && !reported.contains(&k.as_str());
        for key in obj.keys().filter(unknown) {
            let message = match closest(key, known) {
                Some(k) => format!("unknown key `{key}` is ignored; did you mean `{k}`?"),
                None => format!(
                    "unknown key `{key}` is ignored; the keys known here are {}",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            self.warn(&at(path, key), message);
        }
    }
}

pub(super) fn boolean(v: Option<&Value>, path: &str, cx: &mut Cx) -> Option<bool> {
    match v {
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        // Real settings carry `"linkOnRenewal": "false"`: the intent is plain, so accept it.
        Some(Value::String(s))
            if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
        {
            let b = s.eq_ignore_ascii_case("true");
            cx.warn(
                path,
                format!("found the string \"{s}\"; read as {b}. Write {b} without quotes: strict readers (possibly the original extension) refuse a string here"),
            );
            Some(b)
        }
        Some(other) => {
            cx.err(
                ErrorKind::WrongType,
                path,
                format!("found {}; expected true or false", describe(other)),
            );
            None
        }
    }
}

/// A plain file name inside the store folder.
pub(super) fn file_name(v: &Value, path: &str, what: &str, cx: &mut Cx) -> Option<String> {
    let s = filled_string(
        v,
        path,
        &format!("a {what}: a plain file name such as \"app1Cert1\""),
        cx,
    )?;
    if let Some(why) = unsafe_reason(s) {
        cx.err(
            ErrorKind::UnsafeName,
            path,
            format!("found {}, which cannot be used as {what} inside the store folder: {why}; expected a plain file name such as \"app1Cert1\" (to place the file elsewhere, set `certificateStoreLocation`)", quote(s)),
        );
        return None;
    }
    Some(s.to_owned())
}

/// A string that is not a documentation placeholder; otherwise a `WrongType` or `Placeholder`
/// error saying what was `expected`.
pub(super) fn filled_string<'v>(
    v: &'v Value,
    path: &str,
    expected: &str,
    cx: &mut Cx,
) -> Option<&'v str> {
    let Some(s) = v.as_str() else {
        cx.err(
            ErrorKind::WrongType,
            path,
            format!("found {}; expected {expected}", describe(v)),
        );
        return None;
    };
    if is_placeholder(s) {
        cx.err(
            ErrorKind::Placeholder,
            path,
            format!(
                "found {}, which still holds a placeholder from the documentation; expected {expected}",
                quote(s)
            ),
        );
        return None;
    }
    Some(s)
}

/// A JSON string where an object belongs: explain double encoding or escaped quotes.
pub(super) fn string_instead_of_object(path: &str, s: &str, expected: &str, cx: &mut Cx) {
    let inner = relax(s);
    match serde_json::from_str::<Value>(&inner.text) {
        Ok(Value::Object(_)) | Ok(Value::Array(_)) => cx.err(
            ErrorKind::JsonInString,
            path,
            format!(
                "found a JSON string that itself holds JSON (the settings were encoded twice, e.g. by ConvertTo-Json of a string or by quoting); expected {expected} itself, without the outer quotes and backslashes. {POWERSHELL_HINT}"
            ),
        ),
        _ if s.contains("\\\"") || s.trim_start().starts_with("{\\") => cx.err(
            ErrorKind::EscapedQuotes,
            path,
            format!(
                "found a string with `\\\"` escapes where {expected} belongs; PowerShell adds them when a JSON string passes through it. {POWERSHELL_HINT}"
            ),
        ),
        _ => cx.err(
            ErrorKind::WrongType,
            path,
            format!("found the string {}; expected {expected}", quote(s)),
        ),
    }
}
