//! A store that fails loudly when called on a thread that drives async work: wrapped around
//! the engine's or the daemon's store, it proves no database round trip runs on their loop.
//! Shared by the engine's and the daemon's tests.

use chrono::{DateTime, Utc};
use vane_store::*;

pub(crate) struct OffLoop<S>(pub(crate) S);

impl<S> OffLoop<S> {
    fn check(&self) {
        assert!(
            tokio::runtime::Handle::try_current().is_err(),
            "a store call ran inside a tokio runtime, on the thread of its loop"
        );
    }
}

impl<S: Store> AlertStore for OffLoop<S> {
    fn history_events(&self, since: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        self.check();
        self.0.history_events(since)
    }
    fn agents_waiting(&self, before: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        self.check();
        self.0.agents_waiting(before)
    }
    fn approvals_waiting(&self, before: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        self.check();
        self.0.approvals_waiting(before)
    }
    fn alert_cursor(&self) -> Result<Option<DateTime<Utc>>> {
        self.check();
        self.0.alert_cursor()
    }
    fn atomically(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        self.check();
        self.0.atomically(work)
    }
    fn claim_events(
        &self,
        keys: &[(String, DateTime<Utc>)],
        cursor: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        self.check();
        self.0.claim_events(keys, cursor, forget_before)
    }
    fn raise_alert(&self, occurrence: &AlertOccurrence<'_>) -> Result<AlertRecord> {
        self.check();
        self.0.raise_alert(occurrence)
    }
    fn resolve_after_success(&self, success: &HistoryEvent) -> Result<Vec<AlertRecord>> {
        self.check();
        self.0.resolve_after_success(success)
    }
    fn credit_action(
        &self,
        run: Option<RunId>,
        task_id: Option<&str>,
        subject: Option<&str>,
        source: &str,
    ) -> Result<usize> {
        self.check();
        self.0.credit_action(run, task_id, subject, source)
    }
    fn alerts(&self, filter: AlertFilter) -> Result<Vec<AlertRecord>> {
        self.check();
        self.0.alerts(filter)
    }
    fn alert(&self, id: i64) -> Result<AlertRecord> {
        self.check();
        self.0.alert(id)
    }
    fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        verdict: Option<Verdict>,
        at: DateTime<Utc>,
    ) -> Result<AlertRecord> {
        self.check();
        self.0.acknowledge_alert(id, by, verdict, at)
    }
    fn resolve_alert(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<AlertRecord> {
        self.check();
        self.0.resolve_alert(id, by, at)
    }
    fn snooze_alert(&self, id: i64, until: DateTime<Utc>) -> Result<AlertRecord> {
        self.check();
        self.0.snooze_alert(id, until)
    }
    fn record_notification(
        &self,
        alerts: &[(i64, &str)],
        channel: &str,
        at: DateTime<Utc>,
        undelivered: Option<Undelivered<'_>>,
    ) -> Result<()> {
        self.check();
        self.0.record_notification(alerts, channel, at, undelivered)
    }
    fn claim_due_notifications(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<Vec<NotificationRecord>> {
        self.check();
        self.0.claim_due_notifications(now, hold_until)
    }
    fn finish_notifications(
        &self,
        ids: &[i64],
        claim: DateTime<Utc>,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome<'_>,
    ) -> Result<usize> {
        self.check();
        self.0.finish_notifications(ids, claim, at, outcome)
    }
    fn alerts_notified_since(&self, rule: &str, since: DateTime<Utc>) -> Result<usize> {
        self.check();
        self.0.alerts_notified_since(rule, since)
    }
}

impl<S: Store> ArtifactStore for OffLoop<S> {
    fn record_artifacts(
        &self,
        attempt: &AttemptRef,
        direction: Direction,
        artifacts: &[NewArtifact<'_>],
        at: DateTime<Utc>,
    ) -> Result<Vec<ArtifactVersion>> {
        self.check();
        self.0.record_artifacts(attempt, direction, artifacts, at)
    }
    fn artifact_versions(&self, name: Option<&str>) -> Result<Vec<ArtifactVersion>> {
        self.check();
        self.0.artifact_versions(name)
    }
    fn artifact_version(&self, name: &str, version: Option<u32>) -> Result<ArtifactVersion> {
        self.check();
        self.0.artifact_version(name, version)
    }
    fn artifact_links(&self, artifact_id: i64) -> Result<Vec<ArtifactLink>> {
        self.check();
        self.0.artifact_links(artifact_id)
    }
    fn attempt_links(&self, run: RunId, task: Option<&str>) -> Result<Vec<ArtifactLink>> {
        self.check();
        self.0.attempt_links(run, task)
    }
    fn record_cache_key(&self, attempt: &AttemptRef, dag_id: &str, key: &str) -> Result<()> {
        self.check();
        self.0.record_cache_key(attempt, dag_id, key)
    }
    fn cache_hit(
        &self,
        dag_id: &str,
        task: &str,
        key: &str,
    ) -> Result<Option<(AttemptRef, Vec<ArtifactLink>)>> {
        self.check();
        self.0.cache_hit(dag_id, task, key)
    }
}

impl<S: Store> CheckStore for OffLoop<S> {
    fn record_check_evaluation(&self, evaluation: &NewCheckEvaluation<'_>) -> Result<()> {
        self.check();
        self.0.record_check_evaluation(evaluation)
    }
    fn learnable_values(
        &self,
        from: &LearnFrom<'_>,
        name: &str,
        definition_hash: &str,
        window: usize,
    ) -> Result<Vec<(RunId, f64)>> {
        self.check();
        self.0.learnable_values(from, name, definition_hash, window)
    }
    fn baseline_profile(&self, from: &LearnFrom<'_>) -> Result<Option<(RunId, String)>> {
        self.check();
        self.0.baseline_profile(from)
    }
    fn check_history(
        &self,
        dag_id: &str,
        task_id: Option<&str>,
        last_runs: usize,
    ) -> Result<Vec<CheckHistoryEntry>> {
        self.check();
        self.0.check_history(dag_id, task_id, last_runs)
    }
    fn run_checks(&self, run: RunId) -> Result<Vec<(String, u32, CheckResult)>> {
        self.check();
        self.0.run_checks(run)
    }
    fn mark_good(&self, mark: &GoodMark) -> Result<()> {
        self.check();
        self.0.mark_good(mark)
    }
    fn good_mark(&self, run: RunId) -> Result<Option<GoodMark>> {
        self.check();
        self.0.good_mark(run)
    }
}

impl<S: Store> HeartbeatStore for OffLoop<S> {
    fn record_heartbeat(&self, beat: &Heartbeat<'_>) -> Result<()> {
        self.check();
        self.0.record_heartbeat(beat)
    }
    fn schedulers(&self) -> Result<Vec<SchedulerRecord>> {
        self.check();
        self.0.schedulers()
    }
}

impl<S: Store> DispatchStore for OffLoop<S> {
    fn register_agent(
        &self,
        lease: &str,
        host: &str,
        labels: &std::collections::BTreeMap<String, String>,
        slots: u32,
    ) -> Result<()> {
        self.check();
        self.0.register_agent(lease, host, labels, slots)
    }
    fn agents(&self) -> Result<Vec<AgentRecord>> {
        self.check();
        self.0.agents()
    }
    fn enqueue_dispatch(&self, new: &NewDispatch<'_>) -> Result<i64> {
        self.check();
        self.0.enqueue_dispatch(new)
    }
    fn claim_dispatches(
        &self,
        lease: &str,
        labels: &std::collections::BTreeMap<String, String>,
        max: u32,
    ) -> Result<Vec<Claimed>> {
        self.check();
        self.0.claim_dispatches(lease, labels, max)
    }
    fn dispatch_started(&self, id: i64, token: i64, pid: u32, start: Option<u64>) -> Result<()> {
        self.check();
        self.0.dispatch_started(id, token, pid, start)
    }
    fn finish_dispatch(&self, id: i64, token: i64, outcome: &serde_json::Value) -> Result<()> {
        self.check();
        self.0.finish_dispatch(id, token, outcome)
    }
    fn dispatches_to_kill(&self, lease: &str, held: &[(i64, i64)]) -> Result<Vec<i64>> {
        self.check();
        self.0.dispatches_to_kill(lease, held)
    }
    fn dispatches(&self, ids: &[i64]) -> Result<Vec<DispatchRecord>> {
        self.check();
        self.0.dispatches(ids)
    }
    fn run_dispatches(&self, run: RunId) -> Result<Vec<DispatchRecord>> {
        self.check();
        self.0.run_dispatches(run)
    }
    fn open_dispatches(&self) -> Result<Vec<DispatchRecord>> {
        self.check();
        self.0.open_dispatches()
    }
    fn cancel_dispatch(&self, id: i64, outcome: &serde_json::Value) -> Result<bool> {
        self.check();
        self.0.cancel_dispatch(id, outcome)
    }
    fn reap_dispatch(&self, id: i64, token: i64, outcome: &serde_json::Value) -> Result<bool> {
        self.check();
        self.0.reap_dispatch(id, token, outcome)
    }
    fn add_log_chunk(&self, id: i64, token: i64, key: &str, bytes: u64) -> Result<()> {
        self.check();
        self.0.add_log_chunk(id, token, key, bytes)
    }
    fn add_owner_log_chunk(&self, of: &LogChunkOf<'_>, key: &str, bytes: u64) -> Result<()> {
        self.check();
        self.0.add_owner_log_chunk(of, key, bytes)
    }
    fn log_chunks(&self, of: &LogChunkOf<'_>, after: i64) -> Result<Vec<LogChunk>> {
        self.check();
        self.0.log_chunks(of, after)
    }
}

impl<S: Store> LeaseStore for OffLoop<S> {
    fn acquire_lease(&self, lease: &NewLease<'_>) -> Result<DateTime<Utc>> {
        self.check();
        self.0.acquire_lease(lease)
    }
    fn renew_lease(&self, id: &str, ttl: std::time::Duration) -> Result<Option<DateTime<Utc>>> {
        self.check();
        self.0.renew_lease(id, ttl)
    }
    fn release_lease(&self, id: &str) -> Result<()> {
        self.check();
        self.0.release_lease(id)
    }
    fn leases(&self) -> Result<Vec<LeaseRecord>> {
        self.check();
        self.0.leases()
    }
    fn take_over(
        &self,
        run: RunId,
        seen: i64,
        owner: &Owner,
        lease: &str,
    ) -> Result<Option<Fence>> {
        self.check();
        self.0.take_over(run, seen, owner, lease)
    }
    fn apply_fenced(&self, fence: &Fence, changes: &[Change]) -> Result<()> {
        self.check();
        self.0.apply_fenced(fence, changes)
    }
}

impl<S: Store> MetricStore for OffLoop<S> {
    fn metric_series(&self, filter: &MetricFilter<'_>) -> Result<Vec<MetricPoint>> {
        self.check();
        self.0.metric_series(filter)
    }
}

impl<S: Store> ObserveStore for OffLoop<S> {
    fn observe(&self, duration_bounds: &[f64], lag_bounds: &[f64]) -> Result<Observation> {
        self.check();
        self.0.observe(duration_bounds, lag_bounds)
    }
}

impl<S: Store> RegistryStore for OffLoop<S> {
    fn register_model_version(&self, new: &NewModelVersion<'_>) -> Result<i64> {
        self.check();
        self.0.register_model_version(new)
    }
    fn model_versions(&self, model: Option<&str>) -> Result<Vec<ModelVersion>> {
        self.check();
        self.0.model_versions(model)
    }
    fn production(&self, model: &str) -> Result<Option<ModelVersion>> {
        self.check();
        self.0.production(model)
    }
    fn set_stage(&self, change: &StageChange<'_>) -> Result<()> {
        self.check();
        self.0.set_stage(change)
    }
    fn ledger(&self, model: Option<&str>) -> Result<Vec<LedgerEntry>> {
        self.check();
        self.0.ledger(model)
    }
    fn record_model_metrics(
        &self,
        model: &str,
        version: i64,
        eval_hash: &str,
        metrics: &[(String, f64)],
        run: RunId,
    ) -> Result<()> {
        self.check();
        self.0
            .record_model_metrics(model, version, eval_hash, metrics, run)
    }
    fn model_metrics(&self, model: &str, version: i64) -> Result<Vec<(String, String, f64)>> {
        self.check();
        self.0.model_metrics(model, version)
    }
    fn set_rollout_stage(&self, stage: &RolloutStage) -> Result<()> {
        self.check();
        self.0.set_rollout_stage(stage)
    }
    fn rollout_stages(&self, run: Option<RunId>) -> Result<Vec<RolloutStage>> {
        self.check();
        self.0.rollout_stages(run)
    }
    fn decide_rollout(
        &self,
        run: RunId,
        stage: Option<&str>,
        decision: vane_store::Decision,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Vec<RolloutStage>> {
        self.check();
        self.0.decide_rollout(run, stage, decision, by, reason)
    }
    fn expire_waiting(&self, run: RunId, task_id: &str, detail: &str) -> Result<usize> {
        self.check();
        self.0.expire_waiting(run, task_id, detail)
    }
    fn claim_rollout_lock(
        &self,
        model: &str,
        run: RunId,
        task_id: &str,
        attempt: u32,
    ) -> Result<Option<RolloutLock>> {
        self.check();
        self.0.claim_rollout_lock(model, run, task_id, attempt)
    }
    fn release_rollout_lock(&self, model: &str, run: RunId, task_id: &str) -> Result<()> {
        self.check();
        self.0.release_rollout_lock(model, run, task_id)
    }
}

impl<S: Store> Store for OffLoop<S> {
    fn record_dag_version(&self, version: &NewDagVersion<'_>) -> Result<DagVersionId> {
        self.check();
        self.0.record_dag_version(version)
    }
    fn create_run(&self, run: &NewRun<'_>) -> Result<RunId> {
        self.check();
        self.0.create_run(run)
    }
    fn claim_run(
        &self,
        run: RunId,
        owner: &Owner,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Fence>> {
        self.check();
        self.0.claim_run(run, owner, at)
    }
    fn request_slots(
        &self,
        request: &SlotRequest<'_>,
        alive: &dyn Fn(&Owner) -> bool,
    ) -> Result<bool> {
        self.check();
        self.0.request_slots(request, alive)
    }
    fn create_backfill(&self, backfill: &NewBackfill<'_>) -> Result<i64> {
        self.check();
        self.0.create_backfill(backfill)
    }
    fn link_backfill_runs(&self, backfill: i64, runs: &[RunId]) -> Result<()> {
        self.check();
        self.0.link_backfill_runs(backfill, runs)
    }
    fn set_backfill_state(&self, backfill: i64, state: BackfillState) -> Result<()> {
        self.check();
        self.0.set_backfill_state(backfill, state)
    }
    fn backfill(&self, id: i64) -> Result<BackfillRecord> {
        self.check();
        self.0.backfill(id)
    }
    fn backfills(&self, dag_id: Option<&str>) -> Result<Vec<BackfillRecord>> {
        self.check();
        self.0.backfills(dag_id)
    }
    fn backfill_of(&self, run: RunId) -> Result<Option<(i64, BackfillState)>> {
        self.check();
        self.0.backfill_of(run)
    }
    fn sla_misses(&self, dag_id: Option<&str>, limit: usize) -> Result<Vec<SlaMiss>> {
        self.check();
        self.0.sla_misses(dag_id, limit)
    }
    fn record_ticks(
        &self,
        dag_id: &str,
        ticks: &[(chrono::DateTime<chrono::Utc>, TickDecision)],
    ) -> Result<usize> {
        self.check();
        self.0.record_ticks(dag_id, ticks)
    }
    fn last_tick(&self, dag_id: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.check();
        self.0.last_tick(dag_id)
    }
    fn ticks(&self, dag_id: &str, limit: usize) -> Result<Vec<TickRecord>> {
        self.check();
        self.0.ticks(dag_id, limit)
    }
    fn set_paused(&self, dag_id: &str, paused: bool) -> Result<()> {
        self.check();
        self.0.set_paused(dag_id, paused)
    }
    fn pause_switches(&self) -> Result<std::collections::BTreeMap<String, bool>> {
        self.check();
        self.0.pause_switches()
    }
    fn apply(&self, changes: &[Change]) -> Result<()> {
        self.check();
        self.0.apply(changes)
    }
    fn runs(&self, filter: &RunFilter<'_>) -> Result<Vec<RunRecord>> {
        self.check();
        self.0.runs(filter)
    }
    fn runs_before(
        &self,
        dag_id: &str,
        before: chrono::DateTime<chrono::Utc>,
        states: &[RunState],
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        self.check();
        self.0.runs_before(dag_id, before, states, limit)
    }
    fn run(&self, id: RunId) -> Result<RunDetail> {
        self.check();
        self.0.run(id)
    }
    fn dag_source(&self, version: DagVersionId) -> Result<String> {
        self.check();
        self.0.dag_source(version)
    }
    fn request_stop(&self, run: RunId, request: &StopRequest) -> Result<RunRecord> {
        self.check();
        self.0.request_stop(run, request)
    }
    fn param_changes(&self, run: RunId) -> Result<Vec<ParamChange>> {
        self.check();
        self.0.param_changes(run)
    }
    fn request_task_stop(&self, run: RunId, task: &str, request: &StopRequest) -> Result<()> {
        self.check();
        self.0.request_task_stop(run, task, request)
    }
    fn task_stop(&self, run: RunId, task: &str) -> Result<Option<StopRequest>> {
        self.check();
        self.0.task_stop(run, task)
    }
    fn stop_requests(&self, lease: &str) -> Result<Vec<(RunId, Option<String>)>> {
        self.check();
        self.0.stop_requests(lease)
    }
}
