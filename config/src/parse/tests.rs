//! One test per settings rule (SPEC §1). Tests match on `ErrorKind` and JSON paths, never on
//! message text.

use super::*;
use crate::model::Cloud;

const SMS: &str = "secretsManagementSettings";

fn ok(text: &str) -> Parsed {
    let parsed = parse(text).unwrap_or_else(|e| panic!("expected success, got {e:#?}"));
    assert!(
        parsed.refused.is_empty(),
        "expected every certificate accepted, got {:#?}",
        parsed.refused
    );
    parsed
}

/// (kind, path) of every error: the document's, or the refused certificates'.
fn errors(text: &str) -> Vec<(ErrorKind, String)> {
    match parse(text) {
        Ok(p) if p.refused.is_empty() => panic!("expected errors, got {:#?}", p.settings),
        Ok(p) => p.refused.into_iter().map(|e| (e.kind, e.path)).collect(),
        Err(e) => e.into_iter().map(|e| (e.kind, e.path)).collect(),
    }
}

fn one_error(text: &str) -> (ErrorKind, String) {
    let e = errors(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.into_iter().next().unwrap()
}

/// Bare 3.x settings with the given observed certificates (a JSON array) and extra top-level keys.
fn v3(certs: &str, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!(
        r#"{{"{SMS}": {{"pollingIntervalInS": "3600", "observedCertificates": {certs}}}{extra}}}"#
    )
}

fn one_cert(cert: &str) -> String {
    v3(&format!("[{cert}]"), "")
}

const URL1: &str = "https://myvault.vault.azure.net/secrets/mycertificate1";

fn warning_paths(p: &Parsed) -> Vec<&str> {
    p.warnings.iter().map(|w| w.path.as_str()).collect()
}

#[test]
fn bare_v3_settings_become_the_model() {
    let p = ok(&v3(
        &format!(
            r#"[{{"url": "{URL1}", "certificateStoreLocation": "/srv/app1/", "customSymbolicLinkName": "app1Cert1",
            "acls": [{{"user": "app1", "group": "appGroup1"}}, {{"user": "service1"}}]}}]"#
        ),
        "",
    ));
    let s = &p.settings;
    assert_eq!(s.wrapper, Wrapper::Bare);
    assert_eq!(s.schema, Schema::V3);
    assert_eq!(s.polling_interval, Duration::from_secs(3600));
    assert!(!s.require_initial_sync);
    assert!(!s.acl_enabled);
    assert_eq!(
        s.identity,
        Identity::SystemAssigned {
            endpoint: DEFAULT_IMDS_ENDPOINT.into()
        }
    );
    let c = &s.certificates[0];
    assert_eq!(
        c.json_path,
        "secretsManagementSettings.observedCertificates[0]"
    );
    assert_eq!(c.url.vault, "myvault");
    assert_eq!(c.url.name, "mycertificate1");
    assert_eq!(c.store, PathBuf::from("/srv/app1"));
    assert_eq!(c.link_name.as_deref(), Some("app1Cert1"));
    assert_eq!(
        c.acls,
        vec![
            AclGrant {
                user: Some(Principal::Name("app1".into())),
                group: Some(Principal::Name("appGroup1".into()))
            },
            AclGrant {
                user: Some(Principal::Name("service1".into())),
                group: None
            },
        ]
    );
}

