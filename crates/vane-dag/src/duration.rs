//! Durations as people write them in DAG files: `500ms`, `30s`, `5m`, `1h`, `1d`, `1h30m`.

use std::time::Duration;

/// Parses `500ms`, `30s`, `5m`, `1h`, `1d` and sums of them (`1h30m`).
///
/// # Errors
/// Returns a sentence saying what is wrong with `text`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("number too large in `{text}`"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("`{number}` has no unit")),
            other => return Err(unknown_unit(text, other.trim())),
        };
        rest = &rest[unit_len..];
        let millis = number
            .checked_mul(millis_per_unit)
            .ok_or_else(|| format!("`{text}` is too long"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| format!("`{text}` is too long"))?;
    }
    Ok(total)
}

/// Why `unit` is not one, saying what was likely meant: `1.5h` (a fraction), `30S` (case),
/// `5 minutes` (a word).
fn unknown_unit(text: &str, unit: &str) -> String {
    if unit.starts_with('.') {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        // Only a plain `1.5h`: a unit of letters, so parsing `1h` cannot come back here.
        let exact = Some(unit)
            .filter(|u| !u.is_empty() && u.chars().all(|c| c.is_ascii_alphabetic()))
            .and_then(|u| parse_duration(&format!("1{u}")).ok())
            .zip(number.parse::<f64>().ok())
            .map(|(one, n)| n * one.as_millis() as f64)
            .filter(|ms| *ms >= 1.0 && ms.fract() == 0.0 && *ms < 1e15)
            .map(|ms| format_duration(Duration::from_millis(ms as u64)));
        return match exact {
            Some(exact) => format!("durations take whole numbers: write `{exact}`"),
            None => "durations take whole numbers: write e.g. `1h30m`, not `1.5h`".into(),
        };
    }
    let word = unit.to_ascii_lowercase();
    let meant = match word.as_str() {
        "ms" | "s" | "m" | "h" | "d" => Some(word.as_str()),
        "sec" | "secs" | "second" | "seconds" => Some("s"),
        "min" | "mins" | "minute" | "minutes" => Some("m"),
        "hr" | "hrs" | "hour" | "hours" => Some("h"),
        "day" | "days" => Some("d"),
        _ => None,
    };
    match meant {
        Some(meant) => format!("unknown unit `{unit}`: write `{meant}`"),
        None => format!("unknown unit `{unit}`"),
    }
}

/// The shortest exact spelling of `duration` in the DAG-file syntax.
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_sums() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse_duration("").is_err());
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 min").is_err());
        assert!(
            parse_duration("3w")
                .unwrap_err()
                .contains("unknown unit `w`")
        );
        assert!(parse_duration("-1s").is_err());
        // What was meant, where it can be told.
        assert_eq!(
            parse_duration("1.5h").unwrap_err(),
            "durations take whole numbers: write `1h30m`"
        );
        assert!(
            parse_duration("0.25s")
                .unwrap_err()
                .contains("write `250ms`")
        );
        assert!(
            parse_duration("1h30.5m")
                .unwrap_err()
                .contains("e.g. `1h30m`")
        );
        assert_eq!(
            parse_duration("30S").unwrap_err(),
            "unknown unit `S`: write `s`"
        );
        assert!(
            parse_duration("5minutes")
                .unwrap_err()
                .ends_with("write `m`")
        );
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn formats_back_exactly() {
        for text in ["0s", "500ms", "30s", "1h30m", "1d", "2d3h4m5s6ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
