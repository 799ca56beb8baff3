//! Delivery guarantees: duplicate deliveries have one effect, a killed worker loses
//! nothing, SIGTERM finishes in-flight work, a large backlog drains.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use conveyor::{Config, Role};
use engine::queue::Pushed;
use engine::store::{AttemptRun, Created, OperatorOutcome, Start, Success};
use engine::{Effect, EffectError, JobId, JobStatus, NewJob, Task};
use features::system::Noop;
use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, TransactionTrait};
use serde_json::json;

use crate::helpers::{Stack, TestApp, new_noop, spawn_app, spawn_with, stored, test_config};
use crate::on_both_stacks;

const WITHIN: Duration = Duration::from_secs(30);

/// Taken by the tests that run worker processes and time their drain, one at a time:
/// on 2 cores, several of them at once (each with its own SQLite or Postgres writers)
/// slowed each other's outcome writes past the shutdown grace.
static WORKER_PROCESSES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A probe effect: each job it applies for leaves a row in `effect_log`.
struct Logged(JobId);

impl Effect for Logged {
    async fn apply(tx: &DatabaseTransaction, effects: &[&Self]) -> Result<(), EffectError> {
        let backend = tx.get_database_backend();
        let sql = match backend {
            sea_orm::DatabaseBackend::Postgres => "INSERT INTO effect_log VALUES ($1)",
            _ => "INSERT INTO effect_log VALUES (?)",
        };
        for Logged(job) in effects {
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [job.to_string().into()],
            ))
            .await?;
        }
        Ok(())
    }
}

/// An api (no workers) on `stack` whose database has the probe effects' `effect_log`.
async fn api_with_effect_log(stack: Stack) -> (TestApp, sea_orm::DatabaseConnection) {
    let (config, dir) = test_config(stack).await;
    let app = spawn_with(config, dir, Role::Api).await;
    let db = app.backends.store.db().clone();
    db.execute_unprepared("CREATE TABLE effect_log (job_id VARCHAR(26) NOT NULL)")
        .await
        .expect("probe table");
    (app, db)
}

/// Records `attempt` of `envelope`'s job succeeded with a [`Logged`] effect: whether it
/// applied.
async fn succeed_logged(
    store: engine::JobStore,
    envelope: engine::Envelope,
    attempt: AttemptRun,
) -> bool {
    let success = Success {
        effect: Logged(envelope.job_id),
        job_id: envelope.job_id,
        task_id: envelope.task_id,
        attempt,
        result: json!({}),
        elapsed: Duration::from_millis(1),
    };
    store
        .succeed("test.logged", success)
        .await
        .expect("succeed")
}

async fn a_redelivered_task_applies_its_effect_once(stack: Stack) {
    let (app, db) = api_with_effect_log(stack).await;
    let envelope = new_noop(&app, json!({})).await.envelope;

    // Two deliveries of the same task, both started (as after a worker was killed
    // between its effect and its ack), both finishing at once.
    let mut attempts = Vec::new();
    for worker in ["a", "b"] {
        let started = app
            .backends
            .store
            .start_attempt(&envelope, worker)
            .await
            .expect("start");
        let Start::Run { attempt, .. } = started else {
            panic!("a delivery of the current task starts");
        };
        attempts.push(attempt);
    }
    let finish =
        |attempt: AttemptRun| succeed_logged(app.backends.store.clone(), envelope.clone(), attempt);
    let (first, second) = tokio::join!(finish(attempts[0].clone()), finish(attempts[1].clone()));
    assert!(
        first ^ second,
        "exactly one delivery applies: {first} {second}"
    );

    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT job_id FROM effect_log",
        ))
        .await
        .expect("read effects");
    assert_eq!(rows.len(), 1);
    // A third, late delivery finds the job finished and does not start.
    let late = app
        .backends
        .store
        .start_attempt(&envelope, "w")
        .await
        .expect("start");
    assert!(matches!(late, Start::Skip));
}
on_both_stacks!(a_redelivered_task_applies_its_effect_once);