#[test]
fn the_v3_default_store_applies_when_none_is_given() {
    let p = ok(&one_cert(&format!(r#"{{"url": "{URL1}"}}"#)));
    assert_eq!(
        p.settings.certificates[0].store,
        PathBuf::from(DEFAULT_STORE_V3)
    );
}

#[test]
fn an_arm_resource_is_unwrapped() {
    let text = format!(
        r#"{{"type": "Microsoft.Compute/virtualMachines/extensions", "name": "KeyVaultForLinux",
            "properties": {{"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux", "typeHandlerVersion": "3.0",
            "settings": {}}}}}"#,
        one_cert(&format!(r#"{{"url": "{URL1}"}}"#))
    );
    let p = ok(&text);
    assert_eq!(p.settings.wrapper, Wrapper::ArmResource);
    assert_eq!(
        p.settings.certificates[0].json_path,
        "properties.settings.secretsManagementSettings.observedCertificates[0]"
    );
}

#[test]
fn a_whole_arm_template_yields_its_key_vault_extension() {
    let text = format!(
        r#"{{"$schema": "x", "resources": [{{"type": "Microsoft.Compute/virtualMachines", "properties": {{}}}},
            {{"type": "Microsoft.Compute/virtualMachines/extensions", "properties": {{"type": "KeyVaultForLinux", "settings": {}}}}}]}}"#,
        one_cert(&format!(r#"{{"url": "{URL1}"}}"#))
    );
    let p = ok(&text);
    assert_eq!(p.settings.wrapper, Wrapper::ArmResource);
    assert!(
        p.settings.certificates[0]
            .json_path
            .starts_with("resources[1].properties.settings.")
    );
}

#[test]
fn a_vm_agent_handler_file_is_unwrapped() {
    let text = format!(
        r#"{{"runtimeSettings": [{{"handlerSettings": {{"protectedSettingsCertThumbprint": null, "publicSettings": {}}}}}]}}"#,
        one_cert(&format!(r#"{{"url": "{URL1}"}}"#))
    );
    let p = ok(&text);
    assert_eq!(p.settings.wrapper, Wrapper::HandlerSettings);
    assert!(
        p.settings.certificates[0]
            .json_path
            .starts_with("runtimeSettings[0].handlerSettings.publicSettings.")
    );
}

#[test]
fn the_v2_string_array_uses_the_old_default_store() {
    let p = ok(&format!(
        r#"{{"{SMS}": {{"pollingIntervalInS": "600", "certificateStoreName": "MY", "observedCertificates": ["{URL1}", "https://myvault.vault.azure.net/secrets/c2"]}}}}"#
    ));
    assert_eq!(p.settings.schema, Schema::V2);
    assert_eq!(p.settings.certificates.len(), 2);
    assert_eq!(
        p.settings.certificates[1].store,
        PathBuf::from(DEFAULT_STORE_V2)
    );
    assert!(warning_paths(&p).contains(&"secretsManagementSettings.certificateStoreName"));
}

#[test]
fn the_v2_store_location_sits_beside_the_list() {
    let p = ok(&format!(
        r#"{{"{SMS}": {{"certificateStoreLocation": "/etc/certs", "observedCertificates": ["{URL1}"]}}}}"#
    ));
    assert_eq!(
        p.settings.certificates[0].store,
        PathBuf::from("/etc/certs")
    );
}

#[test]
fn mixing_the_two_schemas_is_refused() {
    let e = one_error(&v3(&format!(r#"[{{"url": "{URL1}"}}, "{URL1}"]"#), ""));
    assert_eq!(
        e,
        (
            ErrorKind::WrongType,
            "secretsManagementSettings.observedCertificates[1]".into()
        )
    );
}

#[test]
fn settings_that_are_a_json_string_are_explained() {
    let inner = one_cert(&format!(r#"{{"url": "{URL1}"}}"#));
    let text = serde_json::to_string(&inner).unwrap();
    assert_eq!(one_error(&text), (ErrorKind::JsonInString, "$".into()));
    let arm = format!(
        r#"{{"type": "Microsoft.Compute/virtualMachines/extensions", "properties": {{"settings": {text}}}}}"#
    );
    assert_eq!(
        one_error(&arm),
        (ErrorKind::JsonInString, "properties.settings".into())
    );
}

#[test]
fn powershell_escaped_quotes_are_explained() {
    let text = one_cert(&format!(r#"{{"url": "{URL1}"}}"#)).replace('"', "\\\"");
    assert_eq!(one_error(&text), (ErrorKind::EscapedQuotes, "$".into()));
    let quoted_url = one_cert(&format!(r#"{{"url": "\"{URL1}\""}}"#));
    assert_eq!(
        one_error(&quoted_url),
        (
            ErrorKind::EscapedQuotes,
            "secretsManagementSettings.observedCertificates[0].url".into()
        )
    );
}

#[test]
fn text_that_is_not_json_is_a_syntax_error() {
    assert_eq!(
        one_error("{ \"secretsManagementSettings\": "),
        (ErrorKind::Syntax, "$".into())
    );
    assert_eq!(one_error(""), (ErrorKind::Syntax, "$".into()));
}

#[test]
fn trailing_commas_and_comments_are_tolerated_with_warnings() {
    let text = format!(
        "{{ // mine\n\"{SMS}\": {{\"observedCertificates\": [{{\"url\": \"{URL1}\", \"acls\": [{{\"user\": \"app2\",}}]}},]}}}}"
    );
    let p = ok(&text);
    assert_eq!(p.warnings.iter().filter(|w| w.path == "$").count(), 3);
}

#[test]
fn a_document_without_settings_says_what_it_found() {
    assert_eq!(
        one_error(r#"{"foo": 1}"#),
        (ErrorKind::NoSettings, "$".into())
    );
    assert_eq!(one_error("[1, 2]"), (ErrorKind::NoSettings, "$".into()));
    assert_eq!(
        one_error(r#"{"authenticationSettings": {}}"#),
        (ErrorKind::Missing, "secretsManagementSettings".into())
    );
}

#[test]
fn authentication_settings_inside_secrets_management_are_misplaced() {
    let text = format!(
        r#"{{"{SMS}": {{"observedCertificates": [{{"url": "{URL1}"}}], "authenticationSettings": {{"msiClientId": "00001111-aaaa-2222-bbbb-3333cccc4444"}}}}}}"#
    );
    assert_eq!(
        one_error(&text),
        (
            ErrorKind::MisplacedAuthenticationSettings,
            "secretsManagementSettings.authenticationSettings".into()
        )
    );
}

#[test]
fn authentication_settings_outside_arm_settings_are_misplaced() {
    let text = format!(
        r#"{{"type": "Microsoft.Compute/virtualMachines/extensions", "properties": {{"settings": {},
            "authenticationSettings": {{"msiEndpoint": "{DEFAULT_IMDS_ENDPOINT}"}}}}}}"#,
        one_cert(&format!(r#"{{"url": "{URL1}"}}"#))
    );
    assert_eq!(
        one_error(&text),
        (
            ErrorKind::MisplacedAuthenticationSettings,
            "properties.authenticationSettings".into()
        )
    );
}

fn with_auth(auth: &str) -> String {
    v3(
        &format!(r#"[{{"url": "{URL1}"}}]"#),
        &format!(r#""authenticationSettings": {auth}"#),
    )
}

const RESOURCE_ID: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-web/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-web";

#[test]
fn a_resource_id_as_client_id_is_accepted_with_a_warning() {
    let p = ok(&with_auth(&format!(
        r#"{{"msiEndpoint": "http://169.254.169.254/metadata/identity", "msiClientId": "{RESOURCE_ID}"}}"#
    )));
    assert_eq!(
        p.settings.identity,
        Identity::UserAssignedByResourceId {
            endpoint: "http://169.254.169.254/metadata/identity".into(),
            resource_id: RESOURCE_ID.into()
        }
    );
    assert_eq!(
        warning_paths(&p),
        vec!["authenticationSettings.msiClientId"]
    );
    // Resource ids are case-insensitive, as Azure treats them; kept as written.
    let lower = RESOURCE_ID.to_ascii_lowercase();
    let p = ok(&with_auth(&format!(r#"{{"msiClientId": "{lower}"}}"#)));
    assert_eq!(
        p.settings.identity,
        Identity::UserAssignedByResourceId {
            endpoint: DEFAULT_IMDS_ENDPOINT.into(),
            resource_id: lower
        }
    );
}

#[test]
fn a_resource_id_that_is_not_a_user_assigned_identity_is_refused() {
    let identity = "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/";
    for bad in [
        // the subscription is not a GUID
        format!("/subscriptions/0000/resourceGroups/rg{identity}id1"),
        // another kind of resource
        "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1".to_owned(),
        // no name, a name with a space, a name too short, a query, one segment too many
        format!("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg{identity}"),
        format!("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg{identity}id web"),
        format!("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg{identity}i"),
        format!("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg{identity}id?x=1"),
        format!("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg{identity}id/extra"),
        // no resource group
        format!("/subscriptions/00000000-1111-2222-3333-444444444444{identity}id1"),
        // not starting at /subscriptions/
        format!("subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg{identity}id1"),
    ] {
        let text = with_auth(&format!(r#"{{"msiClientId": "{bad}"}}"#));
        assert_eq!(
            one_error(&text),
            (
                ErrorKind::BadResourceId,
                "authenticationSettings.msiClientId".into()
            ),
            "{bad}"
        );
    }
}

#[test]
fn a_resource_id_on_arc_is_ignored_with_a_warning() {
    let p = ok(&with_auth(&format!(
        r#"{{"msiEndpoint": "http://localhost:40342/metadata/identity", "msiClientId": "{RESOURCE_ID}"}}"#
    )));
    assert!(matches!(p.settings.identity, Identity::Arc { .. }));
    assert!(warning_paths(&p).contains(&"authenticationSettings.msiClientId"));
}

#[test]
fn a_client_id_must_be_a_guid_and_not_the_placeholder() {
    let bad = with_auth(
        r#"{"msiEndpoint": "http://169.254.169.254/metadata/identity", "msiClientId": "my-identity"}"#,
    );
    assert_eq!(
        one_error(&bad),
        (
            ErrorKind::BadClientId,
            "authenticationSettings.msiClientId".into()
        )
    );
    let placeholder = with_auth(
        r#"{"msiEndpoint": "http://169.254.169.254/metadata/identity", "msiClientId": "xxxxxx-xxxx-xxxx-xxxx-xxxxxxxx"}"#,
    );
    assert_eq!(
        one_error(&placeholder),
        (
            ErrorKind::Placeholder,
            "authenticationSettings.msiClientId".into()
        )
    );
}

#[test]
fn a_client_id_selects_the_user_assigned_identity() {
    let p = ok(&with_auth(
        r#"{"msiEndpoint": "http://169.254.169.254/metadata/identity/oauth2/token", "msiClientId": "00001111-aaaa-2222-bbbb-3333cccc4444"}"#,
    ));
    assert_eq!(
        p.settings.identity,
        Identity::UserAssigned {
            endpoint: "http://169.254.169.254/metadata/identity".into(),
            client_id: "00001111-aaaa-2222-bbbb-3333cccc4444".into()
        }
    );
}

#[test]
fn the_arc_endpoint_selects_arc() {
    let p = ok(&with_auth(
        r#"{"msiEndpoint": "http://localhost:40342/metadata/identity"}"#,
    ));
    assert_eq!(
        p.settings.identity,
        Identity::Arc {
            endpoint: "http://localhost:40342/metadata/identity".into()
        }
    );
}

#[test]
fn a_bad_msi_endpoint_is_refused() {
    let e = one_error(&with_auth(r#"{"msiEndpoint": "169.254.169.254"}"#));
    assert_eq!(
        e,
        (
            ErrorKind::BadEndpoint,
            "authenticationSettings.msiEndpoint".into()
        )
    );
}

#[test]
fn observed_certificates_must_be_an_array() {
    let e = one_error(&v3(&format!(r#""{URL1}""#), ""));
    assert_eq!(
        e,
        (
            ErrorKind::WrongType,
            "secretsManagementSettings.observedCertificates".into()
        )
    );
    let e = one_error(&format!(r#"{{"{SMS}": {{"pollingIntervalInS": "3600"}}}}"#));
    assert_eq!(
        e,
        (
            ErrorKind::Missing,
            "secretsManagementSettings.observedCertificates".into()
        )
    );
}

#[test]
fn url_mistakes_are_reported_at_the_url() {
    let path = "secretsManagementSettings.observedCertificates[0].url".to_string();
    for (url, kind) in [
        (
            "https://myvault.vault.azure.net/certificates/c",
            ErrorKind::CertificatesPath,
        ),
        (
            "http://myvault.vault.azure.net/secrets/c",
            ErrorKind::NotHttps,
        ),
        (
            "https://myvault.example.com/secrets/c",
            ErrorKind::NotVaultHost,
        ),
        (
            "https://myvault.vault.azure.net/secrets/..",
            ErrorKind::UnsafeName,
        ),
        ("https://myvault.vault.azure.net/", ErrorKind::BadUrl),
    ] {
        assert_eq!(
            one_error(&one_cert(&format!(r#"{{"url": "{url}"}}"#))),
            (kind, path.clone()),
            "{url}"
        );
    }
    assert_eq!(one_error(&one_cert("{}")), (ErrorKind::Missing, path));
}

#[test]
fn pinned_versions_sovereign_clouds_and_case_are_kept() {
    let p = ok(&v3(
        r#"[{"url": "https://ExampleVault.vault.azure.cn/secrets/Cert/0123456789abcdef0123456789abcdef/?api-version=7.4"}]"#,
        "",
    ));
    let u = &p.settings.certificates[0].url;
    assert_eq!(u.vault, "ExampleVault");
    assert_eq!(u.cloud, Cloud::China);
    assert_eq!(
        u.version.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(
        warning_paths(&p),
        ["secretsManagementSettings.observedCertificates[0].url"]
    );
}

#[test]
fn the_polling_interval_must_be_a_positive_integer() {
    let with = |v: &str| {
        format!(r#"{{"{SMS}": {{"pollingIntervalInS": {v}, "observedCertificates": []}}}}"#)
    };
    assert_eq!(
        ok(&with("\"60\"")).settings.polling_interval,
        Duration::from_secs(60)
    );
    assert_eq!(
        ok(&with("120")).settings.polling_interval,
        Duration::from_secs(120)
    );
    for bad in [
        "\"0\"", "0", "-5", "\"1h\"", "3600.5", "\"\"", "true", "\" 60\"",
    ] {
        assert_eq!(
            one_error(&with(bad)),
            (
                ErrorKind::BadPollingInterval,
                "secretsManagementSettings.pollingIntervalInS".into()
            ),
            "{bad}"
        );
    }
}

#[test]
fn unknown_keys_warn_with_a_suggestion() {
    let p = ok(&format!(
        r#"{{"{SMS}": {{"pollingIntervalInSeconds": "60", "observedCertificates": [{{"url": "{URL1}", "customSymlinkName": "x"}}]}}}}"#
    ));
    let w: Vec<(&str, bool)> = p
        .warnings
        .iter()
        .map(|w| (w.path.as_str(), w.message.contains("did you mean")))
        .collect();
    assert!(
        w.contains(&("secretsManagementSettings.pollingIntervalInSeconds", true)),
        "{w:?}"
    );
    assert!(
        w.contains(&(
            "secretsManagementSettings.observedCertificates[0].customSymlinkName",
            true
        )),
        "{w:?}"
    );
}

#[test]
fn windows_only_keys_are_accepted_with_a_warning() {
    let p = ok(&format!(
        r#"{{"{SMS}": {{"linkOnRenewal": true, "observedCertificates": [{{"url": "{URL1}", "certificateStoreName": "MY"}}]}}}}"#
    ));
    assert_eq!(
        warning_paths(&p),
        [
            "secretsManagementSettings.linkOnRenewal",
            "secretsManagementSettings.observedCertificates[0].certificateStoreName"
        ]
    );
}

#[test]
fn boolean_strings_are_read_with_a_warning() {
    // Real settings in the original's bug reports carry `"linkOnRenewal": "false"`.
    let p = ok(&format!(
        r#"{{"{SMS}": {{"aclEnabled": "true", "requireInitialSync": "False", "observedCertificates": [{{"url": "{URL1}"}}]}}}}"#
    ));
    assert!(p.settings.acl_enabled);
    assert!(!p.settings.require_initial_sync);
    assert_eq!(
        warning_paths(&p),
        [
            "secretsManagementSettings.requireInitialSync",
            "secretsManagementSettings.aclEnabled"
        ]
    );
}

#[test]
fn booleans_must_be_booleans() {
    for value in [r#""yes""#, "1", "null", "[]"] {
        let e = one_error(&format!(
            r#"{{"{SMS}": {{"aclEnabled": {value}, "observedCertificates": []}}}}"#
        ));
        assert_eq!(
            e,
            (
                ErrorKind::WrongType,
                "secretsManagementSettings.aclEnabled".into()
            ),
            "{value}"
        );
    }
}

#[test]
fn a_secret_on_a_managed_hsm_is_refused() {
    let e = one_error(&one_cert(
        r#"{"url": "https://myhsm.managedhsm.azure.net/secrets/c"}"#,
    ));
    assert_eq!(
        e,
        (
            ErrorKind::ManagedHsmSecret,
            "secretsManagementSettings.observedCertificates[0].url".into()
        )
    );
}

#[test]
fn link_names_that_escape_the_store_are_unsafe() {
    for name in ["../evil", "a/b", "..", ".", "", "a\\u0000b"] {
        let e = one_error(&one_cert(&format!(
            r#"{{"url": "{URL1}", "customSymbolicLinkName": "{name}"}}"#
        )));
        assert_eq!(
            e,
            (
                ErrorKind::UnsafeName,
                "secretsManagementSettings.observedCertificates[0].customSymbolicLinkName".into()
            ),
            "{name}"
        );
    }
}

#[test]
fn store_locations_must_be_absolute_without_parent_parts() {
    for loc in ["relative/store", "/var/lib/../etc", ""] {
        let e = one_error(&one_cert(&format!(
            r#"{{"url": "{URL1}", "certificateStoreLocation": "{loc}"}}"#
        )));
        assert_eq!(
            e,
            (
                ErrorKind::BadStoreLocation,
                "secretsManagementSettings.observedCertificates[0].certificateStoreLocation".into()
            ),
            "{loc}"
        );
    }
}

#[test]
fn acl_entries_take_names_or_numeric_ids() {
    let p = ok(&v3(
        &format!(
            r#"[{{"url": "{URL1}", "acls": [{{"user": 1001}}, {{"group": "1002"}}, {{"user": "www-data", "group": 33}}]}}]"#
        ),
        "",
    ));
    let acls = &p.settings.certificates[0].acls;
    assert_eq!(acls[0].user, Some(Principal::Id(1001)));
    assert_eq!(acls[1].group, Some(Principal::Id(1002)));
    assert_eq!(acls[2].user, Some(Principal::Name("www-data".into())));
    assert_eq!(acls[2].group, Some(Principal::Id(33)));
}

#[test]
fn acl_entries_need_a_user_or_a_group() {
    let text = one_cert(&format!(
        r#"{{"url": "{URL1}", "acls": [{{"user": "a"}}, {{}}, "app1", {{"user": -1}}]}}"#
    ));
    let p = "secretsManagementSettings.observedCertificates[0].acls";
    assert_eq!(
        errors(&text),
        vec![
            (ErrorKind::BadAcl, format!("{p}[1]")),
            (ErrorKind::BadAcl, format!("{p}[2]")),
            (ErrorKind::BadAcl, format!("{p}[3].user")),
        ]
    );
    let e = one_error(&one_cert(&format!(
        r#"{{"url": "{URL1}", "acls": {{"user": "a"}}}}"#
    )));
    assert_eq!(e, (ErrorKind::BadAcl, p.into()));
}

#[test]
fn acls_without_acl_enabled_are_reported_as_unused() {
    let p = ok(&one_cert(&format!(
        r#"{{"url": "{URL1}", "acls": [{{"user": "app1"}}]}}"#
    )));
    assert_eq!(
        warning_paths(&p),
        ["secretsManagementSettings.observedCertificates[0].acls"]
    );
}

#[test]
fn logging_settings_give_the_fluentd_endpoint() {
    let p = ok(&v3(
        "[]",
        r#""loggingSettings": {"logger": "fluentd", "endpoint": "tcp://localhost:24224", "format": "forward", "servicename": "akvvm_service"}"#,
    ));
    let l = p.settings.logging.unwrap();
    assert_eq!(
        (l.host.as_str(), l.port, l.service_name.as_str()),
        ("localhost", 24224, "akvvm_service")
    );
}

#[test]
fn a_bad_logging_endpoint_is_a_settings_error() {
    let e = one_error(&v3(
        "[]",
        r#""loggingSettings": {"logger": "fluentd", "endpoint": "localhost:24224"}"#,
    ));
    assert_eq!(
        e,
        (ErrorKind::BadLogging, "loggingSettings.endpoint".into())
    );
    let e = one_error(&v3(
        "[]",
        r#""loggingSettings": {"logger": "syslog", "endpoint": "tcp://localhost:24224"}"#,
    ));
    assert_eq!(e, (ErrorKind::BadLogging, "loggingSettings.logger".into()));
}

#[test]
fn two_certificates_writing_the_same_link_conflict() {
    let text = v3(
        &format!(
            r#"[{{"url": "{URL1}", "customSymbolicLinkName": "app"}}, {{"url": "https://myvault.vault.azure.net/secrets/other", "customSymbolicLinkName": "app"}}]"#
        ),
        "",
    );
    assert_eq!(
        one_error(&text),
        (
            ErrorKind::Conflict,
            "secretsManagementSettings.observedCertificates[1].customSymbolicLinkName".into()
        )
    );
}

#[test]
fn the_same_certificate_twice_in_one_store_conflicts_but_not_in_two_stores() {
    let same = v3(
        &format!(r#"[{{"url": "{URL1}"}}, {{"url": "{URL1}/"}}]"#),
        "",
    );
    assert_eq!(
        one_error(&same),
        (
            ErrorKind::Conflict,
            "secretsManagementSettings.observedCertificates[1].url".into()
        )
    );
    let two = v3(
        &format!(
            r#"[{{"url": "{URL1}"}}, {{"url": "{URL1}", "certificateStoreLocation": "/srv/b"}}]"#
        ),
        "",
    );
    assert_eq!(ok(&two).settings.certificates.len(), 2);
}

#[test]
fn extra_outputs_of_two_certificates_in_one_store_conflict() {
    let text = v3(
        &format!(
            r#"[{{"url": "{URL1}", "akvSync": {{"outputs": {{"fullchain": "fullchain.pem"}}}}}},
                {{"url": "https://myvault.vault.azure.net/secrets/other", "akvSync": {{"outputs": {{"cert": "fullchain.pem"}}}}}}]"#
        ),
        "",
    );
    assert_eq!(
        one_error(&text),
        (
            ErrorKind::Conflict,
            "secretsManagementSettings.observedCertificates[1].akvSync.outputs.cert".into()
        )
    );
}

#[test]
fn an_output_inside_another_certificates_name_space_conflicts() {
    let text = v3(
        r#"[{"url": "https://myvault.vault.azure.net/secrets/web", "acls": [{"user": "root"}]},
            {"url": "https://myvault.vault.azure.net/secrets/api", "akvSync": {"outputs": {"privkey": "myvault.web.key"}}}]"#,
        "",
    );
    assert_eq!(
        one_error(&text),
        (
            ErrorKind::Conflict,
            "secretsManagementSettings.observedCertificates[1].akvSync.outputs.privkey".into()
        )
    );
    let link = v3(
        r#"[{"url": "https://myvault.vault.azure.net/secrets/web"},
            {"url": "https://myvault.vault.azure.net/secrets/api", "customSymbolicLinkName": "myvault.web.pem"}]"#,
        "",
    );
    assert_eq!(
        one_error(&link),
        (
            ErrorKind::Conflict,
            "secretsManagementSettings.observedCertificates[1].customSymbolicLinkName".into()
        )
    );
    // In another store folder, or outside the `<vault>.<name>.` prefix, the name is free.
    let elsewhere = v3(
        r#"[{"url": "https://myvault.vault.azure.net/secrets/web"},
            {"url": "https://myvault.vault.azure.net/secrets/api", "certificateStoreLocation": "/srv/api",
             "akvSync": {"outputs": {"privkey": "myvault.web.key", "cert": "myvault.webkey.pem"}}}]"#,
        "",
    );
    assert_eq!(ok(&elsewhere).settings.certificates.len(), 2);
}

#[test]
fn traverse_ancestors_is_on_unless_turned_off() {
    assert!(ok(&v3("[]", "")).settings.agent.traverse_ancestors);
    let off = ok(&v3(
        "[]",
        r#""akvSyncSettings": {"traverseAncestors": false}"#,
    ));
    assert!(!off.settings.agent.traverse_ancestors);
    assert_eq!(
        one_error(&v3(
            "[]",
            r#""akvSyncSettings": {"traverseAncestors": "no"}"#
        )),
        (
            ErrorKind::WrongType,
            "akvSyncSettings.traverseAncestors".into()
        )
    );
}

#[test]
fn agent_extensions_are_read() {
    let p = ok(&v3(
        "[]",
        r#""akvSyncSettings": {"onChange": {"reloadUnit": "nginx.service"}, "metricsAddress": "127.0.0.1:9464",
            "expiryWarningDays": 30, "pruneKeepVersions": "3", "maxConcurrencyPerVault": 4, "pollingJitter": 0.5}"#,
    ));
    let a = &p.settings.agent;
    assert_eq!(
        a.hook,
        Some(HookSpec {
            hook: Hook::ReloadUnit("nginx.service".into()),
            timeout: DEFAULT_HOOK_TIMEOUT
        })
    );
    assert_eq!(a.metrics_address, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(
        (
            a.expiry_warning_days,
            a.prune_keep,
            a.max_concurrency_per_vault
        ),
        (30, Some(3), 4)
    );
    assert_eq!(a.jitter, 0.5);
}

#[test]
fn absent_agent_extensions_take_their_defaults() {
    let p = ok(&v3("[]", ""));
    assert_eq!(p.settings.agent, AgentSettings::default());
}

#[test]
fn bad_agent_extensions_are_refused() {
    let text = v3(
        "[]",
        r#""akvSyncSettings": {"metricsAddress": "0.0.0.0:9464", "pruneKeepVersions": 0, "maxConcurrencyPerVault": 0,
            "pollingJitter": 1.5, "onChange": {"command": "systemctl reload nginx"}}"#,
    );
    let p = "akvSyncSettings";
    let mut got = errors(&text);
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        got,
        vec![
            (
                ErrorKind::BadExtension,
                format!("{p}.maxConcurrencyPerVault")
            ),
            (ErrorKind::BadExtension, format!("{p}.metricsAddress")),
            (ErrorKind::BadExtension, format!("{p}.onChange.command")),
            (ErrorKind::BadExtension, format!("{p}.pollingJitter")),
            (ErrorKind::BadExtension, format!("{p}.pruneKeepVersions")),
        ]
    );
}

#[test]
fn a_hook_is_a_command_or_a_unit_with_a_timeout() {
    let p = ok(&one_cert(&format!(
        r#"{{"url": "{URL1}", "akvSync": {{"outputs": {{"cert": "cert.pem", "chain": "chain.pem", "fullchain": "fullchain.pem", "privkey": "privkey.pem"}},
            "onChange": {{"command": ["/usr/bin/systemctl", "reload", "nginx"], "timeoutInS": "5"}}}}}}"#
    )));
    let c = &p.settings.certificates[0];
    assert_eq!(c.outputs.privkey.as_deref(), Some("privkey.pem"));
    assert_eq!(
        c.hook,
        Some(HookSpec {
            hook: Hook::Command(vec![
                "/usr/bin/systemctl".into(),
                "reload".into(),
                "nginx".into()
            ]),
            timeout: Duration::from_secs(5)
        })
    );
    let both = one_cert(&format!(
        r#"{{"url": "{URL1}", "akvSync": {{"onChange": {{"command": ["/bin/true"], "reloadUnit": "nginx"}}}}}}"#
    ));
    assert_eq!(
        one_error(&both),
        (
            ErrorKind::BadExtension,
            "secretsManagementSettings.observedCertificates[0].akvSync.onChange".into()
        )
    );
    let dash = v3(
        "[]",
        r#""akvSyncSettings": {"onChange": {"reloadUnit": "--now"}}"#,
    );
    assert_eq!(
        one_error(&dash),
        (
            ErrorKind::BadExtension,
            "akvSyncSettings.onChange.reloadUnit".into()
        )
    );
}

#[test]
fn output_names_that_escape_the_store_are_unsafe() {
    let text = one_cert(&format!(
        r#"{{"url": "{URL1}", "akvSync": {{"outputs": {{"privkey": "../../etc/shadow"}}}}}}"#
    ));
    assert_eq!(
        one_error(&text),
        (
            ErrorKind::UnsafeName,
            "secretsManagementSettings.observedCertificates[0].akvSync.outputs.privkey".into()
        )
    );
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let text = format!(
        r#"{{"{SMS}": {{"pollingIntervalInS": "soon", "observedCertificates": [
            {{"url": "https://v.vault.azure.net/certificates/a"}},
            {{"url": "http://v.vault.azure.net/secrets/b", "customSymbolicLinkName": "../x"}}]}},
          "authenticationSettings": {{"msiEndpoint": "http://169.254.169.254/metadata/identity", "msiClientId": "nope"}},
          "loggingSettings": {{"endpoint": "udp://x:1"}}}}"#
    );
    let kinds: Vec<ErrorKind> = errors(&text).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        vec![
            ErrorKind::BadPollingInterval,
            ErrorKind::CertificatesPath,
            ErrorKind::NotHttps,
            ErrorKind::UnsafeName,
            ErrorKind::BadClientId,
            ErrorKind::BadLogging,
        ]
    );
}

#[test]
fn placeholders_from_the_documentation_are_named() {
    let e = one_error(&one_cert(
        r#"{"url": "https://<examplekv>.vault.azure.net/secrets/mycertificate1"}"#,
    ));
    assert_eq!(
        e,
        (
            ErrorKind::Placeholder,
            "secretsManagementSettings.observedCertificates[0].url".into()
        )
    );
}

#[test]
fn detect_tells_wrapper_and_schema_even_when_parsing_fails() {
    let arm = format!(
        r#"{{"type": "Microsoft.Compute/virtualMachines/extensions", "properties": {{"settings": {}}}}}"#,
        v3(r#"["http://v.vault.azure.net/secrets/a"]"#, "").replace(
            r#""pollingIntervalInS": "3600""#,
            r#""pollingIntervalInS": "soon""#
        )
    );
    assert!(parse(&arm).is_err());
    assert_eq!(
        detect(&arm),
        Detected {
            wrapper: Some(Wrapper::ArmResource),
            schema: Some(Schema::V2)
        }
    );
    assert_eq!(detect("not json"), Detected::default());
}

#[test]
fn a_repeated_key_warns_that_only_the_last_counts() {
    let text = format!(
        r#"{{"{SMS}": {{"observedCertificates": [{{"url": "{URL1}"}}], "observedCertificates": [], "aclEnabled": false}}}}"#
    );
    let p = ok(&text);
    assert_eq!(
        warning_paths(&p),
        [
            "secretsManagementSettings.observedCertificates",
            "secretsManagementSettings.observedCertificates"
        ]
    );
}

#[test]
fn a_conflict_is_reported_together_with_other_mistakes() {
    let text = v3(
        &format!(
            r#"[{{"url": "{URL1}", "customSymbolicLinkName": "web"}}, {{"url": "http://v.vault.azure.net/secrets/x"}},
                {{"url": "https://myvault.vault.azure.net/secrets/other", "customSymbolicLinkName": "web"}}]"#
        ),
        "",
    );
    let p = "secretsManagementSettings.observedCertificates";
    assert_eq!(
        errors(&text),
        vec![
            (ErrorKind::NotHttps, format!("{p}[1].url")),
            (
                ErrorKind::Conflict,
                format!("{p}[2].customSymbolicLinkName")
            ),
        ]
    );
}

#[test]
fn a_very_short_polling_interval_warns() {
    let with = |v: &str| {
        format!(r#"{{"{SMS}": {{"pollingIntervalInS": "{v}", "observedCertificates": []}}}}"#)
    };
    let p = ok(&with("5"));
    assert_eq!(p.settings.polling_interval, Duration::from_secs(5));
    assert_eq!(
        warning_paths(&p),
        [
            "secretsManagementSettings.pollingIntervalInS",
            "secretsManagementSettings.observedCertificates"
        ]
    );
    let p = ok(&with("60"));
    assert_eq!(
        warning_paths(&p),
        ["secretsManagementSettings.observedCertificates"]
    );
}

#[test]
fn pfx_and_der_outputs_are_read_with_their_password_file_and_friendly_name() {
    let p = ok(&one_cert(&format!(
        r#"{{"url": "{URL1}", "akvSync": {{"outputs": {{"certDer": "cert.der", "pfx": "web.pfx",
            "pfxPasswordFile": "/etc/akv-sync/web.pass", "pfxFriendlyName": "tomcat"}}}}}}"#
    )));
    let o = &p.settings.certificates[0].outputs;
    assert_eq!(o.cert_der.as_deref(), Some("cert.der"));
    assert_eq!(
        o.pfx,
        Some(crate::PfxOutput {
            file_name: "web.pfx".into(),
            password_file: Some("/etc/akv-sync/web.pass".into()),
            friendly_name: Some("tomcat".into()),
        })
    );
    let bare = ok(&one_cert(&format!(
        r#"{{"url": "{URL1}", "akvSync": {{"outputs": {{"pfx": "web.pfx"}}}}}}"#
    )));
    let pfx = bare.settings.certificates[0].outputs.pfx.clone().unwrap();
    assert_eq!((pfx.password_file, pfx.friendly_name), (None, None));
}

#[test]
fn pfx_settings_without_pfx_or_with_a_relative_password_file_are_refused() {
    let out = |k: &str| format!("{SMS}.observedCertificates[0].akvSync.outputs.{k}");
    let alone = one_cert(&format!(
        r#"{{"url": "{URL1}", "akvSync": {{"outputs": {{"pfxPasswordFile": "/etc/akv-sync/web.pass"}}}}}}"#
    ));
    assert_eq!(
        one_error(&alone),
        (ErrorKind::BadExtension, out("pfxPasswordFile"))
    );
    let relative = one_cert(&format!(
        r#"{{"url": "{URL1}", "akvSync": {{"outputs": {{"pfx": "web.pfx", "pfxPasswordFile": "web.pass"}}}}}}"#
    ));
    assert_eq!(
        one_error(&relative),
        (ErrorKind::BadExtension, out("pfxPasswordFile"))
    );
    let long_name = one_cert(&format!(
        r#"{{"url": "{URL1}", "akvSync": {{"outputs": {{"pfx": "web.pfx", "pfxFriendlyName": "a\nb"}}}}}}"#
    ));
    assert_eq!(
        one_error(&long_name),
        (ErrorKind::BadExtension, out("pfxFriendlyName"))
    );
    let unsafe_name = one_cert(&format!(
        r#"{{"url": "{URL1}", "akvSync": {{"outputs": {{"pfx": "../web.pfx"}}}}}}"#
    ));
    assert_eq!(one_error(&unsafe_name), (ErrorKind::UnsafeName, out("pfx")));
}

#[test]
fn a_pfx_or_der_output_named_like_another_certificates_output_conflicts() {
    let text = v3(
        &format!(
            r#"[{{"url": "{URL1}", "akvSync": {{"outputs": {{"pfx": "app.pfx"}}}}}},
                {{"url": "https://myvault.vault.azure.net/secrets/other", "akvSync": {{"outputs": {{"certDer": "app.pfx"}}}}}}]"#
        ),
        "",
    );
    assert_eq!(
        one_error(&text),
        (
            ErrorKind::Conflict,
            format!("{SMS}.observedCertificates[1].akvSync.outputs.certDer")
        )
    );
}

#[test]
fn a_mistake_inside_one_certificate_refuses_that_certificate_alone() {
    let text = v3(
        &format!(
            r#"[{{"url": "{URL1}"}}, {{"url": "http://v.vault.azure.net/secrets/plain"}}, {{"url": "https://myvault.vault.azure.net/secrets/other", "acls": "nobody"}}]"#
        ),
        "",
    );
    let parsed = parse(&text).expect("usable: only single certificates are wrong");
    let kept: Vec<&str> = parsed
        .settings
        .certificates
        .iter()
        .map(|c| c.json_path.as_str())
        .collect();
    assert_eq!(kept, [format!("{SMS}.observedCertificates[0]")]);
    let refused: Vec<(ErrorKind, &str)> = parsed
        .refused
        .iter()
        .map(|e| (e.kind, e.path.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            (
                ErrorKind::NotHttps,
                format!("{SMS}.observedCertificates[1].url").as_str()
            ),
            (
                ErrorKind::BadAcl,
                format!("{SMS}.observedCertificates[2].acls").as_str()
            ),
        ]
    );
}

#[test]
fn a_mistake_outside_the_certificates_refuses_the_whole_document() {
    let text = v3(r#"[{"url": "http://v.vault.azure.net/secrets/plain"}]"#, "").replace(
        r#""pollingIntervalInS": "3600""#,
        r#""pollingIntervalInS": "0""#,
    );
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(parse(&text).is_err());
    assert!(
        e.iter()
            .any(|(_, p)| p == &format!("{SMS}.pollingIntervalInS"))
    );
    assert!(
        e.iter()
            .any(|(_, p)| p == &format!("{SMS}.observedCertificates[0].url"))
    );
}

#[test]
fn the_certificate_entry_of_a_path_is_found_under_any_wrapper() {
    assert_eq!(
        crate::certificate_entry("secretsManagementSettings.observedCertificates[12].acls[0].user"),
        Some("secretsManagementSettings.observedCertificates[12]")
    );
    assert_eq!(
        crate::certificate_entry(
            "runtimeSettings[0].handlerSettings.publicSettings.secretsManagementSettings.observedCertificates[1]"
        ),
        Some(
            "runtimeSettings[0].handlerSettings.publicSettings.secretsManagementSettings.observedCertificates[1]"
        )
    );
    assert_eq!(
        crate::certificate_entry("secretsManagementSettings.pollingIntervalInS"),
        None
    );
    assert_eq!(
        crate::certificate_entry("secretsManagementSettings.observedCertificates"),
        None
    );
}
