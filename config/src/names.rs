//! Small pure helpers: safe file names, edit distance for "did you mean", value descriptions.

use serde_json::Value;

/// Why a name cannot be used as one file name inside a store folder, or `None` if it can.
pub(crate) fn unsafe_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("`.` and `..` name folders, not files")
    } else if name.contains('/') {
        Some("it contains `/`, which would leave the store folder")
    } else if name.contains('\0') {
        Some("it contains a NUL character")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name.contains("..") {
        Some("it contains `..`")
    } else if name.len() > 255 {
        Some("it is longer than 255 bytes")
    } else {
        None
    }
}

/// Levenshtein distance over chars, compared case-insensitively.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().flat_map(char::to_lowercase).collect();
    let b: Vec<char> = b.chars().flat_map(char::to_lowercase).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The known key closest to `key`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A short JSON rendering of a string value for messages (quoted, escaped, truncated).
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{}…", serde_json::Value::String(cut))
    } else {
        serde_json::Value::String(s.to_owned()).to_string()
    }
}

/// What a value is, for "found …" in messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Array(a) if a.len() == 1 => "an array of 1 item".to_owned(),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Whether a string is an unfilled documentation placeholder: `<examplekv>`, `xxxxxx-xxxx-…`.
pub(crate) fn is_placeholder(s: &str) -> bool {
    let angle = s.find('<').is_some_and(|i| s[i..].contains('>'));
    let xs = !s.is_empty()
        && s.chars().all(|c| matches!(c, 'x' | 'X' | '-'))
        && s.chars().any(|c| c == 'x' || c == 'X');
    angle || xs
}

/// `8-4-4-4-12` hex digits.
pub(crate) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_leave_the_store_are_unsafe() {
        for bad in ["", ".", "..", "a/b", "../x", "a\0b", "a..b", "line\nbreak"] {
            assert!(unsafe_reason(bad).is_some(), "{bad:?} should be unsafe");
        }
        for good in ["app1Cert1", "cert.pem", "my-cert_2", ".hidden"] {
            assert!(unsafe_reason(good).is_none(), "{good:?} should be safe");
        }
    }

    #[test]
    fn edit_distance_counts_single_edits_case_insensitively() {
        assert_eq!(edit_distance("pollingIntervalInS", "pollingIntervalInS"), 0);
        assert_eq!(edit_distance("PollingIntervalInS", "pollingIntervalInS"), 0);
        assert_eq!(edit_distance("pollingIntervalIn", "pollingIntervalInS"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_suggests_only_near_keys() {
        let known = ["observedCertificates", "aclEnabled", "pollingIntervalInS"];
        assert_eq!(
            closest("observedCertificate", &known),
            Some("observedCertificates")
        );
        assert_eq!(closest("aclsEnabled", &known), Some("aclEnabled"));
        assert_eq!(closest("somethingElse", &known), None);
    }

    #[test]
    fn placeholders_and_guids_are_recognised() {
        assert!(is_placeholder("xxxxxx-xxxx-xxxx-xxxx-xxxxxxxx"));
        assert!(is_placeholder(
            "https://<examplekv>.vault.azure.net/secrets/a"
        ));
        assert!(!is_placeholder("00001111-aaaa-2222-bbbb-3333cccc4444"));
        assert!(is_guid("00001111-aaaa-2222-bbbb-3333cccc4444"));
        assert!(!is_guid("xxxxxx-xxxx-xxxx-xxxx-xxxxxxxx"));
        assert!(!is_guid("00001111aaaa2222bbbb3333cccc4444"));
    }
}