/// `sql` with `$1` bound to `job`, written for `backend` (`?` on SQLite).
fn of_job(backend: sea_orm::DatabaseBackend, sql: &str, job: JobId) -> Statement {
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => sql.to_owned(),
        _ => sql.replace("$1", "?"),
    };
    Statement::from_sql_and_values(backend, sql, [job.to_string().into()])
}

/// Two attempts of one job finishing in one batch of successes: the job is turned once,
/// for the attempt that owns it, whichever of the two comes first in the batch.
async fn two_attempts_in_one_batch_finish_their_job_for_its_owner(stack: Stack) {
    let (app, db) = api_with_effect_log(stack).await;
    let store = &app.backends.store;
    let backend = db.get_database_backend();
    let start = |envelope: engine::Envelope, worker: &'static str| async move {
        match store.start_attempt(&envelope, worker).await.expect("start") {
            Start::Run { attempt, .. } => attempt,
            Start::Skip => panic!("a delivery of the current task starts"),
        }
    };
    for marked in [true, false] {
        let envelope = new_noop(&app, json!({})).await.envelope;
        let owner = start(envelope.clone(), "owner").await;
        let other = start(envelope.clone(), "other").await;
        if marked {
            assert!(store.mark_running(&envelope, &owner).await.expect("mark"));
        }

        // A success of another job is flushed first and waits on a write the test
        // holds, so that the two come after it, in one batch, the other one first.
        let blocker = new_noop(&app, json!({})).await.envelope;
        let blocking = start(blocker.clone(), "blocker").await;
        let held = db.begin().await.expect("begin");
        held.execute_raw(of_job(
            backend,
            "UPDATE job_records SET attempts = attempts WHERE id = $1",
            blocker.job_id,
        ))
        .await
        .expect("hold the blocker's row");
        let first = tokio::spawn(succeed_logged(store.clone(), blocker, blocking));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let late = tokio::spawn(succeed_logged(
            store.clone(),
            envelope.clone(),
            other.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let owning = tokio::spawn(succeed_logged(
            store.clone(),
            envelope.clone(),
            owner.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        held.commit().await.expect("release");
        assert!(first.await.expect("blocker"), "the blocker's job succeeds");
        let (late, owning) = (late.await.expect("other"), owning.await.expect("owner"));

        let job = stored(store, envelope.job_id).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        if marked {
            // Running under the owner: only its success may turn the job.
            assert_eq!(
                (late, owning),
                (false, true),
                "the owner's success is recorded"
            );
        } else {
            // Waiting: either attempt may turn it, and the record names the one whose
            // answer says so.
            assert!(late ^ owning, "exactly one is recorded: {late} {owning}");
        }
        let winner = if owning { &owner } else { &other };
        assert_eq!(job.worker.as_deref(), Some(winner.worker.as_str()));
        assert_eq!(job.started_at, Some(winner.started_at));
        let rows = db
            .query_all_raw(of_job(
                backend,
                "SELECT job_id FROM effect_log WHERE job_id = $1",
                envelope.job_id,
            ))
            .await
            .expect("read effects");
        assert_eq!(rows.len(), 1, "the effect is applied once");
    }
}
on_both_stacks!(two_attempts_in_one_batch_finish_their_job_for_its_owner);

/// The abort and the success race for the record: whichever comes second changes
/// nothing, so an aborted job never turns `succeeded` nor applies its effect.
async fn a_job_aborted_while_running_neither_succeeds_nor_applies_its_effect(stack: Stack) {
    let (app, db) = api_with_effect_log(stack).await;
    let store = &app.backends.store;
    let finish = |envelope: engine::Envelope, attempt: AttemptRun| {
        succeed_logged(store.clone(), envelope, attempt)
    };
    let start = |envelope: engine::Envelope| async move {
        match store.start_attempt(&envelope, "w").await.expect("start") {
            Start::Run { attempt, .. } => attempt,
            Start::Skip => panic!("a delivery of the current task starts"),
        }
    };

    // Aborted while it runs (marked `running`, and before it is marked): its success
    // finds nothing to turn.
    for mark in [true, false] {
        let envelope = new_noop(&app, json!({})).await.envelope;
        let attempt = start(envelope.clone()).await;
        if mark {
            assert!(store.mark_running(&envelope, &attempt).await.expect("mark"));
        }
        let aborted = store.abort(envelope.job_id).await.expect("abort");
        assert!(
            matches!(&aborted, OperatorOutcome::Done(job) if job.status == JobStatus::Cancelled),
            "{aborted:?}"
        );
        assert!(
            !finish(envelope.clone(), attempt.clone()).await,
            "no success after an abort"
        );
        assert!(!store.mark_running(&envelope, &attempt).await.expect("mark"));
        let job = stored(store, envelope.job_id).await;
        assert_eq!(job.status, JobStatus::Cancelled);
        assert_eq!(job.error.as_deref(), Some(engine::store::ABORTED));
        assert!(job.result.is_none());
        assert!(matches!(
            store.start_attempt(&envelope, "late").await.expect("start"),
            Start::Skip
        ));
    }

    // Succeeded first: the abort is refused and the effect stays applied once.
    let envelope = new_noop(&app, json!({})).await.envelope;
    let attempt = start(envelope.clone()).await;
    assert!(finish(envelope.clone(), attempt).await);
    assert!(matches!(
        store.abort(envelope.job_id).await.expect("abort"),
        OperatorOutcome::Conflict(JobStatus::Succeeded)
    ));

    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT job_id FROM effect_log",
        ))
        .await
        .expect("read effects");
    assert_eq!(rows.len(), 1, "only the job that was not aborted applied");
}
on_both_stacks!(a_job_aborted_while_running_neither_succeeds_nor_applies_its_effect);

/// A probe effect that the store refuses for the job marked `refuse`, as an aggregate
/// that would overflow is refused; the others leave a row in `effect_log`.
struct Picky {
    job: JobId,
    refuse: bool,
}

impl Effect for Picky {
    async fn apply(tx: &DatabaseTransaction, effects: &[&Self]) -> Result<(), EffectError> {
        if effects.iter().any(|e| e.refuse) {
            return Err(EffectError::Rejected("this effect does not fit".into()));
        }
        let logged: Vec<Logged> = effects.iter().map(|e| Logged(e.job)).collect();
        Logged::apply(tx, &logged.iter().collect::<Vec<_>>()).await
    }
}

/// Successes recorded together whose batch the store refuses because of one job's
/// effect: that job's success fails (its attempt is retried, then dead), and the
/// others are recorded with their effects.
async fn a_refused_effect_fails_only_its_own_job(stack: Stack) {
    let (app, db) = api_with_effect_log(stack).await;
    let store = &app.backends.store;
    let mut successes = Vec::new();
    for refuse in [false, true, false] {
        let envelope = new_noop(&app, json!({})).await.envelope;
        let Start::Run { attempt, .. } = store.start_attempt(&envelope, "w").await.expect("start")
        else {
            panic!("a new job starts");
        };
        successes.push(Success {
            effect: Picky {
                job: envelope.job_id,
                refuse,
            },
            job_id: envelope.job_id,
            task_id: envelope.task_id,
            attempt,
            result: json!({}),
            elapsed: Duration::from_millis(1),
        });
    }
    let ids: Vec<JobId> = successes.iter().map(|s| s.job_id).collect();
    let mut answers = futures::future::join_all(
        successes
            .into_iter()
            .map(|success| store.succeed("test.picky", success)),
    )
    .await;
    let refused = answers.remove(1);
    assert!(
        matches!(refused, Err(engine::store::StoreError::Rejected(_))),
        "{refused:?}"
    );
    for answer in answers {
        assert!(answer.expect("recorded"), "the others are recorded");
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT job_id FROM effect_log ORDER BY job_id",
        ))
        .await
        .expect("read effects");
    let mut logged: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "job_id").expect("job_id"))
        .collect();
    logged.sort();
    let mut expected = vec![ids[0].to_string(), ids[2].to_string()];
    expected.sort();
    assert_eq!(logged, expected);
    let refused_job = store.get(ids[1]).await.expect("get").expect("row");
    assert_eq!(
        refused_job.status,
        JobStatus::Queued,
        "nothing recorded for it"
    );
}
on_both_stacks!(a_refused_effect_fails_only_its_own_job);

