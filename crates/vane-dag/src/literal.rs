//! Where a piece of a TOML string's value was written in the file.
//!
//! A problem found inside a string's value (a gate, a template, a URL) is at an offset of the
//! decoded text; the file holds the literal as written, where `\"` is two bytes for one, `\u00e9`
//! six for two, a backslash at the end of a line of a `"""` string swallows the line break and
//! the indent after it, and the line break right after an opening `"""` is not part of the value.
//! Adding the offset to where the literal starts points past the problem, or lines above it.

use std::ops::Range;

/// The bytes of `raw`, a TOML string literal as written (quotes included), that hold bytes
/// `range` of its value `content`. `None` when `raw` does not read as `content`: a span from
/// a parser that means something else is then not guessed at.
pub(crate) fn content_span(raw: &str, content: &str, range: Range<usize>) -> Option<Range<usize>> {
    let (quote, basic) = if raw.starts_with("\"\"\"") {
        (3, true)
    } else if raw.starts_with("'''") {
        (3, false)
    } else if raw.starts_with('"') {
        (1, true)
    } else if raw.starts_with('\'') {
        (1, false)
    } else {
        return None;
    };
    // A parser's span of a broken literal may end anywhere, inside a character too: only a
    // literal closed by its own quotes is read.
    if !raw.ends_with(&raw[..quote]) {
        return None;
    }
    let body_end = raw.len().checked_sub(quote).filter(|&e| e >= quote)?;
    let mut at = quote;
    if quote == 3 {
        // A line break right after the opening quotes is trimmed from the value.
        at += line_break(raw.get(at..)?);
    }
    let mut decoded = 0;
    let (mut start, mut end) = (None, None);
    loop {
        if end.is_none() && decoded >= range.end {
            end = Some(at);
        }
        if basic && quote == 3 {
            at += continuation(raw.get(at..body_end)?);
        }
        if start.is_none() && decoded >= range.start {
            start = Some(at);
        }
        if at >= body_end {
            break;
        }
        let c = content.get(decoded..)?.chars().next()?;
        let rest = raw.get(at..body_end)?;
        let written = if basic && rest.starts_with('\\') {
            escape_len(rest)?
        } else if c == '\n' && rest.starts_with("\r\n") {
            // A parser may keep a CRLF of a multi-line string as a bare line feed.
            2
        } else if rest.starts_with(c) {
            c.len_utf8()
        } else {
            return None;
        };
        at += written;
        decoded += c.len_utf8();
    }
    if decoded != content.len() {
        return None;
    }
    let start = start?;
    Some(start..end?.max(start))
}

/// The length of the line break `text` starts with: 0, 1 or 2 bytes.
fn line_break(text: &str) -> usize {
    if text.starts_with("\r\n") {
        2
    } else {
        usize::from(text.starts_with('\n'))
    }
}

/// The length of a line-ending backslash `text` starts with, with the blank space after it
/// that it swallows; 0 when `text` does not start with one.
fn continuation(text: &str) -> usize {
    let Some(after) = text.strip_prefix('\\') else {
        return 0;
    };
    let spaces = after.len() - after.trim_start_matches([' ', '\t']).len();
    if line_break(&after[spaces..]) == 0 {
        return 0;
    }
    text.len() - after.trim_start_matches([' ', '\t', '\r', '\n']).len()
}

/// The length of the escape sequence `text` starts with (`\n`, `\"`, `\xHH`, `\uHHHH`,
/// `\UHHHHHHHH`); `None` for one TOML does not have.
fn escape_len(text: &str) -> Option<usize> {
    let len = match text.as_bytes().get(1)? {
        b'b' | b't' | b'n' | b'f' | b'r' | b'e' | b'"' | b'\\' => 2,
        b'x' => 4,
        b'u' => 6,
        b'U' => 10,
        _ => return None,
    };
    (text.len() >= len).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::content_span;

    /// The raw text `content_span` points at for `needle` in the value `content`.
    fn written<'r>(raw: &'r str, content: &str, needle: &str) -> &'r str {
        let at = content.find(needle).expect("in the value");
        let span = content_span(raw, content, at..at + needle.len()).expect("maps");
        &raw[span]
    }

    #[test]
    fn escapes_take_the_bytes_they_are_written_with() {
        assert_eq!(written(r#""a\"b =>""#, "a\"b =>", "=>"), "=>");
        assert_eq!(written(r#""\u00e9 =>""#, "é =>", "=>"), "=>");
        assert_eq!(written(r#""\u00e9 =>""#, "é =>", "é"), r"\u00e9");
        assert_eq!(written(r#""\U0001F600\t=>""#, "😀\t=>", "\t=>"), r"\t=>");
        assert_eq!(written(r#""\\ x""#, "\\ x", "x"), "x");
        assert_eq!(written("'a\\\"b =>'", "a\\\"b =>", "=>"), "=>");
    }

    #[test]
    fn multi_line_strings_drop_the_first_line_break_and_continued_lines() {
        let raw = "\"\"\"\nab\\\n     cd =>\nef\"\"\"";
        assert_eq!(written(raw, "abcd =>\nef", "=>"), "=>");
        assert_eq!(written(raw, "abcd =>\nef", "bc"), "b\\\n     c");
        assert_eq!(written(raw, "abcd =>\nef", "ef"), "ef");
        let raw = "'''\r\nx \\\r\n =>'''";
        assert_eq!(written(raw, "x \\\n =>", "=>"), "=>");
        assert_eq!(written(raw, "x \\\r\n =>", "=>"), "=>");
    }

    #[test]
    fn the_end_of_the_value_is_the_closing_quote() {
        let raw = r#""a\"""#;
        assert_eq!(content_span(raw, "a\"", 2..2), Some(4..4));
        assert_eq!(content_span(raw, "a\"", 1..2), Some(2..4));
    }

    #[test]
    fn a_literal_that_does_not_read_as_the_value_is_not_guessed_at() {
        assert_eq!(content_span(r#""abc""#, "abd", 0..1), None);
        assert_eq!(content_span(r#""abc""#, "ab", 0..1), None);
        assert_eq!(content_span("abc", "abc", 0..1), None);
        assert_eq!(content_span(r#""a\q""#, "aq", 0..1), None);
        assert_eq!(content_span(r#""""#, "", 0..0), Some(1..1));
        // Found by the fuzzer: spans of unclosed literals ending inside a character.
        assert_eq!(content_span("\"true\u{fffd}", "true\u{fffd}", 0..4), None);
        assert_eq!(content_span("'ab\u{fffd}", "ab", 0..1), None);
    }
}
