//! Every diagnostic `vane validate` can print, as a person sees it.

fn render(source: &str) -> String {
    vane_dag::parse_dag(source, "example").render("dags/example.toml", source)
}

#[test]
fn toml_syntax_error() {
    insta::assert_snapshot!(render(
        "[dag]\ndescription = \"unterminated\n\n[tasks.a]\ncommand = \"true\"\n"
    ));
}

#[test]
fn unknown_keys_suggest_the_right_one() {
    insta::assert_snapshot!(render(
        r#"[dag]
schedul = "0 2 * * *"

[defaults]
retires = 2

[tasks.train]
comand = "python3 train.py"

[task.typo]
command = "true"
"#
    ));
}

#[test]
fn wrong_types() {
    insta::assert_snapshot!(render(
        r#"[dag]
max_active_tasks = "4"
tags = "ml"

[tasks.a]
command = ["echo", "hi"]
retries = true
timeout = 30
depends_on = "b"
env = { SEED = 7 }

[tasks.b]
command = "true"
"#
    ));
}

#[test]
fn duplicate_task_ids() {
    insta::assert_snapshot!(render(
        "[tasks.a]\ncommand = \"true\"\n\n[tasks.a]\ncommand = \"false\"\n"
    ));
}

#[test]
fn missing_dependency_suggests_a_task() {
    insta::assert_snapshot!(render(
        r#"[tasks.ingest]
command = "true"
[tasks.train]
command = "true"
depends_on = ["ingset", "evaluate_model"]
"#
    ));
}

#[test]
fn cycles_name_every_task_on_them() {
    insta::assert_snapshot!(render(
        r#"[tasks.a]
command = "true"
depends_on = ["c"]
[tasks.b]
command = "true"
depends_on = ["a"]
[tasks.c]
command = "true"
depends_on = ["b"]
[tasks.lonely]
command = "true"
depends_on = ["lonely"]
"#
    ));
}

/// A task depending on itself was told that "each task in the chain depends on the next",
/// with no chain in sight.
#[test]
fn a_task_depending_on_itself_is_told_to_remove_its_own_name() {
    let parsed = vane_dag::parse_dag(
        "[tasks.a]\ncommand = \"true\"\ndepends_on = [\"a\"]\n",
        "example",
    );
    let found: Vec<_> = parsed
        .diagnostics
        .iter()
        .map(|d| (d.message.as_str(), d.hint.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        found,
        [(
            "task `a` depends on itself",
            "a task cannot wait for itself to finish; remove \"a\" from its `depends_on`"
        )]
    );
}

/// A cycle through 100,000 tasks was one error naming all of them, 1.2 MB on one line. A
/// cycle of up to ten tasks is named whole; a longer one, its first ten and how many more.
#[test]
fn a_long_cycle_names_its_first_tasks_and_counts_the_rest() {
    let cycle = |prefix: &str, n: usize| {
        (0..n)
            .map(|i| {
                format!(
                    "[tasks.{prefix}{i}]\ncommand = \"true\"\ndepends_on = [\"{prefix}{}\"]\n",
                    (i + 1) % n
                )
            })
            .collect::<String>()
    };
    let source = cycle("short", 10) + &cycle("long", 1_234);
    let out = render(&source);
    assert!(
        out.contains("`short9` -> `short0`\n"),
        "ten tasks are named whole: {out}"
    );
    insta::assert_snapshot!(out);
}

#[test]
fn cron_and_time_zone() {
    insta::assert_snapshot!(render(
        r#"[dag]
schedule = "0 25 * * *"
timezone = "Europe/Pari"
[tasks.a]
command = "true"
"#
    ));
}

#[test]
fn durations_and_absurd_numbers() {
    insta::assert_snapshot!(render(
        r#"[dag]
max_active_tasks = 0
[defaults]
retries = -1
retry_delay = "30 seconds"
[tasks.a]
command = "true"
retries = 1000
timeout = "400d"
retry_backoff = "exponentail"
"#
    ));
}

#[test]
fn unknown_template_variables_and_raw_substitution() {
    insta::assert_snapshot!(render(
        r#"[params]
min_accuracy = 0.8
model = "small"
[tasks.a]
command = "train --date {{ dss }} --min {{ params.min_acc }} --run {{ run_id }}"
[tasks.b]
command = "echo {{ params.model | raw }}"
env = { OUT = "{{ logical_dat }}" }
"#
    ));
}

#[test]
fn no_tasks_and_bad_params() {
    insta::assert_snapshot!(render(
        r#"[dag]
description = "empty"
[params]
list = [1, 2]
"bad name" = 1
"#
    ));
}

#[test]
fn a_valid_file_has_no_diagnostics() {
    let source = r#"
[dag]
id = "churn_retrain"
description = "Daily retraining of the churn model"
schedule = "0 2 * * *"
timezone = "America/New_York"
max_active_tasks = 4

[defaults]
retries = 2
retry_delay = "30s"
timeout = "1h"
env = { SEED = "7" }

[params]
min_accuracy = 0.8

[tasks.ingest]
command = "python3 ingest.py --out $VANE_WORK/raw/{{ ds }}.csv"
[tasks.train]
command = "python3 train.py --min {{ params.min_accuracy }}"
depends_on = ["ingest"]
env = { SEED = "8", DATE = "{{ ds }}" }
retry_backoff = "exponential"
"#;
    let parsed = vane_dag::parse_dag(source, "ignored");
    assert_eq!(parsed.diagnostics, vec![]);
    let dag = parsed.dag.unwrap();
    assert_eq!(dag.id, "churn_retrain");
    assert_eq!(dag.timezone, chrono_tz::America::New_York);
    let train = &dag.tasks[1];
    assert_eq!(train.retry.retries, 2);
    assert_eq!(train.retry.backoff, vane_dag::Backoff::Exponential);
    assert_eq!(train.timeout, Some(std::time::Duration::from_secs(3600)));
    let env: Vec<_> = train
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.source()))
        .collect();
    assert_eq!(env, vec![("SEED", "8"), ("DATE", "{{ ds }}")]);
}

