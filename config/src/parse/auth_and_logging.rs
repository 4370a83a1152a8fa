//! `authenticationSettings` (which managed identity) and `loggingSettings` (Fluentd).

use super::cx::*;

pub(super) fn authentication(v: Option<&Value>, path: &str, cx: &mut Cx) -> Option<Identity> {
    let obj = match v {
        None => {
            return Some(Identity::SystemAssigned {
                endpoint: DEFAULT_IMDS_ENDPOINT.to_owned(),
            });
        }
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) => {
            string_instead_of_object(path, s, "an object", cx);
            return None;
        }
        Some(other) => {
            cx.err(
                ErrorKind::WrongType,
                path,
                format!(
                    "found {}; expected an object with `msiEndpoint` and `msiClientId`",
                    describe(other)
                ),
            );
            return None;
        }
    };
    let before = cx.error_count();
    cx.unknown_keys(obj, path, AUTH_KEYS);
    let endpoint_path = at(path, "msiEndpoint");
    let endpoint = match obj.get("msiEndpoint") {
        None => None,
        Some(Value::String(s)) => match identity_endpoint(s) {
            Ok(noted) => {
                for note in noted.notes {
                    cx.warn(&endpoint_path, note);
                }
                Some(noted.value)
            }
            Err((kind, message)) => {
                cx.err(kind, &endpoint_path, message);
                None
            }
        },
        Some(other) => {
            cx.err(
                ErrorKind::WrongType,
                &endpoint_path,
                format!(
                    "found {}; expected a URL string such as \"{DEFAULT_IMDS_ENDPOINT}\"",
                    describe(other)
                ),
            );
            None
        }
    };
    let client_path = at(path, "msiClientId");
    let client_id = match obj.get("msiClientId") {
        None => None,
        Some(Value::String(s)) if s.trim().is_empty() => {
            cx.warn(&client_path, "empty: the system-assigned identity is used");
            None
        }
        Some(Value::String(s)) => client_id(s, &client_path, cx),
        Some(other) => {
            cx.err(
                ErrorKind::WrongType,
                &client_path,
                format!(
                    "found {}; expected the client id (a GUID) of a user-assigned identity, or its resource id",
                    describe(other)
                ),
            );
            None
        }
    };
    if cx.error_count() > before {
        return None;
    }
    let identity = match (endpoint, client_id) {
        (Some((endpoint, true)), client) => {
            if client.is_some() {
                cx.warn(
                    &client_path,
                    "Azure Arc machines have only a system-assigned identity; `msiClientId` is ignored",
                );
            }
            Identity::Arc { endpoint }
        }
        (Some((endpoint, false)), Some(user)) => user_assigned(endpoint, user),
        (Some((endpoint, false)), None) => Identity::SystemAssigned { endpoint },
        (None, Some(user)) => {
            cx.warn(
                &endpoint_path,
                format!("absent although `msiClientId` is set (the documentation requires both); \"{DEFAULT_IMDS_ENDPOINT}\" is used"),
            );
            user_assigned(DEFAULT_IMDS_ENDPOINT.to_owned(), user)
        }
        (None, None) => Identity::SystemAssigned {
            endpoint: DEFAULT_IMDS_ENDPOINT.to_owned(),
        },
    };
    Some(identity)
}

fn user_assigned(endpoint: String, user: UserIdentity) -> Identity {
    match user {
        UserIdentity::ClientId(client_id) => Identity::UserAssigned {
            endpoint,
            client_id,
        },
        UserIdentity::ResourceId(resource_id) => Identity::UserAssignedByResourceId {
            endpoint,
            resource_id,
        },
    }
}

/// What `msiClientId` names a user-assigned identity by.
enum UserIdentity {
    ClientId(String),
    ResourceId(String),
}

fn client_id(s: &str, path: &str, cx: &mut Cx) -> Option<UserIdentity> {
    let found = quote(s);
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("/subscriptions/")
        || lower.contains("/providers/")
        || lower.contains("userassignedidentities")
    {
        if is_user_assigned_resource_id(s) {
            cx.warn(
                path,
                "holds the identity's resource id, not its client id: it is sent to IMDS as `msi_res_id` (the original extension expects the client id, a GUID: az identity show --ids '<resource id>' --query clientId --output tsv)",
            );
            Some(UserIdentity::ResourceId(s.to_owned()))
        } else {
            cx.err(
                ErrorKind::BadResourceId,
                path,
                format!(
                    "found {found}, which is not the resource id of a user-assigned identity; expected the identity's client id, a GUID such as \"00001111-aaaa-2222-bbbb-3333cccc4444\", or its resource id \"/subscriptions/<subscription GUID>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>\" (az identity show --name <identity> --resource-group <group> --query id)"
                ),
            );
            None
        }
    } else if is_placeholder(s) {
        cx.err(
            ErrorKind::Placeholder,
            path,
            format!(
                "found {found}, the placeholder of the documentation's example; expected the client id (a GUID) of your user-assigned identity (az identity show --name <identity> --resource-group <group> --query clientId), or remove `msiClientId` to use the system-assigned identity"
            ),
        );
        None
    } else if !is_guid(s) {
        cx.err(
            ErrorKind::BadClientId,
            path,
            format!(
                "found {found}, which is not a GUID; expected the identity's client id such as \"00001111-aaaa-2222-bbbb-3333cccc4444\" (az identity show --query clientId)"
            ),
        );
        None
    } else {
        Some(UserIdentity::ClientId(s.to_owned()))
    }
}

