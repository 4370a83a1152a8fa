//! akv-sync's own settings, ignored by the original extension: top-level `akvSyncSettings` and
//! per-certificate `akvSync` (extra outputs, hooks).

use super::cx::*;

fn integer(v: &Value, path: &str, min: u64, max: u64, what: &str, cx: &mut Cx) -> Option<u64> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            cx.err(
                ErrorKind::BadExtension,
                path,
                format!(
                    "found {}; expected {what}, a whole number from {min} to {max}",
                    describe(v)
                ),
            );
            None
        }
    }
}

pub(super) fn agent(v: Option<&Value>, path: &str, cx: &mut Cx) -> Option<AgentSettings> {
    let mut agent = AgentSettings::default();
    let obj = match v {
        None => return Some(agent),
        Some(Value::Object(m)) => m,
        Some(other) => {
            cx.err(
                ErrorKind::BadExtension,
                path,
                format!("found {}; expected an object with akv-sync's own settings (`onChange`, `metricsAddress`, …)", describe(other)),
            );
            return None;
        }
    };
    let before = cx.error_count();
    cx.unknown_keys(obj, path, AGENT_KEYS);
    if let Some(h) = obj.get("onChange") {
        agent.hook = hook(h, &at(path, "onChange"), cx);
    }
    if let Some(m) = obj.get("metricsAddress") {
        let p = at(path, "metricsAddress");
        match m.as_str().map(str::parse::<std::net::SocketAddr>) {
            Some(Ok(addr)) if addr.ip().is_loopback() && addr.port() != 0 => agent.metrics_address = Some(addr),
            _ => cx.err(
                ErrorKind::BadExtension,
                &p,
                format!("found {}; expected a loopback address and port such as \"127.0.0.1:9464\" or \"[::1]:9464\" (the metrics are not meant for the network; put a proxy in front if needed)", describe(m)),
            ),
        }
    }
    if let Some(d) = obj.get("expiryWarningDays")
        && let Some(n) = integer(
            d,
            &at(path, "expiryWarningDays"),
            0,
            3650,
            "a number of days",
            cx,
        )
    {
        agent.expiry_warning_days = n as u32;
    }
    if let Some(k) = obj.get("pruneKeepVersions")
        && let Some(n) = integer(
            k,
            &at(path, "pruneKeepVersions"),
            1,
            1_000_000,
            "how many versions to keep",
            cx,
        )
    {
        agent.prune_keep = Some(n as usize);
    }
    if let Some(c) = obj.get("maxConcurrencyPerVault")
        && let Some(n) = integer(
            c,
            &at(path, "maxConcurrencyPerVault"),
            1,
            10_000,
            "a number of requests",
            cx,
        )
    {
        agent.max_concurrency_per_vault = n as usize;
    }
    if let Some(j) = obj.get("pollingJitter") {
        match j.as_f64() {
            Some(f) if (0.0..=1.0).contains(&f) => agent.jitter = f,
            _ => cx.err(
                ErrorKind::BadExtension,
                &at(path, "pollingJitter"),
                format!("found {}; expected a number from 0.0 to 1.0 (the fraction of the polling interval used to spread checks)", describe(j)),
            ),
        }
    }
    if let Some(t) = obj.get("traverseAncestors")
        && let Some(b) = boolean(Some(t), &at(path, "traverseAncestors"), cx)
    {
        agent.traverse_ancestors = b;
    }
    (cx.error_count() == before).then_some(agent)
}

