-- Every transition the engine records goes to the server in one round trip (issue 14). A batch
-- of group commit used to cost a trip per statement (BEGIN, the fence check, each change's
-- statements, COMMIT: about 22 a task), which made a fan-out on PostgreSQL four times slower
-- than the same processes spawned by a shell. The client now sends the whole batch as one JSON
-- array to this function, called as a statement of its own: its transaction is the
-- statement's, so it commits (one WAL flush) as the answer comes back.
--
-- `batch` is an array of groups, one per caller: `{"run", "token", "changes": [...]}`, where
-- `run` and `token` are the caller's fence (null for none). Each group is applied alone, as a
-- savepoint would: a refused or failed group leaves nothing, and the others are kept. The
-- answer has one element per group: `{"ok": true}`, `{"found": false}` (no such run),
-- `{"token": n}` (the fence did not hold: the run's token now, which tells a takeover from a
-- lease that lapsed), or `{"missing": i}` (the `i`th change found no row to change). Any other
-- error fails the statement, and nothing of the batch is kept.
--
-- `volatile`: the batch records nothing but process ids, which mean nothing after a power
-- loss, so its commit does not wait for the disk.
--
-- The SQL of each change is the same as SQLite's (`SqliteStore::apply_one`); the Rust side
-- (`postgres/store.rs`) writes each change's fields under the names read here.
CREATE FUNCTION vane_apply(batch jsonb, volatile boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    answers jsonb := '[]';
    grp jsonb;
    c jsonb;
    i integer;
    n bigint;
    token bigint;
    held boolean;
BEGIN
    IF volatile THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    FOR grp IN SELECT value FROM jsonb_array_elements(batch) LOOP
        BEGIN
            IF grp->>'run' IS NOT NULL THEN
                -- The row stays locked to the end of the transaction, so no adoption slips in
                -- between the check and the writes. The clock is the server's, read now.
                SELECT r.owner_token,
                       (SELECT l.released_at IS NULL AND l.expires_at > clock_timestamp()
                          FROM leases AS l WHERE l.id = r.owner_lease)
                  INTO token, held
                  FROM runs AS r WHERE r.id = (grp->>'run')::bigint FOR UPDATE;
                IF NOT FOUND THEN
                    answers := answers || jsonb_build_array(jsonb_build_object('found', false));
                    CONTINUE;
                END IF;
                IF token <> (grp->>'token')::bigint OR held IS NOT TRUE THEN
                    answers := answers || jsonb_build_array(jsonb_build_object('token', token));
                    CONTINUE;
                END IF;
            END IF;
            i := 0;
            FOR c IN SELECT value FROM jsonb_array_elements(grp->'changes') LOOP
                CASE c->>'kind'
                WHEN 'run' THEN
                    UPDATE runs SET state = c->>'state',
                        reason = c->>'reason',
                        started_at = CASE WHEN c->>'state' = 'running'
                            THEN COALESCE(started_at, (c->>'at')::timestamptz) ELSE started_at END,
                        ended_at = CASE WHEN c->>'state' IN ('success', 'failed')
                            THEN (c->>'at')::timestamptz ELSE NULL END
                     WHERE id = (c->>'run')::bigint;
                    GET DIAGNOSTICS n = ROW_COUNT;
                WHEN 'task' THEN
                    UPDATE task_instances SET state = c->>'state', reason = c->>'reason',
                        updated_at = (c->>'at')::timestamptz
                     WHERE run_id = (c->>'run')::bigint AND task_id = c->>'task';
                    GET DIAGNOSTICS n = ROW_COUNT;
                WHEN 'attempt_started' THEN
                    INSERT INTO attempts (run_id, task_id, attempt, state, command, host, log_path,
                                          started_at, dag_version_id)
                    VALUES ((c->>'run')::bigint, c->>'task', (c->>'attempt')::bigint, 'running',
                            c->>'command', c->>'host', c->>'log_path', (c->>'at')::timestamptz,
                            (SELECT dag_version_id FROM runs WHERE id = (c->>'run')::bigint));
                    UPDATE task_instances SET state = 'running', reason = NULL,
                        updated_at = (c->>'at')::timestamptz
                     WHERE run_id = (c->>'run')::bigint AND task_id = c->>'task';
                    GET DIAGNOSTICS n = ROW_COUNT;
                WHEN 'attempt_process' THEN
                    UPDATE attempts SET pid = (c->>'pid')::bigint,
                        pid_start_time = (c->>'pid_start_time')::bigint
                     WHERE run_id = (c->>'run')::bigint AND task_id = c->>'task'
                       AND attempt = (c->>'attempt')::bigint;
                    GET DIAGNOSTICS n = ROW_COUNT;
                WHEN 'task_cleared' THEN
                    UPDATE task_instances SET state = 'queued', reason = c->>'reason',
                        updated_at = (c->>'at')::timestamptz,
                        retry_base = (SELECT COUNT(*) FROM attempts
                                       WHERE run_id = (c->>'run')::bigint AND task_id = c->>'task')
                     WHERE run_id = (c->>'run')::bigint AND task_id = c->>'task';
                    GET DIAGNOSTICS n = ROW_COUNT;
                WHEN 'sla_miss' THEN
                    INSERT INTO sla_misses (run_id, task_id, deadline, detected_at)
                    VALUES ((c->>'run')::bigint, COALESCE(c->>'task', ''),
                            (c->>'deadline')::timestamptz, (c->>'at')::timestamptz)
                    ON CONFLICT DO NOTHING;
                    -- Recorded once; a second detection is not an error.
                    n := 1;
                WHEN 'metric' THEN
                    -- The value travels as text: JSON has no NaN or infinity.
                    INSERT INTO metrics (run_id, task_id, attempt, name, value, recorded_at)
                    VALUES ((c->>'run')::bigint, c->>'task', (c->>'attempt')::bigint, c->>'name',
                            (c->>'value')::double precision, (c->>'at')::timestamptz)
                    ON CONFLICT (run_id, task_id, attempt, name)
                    DO UPDATE SET value = excluded.value, recorded_at = excluded.recorded_at;
                    GET DIAGNOSTICS n = ROW_COUNT;
                WHEN 'release_slots' THEN
                    DELETE FROM slots WHERE run_id = (c->>'run')::bigint
                       AND (c->>'task' IS NULL OR task_id = c->>'task');
                    -- Nothing held is not an error.
                    n := 1;
                WHEN 'run_version' THEN
                    UPDATE runs SET dag_version_id = (c->>'version')::bigint
                     WHERE id = (c->>'run')::bigint;
                    GET DIAGNOSTICS n = ROW_COUNT;
                WHEN 'run_params' THEN
                    INSERT INTO run_param_changes (run_id, at, changed_by, before, after)
                    SELECT id, (c->>'at')::timestamptz, c->>'by', params, c->'params'
                      FROM runs WHERE id = (c->>'run')::bigint;
                    UPDATE runs SET params = c->'params' WHERE id = (c->>'run')::bigint;
                    GET DIAGNOSTICS n = ROW_COUNT;
                WHEN 'run_owner' THEN
                    UPDATE runs SET owner_host = c->>'host', owner_pid = (c->>'pid')::bigint,
                        owner_start_time = (c->>'start_time')::bigint, owner_lease = c->>'lease'
                     WHERE id = (c->>'run')::bigint;
                    GET DIAGNOSTICS n = ROW_COUNT;
                WHEN 'attempt_finished' THEN
                    UPDATE attempts SET state = c->>'state', exit_code = (c->>'exit_code')::bigint,
                        signal = (c->>'signal')::bigint, reason = c->>'reason',
                        ended_at = (c->>'at')::timestamptz
                     WHERE run_id = (c->>'run')::bigint AND task_id = c->>'task'
                       AND attempt = (c->>'attempt')::bigint AND state = 'running';
                    GET DIAGNOSTICS n = ROW_COUNT;
                END CASE;
                IF n = 0 THEN
                    -- Caught below: the group's changes so far are undone.
                    RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = i::text;
                END IF;
                i := i + 1;
            END LOOP;
            answers := answers || jsonb_build_array(jsonb_build_object('ok', true));
        EXCEPTION WHEN no_data_found THEN
            answers := answers || jsonb_build_array(jsonb_build_object('missing', SQLERRM::integer));
        END;
    END LOOP;
    RETURN answers;
END
$$;