#[test]
fn trigger_rules() {
    insta::assert_snapshot!(render(
        r#"[tasks.train]
command = "true"
trigger_rule = "all_done"
[tasks.fallback]
command = "true"
depends_on = ["train"]
trigger_rule = "one_fail"
"#
    ));
}

#[test]
fn scheduler_keys() {
    insta::assert_snapshot!(render(
        r#"[dag]
schedule = "@daily"
start_date = "2026-13-01"
end_date = 2026-01-01
catchup = "everything"
catchup_window = "3 days"
overlap = "cancel"
max_active_runs = 0
paused = "yes"
[tasks.a]
command = "true"
"#
    ));
}

#[test]
fn scheduler_keys_are_read() {
    let dag = vane_dag::parse_dag(
        r#"[dag]
schedule = "30 2 * * *"
timezone = "America/New_York"
start_date = 2026-03-08T02:30:00
end_date = "2026-12-31T00:00:00Z"
catchup = true
catchup_window = "3d"
overlap = "queue"
max_active_runs = 2
paused = true
[tasks.a]
command = "true"
"#,
        "t",
    )
    .dag
    .unwrap();
    let c = &dag.cadence;
    // 02:30 does not exist in New York that day: the first valid time after the gap.
    assert_eq!(
        c.start_date.unwrap().to_rfc3339(),
        "2026-03-08T07:00:00+00:00"
    );
    assert_eq!(
        c.end_date.unwrap().to_rfc3339(),
        "2026-12-31T00:00:00+00:00"
    );
    assert_eq!(c.catchup, vane_dag::Catchup::All);
    assert_eq!(
        c.catchup_window,
        Some(std::time::Duration::from_secs(3 * 86_400))
    );
    assert_eq!(c.overlap, vane_dag::Overlap::Queue);
    assert_eq!(c.max_active_runs, 2);
    assert!(c.paused);
}

#[test]
fn an_input_named_by_two_upstream_outputs_is_ambiguous() {
    insta::assert_snapshot!(render(
        r#"[tasks.a]
command = "true"
outputs = { x = "a.csv" }

[tasks.b]
command = "true"
outputs = { x = "b.csv" }

[tasks.c]
command = "true"
depends_on = ["a", "b"]
inputs = ["x"]

[tasks.d]
command = "true"
depends_on = ["b"]
inputs = ["x"]
"#
    ));
}