fn hook(v: &Value, path: &str, cx: &mut Cx) -> Option<HookSpec> {
    let example = "{\"command\": [\"/usr/bin/systemctl\", \"reload\", \"nginx\"], \"timeoutInS\": 30} or {\"reloadUnit\": \"nginx.service\"}";
    let Some(obj) = v.as_object() else {
        cx.err(
            ErrorKind::BadExtension,
            path,
            format!("found {}; expected {example}", describe(v)),
        );
        return None;
    };
    let before = cx.error_count();
    cx.unknown_keys(obj, path, HOOK_KEYS);
    let timeout = match obj.get("timeoutInS") {
        None => Some(DEFAULT_HOOK_TIMEOUT),
        Some(t) => integer(
            t,
            &at(path, "timeoutInS"),
            1,
            86_400,
            "a number of seconds",
            cx,
        )
        .map(Duration::from_secs),
    };
    let hook = match (obj.get("command"), obj.get("reloadUnit")) {
        (Some(_), Some(_)) => {
            cx.err(
                ErrorKind::BadExtension,
                path,
                format!("found both `command` and `reloadUnit`; expected one of them: {example}"),
            );
            None
        }
        (None, None) => {
            cx.err(
                ErrorKind::BadExtension,
                path,
                format!("found neither `command` nor `reloadUnit`; expected {example}"),
            );
            None
        }
        (Some(c), None) => command(c, &at(path, "command"), cx),
        (None, Some(u)) => reload_unit(u, &at(path, "reloadUnit"), cx),
    };
    if cx.error_count() > before {
        return None;
    }
    Some(HookSpec {
        hook: hook?,
        timeout: timeout?,
    })
}

fn command(v: &Value, path: &str, cx: &mut Cx) -> Option<Hook> {
    let argv: Option<Vec<String>> = v
        .as_array()
        .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect());
    match argv {
        Some(argv)
            if !argv.is_empty()
                && !argv[0].is_empty()
                && !argv.iter().any(|a| a.contains('\0')) =>
        {
            if !argv[0].starts_with('/') {
                cx.warn(path, format!("`{}` is looked up in PATH; an absolute path (e.g. /usr/bin/{}) is safer for a command run as root", argv[0], argv[0]));
            }
            Some(Hook::Command(argv))
        }
        _ => {
            let hint = if v.is_string() {
                " The command runs without a shell: split it into its arguments."
            } else {
                ""
            };
            cx.err(
                ErrorKind::BadExtension,
                path,
                format!("found {}; expected a non-empty array of strings, program first, e.g. [\"/usr/bin/systemctl\", \"reload\", \"nginx\"].{hint}", describe(v)),
            );
            None
        }
    }
}

fn reload_unit(v: &Value, path: &str, cx: &mut Cx) -> Option<Hook> {
    match v.as_str() {
        Some(u)
            if !u.is_empty()
                && !u.starts_with('-')
                && u.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '\\' | '@' | '-')
                }) =>
        {
            Some(Hook::ReloadUnit(u.to_owned()))
        }
        _ => {
            cx.err(
                ErrorKind::BadExtension,
                path,
                format!(
                    "found {}; expected a systemd unit name such as \"nginx.service\"",
                    describe(v)
                ),
            );
            None
        }
    }
}

pub(super) fn certificate_extension(
    v: &Value,
    path: &str,
    cx: &mut Cx,
) -> Option<(ExtraOutputs, Option<HookSpec>)> {
    let Some(obj) = v.as_object() else {
        cx.err(
            ErrorKind::BadExtension,
            path,
            format!(
                "found {}; expected an object with `outputs` and/or `onChange`",
                describe(v)
            ),
        );
        return None;
    };
    let before = cx.error_count();
    cx.unknown_keys(obj, path, CERT_EXT_KEYS);
    let mut outputs = ExtraOutputs::default();
    if let Some(o) = obj.get("outputs") {
        let op = at(path, "outputs");
        match o.as_object() {
            None => cx.err(
                ErrorKind::BadExtension,
                &op,
                format!("found {}; expected an object such as {{\"fullchain\": \"fullchain.pem\", \"privkey\": \"privkey.pem\"}}", describe(o)),
            ),
            Some(m) => {
                cx.unknown_keys(m, &op, OUTPUT_KEYS);
                let get = |key: &str, cx: &mut Cx| m.get(key).and_then(|v| file_name(v, &at(&op, key), "an output file name", cx));
                outputs.cert = get("cert", cx);
                outputs.chain = get("chain", cx);
                outputs.fullchain = get("fullchain", cx);
                outputs.privkey = get("privkey", cx);
                outputs.cert_der = get("certDer", cx);
                outputs.pfx = pfx_output(m, &op, cx);
            }
        }
    }
    let hook = obj
        .get("onChange")
        .and_then(|h| hook(h, &at(path, "onChange"), cx));
    (cx.error_count() == before).then_some((outputs, hook))
}

