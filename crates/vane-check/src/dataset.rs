//! Reading a dataset: CSV (RFC 4180) or JSON Lines, column by column, with each value's type
//! inferred (CSV) or taken from JSON.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use crate::Format;

/// What a non-null value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Float,
    Bool,
    Str,
}

#[derive(Debug, Clone)]
pub(crate) struct Value {
    /// As written (CSV, surrounding spaces kept) or as JSON prints it; JSON strings without
    /// quotes.
    pub(crate) text: String,
    pub(crate) kind: Kind,
    /// The value as a number, read once when the value is first seen.
    number: Option<f64>,
}

impl Value {
    fn new(text: String, kind: Kind) -> Self {
        let number = match kind {
            // A CSV field's type is inferred from its text without surrounding spaces.
            Kind::Int | Kind::Float => text.trim().parse().ok(),
            Kind::Bool | Kind::Str => None,
        };
        Self { text, kind, number }
    }

    pub(crate) fn number(&self) -> Option<f64> {
        self.number
    }
}

/// The code of a missing value.
const MISSING: u32 = u32::MAX;

/// One column, dictionary-encoded: each distinct value is kept (and typed, and parsed as a
/// number) once, and each row holds a 4-byte code. A day of data repeats most of its values
/// (categories, small integers, amounts), so this keeps a million-row file in tens of MB
/// where one string per cell took hundreds.
#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) name: String,
    codes: Vec<u32>,
    distinct: Vec<Value>,
    index: HashMap<Box<str>, u32, FastHash>,
}

