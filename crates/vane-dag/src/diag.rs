//! Diagnostics: every problem found in a DAG file, with where it is and what to do.

use std::fmt::Write as _;
use std::ops::Range;

/// How bad a problem is. Errors stop a DAG from loading; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem in one DAG file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Byte range in the source the problem points at; `None` for whole-file problems.
    pub span: Option<Range<usize>>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error: the file cannot be used until it is fixed. `span`: bytes of the source.
    pub fn error(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
            span,
            hint: None,
        }
    }

    /// A warning: the file works, but likely not as meant.
    pub fn warning(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(message, span)
        }
    }

    /// With what to do about it.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// 1-based line and column (in characters) of the start of the span.
    pub fn line_col(&self, source: &str) -> Option<(usize, usize)> {
        self.span.as_ref().map(|s| line_col(source, s.start))
    }

    /// Renders the diagnostic the way a compiler does: message, `file:line:col`,
    /// the offending line with carets under the problem, and the hint.
    pub fn render(&self, path: &str, source: &str) -> String {
        let mut out = String::new();
        let mut gutter = 1;
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{label}: {}", self.message);
        match &self.span {
            Some(span) => {
                let start = span.start.min(source.len());
                let (line, col) = line_col(source, start);
                let line_text = source[..].lines().nth(line - 1).unwrap_or("");
                gutter = line.to_string().len();
                let _ = writeln!(out, "{:gutter$}--> {path}:{line}:{col}", "");
                let _ = writeln!(out, "{:gutter$} |", "");
                let _ = writeln!(out, "{line} | {line_text}");
                // Underline only up to the end of the first line of a multi-line span.
                let line_len = line_text.chars().count();
                let span_chars = source
                    .get(start..span.end.min(source.len()))
                    .map(|s| s.lines().next().unwrap_or("").chars().count())
                    .unwrap_or(1);
                let width = span_chars.clamp(1, (line_len + 1).saturating_sub(col - 1).max(1));
                let _ = writeln!(
                    out,
                    "{:gutter$} | {:pad$}{}",
                    "",
                    "",
                    "^".repeat(width),
                    pad = col - 1
                );
            }
            None => {
                let _ = writeln!(out, " --> {path}");
            }
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{:gutter$} = hint: {hint}", "");
        }
        out
    }
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Names longer than this get no suggestion: nobody mistypes a 400 KB time zone, and the
/// search would cost its length times every candidate's.
const LONGEST_GUESSED: usize = 64;

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo.
/// Linear in the candidates: a candidate whose length alone is too far is skipped, and the
/// distance stops as soon as it is past the limit.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // One edit in three characters; a name of one or two characters is too short to guess.
    let len = word.chars().count();
    if len > LONGEST_GUESSED {
        return None;
    }
    let limit = if len < 3 { 0 } else { (len / 3).max(1) };
    let word: Vec<char> = word.chars().collect();
    candidates
        .into_iter()
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .filter_map(|c| edit_distance_within(&word, c, limit).map(|d| (d, c)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edits between `a` and `b` when at most `limit`, a swap of two neighbouring characters
/// counting as one: the most common typo (`trian` for `train`) is then as close as a missing
/// letter. `None` as soon as every path is past `limit`.
fn edit_distance_within(a: &[char], b: &str, limit: usize) -> Option<usize> {
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the table, each b.len() + 1 long.
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 0..a.len() {
        let mut cur = vec![i + 1; b.len() + 1];
        for j in 0..b.len() {
            let cost = usize::from(a[i] != b[j]);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                cur[j + 1] = cur[j + 1].min(before[j - 1] + 1);
            }
        }
        if cur.iter().min().is_some_and(|m| *m > limit) {
            return None;
        }
        before = std::mem::replace(&mut prev, cur);
    }
    Some(prev[b.len()]).filter(|d| *d <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["command", "depends_on", "retries"];
        assert_eq!(did_you_mean("comand", keys), Some("command"));
        assert_eq!(did_you_mean("depends", keys), None);
        assert_eq!(did_you_mean("retry", keys), None);
        assert_eq!(did_you_mean("retires", keys), Some("retries"));
        // A swap of two letters is one typo.
        assert_eq!(did_you_mean("trian", ["train", "label"]), Some("train"));
        let distance =
            |a: &str, b: &str| edit_distance_within(&a.chars().collect::<Vec<_>>(), b, 10);
        assert_eq!(distance("ab", "ba"), Some(1));
        assert_eq!(distance("kitten", "sitting"), Some(3));
        assert_eq!(
            edit_distance_within(&"kitten".chars().collect::<Vec<_>>(), "sitting", 2),
            None
        );
    }

    #[test]
    fn line_and_column_are_one_based_in_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, src.find('=').unwrap()), (1, 3));
        let second_eq = src.rfind('=').unwrap();
        assert_eq!(line_col(src, second_eq), (2, 4));
    }
}
