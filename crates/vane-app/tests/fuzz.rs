//! Mutation fuzzing of what reads a person's text: the DAG loader (with every built-in kind,
//! so data checks and the gate expressions of staged rollouts too) and the scheduler config
//! loader. Each input is loaded and its diagnostics rendered, as `vane validate` does; a panic
//! is a bug, and the input that caused it is written to `target/fuzz-crashes/` and named in
//! the failure, to become a test of its own.
//!
//! In CI a short bounded run (`VANE_FUZZ_ITERATIONS`, default 2,000 per target); for a long
//! run on a release build, e.g. an hour's worth:
//!
//! ```sh
//! VANE_FUZZ_ITERATIONS=2000000 cargo test --release -p vane-app --test fuzz -- --nocapture
//! ```
//!
//! `VANE_FUZZ_SEED` replays a run (each run prints its seed). cargo-fuzz needs a nightly
//! compiler this project does not require; this is a plain test on stable Rust, seeded from
//! the repository's own DAGs and the configs the README shows.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

/// A xorshift generator: reproducible from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces that reach the loaders' corners: TOML syntax, template and gate operators, escapes,
/// characters wider than a byte (a combining accent once panicked the renderer), numbers at
/// the edges.
const PIECES: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "=",
    "\n",
    ".",
    ",",
    "#",
    "\\",
    "\\u0301",
    "\u{301}",
    "é",
    "🚀",
    "{{",
    "}}",
    "{{ ds }}",
    "{{ params.x }}",
    "| add_days(",
    ")",
    " >= ",
    " < ",
    " && ",
    " || ",
    "production.",
    "accuracy",
    "-",
    "0",
    "1e308",
    "-9223372036854775808",
    "99999999999999999999",
    "nan",
    "inf",
    "true",
    "[[",
    "]]",
    "depends_on = [",
    "kind = \"",
    "timeout = \"",
    "0s",
    "52w",
    "2026-13-40",
    "*",
    "/",
    "\t",
    "\r",
    " ",
];

fn mutate(rng: &mut Rng, seeds: &[String], input: &str) -> String {
    let mut bytes = input.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(8) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
            1 | 2 => {
                let piece = PIECES[rng.below(PIECES.len())];
                bytes.splice(at..at, piece.bytes());
            }
            3 if !bytes.is_empty() => {
                let end = (at + 1 + rng.below(40)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            4 if !bytes.is_empty() => {
                let start = rng.below(bytes.len());
                let end = (start + 1 + rng.below(80)).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                bytes.splice(at..at, copy);
            }
            5 => {
                // A slice of another seed: keys of one DAG in the middle of another.
                let other = seeds[rng.below(seeds.len())].as_bytes();
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(200)).min(other.len());
                bytes.splice(at..at, other[start..end].iter().copied());
            }
            6 if rng.below(20) == 0 => {
                // Very long lines and deep nesting, rarely: columns past 65,535 once panicked.
                let long = if rng.below(2) == 0 {
                    " ".repeat(70_000)
                } else {
                    "[a".repeat(300)
                };
                bytes.splice(at..at, long.bytes());
            }
            _ => bytes.truncate(at),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn seed() -> u64 {
    let seed = std::env::var("VANE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("fuzz seed: VANE_FUZZ_SEED={seed}");
    seed | 1
}

fn iterations() -> usize {
    std::env::var("VANE_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000)
}

/// Feeds `iterations()` mutants of `seeds` to `load`; panics naming the file it saved for the
/// first input that made `load` panic.
fn fuzz(target: &str, seeds: &[String], load: impl Fn(&str)) {
    assert!(!seeds.is_empty(), "{target} has seeds");
    // The loader's own panics are caught and reported below; the default hook would print
    // each one's backtrace in the middle of the run.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed());
    let mut crash = None;
    for _ in 0..iterations() {
        let base = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seeds, base);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| load(&input))) {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            crash = Some((input, what));
            break;
        }
    }
    std::panic::set_hook(hook);
    if let Some((input, what)) = crash {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-crashes");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!(
            "{target}-{:016x}.toml",
            Rng(input.len() as u64 | 1).next()
        ));
        std::fs::write(&file, &input).unwrap();
        panic!(
            "{target} panicked ({what}) on the input saved in {}",
            file.display()
        );
    }
}

