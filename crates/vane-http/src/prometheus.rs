//! The Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

use vane_store::{Histogram, Observation};

/// Upper bounds (seconds) of `vane_task_duration_seconds`: ML tasks run from seconds (a
/// check) to hours (training), so the buckets grow about 3x from 1 s to 6 h.
pub const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

/// Upper bounds (seconds) of `vane_run_start_lag_seconds`: a healthy scheduler starts a run
/// within its half-second poll; minutes mean it was busy or down, hours that it caught up.
pub const LAG_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0];

/// Upper bounds (seconds) of `vane_scheduler_pass_seconds`. A scheduler counts its passes into
/// them as it goes (a pass is not recorded on its own), so they are the store's.
pub use vane_store::PASS_BUCKETS;

/// The metrics page for one scrape.
#[must_use]
pub fn render(o: &Observation) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "vane_runs_total",
        "counter",
        "Runs that ended, by DAG and final state (success or failed).",
    );
    for (dag, state, n) in &o.runs {
        sample(
            &mut out,
            "vane_runs_total",
            &[("dag", dag), ("state", state)],
            *n as f64,
        );
    }
    family(
        &mut out,
        "vane_task_attempts_total",
        "counter",
        "Task attempts that ended, by DAG and final state (success or failed).",
    );
    for (dag, state, n) in &o.attempts {
        let labels = [("dag", dag.as_str()), ("state", state.as_str())];
        sample(&mut out, "vane_task_attempts_total", &labels, *n as f64);
    }
    histograms(
        &mut out,
        "vane_task_duration_seconds",
        "Seconds task attempts ran, from start to end, by DAG.",
        &o.task_durations,
        DURATION_BUCKETS,
    );
    family(
        &mut out,
        "vane_queued_runs",
        "gauge",
        "Runs waiting to start.",
    );
    sample(&mut out, "vane_queued_runs", &[], o.queued_runs as f64);
    family(
        &mut out,
        "vane_running_tasks",
        "gauge",
        "Task attempts running now.",
    );
    sample(&mut out, "vane_running_tasks", &[], o.running_tasks as f64);
    histograms(
        &mut out,
        "vane_run_start_lag_seconds",
        "Seconds scheduled runs started after their logical date, by DAG.",
        &o.start_lag,
        LAG_BUCKETS,
    );
    family(
        &mut out,
        "vane_sla_misses_total",
        "counter",
        "Runs and tasks not finished by their SLA deadline, by DAG.",
    );
    for (dag, n) in &o.sla_misses {
        sample(
            &mut out,
            "vane_sla_misses_total",
            &[("dag", dag)],
            *n as f64,
        );
    }
    family(
        &mut out,
        "vane_check_failures_total",
        "counter",
        "Data checks that failed, by DAG and the check's severity (error or warn).",
    );
    for (dag, severity, n) in &o.check_failures {
        let labels = [("dag", dag.as_str()), ("severity", severity.as_str())];
        sample(&mut out, "vane_check_failures_total", &labels, *n as f64);
    }
    family(
        &mut out,
        "vane_alerts_fired_total",
        "counter",
        "Alert occurrences by rule, counting each repeat a deduplicated alert absorbed.",
    );
    for (rule, n) in &o.alerts_fired {
        sample(
            &mut out,
            "vane_alerts_fired_total",
            &[("rule", rule)],
            *n as f64,
        );
    }
    let schedulers = &o.schedulers;
    family(
        &mut out,
        "vane_scheduler_pass_seconds",
        "histogram",
        "Seconds scheduler passes took, summed over schedulers not stopped.",
    );
    let pass = &schedulers.pass_seconds;
    let bucket = "vane_scheduler_pass_seconds_bucket";
    for (i, bound) in PASS_BUCKETS.iter().enumerate() {
        let count = pass.counts.get(i).copied().unwrap_or(0);
        sample(
            &mut out,
            bucket,
            &[("le", &bound.to_string())],
            count as f64,
        );
    }
    sample(&mut out, bucket, &[("le", "+Inf")], pass.count as f64);
    sample(&mut out, "vane_scheduler_pass_seconds_sum", &[], pass.sum);
    let count = pass.count as f64;
    sample(&mut out, "vane_scheduler_pass_seconds_count", &[], count);
    family(
        &mut out,
        "vane_scheduler_heartbeat_timestamp_seconds",
        "gauge",
        "Unix time of each scheduler's latest heartbeat, for schedulers not stopped.",
    );
    for (scheduler, at) in &schedulers.heartbeats {
        sample(
            &mut out,
            "vane_scheduler_heartbeat_timestamp_seconds",
            &[("scheduler", scheduler)],
            *at,
        );
    }
    let help = format!(
        "Schedulers not stopped whose heartbeat is at most {} s old.",
        vane_store::STALE_AFTER.as_secs()
    );
    family(&mut out, "vane_schedulers_up", "gauge", &help);
    sample(&mut out, "vane_schedulers_up", &[], schedulers.up as f64);
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"{}\"", escape(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn histograms(out: &mut String, name: &str, help: &str, all: &[Histogram], bounds: &[f64]) {
    family(out, name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for h in all {
        for (bound, count) in bounds.iter().zip(&h.counts) {
            let le = bound.to_string();
            sample(
                out,
                &bucket,
                &[("dag", &h.dag_id), ("le", &le)],
                *count as f64,
            );
        }
        sample(
            out,
            &bucket,
            &[("dag", &h.dag_id), ("le", "+Inf")],
            h.count as f64,
        );
        sample(out, &format!("{name}_sum"), &[("dag", &h.dag_id)], h.sum);
        sample(
            out,
            &format!("{name}_count"),
            &[("dag", &h.dag_id)],
            h.count as f64,
        );
    }
}

/// Label values escape backslash, double quote and line feed, as the format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let o = Observation {
            task_durations: vec![Histogram {
                dag_id: "etl \"nightly\"".into(),
                counts: vec![1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3],
                count: 3,
                sum: 12.5,
            }],
            ..Observation::default()
        };
        let text = render(&o);
        assert!(text.contains(
            "vane_task_duration_seconds_bucket{dag=\"etl \\\"nightly\\\"\",le=\"1\"} 1\n"
        ));
        assert!(text.contains(
            "vane_task_duration_seconds_bucket{dag=\"etl \\\"nightly\\\"\",le=\"+Inf\"} 3\n"
        ));
        assert!(
            text.contains("vane_task_duration_seconds_sum{dag=\"etl \\\"nightly\\\"\"} 12.5\n")
        );
        assert!(text.contains("# TYPE vane_task_duration_seconds histogram\n"));
        assert!(text.contains("vane_queued_runs 0\n"));
    }

    #[test]
    fn scheduler_passes_are_one_histogram_beside_heartbeats_and_the_up_count() {
        let o = Observation {
            schedulers: Box::new(vane_store::SchedulerSummary {
                pass_seconds: Histogram {
                    dag_id: String::new(),
                    counts: vec![2, 3, 3, 3, 3, 3, 3, 3],
                    count: 3,
                    sum: 0.0045,
                },
                heartbeats: vec![("box:42:20260102T030405Z".into(), 1_767_323_045.5)],
                up: 1,
            }),
            ..Observation::default()
        };
        let text = render(&o);
        assert!(text.contains("# TYPE vane_scheduler_pass_seconds histogram\n"));
        assert!(text.contains("vane_scheduler_pass_seconds_bucket{le=\"0.001\"} 2\n"));
        assert!(text.contains("vane_scheduler_pass_seconds_bucket{le=\"5\"} 3\n"));
        assert!(text.contains("vane_scheduler_pass_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("vane_scheduler_pass_seconds_count 3\n"));
        assert!(text.contains(
            "vane_scheduler_heartbeat_timestamp_seconds{scheduler=\"box:42:20260102T030405Z\"} 1767323045.5\n"
        ));
        assert!(text.contains("vane_schedulers_up 1\n"));
        // With no scheduler yet, the histogram is there, empty.
        let empty = render(&Observation::default());
        assert!(empty.contains("vane_scheduler_pass_seconds_bucket{le=\"0.1\"} 0\n"));
        assert!(empty.contains("vane_schedulers_up 0\n"));
    }
}