#[test]
fn runs_on_is_read_and_inherited_from_defaults() {
    let source = r#"
[defaults]
runs_on = { zone = "eu" }

[tasks.train]
command = "true"
runs_on = { gpu = "a100", "cuda.version" = "12.4", zone = "eu-west_1" }

[tasks.anywhere]
command = "true"
runs_on = {}

[tasks.inherits]
kind = "sensor"
command = "true"

[tasks.table_form]
command = "true"
[tasks.table_form.runs_on]
gpu = "h100"
"#;
    let parsed = vane_dag::parse_dag(source, "t");
    assert_eq!(parsed.diagnostics, vec![]);
    let dag = parsed.dag.unwrap();
    let runs_on = |id: &str| {
        dag.tasks[dag.task_index(id).unwrap()]
            .runs_on
            .as_ref()
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
    };
    // A task's own `runs_on` replaces the default's; it is not merged with it.
    assert_eq!(
        runs_on("train").as_deref(),
        Some("cuda.version=12.4,gpu=a100,zone=eu-west_1")
    );
    assert_eq!(
        runs_on("anywhere").as_deref(),
        Some(""),
        "`{{}}` is any agent"
    );
    assert_eq!(runs_on("inherits").as_deref(), Some("zone=eu"));
    assert_eq!(runs_on("table_form").as_deref(), Some("gpu=h100"));

    let plain = vane_dag::parse_dag("[tasks.a]\ncommand = \"true\"\n", "t");
    assert_eq!(plain.dag.unwrap().tasks[0].runs_on, None);
}

#[test]
fn runs_on_mistakes() {
    insta::assert_snapshot!(render(
        r#"[defaults]
runs_on = "gpu=a100,zone=eu"

[tasks.a]
command = "true"
runs_on = { "gpu type" = "a100", zone = "eu,us", pool = "" }

[tasks.b]
command = "true"
runs_on = ["gpu"]

[tasks.c]
command = "true"
runs_on = { gpus = 2, cuda.version = "12", mode = "k=v" }
"#
    ));
}

#[test]
fn runs_on_has_at_most_16_labels() {
    let labels: Vec<String> = (0..17).map(|i| format!("l{i} = \"x\"")).collect();
    let source = format!(
        "[tasks.a]\ncommand = \"true\"\nruns_on = {{ {} }}\n",
        labels.join(", ")
    );
    let parsed = vane_dag::parse_dag(&source, "t");
    assert!(parsed.dag.is_none());
    let messages: Vec<&str> = parsed
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        messages,
        vec!["`runs_on` of [tasks.a] has 17 labels, more than 16"]
    );
    let sixteen = source.replace(", l16 = \"x\"", "");
    let dag = vane_dag::parse_dag(&sixteen, "t")
        .dag
        .expect("16 labels are fine");
    assert_eq!(dag.tasks[0].runs_on.as_ref().map(|l| l.len()), Some(16));
}

#[test]
fn scheduler_agents() {
    let registry = vane_dag::Registry::none();
    let default = vane_dag::parse_config("[scheduler]\nmax_active_tasks = 4\n", &registry).unwrap();
    assert!(!default.agents_all, "`local` is the default");
    let local = vane_dag::parse_config("[scheduler]\nagents = \"local\"\n", &registry).unwrap();
    assert!(!local.agents_all);
    let all = vane_dag::parse_config("[scheduler]\nagents = \"all\"\n", &registry).unwrap();
    assert!(all.agents_all);

    let source = "[scheduler]\nagents = \"some\"\n";
    let errors = vane_dag::parse_config(source, &registry).unwrap_err();
    let rendered: Vec<String> = errors
        .iter()
        .map(|d| d.render("vane.toml", source))
        .collect();
    insta::assert_snapshot!(rendered.join("\n"));
}

