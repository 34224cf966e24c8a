//! The store conformance suite: what every backend must do, written once and run on each
//! backend. Passing it is what "works on both" means.
//!
//! Each case takes a [`harness::Backend`], a fresh empty database that can be opened any
//! number of times (several processes sharing it, reopening after a restart). The case files
//! are compiled once, with `S` the store type they call and `Db` the backend, and each case is
//! listed once: it cannot differ between backends, nor be left out of one.

mod harness;

/// Compiles the case files once; each case takes the backend as an argument.
macro_rules! case_modules {
    ($($module:ident),*) => {
        $(
            #[allow(dead_code)]
            mod $module {
                #[allow(unused_imports)]
                use super::{Db, S};
                include!(concat!(stringify!($module), ".rs"));
            }
        )*
    };
}

/// One `#[test]` per case and backend: `sqlite::runs::a_case`, `postgres::runs::a_case`.
macro_rules! tests {
    ($backend:ident = $make:expr, { $($module:ident { $($case:ident),* $(,)? })* }) => {
        mod $backend {
            $(
                mod $module {
                    $(
                        #[test]
                        fn $case() {
                            crate::$module::$case(&$make);
                        }
                    )*
                }
            )*
        }
    };
}

/// Every case, listed once, run on each backend.
macro_rules! on_every_backend {
    ($cases:tt) => {
        tests!(sqlite = crate::harness::Sqlite::new(), $cases);
        tests!(postgres = crate::harness::Postgres::new(), $cases);
    };
}

type S = dyn vane_store::Store + Send;
type Db = dyn harness::Backend<Store = S>;

case_modules!(
    runs, leases, dispatch, ticks, slots, heartbeat, observe, alerts, registry, artifacts, checks,
    metrics, fixtures
);

on_every_backend!({
    runs {
        a_run_is_recorded_with_its_version_params_and_git_state,
        attempts_are_kept_as_history,
        a_batch_is_all_or_nothing,
        a_batch_inside_a_transaction_commits_with_it_or_fails_alone,
        a_finished_attempt_is_never_rewritten,
        the_history_survives_reopening,
        a_dag_has_at_most_one_run_per_logical_date,
        runs_can_be_listed_by_state_oldest_first,
        only_one_process_can_claim_a_run,
        racing_creators_of_one_logical_date_make_one_run,
        racing_claims_of_one_run_grant_one,
        backfills_keep_their_runs_in_order,
        sla_misses_are_recorded_once,
        a_run_starts_once_and_ends_when_it_finishes,
        a_cleared_task_gets_its_retry_budget_back_and_runs_the_new_version,
        a_run_decided_on_a_tick_records_the_tick,
        a_panic_inside_a_transaction_commits_nothing_and_holds_nothing,
        the_runs_before_a_date_are_found_latest_first,
    }
    dispatch {
        attempts_go_to_agents_with_their_labels_by_priority,
        racing_agents_claim_each_attempt_once,
        a_lost_agent_is_reaped_and_its_late_writes_refused,
        a_cancel_ends_a_queued_attempt_and_reaches_a_running_one,
        log_chunks_read_in_order_and_a_fenced_agents_are_refused,
    }
    leases {
        a_lease_lives_while_renewed_and_never_comes_back_once_expired,
        a_run_shows_whether_its_owner_lease_is_held_and_counts_as_owned,
        an_owner_fenced_off_by_adoption_or_expiry_cannot_write,
        a_batch_of_owners_keeps_each_owners_changes_or_refuses_them_alone,
        racing_adoptions_of_one_run_grant_one,
        a_stop_request_is_recorded_and_found_by_the_runs_owner,
    }
    ticks {
        ticks_record_every_decision_once,
        racing_schedulers_keep_the_first_decision_of_a_tick,
        pausing_is_remembered,
        a_run_for_a_tick_decided_skipped_is_refused_and_nothing_is_left,
    }
    slots {
        pool_slots_go_by_class_then_priority_then_wait_and_dead_holders_free_theirs,
        racing_requests_for_a_pool_of_one_grant_one,
    }
    heartbeat {
        heartbeats_rewrite_one_row_per_scheduler,
    }
    observe {
        the_metrics_summary_counts_only_live_schedulers,
        monitoring_totals_count_the_history,
    }
    alerts {
        atomic_work_commits_at_its_end_or_not_at_all,
        nested_atomic_work_that_fails_undoes_only_its_own_writes,
        an_alert_counts_recurrences_resolves_on_success_and_reopens_when_it_flaps,
        a_persons_verdict_wins_and_actions_credit_the_rest,
        notifications_are_counted_per_alert,
        history_events_have_stable_keys_and_texts,
        two_evaluators_claim_each_event_once,
        two_writers_raising_one_alert_open_it_once,
        undelivered_notifications_count_for_nothing_until_a_retry_delivers_them,
        racing_evaluators_claim_each_due_retry_once,
    }
    registry {
        one_production_version_at_a_time_and_the_ledger_answers_when,
        decisions_are_per_version_and_a_persons_answer_is_kept,
        a_stage_of_a_run_that_ended_cannot_be_answered,
        only_a_running_runs_stage_waits_for_approval,
        one_rollout_of_a_model_holds_the_lock,
        a_person_answers_only_a_waiting_stage,
        model_metrics_are_replaced_per_eval_data,
        two_rollouts_racing_for_one_model_get_one_lock,
        two_promotions_racing_leave_one_production_version,
    }
    artifacts {
        same_content_is_the_same_version_and_recording_twice_changes_nothing,
        content_read_before_it_is_written_gets_its_writer_as_producer,
        only_a_successful_attempt_with_the_same_key_is_a_cache_hit,
        two_writers_of_new_versions_of_one_name_get_distinct_numbers,
    }
    checks {
        auto_bounds_learn_from_the_latest_passing_attempt_of_other_runs,
        a_run_marked_good_is_learned_from_although_it_failed,
        history_shows_the_latest_attempt_of_each_run_newest_first,
        a_runs_checks_are_those_of_each_tasks_latest_attempt,
        values_holding_a_nul_byte_are_recorded,
    }
    metrics {
        metric_series_keep_the_latest_points_of_each,
    }
});
