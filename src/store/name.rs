//! Which names may become file names in the store folder.
//!
//! Vault, certificate and version names become parts of `<vault>.<cert>.<version>`; Key
//! Vault allows only letters, digits and `-` in them, so anything with a `.`, a `/`, a NUL or
//! nothing at all is refused — that also keeps the `<vault>.<cert>.` prefix of one
//! certificate from ever matching another certificate's files. Link and output names are
//! free-form file names (they may contain dots) but must stay a single component inside the
//! folder and must not collide with the store's own names.

use super::error::{NameKind, StoreError};

/// Prefix of every temporary file or link the store creates; `Store::clean_temporaries`
/// removes what a crash left behind. Link, output and certificate names may not start with it.
pub const TEMP_PREFIX: &str = ".akv-sync.tmp.";

/// Longest file name most Linux file systems accept.
const NAME_MAX: usize = 255;

fn unsafe_name(kind: NameKind, name: &str, reason: &'static str) -> StoreError {
    StoreError::UnsafeName {
        kind,
        name: name.to_owned(),
        reason,
    }
}

/// A vault, certificate or version name: one non-empty component without dots.
pub(crate) fn check_part(kind: NameKind, name: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(unsafe_name(kind, name, "it is empty"));
    }
    if name.contains('/') {
        return Err(unsafe_name(kind, name, "it contains '/'"));
    }
    if name.contains('\0') {
        return Err(unsafe_name(kind, name, "it contains a NUL byte"));
    }
    if name.contains('.') {
        return Err(unsafe_name(
            kind,
            name,
            "it contains '.' (Key Vault names never do; a dot could make one certificate's files look like another's)",
        ));
    }
    if name.len() > NAME_MAX {
        return Err(unsafe_name(kind, name, "it is longer than 255 bytes"));
    }
    Ok(())
}

/// A `customSymbolicLinkName` or output file name, for the certificate whose files are
/// named `<stem>` and `<stem>.<version>`.
pub(crate) fn check_file_name(kind: NameKind, name: &str, stem: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(unsafe_name(kind, name, "it is empty"));
    }
    if name == "." || name == ".." {
        return Err(unsafe_name(kind, name, "it names a folder, not a file"));
    }
    if name.contains('/') {
        return Err(unsafe_name(
            kind,
            name,
            "it contains '/' (it must be a plain file name inside the store folder)",
        ));
    }
    if name.contains('\0') {
        return Err(unsafe_name(kind, name, "it contains a NUL byte"));
    }
    if name.starts_with(TEMP_PREFIX) {
        return Err(unsafe_name(
            kind,
            name,
            "it starts with the store's temporary-file prefix",
        ));
    }
    if name == stem
        || name
            .strip_prefix(stem)
            .is_some_and(|rest| rest.starts_with('.'))
    {
        return Err(unsafe_name(
            kind,
            name,
            "it collides with the certificate's own link or version files",
        ));
    }
    if name.len() > NAME_MAX {
        return Err(unsafe_name(kind, name, "it is longer than 255 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_that_could_escape_or_collide_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\0b", "a.b", ".akv-sync.tmp.1"] {
            assert!(
                matches!(
                    check_part(NameKind::Vault, bad),
                    Err(StoreError::UnsafeName { .. })
                ),
                "{bad:?}"
            );
        }
        check_part(NameKind::Version, "0123456789abcdef0123456789abcdef").unwrap();
        check_part(NameKind::Certificate, "my-Cert-1").unwrap();
    }

    #[test]
    fn link_names_stay_inside_and_off_the_store_names() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a\0",
            ".akv-sync.tmp.9",
            "v.c",
            "v.c.1",
        ] {
            assert!(
                check_file_name(NameKind::Link, bad, "v.c").is_err(),
                "{bad:?}"
            );
        }
        check_file_name(NameKind::Link, "nginx.pem", "v.c").unwrap();
        check_file_name(NameKind::Link, "v.cert", "v.c").unwrap();
    }
}