async fn a_task_delivered_twice_at_once_finishes_its_job_once(stack: Stack) {
    let (config, dir) = test_config(stack).await;
    let app = spawn_with(config.clone(), dir, Role::Api).await;
    let task = new_noop(&app, json!({ "sleep_ms": 300 })).await;
    let executor = app.executor();
    let (a, b) = tokio::join!(
        executor.execute(task.clone(), "worker-a"),
        executor.execute(task.clone(), "worker-b"),
    );
    let mut outcomes = [a, b];
    outcomes.sort_by_key(|o| o.label());
    use worker::executor::Outcome;
    assert!(
        matches!(
            outcomes,
            [Outcome::Duplicate | Outcome::Skipped, Outcome::Succeeded]
        ),
        "one delivery succeeds, the other is recognised: {outcomes:?}"
    );
    let job = app.job(&task.envelope.job_id.to_string()).await;
    assert_eq!(job["status"], "succeeded");
    // And a third delivery, after the fact, does nothing.
    assert_eq!(executor.execute(task, "worker-c").await, Outcome::Skipped);
}
on_both_stacks!(a_task_delivered_twice_at_once_finishes_its_job_once);

#[tokio::test]
async fn pushing_the_same_task_twice_on_redis_queues_it_once() {
    let (config, dir) = test_config(Stack::Production).await;
    let app = spawn_with(config, dir, Role::Api).await;
    let task = new_noop(&app, json!({})).await;
    let queue = &app.backends.queue;
    let first = queue.push(&task, Duration::ZERO).await.expect("push");
    let second = queue.push(&task, Duration::ZERO).await.expect("push");
    assert_eq!((first, second), (Pushed::Queued, Pushed::AlreadyQueued));
    assert_eq!(queue.depth("default").await.expect("depth"), 1);
    // A redelivery goes out under a delivery id of its own: it is never refused.
    queue
        .push_again(&task, Duration::ZERO)
        .await
        .expect("push again");
    assert_eq!(queue.depth("default").await.expect("depth"), 2);
}