/// A multiply-rotate hash (the one rustc uses for its own tables) for the dictionary: looking
/// up every cell of a file with SipHash took a quarter of the time of a validation. It does not
/// resist crafted collisions, which would only slow down checking one's own data.
#[derive(Debug, Default, Clone, Copy)]
struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    /// Mixed (murmur3's finalizer) so the low bits, which pick the bucket, depend on every
    /// input bit: values that differ only in their last digits must not share buckets.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl Column {
    fn new(name: String) -> Self {
        Self {
            name,
            codes: Vec::new(),
            distinct: Vec::new(),
            index: HashMap::default(),
        }
    }

    fn push_missing(&mut self) {
        self.codes.push(MISSING);
    }

    /// Adds a value, typed by `kind` the first time this text is seen in the column.
    fn push(&mut self, text: &str, kind: impl FnOnce(&str) -> Kind) {
        let code = match self.index.get(text) {
            Some(&code) => code,
            None => {
                let code = self.distinct.len() as u32;
                self.distinct.push(Value::new(text.to_owned(), kind(text)));
                self.index.insert(text.into(), code);
                code
            }
        };
        self.codes.push(code);
    }

    /// Adds a JSON value of a known kind. The same text can come with two kinds in JSON (`1`
    /// and `"1"`), and a type check must tell them apart, so the kind is part of the key.
    fn push_typed(&mut self, text: &str, kind: Kind) {
        let key = format!("{}{text}", kind as u8);
        let code = match self.index.get(key.as_str()) {
            Some(&code) => code,
            None => {
                let code = self.distinct.len() as u32;
                self.distinct.push(Value::new(text.to_owned(), kind));
                self.index.insert(key.into(), code);
                code
            }
        };
        self.codes.push(code);
    }

    /// Rows so far.
    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }

    /// The value of row `row`; `None` when it is missing.
    pub(crate) fn get(&self, row: usize) -> Option<&Value> {
        match self.codes.get(row).copied() {
            None | Some(MISSING) => None,
            Some(code) => self.distinct.get(code as usize),
        }
    }

    /// Every row's value in order; `None` for a missing one.
    pub(crate) fn values(&self) -> impl Iterator<Item = Option<&Value>> + '_ {
        self.codes.iter().map(|&code| match code {
            MISSING => None,
            code => self.distinct.get(code as usize),
        })
    }

    /// The rows' values, missing ones left out.
    pub(crate) fn present(&self) -> impl Iterator<Item = &Value> + '_ {
        self.values().flatten()
    }

    /// Each distinct value with the number of rows holding it, in first-seen order.
    pub(crate) fn distinct_counts(&self) -> Vec<(&Value, usize)> {
        let mut counts = vec![0usize; self.distinct.len()];
        for &code in &self.codes {
            if code != MISSING {
                counts[code as usize] += 1;
            }
        }
        self.distinct
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Rows whose value `bad` holds for, judged once per distinct value rather than per row.
    pub(crate) fn rows_where(
        &self,
        bad: impl Fn(&Value) -> bool,
    ) -> impl Iterator<Item = (usize, Option<&Value>)> + '_ {
        let flags: Vec<bool> = self.distinct.iter().map(bad).collect();
        self.codes
            .iter()
            .enumerate()
            .filter(move |&(_, &code)| code != MISSING && flags[code as usize])
            .map(|(row, &code)| (row, self.distinct.get(code as usize)))
    }

    /// Rows whose value an earlier row already had.
    pub(crate) fn repeats(&self) -> impl Iterator<Item = (usize, Option<&Value>)> + '_ {
        let mut seen = vec![false; self.distinct.len()];
        self.codes
            .iter()
            .enumerate()
            .filter_map(move |(row, &code)| {
                if code == MISSING {
                    return None;
                }
                let earlier = std::mem::replace(&mut seen[code as usize], true);
                earlier.then(|| (row, self.distinct.get(code as usize)))
            })
    }

    /// Pads the column with missing values up to `rows`.
    fn fill_to(&mut self, rows: usize) {
        if self.codes.len() < rows {
            self.codes.resize(rows, MISSING);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Dataset {
    pub(crate) format: Format,
    pub(crate) columns: Vec<Column>,
    /// The file line each row starts on, for pointing a person at it.
    pub(crate) lines: Vec<u64>,
}

impl Dataset {
    pub(crate) fn rows(&self) -> usize {
        self.lines.len()
    }

    pub(crate) fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The format `format` names, else the one the extension says.
pub(crate) fn format_of(path: &Path, format: Option<Format>) -> Result<Format, String> {
    if let Some(f) = format {
        return Ok(f);
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => Ok(Format::Csv),
        Some(e) if e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson") => {
            Ok(Format::Jsonl)
        }
        Some(e) if e.eq_ignore_ascii_case("parquet") => Err(format!(
            "{} is Parquet, which vane does not read; write the data as CSV or JSON Lines",
            path.display()
        )),
        _ => Err(format!(
            "cannot tell the format of {} from its extension; add `format = \"csv\"` or `format = \"jsonl\"` to the task",
            path.display()
        )),
    }
}

/// Reads the whole dataset.
pub(crate) fn read(path: &Path, format: Option<Format>) -> Result<Dataset, String> {
    let format = format_of(path, format)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read dataset {}: {e}; check `dataset` and that the task producing it ran",
            path.display()
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    match format {
        Format::Csv => read_csv(text).map_err(|e| format!("{}: {e}", path.display())),
        Format::Jsonl => read_jsonl(text).map_err(|e| format!("{}: {e}", path.display())),
    }
}

/// A CSV field's type, inferred from its text without surrounding spaces (` -5` is the
/// integer -5).
fn infer(text: &str) -> Kind {
    let text = text.trim();
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<i64>().is_ok()
    {
        return Kind::Int;
    }
    // `inf` and `NaN` parse as floats but are words in a dataset.
    if text.bytes().any(|b| b.is_ascii_digit())
        && !text
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
        && text.parse::<f64>().is_ok_and(f64::is_finite)
    {
        return Kind::Float;
    }
    if matches!(text, "true" | "false" | "TRUE" | "FALSE" | "True" | "False") {
        return Kind::Bool;
    }
    Kind::Str
}

/// A reader of RFC 4180 CSV records: quoted fields may hold commas, doubled quotes and
/// newlines; CRLF or LF line ends; blank lines are skipped. Works on bytes and borrows unquoted
/// fields from the text, so reading allocates only for quoted fields with doubled quotes.
struct Records<'t> {
    text: &'t str,
    pos: usize,
    line: u64,
}

impl<'t> Records<'t> {
    fn new(text: &'t str) -> Self {
        Self {
            text,
            pos: 0,
            line: 1,
        }
    }

    /// Reads the next record into `fields`; the line it starts on, or `None` at the end.
    fn next_into(&mut self, fields: &mut Vec<Cow<'t, str>>) -> Result<Option<u64>, String> {
        let bytes = self.text.as_bytes();
        fields.clear();
        // Blank lines are no records.
        while self.pos < bytes.len() && matches!(bytes[self.pos], b'\n' | b'\r') {
            if bytes[self.pos] == b'\n' {
                self.line += 1;
            }
            self.pos += 1;
        }
        if self.pos >= bytes.len() {
            return Ok(None);
        }
        let start = self.line;
        loop {
            let field = if bytes.get(self.pos) == Some(&b'"') {
                self.quoted(start)?
            } else {
                let from = self.pos;
                while self.pos < bytes.len() && !matches!(bytes[self.pos], b',' | b'\n') {
                    self.pos += 1;
                }
                let field = &self.text[from..self.pos];
                Cow::Borrowed(field.strip_suffix('\r').unwrap_or(field))
            };
            fields.push(field);
            match bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                    return Ok(Some(start));
                }
                _ => return Ok(Some(start)),
            }
        }
    }

    /// A field starting with `"`: up to the closing quote, then any text up to the separator
    /// (kept as written, as lenient readers do).
    fn quoted(&mut self, start: u64) -> Result<Cow<'t, str>, String> {
        let bytes = self.text.as_bytes();
        self.pos += 1;
        let mut owned: Option<String> = None;
        let mut from = self.pos;
        loop {
            let Some(&b) = bytes.get(self.pos) else {
                return Err(format!(
                    "line {start}: a quoted field is never closed; end it with `\"`"
                ));
            };
            match b {
                b'"' if bytes.get(self.pos + 1) == Some(&b'"') => {
                    let buf = owned.get_or_insert_with(String::new);
                    buf.push_str(&self.text[from..=self.pos]);
                    self.pos += 2;
                    from = self.pos;
                }
                b'"' => break,
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
        let inside = &self.text[from..self.pos];
        self.pos += 1;
        let rest_from = self.pos;
        while self.pos < bytes.len() && !matches!(bytes[self.pos], b',' | b'\n') {
            self.pos += 1;
        }
        let rest = &self.text[rest_from..self.pos];
        let rest = rest.strip_suffix('\r').unwrap_or(rest);
        Ok(match owned {
            None if rest.is_empty() => Cow::Borrowed(inside),
            None => Cow::Owned(format!("{inside}{rest}")),
            Some(mut buf) => {
                buf.push_str(inside);
                buf.push_str(rest);
                Cow::Owned(buf)
            }
        })
    }
}

