//! JSON paths as errors and warnings name them (`secretsManagementSettings.observedCertificates[2].url`):
//! a leaf module, so the parser and the duplicate-key scan share it without importing each other.

/// The JSON path of the whole document.
pub const ROOT_PATH: &str = "$";

/// The path of `key` inside the object at `parent`.
pub(crate) fn at(parent: &str, key: &str) -> String {
    if parent.is_empty() || parent == ROOT_PATH {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The observed certificate (`…observedCertificates[N]`) a path lies in, if any: a mistake
/// there is that certificate's alone (SPEC §1.3), the others still sync.
pub fn certificate_entry(path: &str) -> Option<&str> {
    let start = path.find("observedCertificates[")?;
    let close = start + path[start..].find(']')? + 1;
    Some(&path[..close])
}

/// The path of element `i` of the array at `parent`.
pub(crate) fn idx(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
