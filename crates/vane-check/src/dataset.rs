//! Reading a dataset: CSV (RFC 4180) or JSON Lines, column by column, with each value's type
//! inferred (CSV) or taken from JSON.

use std::path::Path;

use vane_dag::Format;

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
    /// As written (CSV) or as JSON prints it; JSON strings without quotes.
    pub(crate) text: String,
    pub(crate) kind: Kind,
}

impl Value {
    pub(crate) fn number(&self) -> Option<f64> {
        match self.kind {
            Kind::Int | Kind::Float => self.text.parse().ok(),
            Kind::Bool | Kind::Str => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// One per row; `None` is a missing value (empty CSV field, JSON null or absent key).
    pub(crate) values: Vec<Option<Value>>,
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

/// A CSV field's type, inferred from its text.
fn infer(text: &str) -> Kind {
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

/// Records of RFC 4180 CSV with the line each starts on: quoted fields may hold commas,
/// doubled quotes and newlines; CRLF or LF line ends.
fn records(text: &str) -> Result<Vec<(u64, Vec<String>)>, String> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut line = 1u64;
    let mut start = 1u64;
    let mut in_quotes = false;
    let mut at_field_start = true;
    let mut any = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                at_field_start = false;
                any = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if any || !field.is_empty() {
                    fields.push(std::mem::take(&mut field));
                    out.push((start, std::mem::take(&mut fields)));
                }
                line += 1;
                start = line;
                at_field_start = true;
                any = false;
            }
            _ => {
                field.push(c);
                at_field_start = false;
                any = true;
            }
        }
    }
    if in_quotes {
        return Err(format!(
            "line {start}: a quoted field is never closed; end it with `\"`"
        ));
    }
    if any || !field.is_empty() {
        fields.push(field);
        out.push((start, fields));
    }
    Ok(out)
}

fn read_csv(text: &str) -> Result<Dataset, String> {
    let mut records = records(text)?.into_iter();
    let Some((_, header)) = records.next() else {
        return Err("the file is empty: a CSV dataset starts with a header line".into());
    };
    let mut columns: Vec<Column> = header
        .into_iter()
        .map(|name| Column {
            name: name.trim().to_owned(),
            values: Vec::new(),
        })
        .collect();
    let mut lines = Vec::new();
    for (line, fields) in records {
        if fields.len() != columns.len() {
            return Err(format!(
                "line {line} has {} fields, the header has {}; quote fields holding commas",
                fields.len(),
                columns.len()
            ));
        }
        lines.push(line);
        for (column, text) in columns.iter_mut().zip(fields) {
            column.values.push((!text.is_empty()).then(|| Value {
                kind: infer(&text),
                text,
            }));
        }
    }
    Ok(Dataset {
        format: Format::Csv,
        columns,
        lines,
    })
}

fn read_jsonl(text: &str) -> Result<Dataset, String> {
    let mut columns: Vec<Column> = Vec::new();
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
            let value = match value {
                serde_json::Value::Null => None,
                serde_json::Value::Bool(b) => Some(Value {
                    text: b.to_string(),
                    kind: Kind::Bool,
                }),
                serde_json::Value::Number(n) => Some(Value {
                    kind: if n.is_f64() { Kind::Float } else { Kind::Int },
                    text: n.to_string(),
                }),
                serde_json::Value::String(s) => Some(Value {
                    text: s,
                    kind: Kind::Str,
                }),
                other => Some(Value {
                    text: other.to_string(),
                    kind: Kind::Str,
                }),
            };
            let column = match columns.iter().position(|c| c.name == key) {
                Some(i) => &mut columns[i],
                None => {
                    columns.push(Column {
                        name: key,
                        values: vec![None; row],
                    });
                    columns.last_mut().expect("just pushed")
                }
            };
            column.values.push(value);
        }
        // A key absent from this row is a missing value.
        for column in &mut columns {
            column.values.resize(row + 1, None);
        }
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
        assert_eq!(note.values[0].as_ref().unwrap().text, "a, b");
        assert_eq!(note.values[1].as_ref().unwrap().text, "say \"hi\"\nthere");
        assert!(note.values[2].is_none(), "an empty field is missing");
        assert_eq!(
            d.lines,
            vec![2, 3, 5],
            "rows point at the line they start on"
        );
    }

    #[test]
    fn csv_types_are_inferred_per_value() {
        let d = read_csv("x\n42\n-3\n1.5\n1e3\ntrue\nNaN\n007\n").unwrap();
        let kinds: Vec<Kind> = d.columns[0]
            .values
            .iter()
            .map(|v| v.as_ref().unwrap().kind)
            .collect();
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
        assert!(a.values[0].is_some() && a.values[1].is_none());
        let c = d.column("c").unwrap();
        assert!(c.values[0].is_none());
        assert_eq!(c.values[1].as_ref().unwrap().kind, Kind::Float);
    }
}
