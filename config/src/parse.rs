//! Text → [`Parsed`] or every error found.
//!
//! The parser walks a `serde_json::Value` instead of deriving `Deserialize` for raw structs:
//! derived deserialisation stops at the first mistake and loses the JSON path, while the users
//! of this crate need *every* mistake at once, each with its path, plus warnings for unknown
//! keys. Each section has one function that reads its object, checks each key, and returns
//! `None` when it reported an error; [`parse`] succeeds only when no error was reported.

use auth_and_logging::{authentication, logging};
use extension::{agent, certificate_extension};
use wrapper::locate;

mod auth_and_logging;
mod cx;
mod extension;
mod wrapper;

pub use cx::DEFAULT_HOOK_TIMEOUT;
use cx::*;

/// Parse settings text in any of the three wrappers and either schema.
pub fn parse(text: &str) -> Result<Parsed, Vec<ConfigError>> {
    let mut cx = Cx::default();
    let mut relaxed = relax(text);
    let settings = match serde_json::from_str::<Value>(&relaxed.text) {
        Ok(doc) => {
            for path in crate::dupes::duplicate_keys(&relaxed.text) {
                cx.warn(
                    &path,
                    "this key appears more than once in its object; only the last one is used (as by most JSON parsers): merge them",
                );
            }
            // The tree holds everything from here on: drop a blanked-out copy of the text
            // before the model is built beside the tree (peak memory).
            relaxed.text = Default::default();
            document(&doc, &relaxed, &mut cx)
        }
        Err(e) => {
            syntax_error(&relaxed.text, &e, &mut cx);
            None
        }
    };
    // Only errors of single certificates left: those are refused, the rest is usable.
    let usable =
        |errors: &[ConfigError]| errors.iter().all(|e| certificate_entry(&e.path).is_some());
    match settings {
        Some(settings) if usable(&cx.errors) => Ok(Parsed {
            settings,
            warnings: cx.warnings,
            refused: cx.errors,
        }),
        _ => {
            if cx.errors.is_empty() {
                cx.err(
                    ErrorKind::NoSettings,
                    ROOT_PATH,
                    "no usable settings were found (this is a bug in akv-sync: please report it with the file)",
                );
            }
            Err(cx.errors)
        }
    }
}

/// Which wrapper and schema a text uses, as far as can be told even when [`parse`] fails:
/// for reporting next to the errors. `None` where it cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Detected {
    pub wrapper: Option<Wrapper>,
    pub schema: Option<Schema>,
}

/// Tell the wrapper and schema of `text` without validating it.
pub fn detect(text: &str) -> Detected {
    let Ok(doc) = serde_json::from_str::<Value>(&relax(text).text) else {
        return Detected::default();
    };
    let Value::Object(top) = &doc else {
        return Detected::default();
    };
    let Some(located) = locate(&doc, top, ROOT_PATH, &mut Cx::default()) else {
        return Detected::default();
    };
    let schema = located
        .value
        .get("secretsManagementSettings")
        .and_then(|s| s.get("observedCertificates"))
        .and_then(Value::as_array)
        .map(|list| match list.iter().find(|v| !v.is_null()) {
            Some(Value::String(_)) => Schema::V2,
            _ => Schema::V3,
        });
    Detected {
        wrapper: Some(located.wrapper),
        schema,
    }
}

fn syntax_error(text: &str, e: &serde_json::Error, cx: &mut Cx) {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        cx.err(
            ErrorKind::Syntax,
            ROOT_PATH,
            "found an empty file; expected a JSON object such as {\"secretsManagementSettings\": {\"observedCertificates\": [ … ]}}",
        );
        return;
    }
    if trimmed.contains("\\\"") {
        let unescaped = trimmed.replace("\\\"", "\"");
        let unescaped = unescaped.trim_matches(|c| c == '\'' || c == '"');
        if trimmed.starts_with("{\\\"")
            || trimmed.starts_with("'{")
            || serde_json::from_str::<Value>(unescaped).is_ok()
        {
            cx.err(
                ErrorKind::EscapedQuotes,
                ROOT_PATH,
                format!(
                    "found `\\\"` where plain quotes belong (the JSON parser stopped with: {e}); expected plain JSON. PowerShell escapes the quotes when it passes a JSON string on (the original extension then fails with `Failed to parse the configuration settings with:not an object.`). Save the file with plain quotes. {POWERSHELL_HINT}"
                ),
            );
            return;
        }
    }
    let mut hint = String::new();
    if trimmed.starts_with('\'') {
        hint.push_str(" The text is wrapped in single quotes, as a shell would need: remove them from the file.");
    }
    if trimmed.contains('<') && trimmed.contains('>') {
        hint.push_str(" The documentation's templates hold <placeholders> (e.g. <polling interval in seconds, e.g. \"3600\">): replace each with a real value or remove the key.");
    }
    cx.err(
        ErrorKind::Syntax,
        ROOT_PATH,
        format!("found text that is not valid JSON ({e}); expected a JSON object.{hint}"),
    );
}

