//! Reading DAG files from disk. A broken file never hides the others: each file carries its
//! own diagnostics, and only the valid DAGs are runnable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::diag::{Diagnostic, Tally, did_you_mean, line_col};
use crate::model::Dag;
use crate::parse::{Parsed, parse_dag_with};
use crate::registry::Registry;

/// One DAG file: its text and what parsing it found.
#[derive(Debug)]
pub struct DagFile {
    pub path: PathBuf,
    pub source: String,
    pub parsed: Parsed,
    /// The DAG id this file has with other files, which keeps its DAG from loading.
    pub shared_id: Option<SharedId>,
}

/// A DAG id that more than one file has (see [`DagFile::shared_id`]).
#[derive(Debug, Clone)]
pub struct SharedId {
    pub id: String,
    /// The other files with it: checking one file alone would not show the problem, so
    /// `vane validate` must be given them too.
    pub with: Vec<PathBuf>,
}

impl DagFile {
    /// How many errors (not warnings) the file has, shown or not.
    pub fn error_count(&self) -> usize {
        self.tally().errors
    }

    /// How many errors and warnings the file has, counting those past the most shown.
    pub fn tally(&self) -> Tally {
        Tally::of(&self.parsed.diagnostics)
    }

    /// An error for each task of the file's DAG whose `pool` is not in `pools`, the `[pools]`
    /// of the scheduler config at `config`, pointing at the task's `pool = "..."`: a run of
    /// the DAG would fail at once on it (see [`Dag::undefined_pools`]). With no config
    /// (`pools` is `None`), a warning instead: the config may live on the server only, but
    /// a run here would fail the same way. None for a file whose DAG does not load: it cannot
    /// run anyway, and its own errors come first.
    pub fn undefined_pools(
        &self,
        pools: Option<&BTreeMap<String, usize>>,
        config: &str,
    ) -> Vec<Diagnostic> {
        let Some(dag) = &self.parsed.dag else {
            return Vec::new();
        };
        let none = BTreeMap::new();
        dag.undefined_pools(pools.unwrap_or(&none))
            .map(|(task, pool)| {
                let add = format!(
                    "add `[pools] {pool} = N` to {config}, N being how many of its tasks may run at once"
                );
                let span = value_span(&self.source, &["tasks", &task.id, "pool"]);
                let Some(pools) = pools else {
                    return Diagnostic::warning(
                        format!(
                            "task `{}` uses pool `{pool}`, and there is no scheduler config ({config}) to define it",
                            task.id
                        ),
                        span,
                    )
                    .hint(format!("a run refuses the task until then: {add}"));
                };
                let hint = match did_you_mean(pool, pools.keys().map(String::as_str)) {
                    Some(close) => format!("did you mean `{close}`? Or {add}"),
                    None => add,
                };
                Diagnostic::error(
                    format!(
                        "task `{}` uses pool `{pool}`, which the scheduler config does not define",
                        task.id
                    ),
                    span,
                )
                .hint(hint)
            })
            .collect()
    }

    /// Renders every diagnostic of the file, compiler style.
    pub fn render_diagnostics(&self) -> String {
        self.parsed
            .render(&self.path.display().to_string(), &self.source)
    }
}

/// Every DAG file of a folder (or a list of paths), valid or not.
#[derive(Debug, Default)]
pub struct DagSet {
    pub files: Vec<DagFile>,
}

impl DagSet {
    /// The valid DAGs with the file each came from.
    pub fn dags(&self) -> impl Iterator<Item = (&Dag, &DagFile)> {
        self.files
            .iter()
            .filter_map(|f| f.parsed.dag.as_ref().map(|d| (d, f)))
    }

    /// The file that defines DAG `id` (or would, by its name, when it does not parse; or
    /// does, with another file).
    pub fn find(&self, id: &str) -> Option<&DagFile> {
        self.files
            .iter()
            .find(|f| f.parsed.dag.as_ref().is_some_and(|d| d.id == id))
            .or_else(|| {
                self.files
                    .iter()
                    .find(|f| f.shared_id.as_ref().is_some_and(|s| s.id == id))
            })
            .or_else(|| {
                self.files
                    .iter()
                    .find(|f| f.parsed.dag.is_none() && f.path.file_stem().is_some_and(|s| s == id))
            })
    }

    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.files.iter().flat_map(|f| f.parsed.diagnostics.iter())
    }
}

