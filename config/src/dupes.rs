//! Duplicate keys. `serde_json` keeps the last of two equal keys in an object and says nothing;
//! a settings file with `observedCertificates` twice would silently lose the first list. This
//! scans the (already valid) JSON text once and reports each repeated key with its JSON path.

use std::collections::HashSet;

enum Frame {
    Object {
        path: String,
        keys: HashSet<String>,
        /// The last key read, whose value comes next.
        key: Option<String>,
        expecting_key: bool,
    },
    Array {
        path: String,
        index: usize,
    },
}

use crate::json_path::{ROOT_PATH, at as child_path};

/// The JSON path of each repeated key, in document order.
/// `text` must be valid JSON (after [`crate::relax::relax`]); on anything else it stops early.
pub(crate) fn duplicate_keys(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut found = Vec::new();
    let mut i = 0;
    // The path of the value starting at the current position.
    let value_path = |stack: &[Frame]| -> String {
        match stack.last() {
            None => ROOT_PATH.to_owned(),
            Some(Frame::Object { path, key, .. }) => child_path(path, key.as_deref().unwrap_or("")),
            Some(Frame::Array { path, index }) => format!("{path}[{index}]"),
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                let path = value_path(&stack);
                stack.push(Frame::Object {
                    path,
                    keys: HashSet::new(),
                    key: None,
                    expecting_key: true,
                });
            }
            b'[' => {
                let path = value_path(&stack);
                stack.push(Frame::Array { path, index: 0 });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                Some(Frame::Array { index, .. }) => *index += 1,
                None => return found,
            },
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if let Some(Frame::Object {
                    path,
                    keys,
                    key,
                    expecting_key,
                }) = stack.last_mut()
                    && *expecting_key
                {
                    let Some(raw) = text.get(start..=i) else {
                        return found;
                    };
                    let Ok(name) = serde_json::from_str::<String>(raw) else {
                        return found;
                    };
                    if !keys.insert(name.clone()) {
                        found.push(child_path(path, &name));
                    }
                    *key = Some(name);
                    *expecting_key = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_found_with_their_paths() {
        let text = r#"{"a": {"x": 1, "y": [ {"k": 1, "k": 2} ], "x": 3}, "b": "\"a\"", "a": null}"#;
        assert_eq!(duplicate_keys(text), ["a.y[0].k", "a.x", "a"]);
    }

    #[test]
    fn equal_keys_in_different_objects_are_not_duplicates() {
        let text = r#"[{"url": "u1"}, {"url": "u2"}, {"url": {"url": 1}}]"#;
        assert!(duplicate_keys(text).is_empty());
    }

    #[test]
    fn escaped_keys_are_compared_decoded() {
        assert_eq!(duplicate_keys(r#"{"a\u0062": 1, "ab": 2}"#), ["ab"]);
    }
}
