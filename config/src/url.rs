//! The URLs of the settings: certificate (secret) URLs, the identity endpoint, the Fluentd
//! endpoint. Hand-written rather than a general URL parser, because every way of being wrong
//! needs its own error kind and message.

use crate::error::ErrorKind;
use crate::model::{CertificateUrl, Cloud};
use crate::names::{is_placeholder, quote, unsafe_reason};

/// A failed check: the kind and the message (without the JSON path).
pub(crate) type Failure = (ErrorKind, String);

/// A parsed value plus notes worth a warning (ignored query string, trimmed spaces…).
#[derive(Debug)]
pub(crate) struct Noted<T> {
    pub value: T,
    pub notes: Vec<String>,
}

const EXAMPLE_URL: &str = "https://myvault.vault.azure.net/secrets/mycertificate";

fn wrapped_in_quotes(raw: &str) -> bool {
    raw.starts_with('"') || raw.ends_with('"') || raw.contains("\\\"")
}

/// Scheme, authority, path; the query string and fragment are cut off (noted).
fn split_url<'a>(raw: &'a str, notes: &mut Vec<String>) -> Option<(&'a str, &'a str, &'a str)> {
    let (scheme, rest) = raw.split_once("://")?;
    let rest = match rest.split_once('#') {
        Some((before, _)) => {
            notes.push("the `#fragment` is ignored".to_owned());
            before
        }
        None => rest,
    };
    let rest = match rest.split_once('?') {
        Some((before, query)) => {
            notes.push(format!("the query string `?{query}` is ignored"));
            before
        }
        None => rest,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    Some((scheme, authority, path))
}

/// Host and optional port of an authority (`host`, `host:port`, `[v6]:port`).
fn split_authority(authority: &str) -> Result<(&str, Option<u16>), String> {
    if authority.contains('@') {
        return Err("it carries user information (`user@`), which has no place here".to_owned());
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 address lacks its closing `]`".to_owned())?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("it has no host".to_owned());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("the port `{p}` is not a number from 1 to 65535")),
        },
    };
    Ok((host, port))
}

