//! A job's first task carries the job's arguments (when small), and its worker runs
//! the first attempt from the task without reading the record (`JobStore::presume`).
//! Each way the record can have moved on since its submission (cancelled, finished,
//! left `running` by a killed worker) writes nothing from that attempt, and the job is
//! then decided as a read at the start would have decided it.

use conveyor::Role;
use std::time::Duration;

use engine::store::{Created, Failure, Start};
use engine::{JobStatus, JobStore, NewJob, Task};
use features::system::Noop;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use worker::executor::Outcome;

use crate::helpers::{Stack, TestApp, spawn_with, stored, test_config};
use crate::on_both_stacks;

/// An api (no workers of its own) on `stack`.
async fn api(stack: Stack) -> TestApp {
    let (config, dir) = test_config(stack).await;
    spawn_with(config, dir, Role::Api).await
}

/// A new `system.noop` job with `args` (3 attempts), and the first task `store` makes
/// for it (not pushed).
async fn first_task(store: &JobStore, args: serde_json::Value) -> Task {
    let args = serde_json::from_value(args).expect("noop arguments");
    let job = NewJob::of::<Noop>(&args, 3).expect("encodable");
    let Created::New(job) = store.create(job).await.expect("create") else {
        panic!("no idempotency key, so the job is new");
    };
    store.first_task(&job)
}

async fn a_first_task_carries_its_arguments_when_they_are_small(stack: Stack) {
    let app = api(stack).await;
    let store = &app.backends.store;
    let task = first_task(store, json!({ "sleep_ms": 1 })).await;
    assert_eq!(
        task.envelope.args,
        Some(json!({ "sleep_ms": 1, "fail_times": 0 }))
    );
    assert!(store.presume(&task.envelope, "w").is_some());
    let record = stored(store, task.envelope.job_id).await;
    // A task made from the record later (a retry, a sweep) does not: its job has moved on.
    assert_eq!(Task::of(&record).envelope.args, None);

    // Above the bound, or with the bound at 0, the record alone holds the arguments.
    for bound in [16, 0] {
        let backends = engine::config::BackendConfig {
            task_inline_args_max_bytes: bound,
            ..Default::default()
        };
        let bounded = JobStore::new(store.db().clone(), &backends);
        let task = first_task(&bounded, json!({ "sleep_ms": 1 })).await;
        assert_eq!(task.envelope.args, None, "bound {bound}");
        assert!(bounded.presume(&task.envelope, "w").is_none());
    }
}
on_both_stacks!(a_first_task_carries_its_arguments_when_they_are_small);

async fn the_first_attempt_runs_from_its_task_without_reading_the_record(stack: Stack) {
    let app = api(stack).await;
    let store = &app.backends.store;
    let executor = app.executor();
    // Quick, and past the running mark (its own mark is no obstacle to its success).
    for sleep_ms in [0, 400] {
        let task = first_task(store, json!({ "sleep_ms": sleep_ms })).await;
        // The record's arguments now say "fail": a read would make the attempt fail.
        let db = store.db();
        let sql = format!(
            "UPDATE job_records SET args = '{{\"fail_times\": 3}}' WHERE id = '{}'",
            task.envelope.job_id
        );
        db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("rewrite the stored arguments");

        let outcome = executor.execute(task.clone(), "w").await;
        assert_eq!(outcome, Outcome::Succeeded, "sleep {sleep_ms}");
        let job = stored(store, task.envelope.job_id).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.attempts, 1);
        assert_eq!(job.worker.as_deref(), Some("w"));
        assert_eq!(job.result, Some(json!({ "attempt": 1 })));
        assert!(job.attempt_log.is_empty(), "{:?}", job.attempt_log);

        // A late duplicate runs in vain and records nothing.
        assert_eq!(
            executor.execute(task.clone(), "late").await,
            Outcome::Skipped
        );
        assert_eq!(stored(store, task.envelope.job_id).await, job);
    }
}
on_both_stacks!(the_first_attempt_runs_from_its_task_without_reading_the_record);

async fn a_first_task_delivered_twice_at_once_finishes_its_job_once(stack: Stack) {
    let app = api(stack).await;
    let store = &app.backends.store;
    let executor = app.executor();
    // Both run at once, and end before the running mark.
    let task = first_task(store, json!({ "sleep_ms": 100 })).await;
    let (a, b) = tokio::join!(
        executor.execute(task.clone(), "worker-a"),
        executor.execute(task.clone(), "worker-b"),
    );
    let mut outcomes = [a, b];
    outcomes.sort_by_key(|o| o.label());
    assert_eq!(outcomes, [Outcome::Skipped, Outcome::Succeeded]);
    let job = stored(store, task.envelope.job_id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1));
    assert!(job.attempt_log.is_empty(), "{:?}", job.attempt_log);
}
on_both_stacks!(a_first_task_delivered_twice_at_once_finishes_its_job_once);