/// Loads every `*.toml` file directly inside `dir` (task code in sub-folders is not scanned),
/// with `kinds` reading built-in tasks.
///
/// # Errors
/// Fails only when the folder itself does not exist or cannot be read; unreadable files become
/// diagnostics.
pub fn load_dir(dir: &Path, registry: &Registry) -> io::Result<DagSet> {
    // Unlike one path among those given to `vane validate`, the DAG folder is all there is to
    // load: without it there is nothing to schedule or run, and the caller says so and stops.
    let files = toml_files(dir)?;
    let mut set = DagSet {
        files: files.iter().map(|p| load_file(p, registry)).collect(),
    };
    reject_duplicate_ids(&mut set);
    Ok(set)
}

/// Loads DAG files and folders of DAG files, as `vane validate` is given them. It never fails:
/// a path that does not exist (or a folder that cannot be read) becomes a file with that
/// error, so a typo in one path still lets every other one be checked. A file named twice
/// (`a.toml a.toml`, `dags ./dags`, `dags dags/etl.toml`) is loaded once, under the spelling
/// first given: twice, it would be counted twice and its DAG id would clash with itself.
pub fn load_paths(paths: &[PathBuf], registry: &Registry) -> DagSet {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        match toml_files(path) {
            Ok(found) => {
                for file in found {
                    let same = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
                    if seen.insert(same) {
                        files.push(load_file(&file, registry));
                    }
                }
            }
            Err(error) => {
                if seen.insert(path.clone()) {
                    files.push(missing(path, &error));
                }
            }
        }
    }
    let mut set = DagSet { files };
    reject_duplicate_ids(&mut set);
    set
}

/// The DAG files a path names: itself, or the `*.toml` files directly inside a folder, sorted.
fn toml_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
            .collect();
        found.sort();
        Ok(found)
    } else if path.exists() {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} does not exist", path.display()),
        ))
    }
}

/// A path given to [`load_paths`] that cannot be loaded, as a file with that error.
fn missing(path: &Path, error: &io::Error) -> DagFile {
    let diagnostic = if error.kind() == io::ErrorKind::NotFound {
        Diagnostic::error(format!("`{}` does not exist", path.display()), None).hint(
            "check the spelling, and that the file is in this checkout; a relative path starts from the current folder",
        )
    } else {
        Diagnostic::error(format!("cannot read the folder: {error}"), None)
            .hint("check that you may read and list the folder")
    };
    DagFile {
        path: path.to_path_buf(),
        source: String::new(),
        parsed: Parsed {
            dag: None,
            diagnostics: vec![diagnostic],
        },
        shared_id: None,
    }
}

fn load_file(path: &Path, registry: &Registry) -> DagFile {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(source) => {
                let parsed = parse_dag_with(&source, &stem, registry);
                DagFile {
                    path: path.to_path_buf(),
                    source,
                    parsed,
                    shared_id: None,
                }
            }
            Err(e) => not_utf8(path, e.as_bytes(), e.utf8_error()),
        },
        Err(e) => DagFile {
            path: path.to_path_buf(),
            source: String::new(),
            parsed: Parsed {
                dag: None,
                diagnostics: vec![
                    Diagnostic::error(format!("cannot read the file: {e}"), None)
                        .hint("DAG files must be readable UTF-8 text"),
                ],
            },
            shared_id: None,
        },
    }
}

/// A DAG file that is not UTF-8 (see [`not_utf8_text`]).
fn not_utf8(path: &Path, bytes: &[u8], error: std::str::Utf8Error) -> DagFile {
    let (source, diagnostic) = not_utf8_text(
        bytes,
        error,
        "DAG files must be UTF-8: save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or move a file that is not a DAG out of the folder",
    );
    DagFile {
        path: path.to_path_buf(),
        source,
        parsed: Parsed {
            dag: None,
            diagnostics: vec![diagnostic],
        },
        shared_id: None,
    }
}

/// A file that is not UTF-8, pointing at its first byte that is not: a file saved in Latin-1
/// by an editor, or a binary dropped in the folder, is then found by line and column. Returns
/// the text to render it against, the file with each such byte shown as `U+FFFD` (the bytes
/// before the first are the file's own, so the line and column counted in them are the
/// file's), and the error, with `hint`.
#[must_use]
pub fn not_utf8_text(bytes: &[u8], error: std::str::Utf8Error, hint: &str) -> (String, Diagnostic) {
    let at = error.valid_up_to();
    let source = String::from_utf8_lossy(bytes).into_owned();
    let byte = bytes.get(at).copied().unwrap_or_default();
    let span = at..at + char::REPLACEMENT_CHARACTER.len_utf8();
    let diagnostic = Diagnostic::error(
        format!("the file is not UTF-8 text: byte 0x{byte:02X} is not part of a UTF-8 character"),
        Some(span),
    )
    .hint(hint);
    (source, diagnostic)
}

