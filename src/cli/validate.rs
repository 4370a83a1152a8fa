//! `akv-sync validate`: check a settings file and print the plan, or every error.
//!
//! The settings crate is pure (text in, model out); this command adds what only the host can
//! answer: whether each ACL user and group exists here. Exit codes: 0 when the settings are
//! usable (warnings may be printed), 2 when any error was found, 1 when something else failed
//! (e.g. stdout closed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use akv_sync_config::{
    AclGrant, AgentSettings, ErrorKind, Hook, HookSpec, Identity, LoggingSettings,
    ObservedCertificate, Parsed, Schema, Settings, Warning, Wrapper,
};
use serde::Serialize;

use super::settings_file::{self, Loaded, SettingsFileError};

/// Exit code when the settings have errors.
pub const EXIT_INVALID: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The settings file: bare settings JSON, an ARM extension resource or template, or a VM-agent
    /// `config/<seq>.settings` handler file.
    #[arg(long, value_name = "FILE")]
    pub settings: PathBuf,
    /// Print the plan (or the errors) as JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Do not check this host (that ACL users and groups exist): for validating settings on a
    /// machine other than the one they are meant for.
    #[arg(long)]
    pub no_host_checks: bool,
}

/// One error as printed: where, which kind, and the whole message.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub path: String,
    /// The `ErrorKind` variant name (`CertificatesPath`, …), or `Unreadable` / `NotText` for
    /// a file that could not be read as text.
    pub kind: String,
    pub message: String,
}

impl Problem {
    fn new(kind: impl Into<String>, path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            kind: kind.into(),
            message: message.into(),
        }
    }

    fn from_kind(kind: ErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        // The variant name is the stable, documented name of each kind.
        Problem::new(format!("{kind:?}"), path, message)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (report, code) = validate_file(&args.settings, !args.no_host_checks);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if report.ok {
        write_plan(&mut out, &report)?;
    } else {
        let mut err = std::io::stderr().lock();
        write_errors(&mut err, &report)?;
    }
    out.flush()?;
    Ok(ExitCode::from(code))
}

/// Read, parse and check `path` with the one settings reader; the report and the exit code
/// (0 or 2).
pub fn validate_file(path: &Path, host_checks: bool) -> (Report, u8) {
    let mut report = Report::new(path);
    let loaded = match settings_file::read(path, host_checks) {
        Ok(l) => l,
        Err(SettingsFileError::Unreadable { source, .. }) => {
            report.errors.push(Problem::new(
                "Unreadable",
                "$",
                format!("cannot read the settings file {}: {source}", path.display()),
            ));
            return (report, EXIT_INVALID);
        }
        Err(SettingsFileError::Invalid {
            errors, detected, ..
        }) => {
            report.wrapper = detected.wrapper;
            report.schema = detected.schema;
            report.errors = errors
                .into_iter()
                .map(|e| Problem::from_kind(e.kind, e.path, e.message))
                .collect();
            return (report, EXIT_INVALID);
        }
    };
    let Loaded {
        parsed: Parsed {
            settings,
            warnings,
            refused,
        },
        host_errors,
    } = loaded;
    report.warnings.extend(warnings);
    report.usable = true;
    report.errors = refused
        .into_iter()
        .chain(host_errors)
        .map(|e| Problem::from_kind(e.kind, e.path, e.message))
        .collect();
    report.fill(&settings);
    report.ok = report.errors.is_empty();
    let code = if report.ok { 0 } else { EXIT_INVALID };
    (report, code)
}