/// `pfx` with its `pfxPasswordFile` and `pfxFriendlyName` (both only beside `pfx`).
fn pfx_output(
    m: &serde_json::Map<String, Value>,
    op: &str,
    cx: &mut Cx,
) -> Option<crate::model::PfxOutput> {
    let before = cx.error_count();
    let file_name = m
        .get("pfx")
        .and_then(|v| file_name(v, &at(op, "pfx"), "an output file name", cx));
    let password_file = m
        .get("pfxPasswordFile")
        .and_then(|v| password_file(v, &at(op, "pfxPasswordFile"), cx));
    let friendly_name = m
        .get("pfxFriendlyName")
        .and_then(|v| friendly_name(v, &at(op, "pfxFriendlyName"), cx));
    if !m.contains_key("pfx") {
        for key in ["pfxPasswordFile", "pfxFriendlyName"] {
            if m.contains_key(key) {
                cx.err(
                    ErrorKind::BadExtension,
                    &at(op, key),
                    format!("found `{key}` without `pfx`; expected it beside the PKCS#12 output it applies to, e.g. {{\"pfx\": \"web.pfx\", \"pfxPasswordFile\": \"/etc/akv-sync/web.pass\"}}"),
                );
            }
        }
    }
    if cx.error_count() > before {
        return None;
    }
    Some(crate::model::PfxOutput {
        file_name: file_name?,
        password_file,
        friendly_name,
    })
}

/// An absolute path without `..` or NUL (whether the file is safe is checked when it is read).
fn password_file(v: &Value, path: &str, cx: &mut Cx) -> Option<std::path::PathBuf> {
    let expected = "an absolute path to a root-owned file holding the password, such as \"/etc/akv-sync/web.pass\"";
    let problem = match v.as_str() {
        None => Some(format!("found {}", describe(v))),
        Some("") => Some("found an empty string".to_owned()),
        Some(s) if s.contains('\0') => Some(format!(
            "found {}, which contains a NUL character",
            quote(s)
        )),
        Some(s) if !s.starts_with('/') => {
            Some(format!("found {}, which is not absolute", quote(s)))
        }
        Some(s) if s.ends_with('/') => Some(format!("found {}, which names a folder", quote(s))),
        Some(s)
            if std::path::Path::new(s)
                .components()
                .any(|c| c == std::path::Component::ParentDir) =>
        {
            Some(format!("found {}, which contains `..`", quote(s)))
        }
        Some(s) => return Some(std::path::PathBuf::from(s)),
    };
    cx.err(
        ErrorKind::BadExtension,
        path,
        format!("{}; expected {expected}", problem.unwrap_or_default()),
    );
    None
}

/// A friendly name (the alias Java tools show): 1 to 64 characters, no control characters.
fn friendly_name(v: &Value, path: &str, cx: &mut Cx) -> Option<String> {
    match v.as_str() {
        Some(s) if !s.is_empty() && s.chars().count() <= 64 && !s.chars().any(char::is_control) => {
            Some(s.to_owned())
        }
        _ => {
            cx.err(
                ErrorKind::BadExtension,
                path,
                format!("found {}; expected a name of 1 to 64 characters without control characters, such as \"web\" (the alias `keytool -list` shows)", describe(v)),
            );
            None
        }
    }
}