/// Pushes made at once travel together (one script call per queue): each still gets its
/// own answer, on its own queue, due now or later, a duplicate refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_made_at_once_on_redis_each_get_their_own_answer() {
    let (config, dir) = test_config(Stack::Production).await;
    let app = spawn_with(config, dir, Role::Api).await;
    let template = new_noop(&app, json!({})).await;
    let queue = &app.backends.queue;
    let tasks: Vec<(Task, Duration)> = (0..400)
        .map(|i| {
            let mut task = template.clone();
            task.envelope.task_id = engine::ids::TaskId::generate();
            task.queue = if i % 2 == 0 { "default" } else { "reports" }.to_owned();
            let delay = if i % 5 == 0 {
                Duration::from_secs(3600)
            } else {
                Duration::ZERO
            };
            (task, delay)
        })
        .collect();
    // The first 20 twice: in the same batch or the next, one of the two is refused.
    let pushes = tasks
        .iter()
        .chain(tasks.iter().take(20))
        .map(|(task, delay)| queue.push(task, *delay));
    let answers = futures::future::try_join_all(pushes).await.expect("pushes");
    let queued = answers.iter().filter(|a| **a == Pushed::Queued).count();
    assert_eq!(queued, 400, "{answers:?}");
    assert_eq!(answers.len() - queued, 20);
    for (i, (task, _)) in tasks.iter().take(20).enumerate() {
        assert_eq!(
            [answers[i], answers[400 + i]]
                .iter()
                .filter(|a| **a == Pushed::Queued)
                .count(),
            1,
            "{task:?}"
        );
    }
    // Delayed ones wait in the delayed set, the rest are ready; depth counts both.
    assert_eq!(queue.depth("default").await.expect("depth"), 200);
    assert_eq!(queue.depth("reports").await.expect("depth"), 200);
}