/// `/subscriptions/<GUID>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
/// the fixed parts in any case (Azure compares resource ids case-insensitively). A group is 1 to
/// 90 letters, digits, `_`, `(`, `)`, `-`, `.`, not ending in `.`; a name is 3 to 128 letters,
/// digits, `-` and `_`, starting with a letter or digit.
fn is_user_assigned_resource_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    let [
        "",
        subscriptions,
        subscription,
        resource_groups,
        group,
        providers,
        namespace,
        kind,
        name,
    ] = parts.as_slice()
    else {
        return false;
    };
    let group_ok = (1..=90).contains(&group.chars().count())
        && !group.ends_with('.')
        && group
            .chars()
            .all(|c| c.is_alphanumeric() || "_()-.".contains(c));
    let name_ok = (3..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    subscriptions.eq_ignore_ascii_case("subscriptions")
        && is_guid(subscription)
        && resource_groups.eq_ignore_ascii_case("resourceGroups")
        && group_ok
        && providers.eq_ignore_ascii_case("providers")
        && namespace.eq_ignore_ascii_case("Microsoft.ManagedIdentity")
        && kind.eq_ignore_ascii_case("userAssignedIdentities")
        && name_ok
}

pub(super) fn logging(
    v: Option<&Value>,
    path: &str,
    cx: &mut Cx,
) -> Option<Option<LoggingSettings>> {
    let obj = match v {
        None => return Some(None),
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) => {
            string_instead_of_object(path, s, "an object", cx);
            return None;
        }
        Some(other) => {
            cx.err(
                ErrorKind::BadLogging,
                path,
                format!("found {}; expected an object such as {{\"logger\": \"fluentd\", \"endpoint\": \"tcp://localhost:24224\", \"format\": \"forward\", \"servicename\": \"akvvm_service\"}}", describe(other)),
            );
            return None;
        }
    };
    let before = cx.error_count();
    cx.unknown_keys(obj, path, LOGGING_KEYS);
    let text =
        |key: &str, default: Option<&str>, allowed: Option<&str>, cx: &mut Cx| -> Option<String> {
            let p = at(path, key);
            match (obj.get(key), default) {
                (None, Some(d)) => Some(d.to_owned()),
                (None, None) => {
                    cx.err(
                        ErrorKind::BadLogging,
                        &p,
                        format!("found no `{key}`; expected e.g. \"tcp://localhost:24224\""),
                    );
                    None
                }
                (Some(Value::String(s)), _) if !s.is_empty() => match allowed {
                    Some(a) if !s.eq_ignore_ascii_case(a) => {
                        cx.err(
                            ErrorKind::BadLogging,
                            &p,
                            format!(
                                "found {}; expected \"{a}\", the only {key} supported",
                                quote(s)
                            ),
                        );
                        None
                    }
                    _ => Some(s.clone()),
                },
                (Some(other), _) => {
                    cx.err(
                        ErrorKind::BadLogging,
                        &p,
                        format!("found {}; expected a non-empty string", describe(other)),
                    );
                    None
                }
            }
        };
    let logger = text("logger", Some("fluentd"), Some("fluentd"), cx);
    let endpoint = text("endpoint", None, None, cx);
    let format = text("format", Some("forward"), Some("forward"), cx);
    let service_name = text("servicename", Some("akvvm_service"), None, cx);
    let hostport = endpoint.and_then(|e| match logging_endpoint(&e) {
        Ok(hp) => Some(hp),
        Err(message) => {
            cx.err(ErrorKind::BadLogging, &at(path, "endpoint"), message);
            None
        }
    });
    if cx.error_count() > before {
        return None;
    }
    let (host, port) = hostport?;
    Some(Some(LoggingSettings {
        logger: logger?,
        host,
        port,
        format: format?,
        service_name: service_name?,
    }))
}
