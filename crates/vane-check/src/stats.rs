//! The numbers behind the checks: column profiles, drift between two distributions, learned
//! bounds and annotator agreement.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value as Json, json};

use crate::dataset::{Column, Dataset};

/// How many of a categorical column's most frequent values a profile keeps; the rest are
/// pooled as "other", which drift compares as one category.
const TOP: usize = 50;

pub(crate) fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Sample standard deviation (n − 1); 0 for fewer than two values.
pub(crate) fn std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    var.sqrt()
}

/// The q-quantile of sorted values, interpolating linearly between neighbours.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Shares of values in the bins the edges cut: bin i holds values in (edge[i-1], edge[i]].
fn histogram(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 1];
    for v in values {
        counts[edges.partition_point(|e| e < v)] += 1;
    }
    let n = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

/// The numbers of a column whose every value is a number; `None` otherwise.
pub(crate) fn numbers(column: &Column) -> Option<Vec<f64>> {
    let mut out = Vec::new();
    for v in column.present() {
        out.push(v.number()?);
    }
    (!out.is_empty()).then_some(out)
}

fn frequencies(column: &Column) -> (Vec<(String, f64)>, usize) {
    let mut sorted: Vec<(&str, usize)> = column
        .distinct_counts()
        .into_iter()
        .map(|(v, n)| (v.text.as_str(), n))
        .collect();
    let present: usize = sorted.iter().map(|(_, n)| n).sum();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let distinct = sorted.len();
    let shares = sorted
        .into_iter()
        .map(|(k, c)| (k.to_owned(), c as f64 / present.max(1) as f64))
        .collect();
    (shares, distinct)
}

/// The profile recorded with each evaluation, and read back as the next runs' drift baseline.
pub(crate) fn profile(data: &Dataset) -> Json {
    let mut columns = serde_json::Map::new();
    for column in &data.columns {
        let nulls = column.values().filter(Option::is_none).count();
        let mut entry = json!({ "count": column.len(), "nulls": nulls });
        if let Some(mut nums) = numbers(column) {
            nums.sort_by(f64::total_cmp);
            let deciles: Vec<f64> = (1..10).map(|i| quantile(&nums, i as f64 / 10.0)).collect();
            entry["kind"] = "numeric".into();
            entry["mean"] = mean(&nums).into();
            entry["std"] = std(&nums).into();
            entry["min"] = nums[0].into();
            entry["max"] = nums[nums.len() - 1].into();
            entry["bins"] = histogram(&nums, &deciles).into();
            entry["quantiles"] = deciles.into();
        } else {
            let (shares, distinct) = frequencies(column);
            let other: f64 = shares.iter().skip(TOP).map(|(_, s)| s).sum();
            entry["kind"] = "categorical".into();
            entry["distinct"] = distinct.into();
            entry["top"] = shares
                .into_iter()
                .take(TOP)
                .map(|(k, s)| json!([k, s]))
                .collect::<Vec<_>>()
                .into();
            entry["other"] = other.into();
        }
        columns.insert(column.name.clone(), entry);
    }
    json!({ "rows": data.rows(), "columns": columns })
}

/// Expected (baseline) and actual (current) shares over the same categories, and how the
/// categories were made.
pub(crate) struct Distributions {
    pub(crate) expected: Vec<f64>,
    pub(crate) actual: Vec<f64>,
    pub(crate) basis: &'static str,
}

/// Lines the current column up against its baseline profile: numbers in the bins cut by the
/// baseline's deciles, categories by the baseline's most frequent values (plus "other").
pub(crate) fn distributions(baseline: &Json, column: &Column) -> Option<Distributions> {
    if baseline["kind"] == "numeric" {
        let edges: Vec<f64> = baseline["quantiles"]
            .as_array()?
            .iter()
            .filter_map(Json::as_f64)
            .collect();
        let expected: Vec<f64> = baseline["bins"]
            .as_array()?
            .iter()
            .filter_map(Json::as_f64)
            .collect();
        let nums: Vec<f64> = column.present().filter_map(|v| v.number()).collect();
        if nums.is_empty() || expected.len() != edges.len() + 1 {
            return None;
        }
        return Some(Distributions {
            actual: histogram(&nums, &edges),
            expected,
            basis: "bins at the baseline's deciles",
        });
    }
    let top = baseline["top"].as_array()?;
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut expected = Vec::new();
    for pair in top {
        index.insert(pair[0].as_str()?, expected.len());
        expected.push(pair[1].as_f64()?);
    }
    expected.push(baseline["other"].as_f64().unwrap_or(0.0));
    let mut counts = vec![0usize; expected.len()];
    let mut present = 0usize;
    for (v, n) in column.distinct_counts() {
        present += n;
        counts[*index.get(v.text.as_str()).unwrap_or(&(expected.len() - 1))] += n;
    }
    if present == 0 {
        return None;
    }
    Some(Distributions {
        actual: counts
            .into_iter()
            .map(|c| c as f64 / present as f64)
            .collect(),
        expected,
        basis: "category frequencies",
    })
}

/// An empty bin would make PSI infinite; it is counted as this small share instead.
const EPSILON: f64 = 1e-4;

