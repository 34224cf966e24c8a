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
    /// The problems not shown that this diagnostic is in place of; see [`Diagnostic::tally`].
    in_place_of: Option<Tally>,
}

/// How many errors and warnings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub errors: usize,
    pub warnings: usize,
}

impl Tally {
    /// The problems `diagnostics` stand for.
    pub fn of<'a>(diagnostics: impl IntoIterator<Item = &'a Diagnostic>) -> Self {
        diagnostics
            .into_iter()
            .map(Diagnostic::tally)
            .fold(Self::default(), |a, b| Self {
                errors: a.errors + b.errors,
                warnings: a.warnings + b.warnings,
            })
    }
}

impl Diagnostic {
    /// An error: the file cannot be used until it is fixed. `span`: bytes of the source.
    pub fn error(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
            span,
            hint: None,
            in_place_of: None,
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

    /// Standing for `hidden` instead of itself: the problems of a file past those shown,
    /// which a count of its problems must still include.
    #[must_use]
    pub(crate) fn in_place_of(mut self, hidden: Tally) -> Self {
        self.in_place_of = Some(hidden);
        self
    }

    /// The problems this diagnostic stands for: itself, or for the "... and N more" that ends
    /// a file with too many to show, the N it is in place of.
    pub fn tally(&self) -> Tally {
        self.in_place_of.unwrap_or(Tally {
            errors: usize::from(self.is_error()),
            warnings: usize::from(!self.is_error()),
        })
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
                // A span from a parser that miscounted may end, or even start, inside a
                // character; it is widened to whole characters rather than sliced apart.
                let start = floor_boundary(source, span.start);
                let end = ceil_boundary(source, span.end.max(start));
                let (line, col) = line_col(source, start);
                let line_text = source.lines().nth(line - 1).unwrap_or("");
                let (shown, pad, room) = excerpt(line_text, col - 1);
                gutter = line.to_string().len();
                let _ = writeln!(out, "{:gutter$}--> {path}:{line}:{col}", "");
                let _ = writeln!(out, "{:gutter$} |", "");
                let _ = writeln!(out, "{line} | {shown}");
                // Underline only up to the end of the first line of a multi-line span.
                let span_chars = source[start..end]
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .count();
                let width = span_chars.clamp(1, room + 1);
                // A tab's width is the terminal's to choose, so no count of spaces lines up
                // under one; a tab under a tab does, whatever the tab stops. Every other
                // character is taken as one column wide, as the reported column counts it.
                let indent: String = shown
                    .chars()
                    .take(pad)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{:gutter$} | {indent}{}", "", "^".repeat(width));
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

/// The most characters of a line a rendering shows. A longer line (minified, or padded by
/// someone probing the parser) is cut to a window around the problem, so neither the output
/// nor the padding before the carets grows with the line.
const EXCERPT_CHARS: usize = 100;
/// How many characters before the problem a cut line keeps.
const EXCERPT_BEFORE: usize = 40;

/// `line` as shown under a diagnostic pointing at its character `at`: the text, how many
/// characters of it come before the one at `at`, and how many from there to its end.
fn excerpt(line: &str, at: usize) -> (String, usize, usize) {
    let len = line.chars().count();
    if len <= EXCERPT_CHARS {
        return (line.to_owned(), at, len.saturating_sub(at));
    }
    let from = at.saturating_sub(EXCERPT_BEFORE).min(len - EXCERPT_CHARS);
    let to = from + EXCERPT_CHARS;
    let mut shown = String::new();
    if from > 0 {
        shown.push('…');
    }
    shown.extend(line.chars().skip(from).take(EXCERPT_CHARS));
    if to < len {
        shown.push('…');
    }
    (
        shown,
        at - from + usize::from(from > 0),
        to.saturating_sub(at),
    )
}

/// The start of the character `offset` falls in (the end of `source` past it).
fn floor_boundary(source: &str, offset: usize) -> usize {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The end of the character `offset` falls in (the end of `source` past it).
fn ceil_boundary(source: &str, offset: usize) -> usize {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset += 1;
    }
    offset
}

pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_boundary(source, offset);
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Names longer than this get no suggestion: nobody mistypes a 400 KB time zone, and the
/// search would cost its length times every candidate's.
const LONGEST_GUESSED: usize = 64;

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo;
/// failing that, the one candidate that `word` begins or is begun by (`data` for `dataset`,
/// `boolean` for `bool`), as a name cut short or spelt out is the other common slip. Linear in the candidates: a candidate whose length alone is
/// too far is skipped, and the distance stops as soon as it is past the limit. Public so that
/// a name given on the command line (a DAG id) gets the same guess as a key in a file.
#[must_use]
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // One edit in three characters; a name of one or two characters is too short to guess.
    let len = word.chars().count();
    if len > LONGEST_GUESSED {
        return None;
    }
    let limit = if len < 3 { 0 } else { (len / 3).max(1) };
    // Letter case is no edit: `ALL_SUCCESS`, as Airflow's constants are written, and `{{DS}}`
    // are meant as `all_success` and `ds`, though every letter differs.
    let lower = word.to_lowercase();
    let word: Vec<char> = lower.chars().collect();
    let mut closest: Option<(usize, &str)> = None;
    // The candidates `word` begins or is begun by: only a single one is a guess (`retry`
    // begins three keys).
    let mut begun: (Option<&str>, usize) = (None, 0);
    for candidate in candidates {
        let candidate_lower = candidate.to_lowercase();
        if candidate.chars().count().abs_diff(len) <= limit
            && let Some(d) = edit_distance_within(&word, &candidate_lower, limit)
            && closest.is_none_or(|(best, _)| d < best)
        {
            closest = Some((d, candidate));
        }
        // Either way round: `int` for `integer`, `boolean` for `bool`.
        let (short, long) = if lower.len() <= candidate_lower.len() {
            (lower.as_str(), candidate_lower.as_str())
        } else {
            (candidate_lower.as_str(), lower.as_str())
        };
        if short.chars().count() >= SHORTEST_BEGUN && long.starts_with(short) && long != short {
            begun = (Some(candidate), begun.1 + 1);
        }
    }
    closest
        .map(|(_, c)| c)
        .or_else(|| begun.0.filter(|_| begun.1 == 1))
}

/// The shortest name taken for the start of a longer one: `da` could begin anything.
const SHORTEST_BEGUN: usize = 3;

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
        assert_eq!(did_you_mean("retry", keys), None);
        // A name cut short is a guess when it begins one candidate only.
        assert_eq!(did_you_mean("depends", keys), Some("depends_on"));
        assert_eq!(did_you_mean("data", ["dataset", "format"]), Some("dataset"));
        assert_eq!(
            did_you_mean("retry", ["retry_delay", "retry_backoff"]),
            None
        );
        assert_eq!(did_you_mean("da", ["dag_id"]), None);
        assert_eq!(did_you_mean("int", ["integer", "float"]), Some("integer"));
        assert_eq!(did_you_mean("boolean", ["string", "bool"]), Some("bool"));
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

    /// The carets under `\tretries = "2"` were padded with spaces only, so a terminal with
    /// tab stops of 8 showed them seven columns left of the value.
    #[test]
    fn carets_under_a_tab_indented_line_are_indented_with_the_same_tabs() {
        let source = "[tasks.a]\ncommand = \"true\"\n\tretries = \"2\"\n";
        let value = source.find("\"2\"").expect("the value");
        let d = Diagnostic::error("retries must be an integer", Some(value..value + 3));
        assert_eq!(d.line_col(source), Some((3, 12)));
        let out = d.render("dags/example.toml", source);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[3], "3 | \tretries = \"2\"", "{out}");
        assert_eq!(lines[4], format!("  | \t{}^^^", " ".repeat(10)), "{out}");

        // Tabs between other characters are kept where they are; a wide or accented
        // character stays one column, as the reported column counts it.
        let source = "a = \"日本\"\t\tbé\tbogus = 1\n";
        let bogus = source.find("bogus").expect("the key");
        let out = Diagnostic::error("unknown key", Some(bogus..bogus + 5)).render("x.toml", source);
        let carets = out.lines().nth(4).expect("a caret line");
        assert_eq!(
            carets,
            format!("  | {}\t\t  \t^^^^^", " ".repeat(8)),
            "{out}"
        );
    }

    #[test]
    fn a_long_line_is_cut_to_a_window_around_the_problem() {
        let line = format!("{}X{}", "a".repeat(150), "b".repeat(150));
        let (shown, pad, room) = excerpt(&line, 150);
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert_eq!(shown.chars().count(), EXCERPT_CHARS + 2);
        assert_eq!(shown.chars().nth(pad), Some('X'));
        assert_eq!(room, EXCERPT_CHARS - EXCERPT_BEFORE);
        let short = "a = 1";
        assert_eq!(excerpt(short, 4), (short.to_owned(), 4, 1));
    }
}