/// Mistakes a new user makes: a swapped pair of letters in a dependency, a cron number out of
/// its field's range, a zero timeout. Each is named with its fix.
#[test]
fn swapped_letters_cron_ranges_and_zero_durations() {
    let out = render(
        r#"[dag]
schedule = "0 25 * * *"

[tasks.train]
command = "true"
[tasks.deploy]
command = "true"
depends_on = ["trian"]
timeout = "0s"
[tasks.wait]
kind = "sensor"
command = "true"
poke_interval = "0s"
"#,
    );
    for expected in [
        "the hour 25 is out of range (0-23)",
        "did you mean `train`?",
        "`timeout = \"0s\"` is zero",
        "`poke_interval = \"0s\"` is zero",
    ] {
        assert!(out.contains(expected), "{expected}\n{out}");
    }
    let minutes = render("[dag]\nschedule = \"*/5,61 * * * *\"\n[tasks.a]\ncommand = \"true\"\n");
    assert!(
        minutes.contains("the minute 61 is out of range (0-59)"),
        "{minutes}"
    );
    let fine = render(
        "[dag]\nschedule = \"*/15 2-4 1,15 */2 1-5\"\n[tasks.a]\ncommand = \"true\"\ntimeout = \"1h\"\n",
    );
    assert!(!fine.contains("error"), "{fine}");
}

/// The carets were padded with `{:pad$}`, which panics ("Formatting argument out of range")
/// past column 65,535; and the whole line was printed, however long.
#[test]
fn a_problem_past_column_65536_is_shown_in_a_window_of_its_line() {
    let source = format!("{}bogus = 1\n", " ".repeat(65_536));
    let parsed = vane_dag::parse_dag(&source, "example");
    let bogus = parsed
        .diagnostics
        .iter()
        .find(|d| d.message.contains("bogus"))
        .expect("the unknown key is reported");
    assert_eq!(bogus.line_col(&source), Some((1, 65_537)));
    let out = render(&source);
    assert!(out.contains("dags/example.toml:1:65537"), "{out}");
    assert!(out.len() < 1_000, "the line is cut to a window: {out}");
    insta::assert_snapshot!(out);
}

/// A span starting or ending inside a character (here the two bytes of a stray combining
/// accent, U+0301, in a gate string) panicked with "end byte index … is not a char
/// boundary". The loader's own parsers count in whole characters; a kind's parser in
/// another crate may not, and `Diagnostic` is public.
#[test]
fn a_span_inside_a_multibyte_character_is_widened_to_whole_characters() {
    let source = "[tasks.rollout]\ncommand = \"true\"\ngate = [\"accuracy >= 0.9\u{301}\"]\n";
    let accent = source.find('\u{301}').expect("the accent");
    for span in [
        accent + 1..accent + 2,
        accent + 1..accent + 1,
        accent..accent + 1,
        accent - 1..accent + 1,
    ] {
        let d = vane_dag::Diagnostic::error("unexpected accent", Some(span.clone()));
        let (line, col) = d.line_col(source).expect("a place");
        assert_eq!(line, 3, "{span:?}");
        let out = d.render("dags/example.toml", source);
        assert!(
            out.contains(&format!("dags/example.toml:3:{col}")),
            "{span:?}: {out}"
        );
    }
    insta::assert_snapshot!(
        vane_dag::Diagnostic::error("unexpected accent", Some(accent + 1..accent + 2))
            .render("dags/example.toml", source)
    );
}

/// "the DAG has no tasks" had no line or column: an editor jumping to problems had nowhere
/// to go. It points at the [dag] table, or the top of a file without one.
#[test]
fn no_tasks_points_at_the_dag_table_or_the_first_line() {
    let renders: Vec<String> = [
        "# retrain nightly\n\n[dag]\ndescription = \"empty\"\n",
        "# nothing yet\n",
        "",
    ]
    .into_iter()
    .map(render)
    .collect();
    insta::assert_snapshot!(renders.join("\n"));
}

/// A template written with escapes was pointed at as a whole string: the unknown variable of a
/// long command was left to be found by eye.
#[test]
fn template_errors_inside_escaped_strings_point_at_the_variable() {
    insta::assert_snapshot!(render(
        r#"[tasks.a]
command = "echo \"caf\u00e9\" {{ dss }}"
[tasks.b]
command = """
python3 train.py \
    --day {{ ds }} --seed {{ sed }}"""
"#
    ));
}

/// A schedule on a day that does not exist (February 30th) validated, and the scheduler never
/// ran the DAG, with no word why; `vane next` printed nothing.
#[test]
fn schedules_that_never_fire() {
    let renders: Vec<String> = [
        "0 0 30 2 *",
        "15 4 31 apr *",
        "0 0 30,31 2 *",
        "0 0 0 1 1 * 2020",
    ]
    .into_iter()
    .map(|cron| {
        render(&format!(
            "[dag]\nschedule = \"{cron}\"\n[tasks.a]\ncommand = \"true\"\n"
        ))
    })
    .collect();
    insta::assert_snapshot!(renders.join("\n"));
}