pub(crate) fn read_csv(text: &str) -> Result<Dataset, String> {
    let mut records = Records::new(text);
    let mut fields = Vec::new();
    if records.next_into(&mut fields)?.is_none() {
        return Err("the file is empty: a CSV dataset starts with a header line".into());
    }
    let mut columns: Vec<Column> = fields
        .iter()
        .map(|name| Column::new(name.trim().to_owned()))
        .collect();
    let mut lines = Vec::new();
    while let Some(line) = records.next_into(&mut fields)? {
        if fields.len() != columns.len() {
            return Err(format!(
                "line {line} has {} fields, the header has {}; quote fields holding commas",
                fields.len(),
                columns.len()
            ));
        }
        lines.push(line);
        for (column, text) in columns.iter_mut().zip(&fields) {
            if text.is_empty() {
                column.push_missing();
            } else {
                column.push(text, infer);
            }
        }
    }
    Ok(Dataset {
        format: Format::Csv,
        columns,
        lines,
    })
}

pub(crate) fn read_jsonl(text: &str) -> Result<Dataset, String> {
    let mut columns: Vec<Column> = Vec::new();
    // Column name -> index in `columns`: one lookup per key, whatever the width.
    let mut by_name: HashMap<String, usize, FastHash> = HashMap::default();
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {number} is not JSON: {e}"))?;
        let serde_json::Value::Object(object) = value else {
            return Err(format!(
                "line {number} is not a JSON object; each line of JSON Lines is one row {{\"column\": value, ...}}"
            ));
        };
        let row = lines.len();
        lines.push(number);
        for (key, value) in object {
            let i = match by_name.get(key.as_str()) {
                Some(&i) => i,
                None => {
                    by_name.insert(key.clone(), columns.len());
                    columns.push(Column::new(key));
                    columns.len() - 1
                }
            };
            let column = &mut columns[i];
            // Rows since this column's last value lacked its key: missing values. Padding
            // here, when the column gets a value, costs nothing for the columns a row lacks.
            column.fill_to(row);
            match value {
                serde_json::Value::Null => column.push_missing(),
                serde_json::Value::Bool(b) => column.push_typed(&b.to_string(), Kind::Bool),
                serde_json::Value::Number(n) => {
                    let kind = if n.is_f64() { Kind::Float } else { Kind::Int };
                    column.push_typed(&n.to_string(), kind);
                }
                serde_json::Value::String(s) => column.push_typed(&s, Kind::Str),
                other => column.push_typed(&other.to_string(), Kind::Str),
            }
        }
    }
    // A key absent from the last rows is missing there too.
    for column in &mut columns {
        column.fill_to(lines.len());
    }
    Ok(Dataset {
        format: Format::Jsonl,
        columns,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoted_fields_hold_commas_quotes_and_newlines() {
        let d = read_csv("id,note\r\n1,\"a, b\"\r\n2,\"say \"\"hi\"\"\nthere\"\n3,\n").unwrap();
        let note = d.column("note").unwrap();
        assert_eq!(note.get(0).unwrap().text, "a, b");
        assert_eq!(note.get(1).unwrap().text, "say \"hi\"\nthere");
        assert!(note.get(2).is_none(), "an empty field is missing");
        assert_eq!(
            d.lines,
            vec![2, 3, 5],
            "rows point at the line they start on"
        );
    }

    #[test]
    fn csv_types_are_inferred_per_value() {
        let d = read_csv("x\n42\n-3\n1.5\n1e3\ntrue\nNaN\n007\n").unwrap();
        let kinds: Vec<Kind> = d.columns[0].values().map(|v| v.unwrap().kind).collect();
        use Kind::*;
        assert_eq!(kinds, vec![Int, Int, Float, Float, Bool, Str, Int]);
    }

    #[test]
    fn csv_with_a_short_row_names_its_line() {
        let err = read_csv("a,b\n1,2\n3\n").unwrap_err();
        assert_eq!(
            err,
            "line 3 has 1 fields, the header has 2; quote fields holding commas"
        );
    }

    #[test]
    fn jsonl_missing_keys_are_missing_values() {
        let d = read_jsonl("{\"a\": 1, \"b\": \"x\"}\n\n{\"b\": null, \"c\": 2.5}\n").unwrap();
        assert_eq!(d.rows(), 2);
        assert_eq!(d.lines, vec![1, 3]);
        let a = d.column("a").unwrap();
        assert!(a.get(0).is_some() && a.get(1).is_none());
        let c = d.column("c").unwrap();
        assert!(c.get(0).is_none());
        assert_eq!(c.get(1).unwrap().kind, Kind::Float);
        let mixed = read_jsonl("{\"x\": 1}\n{\"x\": \"1\"}\n").unwrap();
        let kinds: Vec<Kind> = mixed.columns[0].values().map(|v| v.unwrap().kind).collect();
        assert_eq!(
            kinds,
            vec![Kind::Int, Kind::Str],
            "1 and \"1\" are different values"
        );
    }

    #[test]
    fn csv_types_are_inferred_without_surrounding_spaces() {
        let d = read_csv("x\n -5\n 1.5 \ntrue \n a \n").unwrap();
        let values: Vec<&Value> = d.columns[0].present().collect();
        let kinds: Vec<Kind> = values.iter().map(|v| v.kind).collect();
        use Kind::*;
        assert_eq!(kinds, vec![Int, Float, Bool, Str]);
        assert_eq!(values[0].number(), Some(-5.0));
        assert_eq!(values[1].number(), Some(1.5));
        assert_eq!(values[0].text, " -5", "kept as written");
    }

    /// Wide JSON Lines with keys missing from some rows: every column ends with one value per
    /// row, missing where the row lacked the key. (Its speed is not asserted here: tests carry
    /// no timing thresholds.)
    #[test]
    fn wide_jsonl_with_missing_keys_pads_each_column_to_every_row() {
        let (rows, keys) = (20, 500);
        let mut text = String::new();
        for r in 0..rows {
            text.push('{');
            for k in 0..keys {
                // Every other row lacks the odd keys; the last row has a key of its own.
                if r % 2 == 1 && k % 2 == 1 {
                    continue;
                }
                if k > 0 && !text.ends_with('{') {
                    text.push(',');
                }
                text.push_str(&format!("\"column_number_{k:05}\": {}", r % 7));
            }
            if r == rows - 1 {
                text.push_str(", \"last\": 1");
            }
            text.push_str("}\n");
        }
        let d = read_jsonl(&text).unwrap();
        assert_eq!(d.rows(), rows);
        assert_eq!(d.columns.len(), keys + 1);
        assert!(d.columns.iter().all(|c| c.len() == rows));
        let odd = d.column("column_number_00001").unwrap();
        assert!(odd.get(0).is_some() && odd.get(1).is_none());
        let last = d.column("last").unwrap();
        assert!(last.get(rows - 2).is_none() && last.get(rows - 1).is_some());
    }
}