/// The outcome of an attempt cannot be written (the database failed at that moment):
/// the worker pushes the task again, and the next delivery finishes the job. Found by
/// `tests/faults/run.sh` during a Postgres restart, when the push was refused as a
/// duplicate of the delivery still in flight and the job stayed `running` for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outcome_the_database_refused_is_delivered_again() {
    let (config, dir) = test_config(Stack::Production).await;
    let app = spawn_with(config, dir, Role::All).await;
    let db = app.backends.store.db().clone();
    // Sequences are not transactional: the first success is refused, later ones pass.
    db.execute_unprepared(
        "CREATE SEQUENCE injected_failures; \
         CREATE FUNCTION refuse_first_success() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF NEW.status = 'succeeded' AND nextval('injected_failures') = 1 THEN \
             RAISE EXCEPTION 'injected: the outcome cannot be written'; \
           END IF; \
           RETURN NEW; \
         END $$; \
         CREATE TRIGGER refuse_first_success BEFORE UPDATE ON job_records \
           FOR EACH ROW EXECUTE FUNCTION refuse_first_success();",
    )
    .await
    .expect("fault trigger");
    let id = app.enqueue_noop(json!({})).await;
    let job = app.wait_for_status(&id, "succeeded", WITHIN).await;
    // The attempt whose outcome was refused wrote nothing (an attempt is written with
    // its outcome); the delivery that finished the job is its first recorded one.
    assert_eq!(job["attempts"], 1, "{job}");
    let fired = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT last_value FROM injected_failures",
        ))
        .await
        .expect("read the sequence")
        .expect("one row")
        .try_get::<i64>("", "last_value")
        .expect("last_value");
    assert_eq!(fired, 2, "the fault was injected once and the retry passed");
}

/// A job left `running` with nothing to run it (its worker could neither record the
/// outcome nor push the task again) is pushed again by the scheduler's sweep once it
/// has been running for longer than an attempt can take; a job running for a short
/// while is left alone.
async fn the_sweep_pushes_a_job_abandoned_while_running(stack: Stack) {
    // The whole system, so its scheduler sweeps (every second in tests) and its
    // workers run what the sweep pushes.
    let app = spawn_app(stack).await;
    let store = &app.backends.store;
    let abandoned = new_noop(&app, json!({})).await.envelope;
    let recent = new_noop(&app, json!({})).await.envelope;
    for envelope in [&abandoned, &recent] {
        let started = store.start_attempt(envelope, "a-worker-that-is-gone").await;
        let Start::Run { attempt, .. } = started.expect("start") else {
            panic!("a new job starts");
        };
        // Its worker marked it running (it ran long), then went away.
        assert!(store.mark_running(envelope, &attempt).await.expect("mark"));
    }
    // Longer ago than the attempt timeout (10 s) plus STUCK_AFTER_SECS (900 s).
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let db = store.db();
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Sqlite => "UPDATE job_records SET started_at = ? WHERE id = ?",
        _ => "UPDATE job_records SET started_at = $1 WHERE id = $2",
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [long_ago.into(), abandoned.job_id.to_string().into()],
    ))
    .await
    .expect("backdate the attempt");

    let job = app
        .wait_for_status(&abandoned.job_id.to_string(), "succeeded", WITHIN)
        .await;
    assert_eq!(job["attempts"], 2, "run again after the sweep: {job}");
    let left = app.job(&recent.job_id.to_string()).await;
    assert_eq!(
        left["status"], "running",
        "a recent attempt is not swept: {left}"
    );
}
on_both_stacks!(the_sweep_pushes_a_job_abandoned_while_running);