fn is_kv_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A certificate URL: `https://{vault}.{suffix}/secrets/{name}[/{version}]`.
pub(crate) fn certificate_url(raw: &str) -> Result<Noted<CertificateUrl>, Failure> {
    let found = quote(raw);
    if is_placeholder(raw) {
        return Err((
            ErrorKind::Placeholder,
            format!(
                "found {found}, which still holds a placeholder from the documentation; expected the URL of your certificate's secret, e.g. {EXAMPLE_URL}"
            ),
        ));
    }
    if wrapped_in_quotes(raw) {
        return Err((
            ErrorKind::EscapedQuotes,
            format!(
                "found {found}, which contains literal quote characters; expected a plain URL such as {EXAMPLE_URL}. PowerShell adds `\\\"` when a JSON string is passed through it: build the settings as a hashtable, or read the file with Get-Content -Raw"
            ),
        ));
    }
    let mut notes = Vec::new();
    let trimmed = raw.trim();
    if trimmed != raw {
        notes.push("leading/trailing spaces are ignored".to_owned());
    }
    let Some((scheme, authority, path)) = split_url(trimmed, &mut notes) else {
        return Err((
            ErrorKind::BadUrl,
            format!(
                "found {found}, which is not a URL; expected a Key Vault secret URL such as {EXAMPLE_URL}"
            ),
        ));
    };
    if !scheme.eq_ignore_ascii_case("https") {
        return Err((
            ErrorKind::NotHttps,
            format!(
                "found {found} with scheme `{scheme}`; expected `https://` (Key Vault answers only over TLS), e.g. {EXAMPLE_URL}"
            ),
        ));
    }
    let (host, port) = split_authority(authority).map_err(|why| {
        (
            ErrorKind::BadUrl,
            format!("found {found}: {why}; expected a URL such as {EXAMPLE_URL}"),
        )
    })?;
    if !host.is_ascii() {
        return Err((
            ErrorKind::NotVaultHost,
            format!(
                "found host `{host}` in {found}; Key Vault host names are plain ASCII, e.g. myvault.vault.azure.net"
            ),
        ));
    }
    let host_lower = host.to_ascii_lowercase();
    let Some(cloud) = Cloud::ALL
        .into_iter()
        .find(|c| host_lower.ends_with(&format!(".{}", c.suffix())))
    else {
        let suffixes = Cloud::ALL.map(|c| format!(".{}", c.suffix())).join(", ");
        let hint = if host_lower.contains("vaultcore.azure.net") {
            " Use the vault's own name (myvault.vault.azure.net): a private endpoint makes that name resolve to the private address."
        } else {
            ""
        };
        return Err((
            ErrorKind::NotVaultHost,
            format!(
                "found host `{host}` in {found}; expected a Key Vault host `<vault>` followed by one of {suffixes}.{hint}"
            ),
        ));
    };
    // The vault name keeps the case written in the settings: it names the files in the store.
    let vault = &host[..host.len() - cloud.suffix().len() - 1];
    if vault.contains('.') || !is_kv_name(vault) {
        return Err((
            ErrorKind::NotVaultHost,
            format!(
                "found host `{host}` in {found}; expected exactly one label, the vault name (letters, digits, hyphens), before `.{}`",
                cloud.suffix()
            ),
        ));
    }

    let path = match path.strip_suffix('/') {
        Some(p) => p,
        None => path,
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let expected = format!("expected https://{host}/secrets/<certificate name>[/<version>]");
    if segments.is_empty() {
        return Err((
            ErrorKind::BadUrl,
            format!("found {found}, which has no path; {expected}"),
        ));
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err((
            ErrorKind::BadUrl,
            format!("found {found}, which has an empty path segment (`//`); {expected}"),
        ));
    }
    match segments[0].to_ascii_lowercase().as_str() {
        "secrets" => {}
        "certificates" => {
            let fixed = format!("https://{authority}/secrets/{}", segments[1..].join("/"));
            return Err((
                ErrorKind::CertificatesPath,
                format!(
                    "found {found}, which uses the `/certificates/` path; expected the `/secrets/` path: {}. Only the secret returns the private key with the certificate",
                    quote(&fixed)
                ),
            ));
        }
        "keys" => {
            return Err((
                ErrorKind::BadUrl,
                format!(
                    "found {found}, which names a key; {expected} (the secret of a certificate holds the certificate and its private key)"
                ),
            ));
        }
        other => {
            return Err((
                ErrorKind::BadUrl,
                format!("found {found} with path `/{other}/…`; {expected}"),
            ));
        }
    }
    if segments.len() < 2 {
        return Err((
            ErrorKind::BadUrl,
            format!("found {found}, which names no certificate; {expected}"),
        ));
    }
    if segments.len() > 3 {
        return Err((
            ErrorKind::BadUrl,
            format!("found {found}, which has too many path segments; {expected}"),
        ));
    }
    let check_part = |what: &str, part: &str| -> Result<(), Failure> {
        if let Some(why) = unsafe_reason(part) {
            return Err((
                ErrorKind::UnsafeName,
                format!("the {what} `{part}` in {found} cannot name a file in the store: {why}"),
            ));
        }
        if part.contains('%') {
            return Err((
                ErrorKind::UnsafeName,
                format!(
                    "the {what} `{part}` in {found} is percent-encoded; Key Vault names use only letters, digits and hyphens"
                ),
            ));
        }
        if !is_kv_name(part) {
            return Err((
                ErrorKind::BadUrl,
                format!(
                    "the {what} `{part}` in {found} has characters Key Vault does not allow; expected letters, digits and hyphens"
                ),
            ));
        }
        Ok(())
    };
    // Managed HSM holds keys only: it has no secrets, hence no certificate with its key.
    if cloud == Cloud::ManagedHsm {
        return Err((
            ErrorKind::ManagedHsmSecret,
            format!(
                "found {found}, a secret on a Managed HSM; a Managed HSM holds keys only, so no certificate can be read from it. Expected the URL of the certificate's secret in a Key Vault, e.g. {EXAMPLE_URL}"
            ),
        ));
    }
    let name = segments[1];
    check_part("certificate name", name)?;
    let version = segments.get(2).copied();
    if let Some(v) = version {
        check_part("version", v)?;
    }
    Ok(Noted {
        value: CertificateUrl {
            original: raw.to_owned(),
            vault: vault.to_owned(),
            host: host_lower,
            port,
            cloud,
            name: name.to_owned(),
            version: version.map(str::to_owned),
        },
        notes,
    })
}

/// An `msiEndpoint`, normalised to end in `/metadata/identity`; `true` when it is Azure Arc's.
pub(crate) fn identity_endpoint(raw: &str) -> Result<Noted<(String, bool)>, Failure> {
    let found = quote(raw);
    let expected = "expected `http://169.254.169.254/metadata/identity` (Azure VMs) or `http://localhost:40342/metadata/identity` (Azure Arc)";
    if is_placeholder(raw) {
        return Err((
            ErrorKind::Placeholder,
            format!(
                "found {found}, which still holds a placeholder from the documentation; {expected}"
            ),
        ));
    }
    if wrapped_in_quotes(raw) {
        return Err((
            ErrorKind::EscapedQuotes,
            format!("found {found}, which contains literal quote characters; {expected}"),
        ));
    }
    let mut notes = Vec::new();
    let bad = |why: &str| {
        (
            ErrorKind::BadEndpoint,
            format!("found {found}: {why}; {expected}"),
        )
    };
    let Some((scheme, authority, path)) = split_url(raw.trim(), &mut notes) else {
        return Err(bad("it is not a URL"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad(&format!("the scheme `{scheme}` is not http")));
    }
    let (host, port) = split_authority(authority).map_err(|why| bad(&why))?;
    let mut path = path.trim_end_matches('/');
    if let Some(p) = path.strip_suffix("/oauth2/token") {
        notes.push(
            "the `/oauth2/token` suffix is dropped: akv-sync adds it to each request".to_owned(),
        );
        path = p;
    }
    if !path.ends_with("/metadata/identity") {
        return Err(bad(&format!(
            "the path `{path}` does not end in `/metadata/identity`"
        )));
    }
    let arc = port == Some(40342)
        && matches!(
            host.to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1"
        );
    Ok(Noted {
        value: (format!("{scheme}://{authority}{path}"), arc),
        notes,
    })
}

/// A Fluentd endpoint `tcp://host:port`.
pub(crate) fn logging_endpoint(raw: &str) -> Result<(String, u16), String> {
    let found = quote(raw);
    let expected = "expected `tcp://host:port`, e.g. \"tcp://localhost:24224\"";
    let Some(rest) = raw.strip_prefix("tcp://") else {
        return Err(format!(
            "found {found}, which does not start with `tcp://`; {expected}"
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(format!("found {found}, which has a path; {expected}"));
    }
    let (host, port) =
        split_authority(rest).map_err(|why| format!("found {found}: {why}; {expected}"))?;
    let Some(port) = port else {
        return Err(format!("found {found}, which has no port; {expected}"));
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> CertificateUrl {
        certificate_url(raw).unwrap().value
    }
    fn kind(raw: &str) -> ErrorKind {
        certificate_url(raw).unwrap_err().0
    }

    #[test]
    fn a_secret_url_gives_vault_name_and_cloud() {
        let u = ok("https://exampleVault.vault.azure.net/secrets/myCertificate");
        assert_eq!(u.vault, "exampleVault");
        assert_eq!(u.host, "examplevault.vault.azure.net");
        assert_eq!(u.name, "myCertificate");
        assert_eq!(u.version, None);
        assert_eq!(u.cloud, Cloud::Public);
        assert_eq!(u.stem(), "exampleVault.myCertificate");
    }

    #[test]
    fn sovereign_clouds_and_managed_hsm_are_recognised() {
        assert_eq!(ok("https://v.vault.azure.cn/secrets/c").cloud, Cloud::China);
        assert_eq!(
            ok("https://v.vault.usgovcloudapi.net/secrets/c").cloud,
            Cloud::UsGovernment
        );
    }

    #[test]
    fn a_secret_on_a_managed_hsm_is_refused() {
        // Managed HSM holds keys only.
        for raw in [
            "https://v.managedhsm.azure.net/secrets/c",
            "https://v.managedhsm.azure.net/secrets/c/0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(kind(raw), ErrorKind::ManagedHsmSecret, "{raw}");
        }
    }

    #[test]
    fn a_version_segment_pins_the_version() {
        let u = ok("https://v.vault.azure.net/secrets/c/0123456789abcdef0123456789abcdef");
        assert_eq!(
            u.version.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            u.secret_url(),
            "https://v.vault.azure.net/secrets/c/0123456789abcdef0123456789abcdef"
        );
    }

    #[test]
    fn trailing_slash_and_query_are_tolerated() {
        let n = certificate_url("https://v.vault.azure.net/secrets/c/?api-version=7.4").unwrap();
        assert_eq!(n.value.name, "c");
        assert_eq!(n.value.version, None);
        assert_eq!(n.notes.len(), 1);
    }

    #[test]
    fn the_certificates_path_is_refused() {
        assert_eq!(
            kind("https://v.vault.azure.net/certificates/c"),
            ErrorKind::CertificatesPath
        );
    }

    #[test]
    fn http_and_foreign_hosts_are_refused() {
        assert_eq!(
            kind("http://v.vault.azure.net/secrets/c"),
            ErrorKind::NotHttps
        );
        assert_eq!(
            kind("https://example.com/secrets/c"),
            ErrorKind::NotVaultHost
        );
        assert_eq!(
            kind("https://a.b.vault.azure.net/secrets/c"),
            ErrorKind::NotVaultHost
        );
        assert_eq!(
            kind("https://vault.azure.net.evil.com/secrets/c"),
            ErrorKind::NotVaultHost
        );
    }

    #[test]
    fn malformed_urls_are_bad_urls() {
        for raw in [
            "v.vault.azure.net/secrets/c",
            "https://v.vault.azure.net",
            "https://v.vault.azure.net/secrets",
            "https://v.vault.azure.net/secrets//c",
            "https://v.vault.azure.net/keys/c",
            "https://v.vault.azure.net/secrets/c/v/extra",
            "https://v.vault.azure.net:99999/secrets/c",
            "https://v.vault.azure.net/secrets/my_cert",
        ] {
            assert_eq!(kind(raw), ErrorKind::BadUrl, "{raw}");
        }
    }

    #[test]
    fn names_that_escape_the_store_are_unsafe() {
        assert_eq!(
            kind("https://v.vault.azure.net/secrets/.."),
            ErrorKind::UnsafeName
        );
        assert_eq!(
            kind("https://v.vault.azure.net/secrets/%2e%2e"),
            ErrorKind::UnsafeName
        );
        assert_eq!(
            kind("https://v.vault.azure.net/secrets/c/."),
            ErrorKind::UnsafeName
        );
    }

    #[test]
    fn placeholders_and_quotes_are_recognised() {
        assert_eq!(
            kind("https://<examplekv>.vault.azure.net/secrets/c"),
            ErrorKind::Placeholder
        );
        assert_eq!(
            kind("\"https://v.vault.azure.net/secrets/c\""),
            ErrorKind::EscapedQuotes
        );
    }

    #[test]
    fn identity_endpoints_are_normalised() {
        let n = identity_endpoint("http://169.254.169.254/metadata/identity/oauth2/token").unwrap();
        assert_eq!(
            n.value,
            ("http://169.254.169.254/metadata/identity".to_owned(), false)
        );
        let n = identity_endpoint("http://localhost:40342/metadata/identity").unwrap();
        assert_eq!(
            n.value,
            ("http://localhost:40342/metadata/identity".to_owned(), true)
        );
        assert_eq!(
            identity_endpoint("169.254.169.254").unwrap_err().0,
            ErrorKind::BadEndpoint
        );
        assert_eq!(
            identity_endpoint("http://169.254.169.254/").unwrap_err().0,
            ErrorKind::BadEndpoint
        );
    }

    #[test]
    fn logging_endpoints_give_host_and_port() {
        assert_eq!(
            logging_endpoint("tcp://localhost:24224"),
            Ok(("localhost".to_owned(), 24224))
        );
        assert_eq!(
            logging_endpoint("tcp://[::1]:24224"),
            Ok(("::1".to_owned(), 24224))
        );
        assert!(logging_endpoint("udp://localhost:24224").is_err());
        assert!(logging_endpoint("tcp://localhost").is_err());
        assert!(logging_endpoint("tcp://localhost:0").is_err());
    }
}
