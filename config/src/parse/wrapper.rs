//! Where the settings sit: bare, in an ARM resource or template, or in a VM-agent handler file.

use super::cx::*;

/// Where the settings object sits, given the document's top-level object.
pub(super) struct Located<'a> {
    pub(super) wrapper: Wrapper,
    pub(super) value: &'a Value,
    pub(super) path: String,
}

pub(super) fn locate<'a>(
    doc: &'a Value,
    top: &'a Map<String, Value>,
    path: &str,
    cx: &mut Cx,
) -> Option<Located<'a>> {
    if let Some(rs) = top.get("runtimeSettings") {
        return locate_handler(rs, &at(path, "runtimeSettings"), cx);
    }
    if let Some(props) = top.get("properties").and_then(Value::as_object) {
        let is_extension = top
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.to_ascii_lowercase().ends_with("/extensions"));
        if is_extension || props.contains_key("settings") {
            return locate_arm(top, props, path, cx);
        }
    }
    if let Some(resources) = top.get("resources").and_then(Value::as_array) {
        return locate_in_template(resources, &at(path, "resources"), cx);
    }
    if SETTINGS_KEYS.iter().any(|k| top.contains_key(*k)) {
        // Bare: the whole document is the settings object.
        return Some(Located {
            wrapper: Wrapper::Bare,
            value: doc,
            path: path.to_owned(),
        });
    }
    if let Some(settings) = top.get("settings")
        && settings.get("secretsManagementSettings").is_some()
    {
        // `az vm extension show` prints the resource with `properties` flattened.
        return Some(Located {
            wrapper: Wrapper::ArmResource,
            value: settings,
            path: at(path, "settings"),
        });
    }
    let keys: Vec<String> = top.keys().map(|k| format!("`{k}`")).collect();
    let hint = if top.contains_key("observedCertificates") {
        " `observedCertificates` belongs inside `secretsManagementSettings`."
    } else {
        ""
    };
    cx.err(
        ErrorKind::NoSettings,
        path,
        format!(
            "found an object with {}; expected the settings (`secretsManagementSettings`, …), an ARM extension resource (`properties.settings`), or a VM-agent settings file (`runtimeSettings`).{hint}",
            if keys.is_empty() { "no keys".to_owned() } else { format!("the keys {}", keys.join(", ")) }
        ),
    );
    None
}

fn locate_handler<'a>(rs: &'a Value, path: &str, cx: &mut Cx) -> Option<Located<'a>> {
    let Some(list) = rs.as_array() else {
        cx.err(
            ErrorKind::WrongType,
            path,
            format!("found {}; expected an array with one entry `{{\"handlerSettings\": {{\"publicSettings\": …}}}}`", describe(rs)),
        );
        return None;
    };
    let Some(first) = list.first() else {
        cx.err(
            ErrorKind::NoSettings,
            path,
            "found an empty array; expected one entry `{\"handlerSettings\": {\"publicSettings\": …}}`",
        );
        return None;
    };
    if list.len() > 1 {
        cx.warn(
            path,
            format!(
                "found {} entries; only the first is used (the VM agent writes one)",
                list.len()
            ),
        );
    }
    let first_path = idx(path, 0);
    let Some(handler) = first.get("handlerSettings") else {
        cx.err(
            ErrorKind::Missing,
            &at(&first_path, "handlerSettings"),
            "found no `handlerSettings`; expected `{\"handlerSettings\": {\"publicSettings\": …}}`",
        );
        return None;
    };
    let handler_path = at(&first_path, "handlerSettings");
    let Some(public) = handler.get("publicSettings") else {
        cx.err(
            ErrorKind::Missing,
            &at(&handler_path, "publicSettings"),
            "found no `publicSettings`; expected the extension settings there (akv-sync reads only the public settings)",
        );
        return None;
    };
    Some(Located {
        wrapper: Wrapper::HandlerSettings,
        value: public,
        path: at(&handler_path, "publicSettings"),
    })
}