fn repository_dags() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dags");
    let mut seeds: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    seeds.sort();
    seeds
}

/// What `vane validate` does with a file: load it, render every diagnostic with its place.
fn validate(source: &str) {
    let parsed = vane_dag::parse_dag_with(source, "fuzzed", &vane_app::registry());
    let _ = parsed.render("dags/fuzzed.toml", source);
    for d in &parsed.diagnostics {
        let _ = d.line_col(source);
    }
}

#[test]
fn the_dag_loader_survives_mutants_of_the_example_dags() {
    fuzz("dag", &repository_dags(), validate);
}

/// The gate expressions of a deploy task, mutated where they are written.
#[test]
fn gate_expressions_survive_mutation() {
    let dag = |gate: &str| {
        format!(
            "[tasks.train]\ncommand = \"true\"\n\n[tasks.ship]\nkind = \"deploy\"\ndepends_on = [\"train\"]\nmodel = \"m\"\ncandidate = \"model.bin\"\nevaluate = \"true\"\neval_data = \"eval.csv\"\n\n[tasks.ship.stages.canary]\ncommand = \"true\"\ngate = [{gate}]\n\n[tasks.ship.stages.production]\ncommand = \"true\"\n"
        )
    };
    let seeds: Vec<String> = [
        "\"accuracy >= 0.9\"",
        "\"accuracy >= production.accuracy - 0.02\", \"latency_p99 < 250\"",
        "\"f1 > 0.8\", \"auc >= production.auc\"",
    ]
    .iter()
    .map(|g| dag(g))
    .collect();
    for source in &seeds {
        let parsed = vane_dag::parse_dag_with(source, "seed", &vane_app::registry());
        assert!(
            parsed.dag.is_some(),
            "{}",
            parsed.render("seed.toml", source)
        );
    }
    fuzz("gate", &seeds, validate);
}

/// What the config loader does with a file: load it, render every diagnostic.
fn load_config(source: &str) {
    if let Err(diagnostics) = vane_dag::parse_config(source, &vane_app::registry()) {
        for d in &diagnostics {
            let _ = d.render("vane.toml", source);
        }
    }
}

/// Every input the fuzzer once crashed on (`tests/fuzz-found/`, named by target as in
/// `target/fuzz-crashes/`) stays handled.
#[test]
fn inputs_the_fuzzer_crashed_on_are_handled() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-found");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("config-") {
            load_config(&source);
        } else {
            validate(&source);
        }
        seen += 1;
    }
    assert!(seen >= 3, "the found inputs are in {}", dir.display());
}

#[test]
fn the_config_loader_survives_mutation() {
    let seeds: Vec<String> = [
        "[scheduler]\nmax_active_tasks = 16\nstorage = \"s3://ml-vane/prod?endpoint=https://minio.example:9000&region=eu-west-1\"\n\n[pools]\ngpu = 1\n",
        "[alerts]\nretry_backoff = \"30s\"\n\n[[alerts.rules]]\non = \"task_failed\"\ndag = \"churn_retrain\"\nseverity = \"critical\"\nchannels = [\"pager\", \"log\"]\ncooldown = \"1h\"\nmax_per_hour = 10\n\n[alerts.channels.pager]\nkind = \"webhook\"\nurl = \"https://hooks.example.com/vane\"\ntimeout = \"10s\"\nretries = 2\nformat = \"slack\"\nmin_severity = \"warning\"\n\n[alerts.oncall]\npeople = [\"alice\", \"bob\"]\nstart = \"2026-01-05\"\nevery = \"1w\"\n",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for source in &seeds {
        if let Err(diagnostics) = vane_dag::parse_config(source, &vane_app::registry()) {
            panic!("a seed config does not load: {diagnostics:?}");
        }
    }
    fuzz("config", &seeds, load_config);
}

/// The seeds load without errors, so mutants start from files that reach every check.
#[test]
fn the_seeds_are_valid() {
    for source in repository_dags() {
        let parsed = vane_dag::parse_dag_with(&source, "seed", &vane_app::registry());
        assert!(
            parsed.dag.is_some(),
            "{}",
            parsed.render("seed.toml", &source)
        );
    }
}