// ---------------------------------------------------------------------------------------------
// The report (its JSON field names are part of the interface: keep them stable)

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub ok: bool,
    /// The agent would run on this file: every error, if any, is one certificate's (that
    /// certificate fails, the others sync). False when the document itself is refused.
    pub usable: bool,
    pub file: String,
    /// `bare`, `armResource`, `handlerSettings`; null when it cannot be told.
    pub wrapper: Option<Wrapper>,
    /// `3.x` or `1.x/2.x`; null when it cannot be told.
    pub schema: Option<Schema>,
    pub identity: Option<Identity>,
    pub polling_interval_in_s: Option<u64>,
    pub require_initial_sync: Option<bool>,
    pub acl_enabled: Option<bool>,
    pub logging: Option<LoggingSettings>,
    /// The `akvSyncSettings`, defaults filled in.
    pub agent: Option<AgentSettings>,
    pub certificates: Vec<CertificateOut>,
    pub warnings: Vec<Warning>,
    pub errors: Vec<Problem>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateOut {
    /// JSON path of the entry in the file.
    pub path: String,
    pub vault: String,
    pub certificate: String,
    /// The pinned version, or null for "latest".
    pub version: Option<String>,
    pub cloud: &'static str,
    pub secret_url: String,
    pub store: String,
    /// `<store>/<vault>.<name>`, then the custom link if any.
    pub links: Vec<String>,
    /// The ACL grants, or null when ACLs are disabled.
    pub acl: Option<Vec<AclGrant>>,
    pub outputs: OutputsOut,
    pub on_change: Option<HookSpec>,
}

#[derive(Debug, Default, Serialize)]
pub struct OutputsOut {
    pub cert: Option<String>,
    pub chain: Option<String>,
    pub fullchain: Option<String>,
    pub privkey: Option<String>,
    #[serde(rename = "certDer")]
    pub cert_der: Option<String>,
    pub pfx: Option<String>,
    #[serde(rename = "pfxPasswordFile", skip_serializing_if = "Option::is_none")]
    pub pfx_password_file: Option<String>,
    #[serde(rename = "pfxFriendlyName", skip_serializing_if = "Option::is_none")]
    pub pfx_friendly_name: Option<String>,
}

fn certificate_out(c: &ObservedCertificate, acl_enabled: bool) -> CertificateOut {
    let mut links = vec![c.link_path().display().to_string()];
    links.extend(c.custom_link_path().map(|l| l.display().to_string()));
    let acl = acl_enabled.then(|| c.acls.clone());
    CertificateOut {
        path: c.json_path.clone(),
        vault: c.url.vault.clone(),
        certificate: c.url.name.clone(),
        version: c.url.version.clone(),
        cloud: c.url.cloud.suffix(),
        secret_url: c.url.secret_url(),
        store: c.store.display().to_string(),
        links,
        acl,
        outputs: OutputsOut {
            cert: c.outputs.cert.clone(),
            chain: c.outputs.chain.clone(),
            fullchain: c.outputs.fullchain.clone(),
            privkey: c.outputs.privkey.clone(),
            cert_der: c.outputs.cert_der.clone(),
            pfx: c.outputs.pfx.as_ref().map(|p| p.file_name.clone()),
            pfx_password_file: c
                .outputs
                .pfx
                .as_ref()
                .and_then(|p| p.password_file.as_ref())
                .map(|p| p.display().to_string()),
            // The alias Java shows: the certificate's name unless set.
            pfx_friendly_name: c.outputs.pfx.as_ref().map(|p| {
                p.friendly_name
                    .clone()
                    .unwrap_or_else(|| c.url.name.clone())
            }),
        },
        on_change: c.hook.clone(),
    }
}