fn locate_arm<'a>(
    top: &'a Map<String, Value>,
    props: &'a Map<String, Value>,
    path: &str,
    cx: &mut Cx,
) -> Option<Located<'a>> {
    let props_path = at(path, "properties");
    let settings_path = at(&props_path, "settings");
    let misplaced = |cx: &mut Cx, p: &str| {
        cx.err(
            ErrorKind::MisplacedAuthenticationSettings,
            p,
            format!(
                "found `authenticationSettings` here; expected it inside `{settings_path}`, beside `secretsManagementSettings` (here it is not seen, and the identity would silently fall back to the system-assigned one)"
            ),
        );
    };
    if top.contains_key("authenticationSettings") {
        misplaced(cx, &at(path, "authenticationSettings"));
    }
    if props.contains_key("authenticationSettings") {
        misplaced(cx, &at(&props_path, "authenticationSettings"));
    }
    if props
        .get("protectedSettings")
        .and_then(Value::as_object)
        .is_some_and(|p| p.contains_key("authenticationSettings"))
    {
        misplaced(
            cx,
            &at(
                &at(&props_path, "protectedSettings"),
                "authenticationSettings",
            ),
        );
    }
    if let Some(ext_type) = props.get("type").and_then(Value::as_str)
        && !ext_type.eq_ignore_ascii_case("KeyVaultForLinux")
    {
        cx.warn(
            &at(&props_path, "type"),
            format!("the extension type is {}; expected \"KeyVaultForLinux\" (the settings are read anyway)", quote(ext_type)),
        );
    }
    match props.get("settings") {
        Some(settings) => Some(Located {
            wrapper: Wrapper::ArmResource,
            value: settings,
            path: settings_path,
        }),
        None => {
            let hint = if props.contains_key("secretsManagementSettings") {
                " `secretsManagementSettings` sits directly in `properties`: move it into `properties.settings`."
            } else {
                ""
            };
            cx.err(
                ErrorKind::Missing,
                &settings_path,
                format!("found an extension resource without `properties.settings`; expected the extension settings there.{hint}"),
            );
            None
        }
    }
}

fn is_kv_extension(v: &Value) -> bool {
    let props = v.get("properties");
    let typed = props
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("KeyVaultForLinux"));
    let has_settings = props
        .and_then(|p| p.get("settings"))
        .and_then(|s| s.get("secretsManagementSettings"))
        .is_some();
    typed || has_settings
}

/// A whole ARM template: find the one KeyVaultForLinux extension among its resources (at the
/// top, as a child resource, or in a scale set's extension profile).
fn locate_in_template<'a>(resources: &'a [Value], path: &str, cx: &mut Cx) -> Option<Located<'a>> {
    let mut found: Vec<(&'a Map<String, Value>, String)> = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let rp = idx(path, i);
        if is_kv_extension(r)
            && let Some(obj) = r.as_object()
        {
            found.push((obj, rp.clone()));
        }
        if let Some(children) = r.get("resources").and_then(Value::as_array) {
            for (j, c) in children.iter().enumerate() {
                if is_kv_extension(c)
                    && let Some(obj) = c.as_object()
                {
                    found.push((obj, idx(&at(&rp, "resources"), j)));
                }
            }
        }
        let profile = r
            .pointer("/properties/virtualMachineProfile/extensionProfile/extensions")
            .and_then(Value::as_array);
        for (j, e) in profile.into_iter().flatten().enumerate() {
            if is_kv_extension(e)
                && let Some(obj) = e.as_object()
            {
                found.push((
                    obj,
                    idx(
                        &at(
                            &rp,
                            "properties.virtualMachineProfile.extensionProfile.extensions",
                        ),
                        j,
                    ),
                ));
            }
        }
    }
    match found.as_slice() {
        [] => {
            cx.err(
                ErrorKind::NoSettings,
                path,
                "found an ARM template whose resources hold no KeyVaultForLinux extension; expected one resource with `\"type\": \"KeyVaultForLinux\"` in its properties",
            );
            None
        }
        [(obj, p)] => {
            let props = obj.get("properties").and_then(Value::as_object)?;
            locate_arm(obj, props, p, cx)
        }
        many => {
            let paths: Vec<&str> = many.iter().map(|(_, p)| p.as_str()).collect();
            cx.err(
                ErrorKind::NoSettings,
                path,
                format!(
                    "found {} KeyVaultForLinux extensions ({}); expected one: validate each resource on its own",
                    many.len(),
                    paths.join(", ")
                ),
            );
            None
        }
    }
}