/// The environment a child `conveyor` process needs to join `config`'s system.
fn child_env(config: &Config) -> Vec<(&'static str, String)> {
    let d = &config.delivery;
    let mut env = vec![
        ("DATABASE_URL", config.backends.database_url.clone()),
        ("QUEUE_PREFIX", config.backends.queue_prefix.clone()),
        ("JOB_MAX_ATTEMPTS", d.max_attempts.to_string()),
        ("JOB_BACKOFF_BASE_MS", d.backoff_base_ms.to_string()),
        ("JOB_BACKOFF_MAX_MS", d.backoff_max_ms.to_string()),
        ("JOB_TIMEOUT_MS", d.timeout_ms.to_string()),
        ("WORKER_HEARTBEAT_MS", d.heartbeat_ms.to_string()),
        ("WORKER_MISSED_HEARTBEATS", d.missed_heartbeats.to_string()),
        ("QUEUE_POLL_MS", d.poll_ms.to_string()),
        ("WORKER_CONCURRENCY", "4".to_owned()),
        ("SHUTDOWN_GRACE_MS", "10000".to_owned()),
        ("JOB_ABORT_POLL_MS", config.worker.abort_poll_ms.to_string()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    if let Some(redis) = &config.backends.redis_url {
        env.push(("REDIS_URL", redis.clone()));
    }
    env
}

/// A `conveyor worker` child process, killed when dropped: a failing test must not
/// leave workers behind to load the machine for the tests after it.
struct WorkerProcess(Child);

impl std::ops::Deref for WorkerProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for WorkerProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl WorkerProcess {
    /// Sends SIGTERM and waits for the exit, which must come within the grace (10 s)
    /// and a margin; returns the exit status and how long it took.
    async fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let term = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(term.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no exit within the grace"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }
}

fn spawn_worker_process(config: &Config) -> WorkerProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_conveyor"))
        .arg("worker")
        .env_clear()
        .envs(child_env(config))
        .stdin(Stdio::null())
        // Its log (warnings only) goes to the test's output: it is what explains a
        // failure, since the test sees only the records and the exit status.
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn conveyor worker");
    WorkerProcess(child)
}

async fn wait_until_running(app: &TestApp, ids: &[String]) -> String {
    let deadline = Instant::now() + WITHIN;
    loop {
        for id in ids {
            if app.job(id).await["status"] == "running" {
                return id.clone();
            }
        }
        assert!(Instant::now() < deadline, "no job started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_worker_killed_mid_job_loses_nothing(stack: Stack) {
    let _one_at_a_time = WORKER_PROCESSES.lock().await;
    let (config, dir) = test_config(stack).await;
    // The api (and scheduler) here; the workers are real processes.
    let app = spawn_with(config.clone(), dir, Role::Api).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(app.enqueue_noop(json!({ "sleep_ms": 1_500 })).await);
    }
    let mut doomed = spawn_worker_process(&config);
    let running = wait_until_running(&app, &ids).await;
    doomed.kill().expect("SIGKILL the worker");
    doomed.wait().expect("reap");
    let held = app.job(&running).await;
    assert_eq!(held["status"], "running", "killed mid-job: {held}");

    let mut rescuer = spawn_worker_process(&config);
    for id in &ids {
        let job = app.wait_for_status(id, "succeeded", WITHIN).await;
        assert!(job["attempts"].as_i64().unwrap_or(0) >= 1);
    }
    let rescued = app.job(&running).await;
    assert!(
        rescued["attempts"].as_i64().unwrap_or(0) >= 2,
        "the killed attempt ran again elsewhere: {rescued}"
    );
    // The killed attempt is in the job's history, with its worker and start.
    let log = rescued["attempt_log"].as_array().expect("an attempt log");
    let killed = log
        .iter()
        .find(|a| a["attempt"] == held["attempts"])
        .unwrap_or_else(|| panic!("no entry for the killed attempt: {rescued}"));
    assert_eq!(killed["worker"], held["worker"], "{rescued}");
    assert_eq!(killed["started_at"], held["started_at"], "{rescued}");
    assert!(
        killed["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("abandoned")),
        "{rescued}"
    );
    rescuer.kill().ok();
    rescuer.wait().ok();
}
on_both_stacks!(a_worker_killed_mid_job_loses_nothing);

/// The api and the worker are separate processes on the production stack: the abort
/// reaches the worker through the database alone.
async fn a_worker_process_drops_the_attempts_the_api_aborted(stack: Stack) {
    let _one_at_a_time = WORKER_PROCESSES.lock().await;
    let (mut config, dir) = test_config(stack).await;
    config.delivery.timeout_ms = 3_600_000;
    config.worker.abort_poll_ms = 200;
    let app = spawn_with(config.clone(), dir, Role::Api).await;
    // As many sleepers as the child's slots (WORKER_CONCURRENCY=4), then one more job.
    let mut sleepers = Vec::new();
    for _ in 0..4 {
        sleepers.push(app.enqueue_noop(json!({ "sleep_ms": 600_000 })).await);
    }
    let mut worker = spawn_worker_process(&config);
    for id in &sleepers {
        app.wait_for_status(id, "running", WITHIN).await;
    }
    let next = app.enqueue_noop(json!({})).await;
    for id in &sleepers {
        let (status, body) = app.post(&format!("/jobs/{id}/abort"), &json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    app.wait_for_status(&next, "succeeded", WITHIN).await;
    // Each dropped attempt is logged by the worker process as it lets go of it.
    let deadline = Instant::now() + WITHIN;
    for id in &sleepers {
        loop {
            let job = app.job(id).await;
            assert_eq!(job["status"], "cancelled", "{job}");
            if job["attempt_log"][0]["error"] == engine::store::ABORTED {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the attempt was not logged: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(matches!(worker.try_wait(), Ok(None)), "the worker runs on");
    worker.kill().ok();
    worker.wait().ok();
}
on_both_stacks!(a_worker_process_drops_the_attempts_the_api_aborted);

async fn sigterm_lets_in_flight_jobs_finish_and_exits_0(stack: Stack) {
    let _one_at_a_time = WORKER_PROCESSES.lock().await;
    let (config, dir) = test_config(stack).await;
    let app = spawn_with(config.clone(), dir, Role::Api).await;
    let ids = vec![
        app.enqueue_noop(json!({ "sleep_ms": 1_500 })).await,
        app.enqueue_noop(json!({ "sleep_ms": 1_500 })).await,
    ];
    let mut child = spawn_worker_process(&config);
    let running = wait_until_running(&app, &ids).await;
    let (status, _) = child.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    let job = app.job(&running).await;
    assert_eq!(job["status"], "succeeded", "in-flight work finished: {job}");
    assert_eq!(job["attempts"], 1);
}
on_both_stacks!(sigterm_lets_in_flight_jobs_finish_and_exits_0);

/// The pid in a worker name (`host-pid-sequence-queue`; the host may hold dashes).
fn pid_of(worker: &str) -> u32 {
    let mut parts = worker.rsplitn(4, '-');
    let (_queue, _sequence) = (parts.next(), parts.next());
    parts
        .next()
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in worker name {worker}"))
}

/// A worker told to stop keeps heartbeating while its jobs finish, even when they run
/// past the orphan window (heartbeat 1 s × 2 missed here): the other worker does not
/// take them over, each job runs once, and the stopped worker exits 0.
async fn a_draining_worker_keeps_its_jobs_past_the_orphan_window(stack: Stack) {
    let _one_at_a_time = WORKER_PROCESSES.lock().await;
    let (config, dir) = test_config(stack).await;
    let app = spawn_with(config.clone(), dir, Role::Api).await;
    let mut workers = vec![spawn_worker_process(&config), spawn_worker_process(&config)];
    let ids = vec![
        app.enqueue_noop(json!({ "sleep_ms": 5_000 })).await,
        app.enqueue_noop(json!({ "sleep_ms": 5_000 })).await,
    ];
    let running = wait_until_running(&app, &ids).await;
    let held_by = pid_of(app.job(&running).await["worker"].as_str().expect("worker"));
    let index = workers
        .iter()
        .position(|w| w.id() == held_by)
        .expect("the job is held by one of the two workers");
    let mut stopping = workers.remove(index);
    let (status, took) = stopping.terminate().await;
    assert!(
        took > Duration::from_secs(2),
        "the drain outlasted the orphan window, or this test proves nothing"
    );
    assert!(status.success(), "exit status {status:?}");
    for id in &ids {
        let job = app.wait_for_status(id, "succeeded", WITHIN).await;
        assert_eq!(job["attempts"], 1, "ran once: {job}");
    }
    drop(workers);
}
on_both_stacks!(a_draining_worker_keeps_its_jobs_past_the_orphan_window);

/// A worker busy with jobs longer than the orphan window (heartbeat 1 s × 2 missed
/// here), with more of them fetched and waiting behind, still heartbeats: apalis beats
/// only from its poll loop, which waits while the worker is full. The other worker
/// must not take its jobs over: each runs once, and both pools stop cleanly.
async fn a_busy_worker_is_not_declared_dead(stack: Stack) {
    let (config, dir) = test_config(stack).await;
    let app = spawn_with(config, dir, Role::Api).await;
    let one_at_a_time = worker::WorkerConfig {
        concurrency: 1,
        ..worker::WorkerConfig::default()
    };
    let first = app.spawn_pool(one_at_a_time.clone());
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.enqueue_noop(json!({ "sleep_ms": 4_000 })).await);
    }
    let second = app.spawn_pool(one_at_a_time);
    for id in &ids {
        let job = app.wait_for_status(id, "succeeded", WITHIN).await;
        assert_eq!(job["attempts"], 1, "ran once: {job}");
    }
    first.stop().await.expect("the busy pool stops cleanly");
    second.stop().await.expect("the other pool stops cleanly");
}
on_both_stacks!(a_busy_worker_is_not_declared_dead);

/// apalis-redis 1.0.0 as shipped: with ~9 000 due tasks in its scheduled set, its
/// fetch script fails. This pins the upstream defect that `jobs::queue::redis` avoids;
/// if an upgrade fixes it, this test tells us.
#[tokio::test]
async fn upstream_apalis_redis_fetch_fails_on_a_large_due_backlog() {
    use apalis_core::task::builder::TaskBuilder;
    use apalis_core::worker::context::WorkerContext;
    let (config, _resources) = test_config(Stack::Production).await;
    let url = config
        .backends
        .redis_url
        .expect("the production stack has Redis");
    let mut conn = apalis_redis::connect(url).await.expect("redis");
    let queue = format!(
        "t{}-upstream",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let config = apalis_redis::Config::default().queue(&queue);
    let tasks: Vec<_> = (0..9_000u32)
        .map(|i| TaskBuilder::new(i.to_string().into_bytes()).build())
        .collect();
    for chunk in tasks.chunks(1_000) {
        apalis_redis::queries::push_tasks(&mut conn, &config, chunk)
            .await
            .expect("apalis push");
    }
    let worker = WorkerContext::new("upstream-probe");
    let _: () = redis::cmd("ZADD")
        .arg(config.workers_set())
        .arg(i64::MAX / 2)
        .arg(worker.name())
        .query_async(&mut conn)
        .await
        .expect("register");
    // Due by the next second at the latest.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fetched = apalis_redis::queries::fetch_next(&mut conn, &worker, &config).await;
    let err = fetched.expect_err("9 000 due tasks break apalis-redis 1.0.0's fetch");
    assert!(err.to_string().contains("unpack"), "{err}");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{queue}:*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    for chunk in keys.chunks(1_000) {
        let _: () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .expect("del");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_of_20_000_tasks_on_redis_drains_completely() {
    const N: usize = 20_000;
    let (config, dir) = test_config(Stack::Production).await;
    let api = spawn_with(config.clone(), dir, Role::Api).await;
    // The backlog builds while no worker runs.
    let store = api.backends.store.clone();
    let queue = api.backends.queue.clone();
    let pushed = futures::stream::iter(0..N)
        .map(|_| {
            let store = store.clone();
            let queue = queue.clone();
            async move {
                let job = NewJob::of::<Noop>(&Default::default(), 3).expect("encodable");
                let Created::New(job) = store.create(job).await.expect("create") else {
                    panic!("new job");
                };
                queue
                    .push(&Task::of(&job), Duration::ZERO)
                    .await
                    .expect("push");
            }
        })
        .buffer_unordered(32)
        .count()
        .await;
    assert_eq!(pushed, N);
    assert_eq!(queue.depth("default").await.expect("depth"), N as u64);

    let mut worker_config = config.clone();
    worker_config.worker.concurrency = 64;
    let executor = api.executor();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(worker::run(
        queue.clone(),
        executor,
        worker_config.worker,
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let counts = store.queue_counts().await.expect("counts");
        let succeeded: u64 = counts
            .iter()
            .filter(|c| c.status == JobStatus::Succeeded)
            .map(|c| c.count)
            .sum();
        if succeeded == N as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backlog did not drain: {counts:?}; workers ended: {}",
            workers.is_finished()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(queue.depth("default").await.expect("depth"), 0);
    let _ = stop.send(());
    workers.await.expect("join").expect("workers stop cleanly");
    assert_eq!(queue.vacuum("default").await.expect("vacuum"), N as u64);
}