/// A DAG id that more than one file has. Blaming only the file that sorts later made the
/// original the culprit whenever its copy sorted first (`fraud copy.toml` before
/// `fraud_scoring.toml`), and made which of the two runs depend on a file's name. So each of
/// them is reported, pointing at its own `id` and naming where the others are, and none runs
/// until the ids are unique: neither file is more likely than the other to be the one meant.
fn reject_duplicate_ids(set: &mut DagSet) {
    let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, file) in set.files.iter().enumerate() {
        if let Some(dag) = &file.parsed.dag {
            by_id.entry(dag.id.clone()).or_default().push(i);
        }
    }
    let mut clashes: Vec<(String, Vec<usize>)> = by_id
        .into_iter()
        .filter(|(_, files)| files.len() > 1)
        .collect();
    clashes.sort_by_key(|(_, files)| files[0]);
    for (id, files) in clashes {
        let places: Vec<(Option<Range<usize>>, String)> = files
            .iter()
            .map(|&i| {
                let file = &set.files[i];
                let path = file.path.display();
                match id_span(&file.source) {
                    Some(span) => {
                        let (line, col) = line_col(&file.source, span.start);
                        (Some(span), format!("{path}:{line}:{col}"))
                    }
                    None => (None, format!("{path} (by its file name)")),
                }
            })
            .collect();
        // The file named after the id (`fraud_scoring.toml` for `fraud_scoring`) is where
        // the DAG lives: it keeps the id and runs, so a stray copy never stops the DAG it
        // copied. With no such file, vane cannot tell which one is meant: none runs.
        let named: Vec<usize> = files
            .iter()
            .copied()
            .filter(|&i| {
                set.files[i]
                    .path
                    .file_stem()
                    .is_some_and(|s| s == id.as_str())
            })
            .collect();
        let owner = match named[..] {
            [one] => Some(one),
            _ => None,
        };
        for (k, &i) in files.iter().enumerate() {
            let others = places
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .map(|(_, (_, at))| at.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let (span, _) = &places[k];
            let whose = if span.is_some() {
                ""
            } else {
                ", from the file name,"
            };
            let with = files
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| set.files[j].path.clone())
                .collect();
            let message = format!("DAG id `{id}`{whose} is also the id of {others}");
            let file = &mut set.files[i];
            if owner == Some(i) {
                file.parsed.diagnostics.push(
                    Diagnostic::warning(message, span.clone()).hint(
                        "this file is named after the id and keeps it: it runs, the others do not; give each of them an `id = \"...\"` of its own under [dag]",
                    ),
                );
                continue;
            }
            let hint = match owner {
                Some(o) => format!(
                    "this file does not run: {} is named after the id and keeps it; give this DAG an `id = \"...\"` of its own under [dag]",
                    set.files[o].path.display()
                ),
                None => "DAG ids must be unique, and no DAG with this id runs until it is: set a different `id = \"...\"` under [dag] (a DAG without one is named after its file)".to_owned(),
            };
            let file = &mut set.files[i];
            file.shared_id = Some(SharedId {
                id: id.clone(),
                with,
            });
            file.parsed.dag = None;
            file.parsed
                .diagnostics
                .push(Diagnostic::error(message, span.clone()).hint(hint));
        }
    }
}

/// Where `[dag] id` is written in a file that parsed; `None` when the id is the file's name.
fn id_span(source: &str) -> Option<Range<usize>> {
    value_span(source, &["dag", "id"])
}