/// Days that exist only some years, or only as a weekday's, are not mistaken for none.
#[test]
fn rare_schedules_still_fire() {
    for cron in [
        "0 0 29 2 *",
        "0 0 30 2 MON",
        "0 0 * 2 FRI#5",
        "0 0 L 2 *",
        "0 0 0 29 2 * 2030-2040",
        "30 0 0 29 2 *",
        "@yearly",
    ] {
        let source = format!("[dag]\nschedule = \"{cron}\"\n[tasks.a]\ncommand = \"true\"\n");
        let parsed = vane_dag::parse_dag(&source, "example");
        assert!(parsed.diagnostics.is_empty(), "{cron}: {}", render(&source));
    }
}

/// A header dotted hundreds of levels deep was reported as a bare `recursion limit`, with no
/// line; it now points at the deepest line.
#[test]
fn a_file_nested_too_deeply_points_at_its_deepest_line() {
    let deep = format!(
        "[tasks.a]\ncommand = \"true\"\n\n[{}]\nx = 1\n",
        vec!["b"; 300].join(".")
    );
    let shown = render(&deep);
    assert!(shown.contains("nested too deeply"), "{shown}");
    assert!(shown.contains("--> dags/example.toml:4:1"), "{shown}");
    assert!(!shown.contains("error: recursion limit"), "{shown}");
}

#[test]
fn one_mistake_is_one_error_not_its_knock_on_effects() {
    // A misspelt table or key, or a parameter refused for its name or type: the error says
    // so, and what could not be read because of it is not reported again.
    insta::assert_snapshot!(render(
        r#"[params]
min-acc = 0.8
layers = [64, 32]

[task.a]
command = "true"
"#
    ));
    insta::assert_snapshot!(render(
        r#"[params]
min-acc = 0.8
layers = [64, 32]

[tasks.train]
comand = "echo {{ params.min-acc }} {{ params.layers }}"

[tasks.eval]
command = "echo {{ params.layers }}"
"#
    ));
}

#[test]
fn hints_name_what_was_meant() {
    insta::assert_snapshot!(render(
        r#"[dag]
schedule = "@daily"
timezone = "PST"

[params]
lr = 1e999
ceiling = inf

[tasks.a]
command = "echo {{DS}}"
depends_on = ["other_dag.b"]
trigger_rule = "ALL_SUCCESS"
"#
    ));
    // `[defaults]` takes some task keys only: it is named for those.
    insta::assert_snapshot!(render(
        "command = \"true\"\nretries = 2\n\n[tasks.a]\ncommand = \"true\"\n"
    ));
    insta::assert_snapshot!(render(
        "[dag]\nschedule = \"@daily\"\ntimezone = \"EST\"\n\n[tasks.only]\ncommand = \"true\"\ndepends_on = [\"gone\"]\n"
    ));
}

#[test]
fn cron_duration_and_command_mistakes_say_what_was_written() {
    insta::assert_snapshot!(render(
        "[dag]\nschedule = \"every day at 2am\"\n\n[tasks.a]\ncommand = \"true\"\nretry_delay = \"1.5h\"\n"
    ));
    insta::assert_snapshot!(render(
        "[dag]\nschedule = \"@every 1h\"\n\n[tasks.a]\ncommand = \"  \"\n"
    ));
}

/// A template with an error still has its `| raw` use warned about: every problem at once.
#[test]
fn a_raw_use_is_warned_about_beside_an_error_in_the_same_template() {
    insta::assert_snapshot!(render(
        "[params]\nlr = \"0.1\"\n\n[tasks.a]\ncommand = \"echo {{ params.lr | raw }} {{ dss }}\"\n"
    ));
}

/// Airflow's `{% if %}` pasted into a command: a warning, as the shell would get it verbatim.
#[test]
fn a_jinja_statement_in_a_command_is_a_warning() {
    insta::assert_snapshot!(render(
        "[tasks.a]\ncommand = \"{% if params.full %}python3 full.py{% endif %}; printf '{%s}' x\"\n"
    ));
}