impl Report {
    fn new(path: &Path) -> Self {
        Report {
            ok: false,
            usable: false,
            file: path.display().to_string(),
            wrapper: None,
            schema: None,
            identity: None,
            polling_interval_in_s: None,
            require_initial_sync: None,
            acl_enabled: None,
            logging: None,
            agent: None,
            certificates: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn fill(&mut self, s: &Settings) {
        self.wrapper = Some(s.wrapper);
        self.schema = Some(s.schema);
        self.identity = Some(s.identity.clone());
        self.polling_interval_in_s = Some(s.polling_interval.as_secs());
        self.require_initial_sync = Some(s.require_initial_sync);
        self.acl_enabled = Some(s.acl_enabled);
        self.logging = s.logging.clone();
        self.agent = Some(s.agent.clone());
        self.certificates = s
            .certificates
            .iter()
            .map(|c| certificate_out(c, s.acl_enabled))
            .collect();
    }
}

// ---------------------------------------------------------------------------------------------
// Text output

fn hook_text(h: &HookSpec) -> String {
    let timeout = h.timeout.as_secs();
    match &h.hook {
        Hook::Command(argv) => format!("run {argv:?} (timeout {timeout} s)"),
        Hook::ReloadUnit(unit) => format!("reload {unit} (timeout {timeout} s)"),
    }
}

/// One line per certificate: vault, certificate, version, store, links, ACL grants.
pub fn certificate_line(c: &CertificateOut) -> String {
    let mut line = format!(
        "vault={} certificate={} version={} store={}",
        c.vault,
        c.certificate,
        c.version.as_deref().unwrap_or("latest"),
        c.store
    );
    for link in &c.links {
        line.push_str(&format!(" link={link}"));
    }
    let acl = match &c.acl {
        None => "disabled".to_owned(),
        Some(grants) if grants.is_empty() => "none".to_owned(),
        Some(grants) => grants
            .iter()
            .map(|g| {
                let mut parts = Vec::new();
                parts.extend(g.user.as_ref().map(|u| format!("user:{u}")));
                parts.extend(g.group.as_ref().map(|g| format!("group:{g}")));
                parts.join("+")
            })
            .collect::<Vec<_>>()
            .join(","),
    };
    line.push_str(&format!(" acl={acl}"));
    let outputs: Vec<String> = [
        ("cert", &c.outputs.cert),
        ("chain", &c.outputs.chain),
        ("fullchain", &c.outputs.fullchain),
        ("privkey", &c.outputs.privkey),
        ("certDer", &c.outputs.cert_der),
        ("pfx", &c.outputs.pfx),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}:{v}")))
    .collect();
    if !outputs.is_empty() {
        line.push_str(&format!(" outputs={}", outputs.join(",")));
    }
    if let Some(h) = &c.on_change {
        line.push_str(&format!(" on-change=\"{}\"", hook_text(h)));
    }
    line
}

fn write_plan(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(out, "settings: {}", r.file)?;
    if let Some(w) = r.wrapper {
        writeln!(
            out,
            "found: {} ({}), schema {}",
            w.description(),
            w.as_str(),
            r.schema.map_or("?", Schema::as_str)
        )?;
    }
    if let Some(id) = &r.identity {
        let (kind, endpoint) = (id.kind(), id.endpoint());
        match id {
            Identity::UserAssigned { client_id, .. } => writeln!(
                out,
                "identity: {kind} (client id {client_id}) via {endpoint}"
            )?,
            Identity::UserAssignedByResourceId { resource_id, .. } => writeln!(
                out,
                "identity: {kind} (resource id {resource_id}, sent as msi_res_id) via {endpoint}"
            )?,
            Identity::SystemAssigned { .. } | Identity::Arc { .. } => {
                writeln!(out, "identity: {kind} via {endpoint}")?
            }
        }
    }
    writeln!(
        out,
        "polling: every {} s; requireInitialSync: {}; aclEnabled: {}",
        r.polling_interval_in_s.unwrap_or_default(),
        r.require_initial_sync.unwrap_or_default(),
        r.acl_enabled.unwrap_or_default()
    )?;
    if let Some(l) = &r.logging {
        writeln!(
            out,
            "logging: {} {} to {}:{} (tag {})",
            l.logger, l.format, l.host, l.port, l.service_name
        )?;
    }
    if let Some(a) = &r.agent {
        let mut parts = vec![
            format!("expiry warning {} days", a.expiry_warning_days),
            format!("at most {} requests per vault", a.max_concurrency_per_vault),
            format!("jitter {}", a.jitter),
        ];
        if let Some(k) = a.prune_keep {
            parts.push(format!("keep {k} versions"));
        }
        if let Some(m) = &a.metrics_address {
            parts.push(format!("metrics on {m}"));
        }
        if !a.traverse_ancestors {
            parts.push("no traverse entries above stores (traverseAncestors off)".into());
        }
        if let Some(h) = &a.hook {
            parts.push(format!("on change: {}", hook_text(h)));
        }
        writeln!(out, "akv-sync: {}", parts.join("; "))?;
    }
    writeln!(out, "certificates ({}):", r.certificates.len())?;
    for c in &r.certificates {
        writeln!(out, "  {}", certificate_line(c))?;
    }
    if !r.warnings.is_empty() {
        writeln!(out, "warnings ({}):", r.warnings.len())?;
        for w in &r.warnings {
            writeln!(out, "  {}: {}", w.path, w.message)?;
        }
    }
    writeln!(out, "ok: the settings are valid")
}

fn write_errors(err: &mut impl Write, r: &Report) -> std::io::Result<()> {
    if let Some(w) = r.wrapper {
        let schema = r.schema.map_or("unknown", Schema::as_str);
        writeln!(
            err,
            "found: {} ({}), schema {schema}",
            w.description(),
            w.as_str()
        )?;
    }
    writeln!(
        err,
        "{}: {} error{} in the settings:",
        r.file,
        r.errors.len(),
        if r.errors.len() == 1 { "" } else { "s" }
    )?;
    for e in &r.errors {
        writeln!(err, "  {}: {} [{}]", e.path, e.message, e.kind)?;
    }
    for w in &r.warnings {
        writeln!(err, "  warning: {}: {}", w.path, w.message)?;
    }
    if r.usable {
        writeln!(
            err,
            "each of these is one certificate's: the agent fails those and syncs the rest ({} certificate(s) accepted)",
            r.certificates.len()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text).unwrap();
        f
    }

    fn settings_with_acls(acls: &str) -> String {
        format!(
            r#"{{"secretsManagementSettings": {{"aclEnabled": true, "observedCertificates": [
                {{"url": "https://v.vault.azure.net/secrets/a", "acls": [{{"user": "root", "group": "root"}}, {{"user": 0}}]}},
                {{"url": "https://v.vault.azure.net/secrets/b", "acls": {acls}}}]}}}}"#
        )
    }

    fn unused_name() -> String {
        let name = format!("akvsync-none-{}", std::process::id());
        assert!(nix::unistd::User::from_name(&name).unwrap().is_none());
        assert!(nix::unistd::Group::from_name(&name).unwrap().is_none());
        name
    }

    #[test]
    fn existing_principals_and_numeric_ids_pass_the_host_check() {
        let f = file(settings_with_acls(r#"[{"group": "0"}]"#).as_bytes());
        let (report, code) = validate_file(f.path(), true);
        assert_eq!(code, 0, "{:?}", report.errors);
    }

    /// The store refuses a grant to an id nobody has, so validate must too (it used to skip
    /// numeric ids, and passed files that `run` then failed on).
    #[test]
    fn a_numeric_id_nobody_has_is_an_error_of_that_certificate() {
        let f = file(settings_with_acls(r#"[{"group": "3999999917"}]"#).as_bytes());
        let (report, code) = validate_file(f.path(), true);
        assert_eq!(code, EXIT_INVALID);
        let kinds: Vec<_> = report
            .errors
            .iter()
            .map(|p| (p.kind.as_str(), p.path.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [(
                "UnknownPrincipal",
                "secretsManagementSettings.observedCertificates[1].acls[0].group"
            )]
        );
    }

    #[test]
    fn a_missing_user_or_group_is_an_error_of_that_certificate() {
        let name = unused_name();
        let f = file(
            settings_with_acls(&format!(r#"[{{"user": "{name}", "group": "{name}"}}]"#)).as_bytes(),
        );
        let (report, code) = validate_file(f.path(), true);
        assert_eq!(code, EXIT_INVALID);
        let got: Vec<(&str, &str)> = report
            .errors
            .iter()
            .map(|e| (e.kind.as_str(), e.path.as_str()))
            .collect();
        let p = "secretsManagementSettings.observedCertificates[1].acls[0]";
        assert_eq!(
            got,
            [
                ("UnknownPrincipal", format!("{p}.user").as_str()),
                ("UnknownPrincipal", format!("{p}.group").as_str())
            ]
        );
        // The plan is still filled in, so that the JSON output shows what would work.
        assert_eq!(report.certificates.len(), 2);
        let (_, code) = validate_file(f.path(), false);
        assert_eq!(code, 0, "--no-host-checks skips the lookup");
    }

    #[test]
    fn with_traverse_ancestors_off_a_folder_keeping_a_grant_out_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let store = dir.path().join("app1");
        let text = |traverse: bool| {
            format!(
                r#"{{"secretsManagementSettings": {{"aclEnabled": true, "observedCertificates": [
                    {{"url": "https://v.vault.azure.net/secrets/a", "certificateStoreLocation": "{}", "acls": [{{"user": "nobody"}}]}}]}},
                  "akvSyncSettings": {{"traverseAncestors": {traverse}}}}}"#,
                store.display()
            )
        };
        let f = file(text(false).as_bytes());
        let (report, code) = validate_file(f.path(), true);
        assert_eq!(code, 0, "{:?}", report.errors);
        let blocked: Vec<_> = report
            .warnings
            .iter()
            .filter(|w| w.path == "secretsManagementSettings.observedCertificates[0].acls")
            .collect();
        assert_eq!(blocked.len(), 1, "{:?}", report.warnings);
        assert!(
            blocked[0]
                .message
                .contains(&dir.path().display().to_string())
        );
        let f = file(text(true).as_bytes());
        let (report, _) = validate_file(f.path(), true);
        assert!(report.warnings.iter().all(|w| !w.path.ends_with(".acls")));
    }

    #[test]
    fn principals_are_not_looked_up_when_acls_are_disabled() {
        let name = unused_name();
        let text = settings_with_acls(&format!(r#"[{{"user": "{name}"}}]"#))
            .replace("\"aclEnabled\": true", "\"aclEnabled\": false");
        let (report, code) = validate_file(file(text.as_bytes()).path(), true);
        assert_eq!(code, 0, "{:?}", report.errors);
        assert!(report.certificates.iter().all(|c| c.acl.is_none()));
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let (report, code) = validate_file(Path::new("/nonexistent/akv-sync/settings.json"), true);
        assert_eq!(code, EXIT_INVALID);
        assert_eq!(report.errors[0].kind, "Unreadable");
        assert!(
            report.errors[0]
                .message
                .contains("/nonexistent/akv-sync/settings.json")
        );
    }

    #[test]
    fn utf16_files_from_powershell_are_read_with_a_warning() {
        let text = r#"{"secretsManagementSettings": {"observedCertificates": ["https://v.vault.azure.net/secrets/a"]}}"#;
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let (report, code) = validate_file(file(&bytes).path(), true);
        assert_eq!(code, 0, "{:?}", report.errors);
        assert_eq!(report.warnings.len(), 1);
        let (report, code) = validate_file(file(&[0x7B, 0xC3, 0x28]).path(), true);
        assert_eq!(
            (code, report.errors[0].kind.as_str()),
            (EXIT_INVALID, "NotText")
        );
    }

    #[test]
    fn the_plan_line_names_vault_certificate_version_store_links_and_acls() {
        let text = r#"{"secretsManagementSettings": {"aclEnabled": true, "observedCertificates": [
            {"url": "https://myvault.vault.azure.net/secrets/c1/0123456789abcdef0123456789abcdef", "certificateStoreLocation": "/srv/s",
             "customSymbolicLinkName": "app", "acls": [{"user": "root", "group": 0}]}]}}"#;
        let (report, code) = validate_file(file(text.as_bytes()).path(), true);
        assert_eq!(code, 0);
        assert_eq!(
            certificate_line(&report.certificates[0]),
            "vault=myvault certificate=c1 version=0123456789abcdef0123456789abcdef store=/srv/s link=/srv/s/myvault.c1 link=/srv/s/app acl=user:root+group:0"
        );
    }

    /// `--json`'s field names and shapes are an interface (README): every field of a plan
    /// that uses each kind of setting, pinned whole.
    #[test]
    fn the_json_report_keeps_its_field_names_and_shapes() {
        let f = file(
            br#"{
              "secretsManagementSettings": {
                "pollingIntervalInS": "600", "requireInitialSync": true, "aclEnabled": true,
                "observedCertificates": [{
                  "url": "https://v.vault.azure.net/secrets/web/0123456789abcdef0123456789abcdef",
                  "certificateStoreLocation": "/srv/tls", "customSymbolicLinkName": "current",
                  "acls": [{"user": "root", "group": 0}],
                  "akvSync": {
                    "outputs": {"cert": "cert.pem", "pfx": "web.pfx", "pfxPasswordFile": "/etc/akv-sync/web.pass", "certDer": "web.der"},
                    "onChange": {"command": ["/bin/true"], "timeoutInS": 5}
                  }
                }]
              },
              "authenticationSettings": {"msiEndpoint": "http://169.254.169.254/metadata/identity", "msiClientId": "00001111-aaaa-2222-bbbb-3333cccc4444"},
              "loggingSettings": {"logger": "fluentd", "endpoint": "tcp://localhost:24224", "format": "forward", "servicename": "akvvm_service"},
              "akvSyncSettings": {"onChange": {"reloadUnit": "nginx.service"}, "metricsAddress": "127.0.0.1:9464", "pruneKeepVersions": 3}
            }"#,
        );
        let (report, code) = validate_file(f.path(), false);
        assert_eq!(code, 0, "{:?}", report.errors);
        let mut got = serde_json::to_value(&report).unwrap();
        got["file"] = serde_json::Value::Null;
        let expected = serde_json::json!({
            "ok": true, "usable": true, "file": null,
            "wrapper": "bare", "schema": "3.x",
            "identity": {
                "kind": "userAssigned",
                "endpoint": "http://169.254.169.254/metadata/identity",
                "clientId": "00001111-aaaa-2222-bbbb-3333cccc4444"
            },
            "pollingIntervalInS": 600, "requireInitialSync": true, "aclEnabled": true,
            "logging": {
                "logger": "fluentd", "host": "localhost", "port": 24224,
                "format": "forward", "servicename": "akvvm_service"
            },
            "agent": {
                "onChange": {"command": null, "reloadUnit": "nginx.service", "timeoutInS": 30},
                "metricsAddress": "127.0.0.1:9464",
                "expiryWarningDays": 14,
                "pruneKeepVersions": 3,
                "maxConcurrencyPerVault": 16,
                "pollingJitter": 0.1,
                "traverseAncestors": true
            },
            "certificates": [{
                "path": "secretsManagementSettings.observedCertificates[0]",
                "vault": "v", "certificate": "web",
                "version": "0123456789abcdef0123456789abcdef",
                "cloud": "vault.azure.net",
                "secretUrl": "https://v.vault.azure.net/secrets/web/0123456789abcdef0123456789abcdef",
                "store": "/srv/tls",
                "links": ["/srv/tls/v.web", "/srv/tls/current"],
                "acl": [{"user": "root", "group": 0}],
                "outputs": {
                    "cert": "cert.pem", "chain": null, "fullchain": null, "privkey": null,
                    "certDer": "web.der", "pfx": "web.pfx",
                    "pfxPasswordFile": "/etc/akv-sync/web.pass", "pfxFriendlyName": "web"
                },
                "onChange": {"command": ["/bin/true"], "reloadUnit": null, "timeoutInS": 5}
            }],
            "warnings": [],
            "errors": []
        });
        assert_eq!(
            got,
            expected,
            "{}",
            serde_json::to_string_pretty(&got).unwrap()
        );
    }
}