/// Where the value of the key at `path` (`["tasks", "train", "pool"]`) is written in a file
/// that parses. The checked [`Dag`] keeps no positions, so a check that needs the DAG and
/// something outside the file (other files, the scheduler config) finds them again here.
fn value_span(source: &str, path: &[&str]) -> Option<Range<usize>> {
    let root = DeTable::parse(source).ok()?;
    let (last, tables) = path.split_last()?;
    let mut table = root.get_ref();
    for key in tables {
        let DeValue::Table(inner) = table.get(*key)?.get_ref() else {
            return None;
        };
        table = inner;
    }
    Some(table.get(*last)?.span())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that was not UTF-8 said so with no line or column: in a file of hundreds of
    /// lines, the one Latin-1 `è` was left to be found by hand.
    #[test]
    fn a_file_that_is_not_utf8_points_at_its_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin.toml");
        let mut bytes = b"[dag]\ndescription = \"caf\xC3\xA9 ".to_vec();
        bytes.extend_from_slice(b"cr\xE8me\"\n[tasks.a]\ncommand = \"true\"\n");
        std::fs::write(&path, &bytes).unwrap();
        let set = load_paths(std::slice::from_ref(&path), &Registry::default());
        let file = &set.files[0];
        assert!(file.parsed.dag.is_none());
        let diag = &file.parsed.diagnostics[0];
        assert_eq!(
            diag.message,
            "the file is not UTF-8 text: byte 0xE8 is not part of a UTF-8 character"
        );
        // `description = "café cr` is 22 characters: the bad byte is the 23rd.
        assert_eq!(diag.line_col(&file.source), Some((2, 23)));
        let shown = file
            .render_diagnostics()
            .replace(&path.display().to_string(), "latin.toml");
        assert!(shown.contains("--> latin.toml:2:23\n"), "{shown}");
        assert!(shown.contains("= hint: DAG files must be UTF-8"), "{shown}");
        assert!(shown.contains("cr\u{FFFD}me"), "{shown}");
    }

    /// A file with 1000 errors showed 200 and "... and 800 more", and counted 201: the
    /// summary of `vane validate` and `vane dags` said 201 errors.
    #[test]
    fn a_file_counts_the_problems_past_those_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.toml");
        let source: String = (0..1000)
            .map(|i| format!("[tasks.t{i}]\ncommand = \"true\"\ndepends_on = [\"x{i}\"]\n"))
            .collect();
        std::fs::write(&path, source).unwrap();
        let set = load_paths(std::slice::from_ref(&path), &Registry::default());
        let file = &set.files[0];
        assert_eq!(file.parsed.diagnostics.len(), 201, "the display cap stays");
        assert_eq!(
            file.parsed.diagnostics[200].message,
            "... and 800 more problems in this file"
        );
        assert_eq!(file.error_count(), 1000);
        assert_eq!(
            file.tally(),
            Tally {
                errors: 1000,
                warnings: 0
            }
        );
    }

    /// `vane validate nonexist.toml good/` printed only "nonexist.toml does not exist": no
    /// other path was checked and there was no summary.
    #[test]
    fn a_path_that_does_not_exist_is_a_problem_of_its_own_and_the_others_are_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "[tasks.a]\ncommand = \"true\"\n").unwrap();
        let missing = dir.path().join("nonexist.toml");
        let set = load_paths(&[missing.clone(), dir.path().into()], &Registry::default());
        assert_eq!(set.files.len(), 2);
        assert_eq!(set.files[0].path, missing);
        let diag = &set.files[0].parsed.diagnostics[0];
        assert_eq!(
            diag.message,
            format!("`{}` does not exist", missing.display())
        );
        assert!(diag.is_error() && diag.span.is_none());
        assert!(
            diag.hint
                .as_deref()
                .unwrap()
                .starts_with("check the spelling")
        );
        assert_eq!(set.dags().count(), 1, "the good file is still loaded");
        // The scheduler's DAG folder is all it loads: missing, that stops it.
        let error = load_dir(&missing, &Registry::default()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    /// `vane validate a.toml a.toml` said DAG id `a` "is already used by a.toml", and
    /// `vane validate good ./good` counted every file twice, each a duplicate of itself.
    #[test]
    fn a_file_named_twice_is_loaded_once_under_its_first_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        std::fs::write(&a, "[tasks.a]\ncommand = \"true\"\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "[tasks.b]\ncommand = \"true\"\n").unwrap();
        let dotted = dir.path().join(".").join("a.toml");
        let set = load_paths(
            &[a.clone(), dotted, dir.path().join("."), dir.path().into()],
            &Registry::default(),
        );
        let paths: Vec<&Path> = set.files.iter().map(|f| f.path.as_path()).collect();
        assert_eq!(paths, [a.as_path(), &dir.path().join("./b.toml")]);
        assert_eq!(set.diagnostics().count(), 0, "{set:?}");
    }

    /// Two files with one DAG id: only the one sorting later was blamed, with no line, so a
    /// copy named `fraud copy.toml` made the original `fraud_scoring.toml` the culprit.
    #[test]
    fn a_dag_id_in_two_files_is_reported_in_both_each_naming_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("fraud copy.toml");
        let original = dir.path().join("fraud_scoring.toml");
        std::fs::write(
            &copy,
            "[dag]\nid = \"fraud_scoring\"\n[tasks.a]\ncommand = \"true\"\n",
        )
        .unwrap();
        std::fs::write(&original, "[tasks.a]\ncommand = \"true\"\n").unwrap();
        std::fs::write(
            dir.path().join("other.toml"),
            "[tasks.a]\ncommand = \"true\"\n",
        )
        .unwrap();
        let set = load_dir(dir.path(), &Registry::default()).unwrap();
        let ids: Vec<&str> = set.dags().map(|(d, _)| d.id.as_str()).collect();
        assert_eq!(
            ids,
            ["fraud_scoring", "other"],
            "the file named after the id keeps running; the stray copy does not"
        );
        let [copy_file, original_file, _] = &set.files[..] else {
            panic!("{set:?}")
        };
        let copy_diag = &copy_file.parsed.diagnostics[0];
        assert_eq!(
            copy_diag.message,
            format!(
                "DAG id `fraud_scoring` is also the id of {} (by its file name)",
                original.display()
            )
        );
        assert_eq!(copy_diag.line_col(&copy_file.source), Some((2, 6)));
        let original_diag = &original_file.parsed.diagnostics[0];
        assert_eq!(
            original_diag.message,
            format!(
                "DAG id `fraud_scoring`, from the file name, is also the id of {}:2:6",
                copy.display()
            )
        );
        assert_eq!(original_diag.span, None);
        assert!(!original_diag.is_error(), "{original_diag:?}");
        assert!(copy_diag.is_error(), "{copy_diag:?}");
        assert!(
            copy_diag
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("is named after the id and keeps it")),
            "{copy_diag:?}"
        );
        assert!(original_file.shared_id.is_none());
        assert_eq!(
            copy_file.shared_id.as_ref().map(|s| &s.with[..]),
            Some(&[original.clone()][..])
        );
        assert_eq!(
            set.find("fraud_scoring").map(|f| &f.path),
            Some(&original),
            "the id finds the DAG that runs"
        );

        // Two copies, neither named after the id: vane cannot tell which is meant.
        std::fs::remove_file(&original).unwrap();
        std::fs::write(
            dir.path().join("fraud v2.toml"),
            "[dag]\nid = \"fraud_scoring\"\n[tasks.a]\ncommand = \"true\"\n",
        )
        .unwrap();
        let set = load_dir(dir.path(), &Registry::default()).unwrap();
        let ids: Vec<&str> = set.dags().map(|(d, _)| d.id.as_str()).collect();
        assert_eq!(ids, ["other"], "neither copy runs");
        assert_eq!(
            set.find("fraud_scoring").map(|f| &f.path),
            Some(&copy),
            "the id still finds a file that says why it does not run"
        );
    }

    /// A task whose pool the scheduler config did not define passed `vane validate`, and
    /// `vane run` then failed at once on it.
    #[test]
    fn a_pool_the_config_does_not_define_is_an_error_at_the_tasks_pool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.toml");
        std::fs::write(
            &path,
            "[tasks]\nc = { command = \"true\", pool = \"cpu\" }\n\n[tasks.a]\ncommand = \"true\"\npool = \"gpus\"\n\n[tasks.b]\ncommand = \"true\"\npool = \"cpu\"\n",
        )
        .unwrap();
        let set = load_paths(std::slice::from_ref(&path), &Registry::default());
        let file = &set.files[0];
        assert!(file.parsed.dag.is_some(), "{:?}", file.parsed.diagnostics);
        let pools: BTreeMap<String, usize> = [("gpu".to_owned(), 1), ("cpu".to_owned(), 2)].into();
        let found = file.undefined_pools(Some(&pools), "vane.toml");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].message,
            "task `a` uses pool `gpus`, which the scheduler config does not define"
        );
        assert_eq!(found[0].line_col(&file.source), Some((6, 8)));
        assert_eq!(
            found[0].hint.as_deref(),
            Some(
                "did you mean `gpu`? Or add `[pools] gpus = N` to vane.toml, N being how many of its tasks may run at once"
            )
        );
        let none = BTreeMap::new();
        let found = file.undefined_pools(Some(&none), "vane.toml");
        assert_eq!(found.len(), 3);
        // An inline table's `pool` is found too.
        assert_eq!(found[0].line_col(&file.source), Some((2, 32)));
        assert_eq!(
            found[0].hint.as_deref(),
            Some(
                "add `[pools] cpu = N` to vane.toml, N being how many of its tasks may run at once"
            )
        );
        // What the engine refuses to run, the same rule.
        let dag = file.parsed.dag.as_ref().unwrap();
        let refused: Vec<(&str, &str)> = dag
            .undefined_pools(&pools)
            .map(|(t, p)| (t.id.as_str(), p))
            .collect();
        assert_eq!(refused, [("a", "gpus")]);
    }
}