/// Population stability index: Σ (actual − expected) · ln(actual / expected).
pub(crate) fn psi(d: &Distributions) -> f64 {
    d.expected
        .iter()
        .zip(&d.actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(EPSILON), a.max(EPSILON));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Jensen–Shannon distance (base 2, so between 0 and 1): the square root of the divergence.
pub(crate) fn js(d: &Distributions) -> f64 {
    let kl = |p: &[f64], m: &[f64]| -> f64 {
        p.iter()
            .zip(m)
            .filter(|(p, _)| **p > 0.0)
            .map(|(p, m)| p * (p / m).log2())
            .sum()
    };
    let m: Vec<f64> = d
        .expected
        .iter()
        .zip(&d.actual)
        .map(|(e, a)| (e + a) / 2.0)
        .collect();
    let divergence = 0.5 * kl(&d.expected, &m) + 0.5 * kl(&d.actual, &m);
    divergence.max(0.0).sqrt()
}

/// Agreement of annotators over the items two or more of them labeled.
pub(crate) struct Agreement {
    /// Cohen's kappa, or the share of agreeing pairs, per the method asked.
    pub(crate) kappa: f64,
    pub(crate) percent: f64,
    pub(crate) items: usize,
    pub(crate) pairs: usize,
    /// Items whose annotators disagree: (line of the item's first row, "item: a=x, b=y").
    pub(crate) disagreements: Vec<(u64, String)>,
}

/// Pairs every two annotators of an item (the one whose name sorts first as rater 1) and
/// computes Cohen's kappa over all pairs: (p_o − p_e) / (1 − p_e), p_e from the two raters'
/// label shares.
pub(crate) fn agreement(
    data: &Dataset,
    item: &Column,
    annotator: &Column,
    label: &Column,
) -> Option<Agreement> {
    // item -> (first line, annotator -> label); a later label by the same annotator wins.
    let mut items: BTreeMap<&str, (u64, BTreeMap<&str, &str>)> = BTreeMap::new();
    for row in 0..data.rows() {
        let (Some(i), Some(a), Some(l)) = (item.get(row), annotator.get(row), label.get(row))
        else {
            continue;
        };
        items
            .entry(&i.text)
            .or_insert_with(|| (data.lines[row], BTreeMap::new()))
            .1
            .insert(&a.text, &l.text);
    }
    let mut pairs = 0usize;
    let mut agree = 0usize;
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut second: HashMap<&str, usize> = HashMap::new();
    let mut counted = 0usize;
    let mut disagreements = Vec::new();
    for (name, (line, labels)) in &items {
        if labels.len() < 2 {
            continue;
        }
        counted += 1;
        let list: Vec<(&str, &str)> = labels.iter().map(|(a, l)| (*a, *l)).collect();
        for (x, (_, lx)) in list.iter().enumerate() {
            for (_, ly) in &list[x + 1..] {
                pairs += 1;
                if lx == ly {
                    agree += 1;
                }
                *first.entry(lx).or_default() += 1;
                *second.entry(ly).or_default() += 1;
            }
        }
        if labels.values().any(|l| *l != list[0].1) {
            let shown: Vec<String> = list.iter().map(|(a, l)| format!("{a}={l}")).collect();
            disagreements.push((*line, format!("item {name}: {}", shown.join(", "))));
        }
    }
    if pairs == 0 {
        return None;
    }
    let n = pairs as f64;
    let observed = agree as f64 / n;
    let chance: f64 = first
        .iter()
        .map(|(l, c)| (*c as f64 / n) * (*second.get(l).unwrap_or(&0) as f64 / n))
        .sum();
    let kappa = if (1.0 - chance).abs() < f64::EPSILON {
        // Every pair used one and the same label: agreement is total, not chance.
        if agree == pairs { 1.0 } else { 0.0 }
    } else {
        (observed - chance) / (1.0 - chance)
    };
    Some(Agreement {
        kappa,
        percent: observed * 100.0,
        items: counted,
        pairs,
        disagreements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn sample_std_divides_by_n_minus_one() {
        assert!(close(
            std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]),
            2.138089935299395
        ));
        assert_eq!(std(&[5.0]), 0.0);
    }

    #[test]
    fn psi_and_js_are_zero_for_the_same_distribution_and_grow_with_shift() {
        let same = Distributions {
            expected: vec![0.5, 0.5],
            actual: vec![0.5, 0.5],
            basis: "",
        };
        assert!(close(psi(&same), 0.0));
        assert!(close(js(&same), 0.0));
        let shifted = Distributions {
            expected: vec![0.5, 0.5],
            actual: vec![0.9, 0.1],
            basis: "",
        };
        // (0.9-0.5)ln(1.8) + (0.1-0.5)ln(0.2)
        assert!(close(psi(&shifted), 0.4 * 1.8f64.ln() + 0.4 * 5f64.ln()));
        let disjoint = Distributions {
            expected: vec![1.0, 0.0],
            actual: vec![0.0, 1.0],
            basis: "",
        };
        assert!(
            close(js(&disjoint), 1.0),
            "disjoint distributions are 1 apart"
        );
    }

    #[test]
    fn cohen_kappa_of_a_textbook_table() {
        // Two raters, 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 → p_o = 0.7,
        // p_e = 0.5·0.6 + 0.5·0.4 = 0.5, kappa = 0.4.
        let mut csv = String::from("item,annotator,label\n");
        let mut n = 0;
        for (count, a, b) in [
            (20, "yes", "yes"),
            (5, "yes", "no"),
            (10, "no", "yes"),
            (15, "no", "no"),
        ] {
            for _ in 0..count {
                n += 1;
                csv.push_str(&format!("{n},alice,{a}\n{n},bob,{b}\n"));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, csv).unwrap();
        let data = crate::dataset::read(&path, None).unwrap();
        let col = |name| data.column(name).unwrap();
        let a = agreement(&data, col("item"), col("annotator"), col("label")).unwrap();
        assert!(close(a.kappa, 0.4), "kappa {}", a.kappa);
        assert!(close(a.percent, 70.0));
        assert_eq!((a.items, a.pairs), (50, 50));
        assert_eq!(a.disagreements.len(), 15);
    }
}