fn document(doc: &Value, relaxed: &Relaxed, cx: &mut Cx) -> Option<Settings> {
    let top = match doc {
        Value::Object(map) => map,
        Value::String(s) => {
            string_instead_of_object(ROOT_PATH, s, "a JSON object", cx);
            return None;
        }
        other => {
            cx.err(
                ErrorKind::NoSettings,
                ROOT_PATH,
                format!(
                    "found {}; expected a JSON object holding `secretsManagementSettings` (bare, in an ARM resource's `properties.settings`, or in a VM-agent file's `runtimeSettings[0].handlerSettings.publicSettings`)",
                    describe(other)
                ),
            );
            return None;
        }
    };
    let located = locate(doc, top, ROOT_PATH, cx)?;
    let settings = match located.value {
        Value::Object(map) => map,
        Value::String(s) => {
            string_instead_of_object(&located.path, s, "the settings object", cx);
            return None;
        }
        other => {
            cx.err(
                ErrorKind::WrongType,
                &located.path,
                format!(
                    "found {}; expected the settings object {{\"secretsManagementSettings\": …}}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    relaxed_warnings(relaxed, located.wrapper, cx);
    settings_object(settings, &located.path, located.wrapper, cx)
}

fn relaxed_warnings(relaxed: &Relaxed, wrapper: Wrapper, cx: &mut Cx) {
    if relaxed.bom {
        cx.warn(
            ROOT_PATH,
            "the file starts with a byte-order mark (BOM), which is ignored; some JSON parsers reject it",
        );
    }
    for pos in &relaxed.trailing_commas {
        cx.warn(
            ROOT_PATH,
            format!("trailing comma at {pos} is ignored; strict JSON parsers (possibly the original extension's) reject it: remove it"),
        );
    }
    // ARM templates may hold comments; a settings file fed to the extension may not.
    if wrapper != Wrapper::ArmResource {
        for pos in &relaxed.comments {
            cx.warn(
                ROOT_PATH,
                format!("comment at {pos} is ignored; strict JSON parsers (possibly the original extension's) reject comments: remove it"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The settings object

/// What `secretsManagementSettings` yields.
struct Secrets {
    schema: Schema,
    polling_interval: Duration,
    require_initial_sync: bool,
    acl_enabled: bool,
    certificates: Vec<ObservedCertificate>,
}

fn settings_object(
    obj: &Map<String, Value>,
    path: &str,
    wrapper: Wrapper,
    cx: &mut Cx,
) -> Option<Settings> {
    cx.unknown_keys(obj, path, SETTINGS_KEYS);
    let sms_path = at(path, "secretsManagementSettings");
    let secrets = match obj.get("secretsManagementSettings") {
        None => {
            cx.err(
                ErrorKind::Missing,
                &sms_path,
                "found no `secretsManagementSettings`; expected an object with at least `observedCertificates`",
            );
            None
        }
        Some(Value::Object(m)) => secrets(m, &sms_path, cx),
        Some(Value::String(s)) => {
            string_instead_of_object(&sms_path, s, "an object", cx);
            None
        }
        Some(other) => {
            cx.err(
                ErrorKind::WrongType,
                &sms_path,
                format!(
                    "found {}; expected an object with `observedCertificates`",
                    describe(other)
                ),
            );
            None
        }
    };
    let identity = authentication(
        obj.get("authenticationSettings"),
        &at(path, "authenticationSettings"),
        cx,
    );
    let logging = logging(obj.get("loggingSettings"), &at(path, "loggingSettings"), cx);
    let agent = agent(obj.get("akvSyncSettings"), &at(path, "akvSyncSettings"), cx);
    let secrets = secrets?;
    Some(Settings {
        wrapper,
        schema: secrets.schema,
        polling_interval: secrets.polling_interval,
        require_initial_sync: secrets.require_initial_sync,
        acl_enabled: secrets.acl_enabled,
        certificates: secrets.certificates,
        identity: identity?,
        logging: logging?,
        agent: agent?,
    })
}

fn secrets(obj: &Map<String, Value>, path: &str, cx: &mut Cx) -> Option<Secrets> {
    let before = cx.error_count();
    for key in obj.keys() {
        let p = at(path, key);
        match key.as_str() {
            "authenticationSettings" => cx.err(
                ErrorKind::MisplacedAuthenticationSettings,
                &p,
                format!(
                    "found `authenticationSettings` inside `secretsManagementSettings`; expected it beside it, as a sibling (`{}`). Here it is not seen and the identity would silently fall back to the system-assigned one",
                    at(path.rsplit_once('.').map_or("", |(parent, _)| parent), "authenticationSettings")
                ),
            ),
            "loggingSettings" | "akvSyncSettings" => cx.warn(
                &p,
                format!("`{key}` belongs beside `secretsManagementSettings`, not inside it; it is ignored here"),
            ),
            "linkOnRenewal" => cx.warn(
                &p,
                "`linkOnRenewal` is a Windows-only setting; it is accepted and ignored on Linux",
            ),
            "certificateStoreName" => cx.warn(
                &p,
                "`certificateStoreName` is a Windows-only setting (a certificate store name such as \"MY\"); it is accepted and ignored on Linux",
            ),
            _ => {}
        }
    }
    // The misplaced top-level sections were reported above; the rest are unknown keys.
    cx.unknown_keys_except(
        obj,
        path,
        SECRETS_KEYS,
        &[
            "authenticationSettings",
            "loggingSettings",
            "akvSyncSettings",
        ],
    );

    let polling_interval = match obj.get("pollingIntervalInS") {
        None => Some(DEFAULT_POLLING_INTERVAL),
        Some(v) => polling_interval(v, &at(path, "pollingIntervalInS"), cx),
    };
    let require_initial_sync = boolean(
        obj.get("requireInitialSync"),
        &at(path, "requireInitialSync"),
        cx,
    );
    let acl_enabled = boolean(obj.get("aclEnabled"), &at(path, "aclEnabled"), cx);
    let top_store = obj
        .get("certificateStoreLocation")
        .map(|v| store_location(v, &at(path, "certificateStoreLocation"), cx));

    let list_path = at(path, "observedCertificates");
    let list = match obj.get("observedCertificates") {
        None => {
            cx.err(
                ErrorKind::Missing,
                &list_path,
                "found no `observedCertificates`; expected an array of certificates to observe, e.g. [{\"url\": \"https://myvault.vault.azure.net/secrets/mycertificate\"}]",
            );
            None
        }
        Some(Value::Array(a)) => Some(a),
        Some(Value::String(s)) if serde_json::from_str::<Value>(s).is_ok_and(|v| v.is_array()) => {
            string_instead_of_object(&list_path, s, "an array", cx);
            None
        }
        Some(other) => {
            let hint = if other.is_string() || other.is_object() {
                " Put it inside [ ], even when there is only one."
            } else {
                ""
            };
            cx.err(
                ErrorKind::WrongType,
                &list_path,
                format!(
                    "found {}; expected an array of certificates ([{{\"url\": …}}, …] in the 3.x schema, or [\"https://…\", …] in the 1.x/2.x schema).{hint}",
                    describe(other)
                ),
            );
            None
        }
    };

    let schema = match list.and_then(|l| l.iter().find(|v| !v.is_null())) {
        Some(Value::String(_)) => Schema::V2,
        Some(_) => Schema::V3,
        None if obj.contains_key("certificateStoreLocation") => Schema::V2,
        None => Schema::V3,
    };
    let top_store = match top_store {
        None => None,
        Some(None) => return None,
        Some(Some(p)) => Some(p),
    };
    let default_store = match (schema, top_store) {
        (Schema::V2, Some(p)) => p,
        (Schema::V2, None) => PathBuf::from(DEFAULT_STORE_V2),
        (Schema::V3, Some(p)) => {
            cx.warn(
                &at(path, "certificateStoreLocation"),
                "in the 3.x schema `certificateStoreLocation` belongs in each observed certificate; here it is used for the certificates that do not set their own",
            );
            p
        }
        (Schema::V3, None) => PathBuf::from(DEFAULT_STORE_V3),
    };

    // Exactly as many as listed (at most): a doubling Vec holds up to twice that while it
    // grows, and ObservedCertificate is ~370 bytes.
    let mut certificates = Vec::with_capacity(list.map_or(0, Vec::len));
    if let Some(list) = list {
        if list.is_empty() {
            cx.warn(
                &list_path,
                "the list is empty: no certificate will be observed",
            );
        }
        for (i, item) in list.iter().enumerate() {
            let p = idx(&list_path, i);
            let cert = match (schema, item) {
                (Schema::V2, Value::String(url)) => v2_certificate(url, &p, &default_store, cx),
                (Schema::V3, Value::Object(m)) => {
                    v3_certificate(m, &p, &default_store, acl_enabled.unwrap_or(false), cx)
                }
                (Schema::V2, other) => {
                    cx.err(
                        ErrorKind::WrongType,
                        &p,
                        format!(
                            "found {}; expected a URL string, like the first entry (1.x/2.x schema). The 3.x schema uses objects {{\"url\": …}} for every entry: do not mix the two",
                            describe(other)
                        ),
                    );
                    None
                }
                (Schema::V3, other) => {
                    let hint = if other.is_string() {
                        ". A bare URL string is the 1.x/2.x form: do not mix the two schemas, write {\"url\": \"…\"} for every entry"
                    } else {
                        ""
                    };
                    cx.err(
                        ErrorKind::WrongType,
                        &p,
                        format!(
                            "found {}; expected an object {{\"url\": \"https://…/secrets/…\", …}} (3.x schema){hint}",
                            describe(other)
                        ),
                    );
                    None
                }
            };
            certificates.extend(cert);
        }
    }
    // Among the certificates that are fine on their own, so that a conflict shows up in the
    // same run as the other mistakes.
    conflicts(&certificates, cx);
    // A mistake inside one observed certificate refuses that certificate alone (SPEC §1.3:
    // the others still sync); a mistake anywhere else refuses the document.
    let found = &cx.errors[before..];
    if found.iter().any(|e| certificate_entry(&e.path).is_none()) {
        return None;
    }
    if !found.is_empty() {
        let refused: HashSet<&str> = found
            .iter()
            .filter_map(|e| certificate_entry(&e.path))
            .collect();
        certificates.retain(|c| !refused.contains(c.json_path.as_str()));
    }
    Some(Secrets {
        schema,
        polling_interval: polling_interval?,
        require_initial_sync: require_initial_sync?,
        acl_enabled: acl_enabled?,
        certificates,
    })
}

fn polling_interval(v: &Value, path: &str, cx: &mut Cx) -> Option<Duration> {
    let seconds = match v {
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u64>().ok()
        }
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    match seconds {
        Some(s) if s > 0 => {
            if s < MIN_QUIET_POLLING_S {
                cx.warn(
                    path,
                    format!(
                        "checking every {s} s is frequent: a fleet of VMs polling one vault this often can reach Key Vault's throttling limits (the default is 3600)"
                    ),
                );
            }
            Some(Duration::from_secs(s))
        }
        _ => {
            cx.err(
                ErrorKind::BadPollingInterval,
                path,
                format!(
                    "found {}; expected a positive whole number of seconds, written as a string of digits such as \"3600\" (a JSON number is accepted too)",
                    describe(v)
                ),
            );
            None
        }
    }
}

/// An absolute store folder without `..`, normalised (no `.` parts, no trailing slash).
fn store_location(v: &Value, path: &str, cx: &mut Cx) -> Option<PathBuf> {
    let s = filled_string(
        v,
        path,
        &format!("an absolute folder path such as \"{DEFAULT_STORE_V3}\""),
        cx,
    )?;
    let problem = if s.is_empty() {
        Some("it is empty")
    } else if s.contains('\0') {
        Some("it contains a NUL character")
    } else if !s.starts_with('/') {
        Some("it is not absolute (it must start with `/`)")
    } else if Path::new(s).components().any(|c| c == Component::ParentDir) {
        Some("it contains `..`")
    } else {
        None
    };
    if let Some(why) = problem {
        cx.err(
            ErrorKind::BadStoreLocation,
            path,
            format!("found {}, but {why}; expected an absolute folder path such as \"{DEFAULT_STORE_V3}\"", quote(s)),
        );
        return None;
    }
    Some(
        Path::new(s)
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect(),
    )
}

fn v2_certificate(url: &str, path: &str, store: &Path, cx: &mut Cx) -> Option<ObservedCertificate> {
    let url = checked_url(url, path, cx)?;
    Some(ObservedCertificate {
        json_path: path.to_owned(),
        url,
        store: store.to_owned(),
        link_name: None,
        acls: Vec::new(),
        outputs: ExtraOutputs::default(),
        hook: None,
    })
}

fn checked_url(raw: &str, path: &str, cx: &mut Cx) -> Option<crate::model::CertificateUrl> {
    match certificate_url(raw) {
        Ok(noted) => {
            for note in noted.notes {
                cx.warn(path, note);
            }
            Some(noted.value)
        }
        Err((kind, message)) => {
            cx.err(kind, path, message);
            None
        }
    }
}

fn v3_certificate(
    obj: &Map<String, Value>,
    path: &str,
    default_store: &Path,
    acl_enabled: bool,
    cx: &mut Cx,
) -> Option<ObservedCertificate> {
    let before = cx.error_count();
    cx.unknown_keys(obj, path, CERTIFICATE_KEYS);
    if obj.contains_key("certificateStoreName") {
        cx.warn(
            &at(path, "certificateStoreName"),
            "`certificateStoreName` is a Windows-only setting; it is accepted and ignored on Linux",
        );
    }
    let url_path = at(path, "url");
    let url = match obj.get("url") {
        None => {
            cx.err(
                ErrorKind::Missing,
                &url_path,
                "found no `url`; expected the certificate's secret URL, e.g. \"https://myvault.vault.azure.net/secrets/mycertificate\"",
            );
            None
        }
        Some(Value::String(s)) => checked_url(s, &url_path, cx),
        Some(other) => {
            cx.err(
                ErrorKind::WrongType,
                &url_path,
                format!("found {}; expected a URL string such as \"https://myvault.vault.azure.net/secrets/mycertificate\"", describe(other)),
            );
            None
        }
    };
    let store = match obj.get("certificateStoreLocation") {
        None => Some(default_store.to_owned()),
        Some(v) => store_location(v, &at(path, "certificateStoreLocation"), cx),
    };
    let link_name = match obj.get("customSymbolicLinkName") {
        None => Some(None),
        Some(v) => file_name(v, &at(path, "customSymbolicLinkName"), "a link name", cx).map(Some),
    };
    let acls = match obj.get("acls") {
        None => Some(Vec::new()),
        Some(v) => acls(v, &at(path, "acls"), cx),
    };
    if !acl_enabled && acls.as_ref().is_some_and(|a| !a.is_empty()) {
        cx.warn(
            &at(path, "acls"),
            "these ACLs are not applied because `secretsManagementSettings.aclEnabled` is not true",
        );
    }
    let ext = match obj.get("akvSync") {
        None => Some((ExtraOutputs::default(), None)),
        Some(v) => certificate_extension(v, &at(path, "akvSync"), cx),
    };
    if cx.error_count() > before {
        return None;
    }
    let (outputs, hook) = ext?;
    Some(ObservedCertificate {
        json_path: path.to_owned(),
        url: url?,
        store: store?,
        link_name: link_name?,
        acls: acls?,
        outputs,
        hook,
    })
}

fn acls(v: &Value, path: &str, cx: &mut Cx) -> Option<Vec<AclGrant>> {
    let Some(list) = v.as_array() else {
        cx.err(
            ErrorKind::BadAcl,
            path,
            format!("found {}; expected an array of entries such as [{{\"user\": \"app1\", \"group\": \"appGroup1\"}}]", describe(v)),
        );
        return None;
    };
    let before = cx.error_count();
    let mut grants = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let p = idx(path, i);
        let Some(obj) = entry.as_object() else {
            cx.err(
                ErrorKind::BadAcl,
                &p,
                format!("found {}; expected an object with `user` and/or `group`, e.g. {{\"user\": \"app1\"}}", describe(entry)),
            );
            continue;
        };
        cx.unknown_keys(obj, &p, ACL_KEYS);
        let user = obj
            .get("user")
            .map(|u| principal(u, &at(&p, "user"), "user", cx));
        let group = obj
            .get("group")
            .map(|g| principal(g, &at(&p, "group"), "group", cx));
        if user.is_none() && group.is_none() {
            cx.err(
                ErrorKind::BadAcl,
                &p,
                "found an entry with neither `user` nor `group`; expected at least one of them, e.g. {\"user\": \"app1\", \"group\": \"appGroup1\"}",
            );
            continue;
        }
        if let (Some(Some(u)), Some(Some(g))) = (&user, &group) {
            grants.push(AclGrant {
                user: Some(u.clone()),
                group: Some(g.clone()),
            });
        } else if let (Some(Some(u)), None) = (&user, &group) {
            grants.push(AclGrant {
                user: Some(u.clone()),
                group: None,
            });
        } else if let (None, Some(Some(g))) = (&user, &group) {
            grants.push(AclGrant {
                user: None,
                group: Some(g.clone()),
            });
        }
    }
    (cx.error_count() == before).then_some(grants)
}

fn principal(v: &Value, path: &str, what: &str, cx: &mut Cx) -> Option<Principal> {
    let example = if what == "user" { "app1" } else { "appGroup1" };
    let expected =
        format!("expected a {what} name such as \"{example}\" or a numeric id such as 1001");
    match v {
        Value::Number(n) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(id) => Some(Principal::Id(id)),
            None => {
                cx.err(
                    ErrorKind::BadAcl,
                    path,
                    format!("found {}; {expected}", describe(v)),
                );
                None
            }
        },
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            match s.parse::<u32>() {
                Ok(id) => Some(Principal::Id(id)),
                Err(_) => {
                    cx.err(
                        ErrorKind::BadAcl,
                        path,
                        format!(
                            "found {}, which is too large for an id; {expected}",
                            describe(v)
                        ),
                    );
                    None
                }
            }
        }
        Value::String(s) if is_placeholder(s) => {
            cx.err(
                ErrorKind::Placeholder,
                path,
                format!(
                    "found {}, which still holds a placeholder from the documentation; {expected}",
                    quote(s)
                ),
            );
            None
        }
        Value::String(s)
            if !s.is_empty()
                && !s.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || matches!(c, ':' | ',' | '/')
                }) =>
        {
            Some(Principal::Name(s.clone()))
        }
        other => {
            cx.err(
                ErrorKind::BadAcl,
                path,
                format!("found {}; {expected}", describe(other)),
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Conflicts between certificates

/// What a certificate's claim on a file name is (its JSON path and description are made
/// only for a message: settings for 100,000 certificates would otherwise hold a few strings
/// per certificate at the peak of parsing).
#[derive(Clone, Copy)]
enum Claim {
    Link,
    File,
    CustomLink,
    Output(&'static str),
}

impl Claim {
    fn path(self, cert: &ObservedCertificate) -> String {
        match self {
            Claim::Link | Claim::File => at(&cert.json_path, "url"),
            Claim::CustomLink => at(&cert.json_path, "customSymbolicLinkName"),
            Claim::Output(key) => at(&at(&at(&cert.json_path, "akvSync"), "outputs"), key),
        }
    }

    fn what(self) -> String {
        match self {
            Claim::Link => "the certificate's link".to_owned(),
            Claim::File => "the certificate's file".to_owned(),
            Claim::CustomLink => "a custom link".to_owned(),
            Claim::Output(key) => format!("the `{key}` output"),
        }
    }
}

/// Two certificates that would write the same file or link in the same store folder.
fn conflicts(certificates: &[ObservedCertificate], cx: &mut Cx) {
    // (store, file name) → (index of the certificate that claimed it, which claim)
    let mut claimed: HashMap<(&Path, Cow<'_, str>), (usize, Claim)> =
        HashMap::with_capacity(certificates.len());
    for (index, cert) in certificates.iter().enumerate() {
        let mut claims: Vec<(Cow<'_, str>, Claim)> = vec![(cert.url.stem().into(), Claim::Link)];
        if let Some(v) = &cert.url.version {
            claims.push((
                crate::layout::version_file(&cert.url.stem(), v).into(),
                Claim::File,
            ));
        }
        if let Some(link) = &cert.link_name {
            claims.push((link.as_str().into(), Claim::CustomLink));
        }
        let outputs = [
            ("cert", cert.outputs.cert.as_deref()),
            ("chain", cert.outputs.chain.as_deref()),
            ("fullchain", cert.outputs.fullchain.as_deref()),
            ("privkey", cert.outputs.privkey.as_deref()),
            ("certDer", cert.outputs.cert_der.as_deref()),
            (
                "pfx",
                cert.outputs.pfx.as_ref().map(|p| p.file_name.as_str()),
            ),
        ];
        for (key, name) in outputs {
            if let Some(name) = name {
                claims.push((name.into(), Claim::Output(key)));
            }
        }
        for (name, claim) in claims {
            let key = (cert.store.as_path(), name);
            if let Some(&(other, other_claim)) = claimed.get(&key) {
                let name = &key.1;
                cx.err(
                    ErrorKind::Conflict,
                    &claim.path(cert),
                    format!(
                        "`{name}` in {} is {} here and also {} of `{}`; expected each file and link of a store folder to belong to one certificate: give one of them another name or another `certificateStoreLocation`",
                        cert.store.display(),
                        claim.what(),
                        other_claim.what(),
                        other_claim.path(&certificates[other]),
                    ),
                );
            } else {
                claimed.insert(key, (index, claim));
            }
        }
    }
    name_space_intrusions(certificates, cx);
}

/// A custom link or output named `<vault>.<name>.<anything>` where `<vault>.<name>` is the
/// stem of a certificate in the same store folder: the store's listing would take it for
/// that certificate's file (a version to prune, a file to give that certificate's ACL), so
/// it is refused — whichever certificate it belongs to. Vault and certificate names have no
/// dots, so the stem a name could intrude on is its first two dot-separated parts.
fn name_space_intrusions(certificates: &[ObservedCertificate], cx: &mut Cx) {
    let stems: HashMap<(&Path, String), usize> = certificates
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.store.as_path(), c.url.stem()), i))
        .collect();
    for cert in certificates {
        let mut names: Vec<(&str, Claim)> = Vec::new();
        if let Some(link) = &cert.link_name {
            names.push((link.as_str(), Claim::CustomLink));
        }
        let outputs = [
            ("cert", &cert.outputs.cert),
            ("chain", &cert.outputs.chain),
            ("fullchain", &cert.outputs.fullchain),
            ("privkey", &cert.outputs.privkey),
        ];
        for (key, name) in outputs {
            if let Some(name) = name {
                names.push((name.as_str(), Claim::Output(key)));
            }
        }
        for (name, claim) in names {
            let mut parts = name.splitn(3, '.');
            let (Some(vault), Some(cert_name), Some(rest)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            let stem = format!("{vault}.{cert_name}");
            if let Some(&owner) = stems.get(&(cert.store.as_path(), stem)) {
                cx.err(
                    ErrorKind::Conflict,
                    &claim.path(cert),
                    format!(
                        "`{name}` in {} is {} here and lies in the name space of `{}` (its link `{vault}.{cert_name}` and version files `{vault}.{cert_name}.<version>`); expected link and output names outside every certificate's `<vault>.<name>.` prefix: give it another name or another `certificateStoreLocation`",
                        cert.store.display(),
                        claim.what(),
                        at(&certificates[owner].json_path, "url"),
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
