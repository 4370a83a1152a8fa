//! Tolerance for what JSON-with-comments editors and ARM templates allow: `//` and `/* */`
//! comments, trailing commas, a UTF-8 byte-order mark. Each is blanked out with spaces, so that
//! the byte offsets (and serde_json's line/column in errors) still match the original text, and
//! is reported so that the caller can warn (a strict JSON parser, possibly the original
//! extension's, rejects them).

use std::borrow::Cow;

/// Where something was tolerated: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Relaxed<'a> {
    /// The text itself when there was nothing to blank out (the usual case: no copy).
    pub text: Cow<'a, str>,
    pub comments: Vec<Pos>,
    pub trailing_commas: Vec<Pos>,
    pub bom: bool,
}

fn pos_of(text: &[u8], offset: usize) -> Pos {
    let before = &text[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Pos { line, column }
}

/// Blank out comments and trailing commas (outside strings).
pub(crate) fn relax(text: &str) -> Relaxed<'_> {
    let mut out = Relaxed::default();
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            out.bom = true;
            rest
        }
        None => text,
    };
    let src = text.as_bytes();
    // Copied on the first byte blanked out: settings for 100,000 certificates are ~15 MB.
    let mut bytes: Cow<'_, [u8]> = Cow::Borrowed(src);

    // Pass 1: comments.
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match (b, bytes.get(i + 1)) {
            (b'"', _) => in_string = true,
            (b'/', Some(b'/')) => {
                out.comments.push(pos_of(src, i));
                while i < bytes.len() && bytes[i] != b'\n' {
                    bytes.to_mut()[i] = b' ';
                    i += 1;
                }
                continue;
            }
            (b'/', Some(b'*')) => {
                out.comments.push(pos_of(src, i));
                let start = i;
                let end = src[i + 2..]
                    .windows(2)
                    .position(|w| w == b"*/")
                    .map_or(bytes.len(), |p| i + 2 + p + 2);
                if end == bytes.len() && !src[start..].ends_with(b"*/") {
                    // Unterminated: leave it for the JSON parser to report.
                    out.comments.pop();
                    i += 2;
                    continue;
                }
                for b in &mut bytes.to_mut()[start..end] {
                    if *b != b'\n' {
                        *b = b' ';
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }

    // Pass 2: trailing commas (a comma followed only by whitespace, then `}` or `]`).
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b',' {
            let next = bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
            if matches!(next, Some(b'}') | Some(b']')) {
                out.trailing_commas.push(pos_of(src, i));
                bytes.to_mut()[i] = b' ';
            }
        }
        i += 1;
    }

    // Only ASCII bytes were replaced by ASCII spaces (comment bodies byte by byte), so the
    // result is valid UTF-8; the lossy conversion never has anything to replace.
    out.text = match bytes {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(bytes) => Cow::Owned(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_commas_are_blanked_and_located() {
        let r = relax("{\n  \"a\": [1, 2,],\n  \"b\": {\"user\": \"app2\",\n }\n}");
        assert_eq!(r.trailing_commas.len(), 2);
        assert_eq!(
            r.trailing_commas[0],
            Pos {
                line: 2,
                column: 13
            }
        );
        let v: serde_json::Value = serde_json::from_str(&r.text).unwrap();
        assert_eq!(v["b"]["user"], "app2");
    }

    #[test]
    fn comments_are_blanked_but_not_inside_strings() {
        let r = relax("{ // note\n \"u\": \"https://x/y\", /* block\n ü */ \"n\": 1 }");
        assert_eq!(r.comments.len(), 2);
        let v: serde_json::Value = serde_json::from_str(&r.text).unwrap();
        assert_eq!(v["u"], "https://x/y");
        assert_eq!(v["n"], 1);
    }

    #[test]
    fn commas_inside_strings_are_kept() {
        let r = relax(r#"{"a": "x,]", "b": "q\",}"}"#);
        assert!(r.trailing_commas.is_empty());
        assert_eq!(r.text, r#"{"a": "x,]", "b": "q\",}"}"#);
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let r = relax("\u{feff}{}");
        assert!(r.bom);
        assert_eq!(r.text, "{}");
    }
}