async fn a_job_cancelled_before_its_first_task_ran_stays_cancelled(stack: Stack) {
    let app = api(stack).await;
    let store = &app.backends.store;
    let task = first_task(store, json!({})).await;
    store.cancel(task.envelope.job_id).await.expect("cancel");
    let outcome = app.executor().execute(task.clone(), "w").await;
    assert_eq!(outcome, Outcome::Skipped);
    let job = stored(store, task.envelope.job_id).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.attempts, 0);
    assert_eq!(job.result, None);
    assert_eq!(job.worker, None);
}
on_both_stacks!(a_job_cancelled_before_its_first_task_ran_stays_cancelled);

/// The first task redelivered after its worker was killed mid-attempt: the job says
/// `running` under that attempt. The presumed attempt may neither mark it nor record
/// an outcome over it (a success or a failure); the job is read, the killed attempt
/// logged, and the job run again as attempt 2.
async fn a_first_task_redelivered_after_a_kill_logs_the_killed_attempt(stack: Stack) {
    let app = api(stack).await;
    let store = &app.backends.store;
    let executor = app.executor();
    // Past the running mark; and failing its presumed attempt (the first).
    for args in [json!({ "sleep_ms": 400 }), json!({ "fail_times": 1 })] {
        let task = first_task(store, args.clone()).await;
        let envelope = &task.envelope;
        let Start::Run { attempt, .. } = store
            .start_attempt(envelope, "killed")
            .await
            .expect("start")
        else {
            panic!("the first delivery starts");
        };
        assert!(store.mark_running(envelope, &attempt).await.expect("mark"));

        let outcome = executor.execute(task.clone(), "rescuer").await;
        assert_eq!(outcome, Outcome::Succeeded, "{args}");
        let job = stored(store, envelope.job_id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{args}");
        assert_eq!(job.attempts, 2, "{args}");
        assert_eq!(job.worker.as_deref(), Some("rescuer"));
        assert_eq!(job.attempt_log.len(), 1, "{:?}", job.attempt_log);
        let killed = &job.attempt_log[0];
        assert_eq!((killed.attempt, killed.worker.as_str()), (1, "killed"));
        assert_eq!(killed.started_at, attempt.started_at);
        assert_eq!(killed.error, engine::store::ABANDONED);
    }
}
on_both_stacks!(a_first_task_redelivered_after_a_kill_logs_the_killed_attempt);

async fn a_failed_first_attempt_is_logged_and_retried(stack: Stack) {
    let app = api(stack).await;
    let store = &app.backends.store;
    let executor = app.executor();
    let task = first_task(store, json!({ "fail_times": 1 })).await;
    let outcome = executor.execute(task.clone(), "w").await;
    assert!(matches!(outcome, Outcome::Retrying(_)), "{outcome:?}");
    let job = stored(store, task.envelope.job_id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.attempt_log.len(), 1, "{:?}", job.attempt_log);
    assert_eq!(job.attempt_log[0].worker, "w");
    assert!(job.attempt_log[0].error.starts_with("failing on purpose"));
    assert_ne!(
        job.task_id, task.envelope.task_id,
        "the retry has a task of its own"
    );

    // The retry's task carries no arguments: it reads the record, and runs attempt 2.
    let task = first_task(store, json!({ "fail_times": 1 })).await;
    let attempt = store.presume(&task.envelope, "w").expect("presumed");
    let record = store.confirm(&task.envelope, &attempt).await.expect("read");
    let record = record.expect("the first attempt owns its job");
    let failure = store
        .fail(
            &task.envelope,
            &record,
            &attempt,
            "boom",
            Duration::ZERO,
            |_| Duration::ZERO,
        )
        .await
        .expect("fail");
    let Failure::Retry { task: retry, .. } = failure else {
        panic!("1 of 3 attempts made: {failure:?}");
    };
    assert_eq!(retry.envelope.args, None);
    assert!(store.presume(&retry.envelope, "w2").is_none());
    assert_eq!(executor.execute(retry, "w2").await, Outcome::Succeeded);
    let job = stored(store, task.envelope.job_id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 2));
    assert_eq!(job.attempt_log.len(), 1);
}
on_both_stacks!(a_failed_first_attempt_is_logged_and_retried);
