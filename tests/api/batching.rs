//! Group commit of job records answers every caller as if its write had been made
//! alone, on both databases.

use std::time::Duration;

use conveyor::Role;
use engine::store::{AttemptRun, Created, JobStore, Start, StoreError, Success};
use engine::{Envelope, Job, JobStatus, NewJob, Task, TaskId};
use features::system::Noop;
use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, spawn_with, test_config};
use crate::on_both_stacks;

fn noop() -> NewJob {
    NewJob::of::<Noop>(&Default::default(), 3).expect("encodable")
}

/// Records a success of `attempt` of `envelope`'s `system.noop` job.
async fn succeed(
    store: &JobStore,
    envelope: &Envelope,
    attempt: &AttemptRun,
    result: Value,
    elapsed: Duration,
) -> Result<bool, StoreError> {
    let success = Success {
        job_id: envelope.job_id,
        task_id: envelope.task_id,
        attempt: attempt.clone(),
        result,
        elapsed,
        effect: (),
    };
    store.succeed(Noop::KIND.name, success).await
}

/// The attempt a start hands out, or `None` for a skip.
fn attempt_of(start: &Start) -> Option<&AttemptRun> {
    match start {
        Start::Run { attempt, .. } => Some(attempt),
        Start::Skip => None,
    }
}

async fn api_only(stack: Stack) -> TestApp {
    let (config, resources) = test_config(stack).await;
    spawn_with(config, resources, Role::Api).await
}

async fn many_concurrent_writes_each_get_their_own_answer(stack: Stack) {
    let app = api_only(stack).await;
    let store = &app.backends.store;
    let created = join_all((0..600).map(|_| store.create(noop()))).await;
    let mut envelopes = Vec::new();
    for created in created {
        let Created::New(record) = created.expect("create") else {
            panic!("no key, so new");
        };
        // What create hands back is what the database holds.
        let stored = store.get(record.id).await.expect("get").expect("stored");
        assert_eq!(stored, record);
        envelopes.push(Task::of(&record).envelope);
    }
    let mut ids: Vec<_> = envelopes.iter().map(|e| e.job_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 600);

    let started = join_all(envelopes.iter().map(|e| store.start_attempt(e, "w"))).await;
    let mut attempts = Vec::new();
    for (envelope, started) in envelopes.iter().zip(started) {
        let Start::Run { record, attempt } = started.expect("start") else {
            panic!("{} was not started", envelope.job_id);
        };
        // Starting reads the record and writes nothing.
        assert_eq!(record.id, envelope.job_id);
        assert_eq!((record.status, record.attempts), (JobStatus::Queued, 0));
        assert_eq!((attempt.number, attempt.worker.as_str()), (1, "w"));
        attempts.push(attempt);
    }
    let finished = join_all(envelopes.iter().zip(&attempts).enumerate().map(
        |(i, (e, attempt))| {
            succeed(
                store,
                e,
                attempt,
                json!({ "i": i }),
                Duration::from_millis(3),
            )
        },
    ))
    .await;
    assert!(finished.into_iter().all(|f| f.expect("succeed")));
    for (i, (envelope, attempt)) in envelopes.iter().zip(&attempts).enumerate().step_by(97) {
        let record = store.get(envelope.job_id).await.expect("get").expect("row");
        assert_eq!(record.status, JobStatus::Succeeded);
        assert_eq!(record.result, Some(json!({ "i": i })));
        assert_eq!(record.elapsed_ms, Some(3));
        // The success wrote the attempt too.
        assert_eq!(record.attempts, 1);
        assert_eq!(record.worker.as_deref(), Some("w"));
        assert_eq!(record.started_at, Some(attempt.started_at));
    }
    // Finishing again applies nothing, however many at once.
    let again = join_all(
        envelopes
            .iter()
            .zip(&attempts)
            .map(|(e, attempt)| succeed(store, e, attempt, json!({}), Duration::ZERO)),
    )
    .await;
    assert!(again.into_iter().all(|f| !f.expect("succeed")));
    let counts = store.queue_counts().await.expect("counts");
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(
        (counts[0].status, counts[0].count),
        (JobStatus::Succeeded, 600)
    );
}
on_both_stacks!(many_concurrent_writes_each_get_their_own_answer);

async fn duplicates_and_stale_tasks_in_one_flight_finish_the_job_once(stack: Stack) {
    let app = api_only(stack).await;
    let store = &app.backends.store;
    let Created::New(record) = store.create(noop()).await.expect("create") else {
        panic!("new");
    };
    let current = Task::of(&record).envelope;
    let stale = Envelope {
        task_id: TaskId::generate(),
        ..current.clone()
    };
    // Filler writes so that these land in shared batches.
    let others = join_all((0..50).map(|_| store.create(noop()))).await;
    let others: Vec<Envelope> = others
        .into_iter()
        .map(|c| match c.expect("create") {
            Created::New(r) | Created::Existing(r) | Created::Conflict(r) => Task::of(&r).envelope,
        })
        .collect();
    let mut claims = vec![
        store.start_attempt(&stale, "stale"),
        store.start_attempt(&current, "a"),
        store.start_attempt(&current, "b"),
        store.start_attempt(&stale, "stale"),
    ];
    claims.extend(others.iter().map(|e| store.start_attempt(e, "filler")));
    let claims: Vec<Start> = join_all(claims)
        .await
        .into_iter()
        .map(|c| c.expect("start"))
        .collect();
    assert!(
        attempt_of(&claims[0]).is_none() && attempt_of(&claims[3]).is_none(),
        "a stale task never runs: {claims:?}"
    );
    // Both deliveries of the current task run (as after a worker was presumed dead):
    // the record decides which of them finishes the job.
    let (Some(a), Some(b)) = (attempt_of(&claims[1]), attempt_of(&claims[2])) else {
        panic!("both deliveries of the current task start: {claims:?}");
    };
    assert!(claims[4..].iter().all(|c| attempt_of(c).is_some()));
    let job = store.get(record.id).await.expect("get").expect("row");
    assert_eq!(job.status, JobStatus::Queued, "starting writes nothing");

    // Two successes of the current task and one of the stale: exactly one applies.
    let stale_attempt = AttemptRun {
        worker: "stale".into(),
        ..a.clone()
    };
    let (x, y, z) = tokio::join!(
        succeed(store, &current, a, json!(1), Duration::ZERO),
        succeed(store, &current, b, json!(2), Duration::ZERO),
        succeed(store, &stale, &stale_attempt, json!(3), Duration::ZERO),
    );
    let (x, y, z) = (x.expect("x"), y.expect("y"), z.expect("z"));
    assert!(x ^ y, "exactly one success applies: {x} {y}");
    assert!(!z, "a stale task cannot finish the job");
    let job = store.get(record.id).await.expect("get").expect("row");
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.result, Some(if x { json!(1) } else { json!(2) }));
    assert_eq!(job.worker.as_deref(), Some(if x { "a" } else { "b" }));
}
on_both_stacks!(duplicates_and_stale_tasks_in_one_flight_finish_the_job_once);

/// The plan Postgres makes for `statement` on `db`, one line per plan node.
async fn explain(db: &impl sea_orm::ConnectionTrait, statement: sea_orm::Statement) -> String {
    let explained = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        format!("EXPLAIN {}", statement.sql),
        statement.values.map(|v| v.0).unwrap_or_default(),
    );
    db.query_all_raw(explained)
        .await
        .expect("explain")
        .iter()
        .map(|row| row.try_get::<String>("", "QUERY PLAN").expect("plan line"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The batched read and success are planned from the primary key, whatever the
/// statistics say and however small the table was when a connection first ran them.
/// Before, Postgres read every `queued` row by the status index, or the whole table,
/// and hash-joined the batch against them: each batch cost the whole backlog.
/// - A prepared statement run five times may switch to a cached generic plan, sized
///   by the table as it was then: our connections never do (`generic_plans` stays 0).
/// - Each plan, made on a backlog never analysed, starts from the primary key.
#[tokio::test]
async fn batched_statements_are_planned_from_the_primary_key_on_a_backlog() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

    let app = api_only(Stack::Production).await;
    let store = &app.backends.store;
    let [read, succeed] = engine::store::batched_statements(DbBackend::Postgres);
    let text = |s: &str| sea_orm::Value::from(vec![s.to_owned()]);
    let statements: [(String, Vec<sea_orm::Value>); 2] = [
        (read.to_owned(), vec![text("x")]),
        (
            succeed.to_owned(),
            vec![
                text("x"),
                text("x"),
                text("null"),
                vec![1_i64].into(),
                vec![1_i32].into(),
                text("w"),
                vec![chrono::Utc::now()].into(),
                chrono::Utc::now().into(),
            ],
        ),
    ];
    let run = |sql: String, values: &[sea_orm::Value]| {
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values.to_vec())
    };
    // One connection throughout: plans are cached per connection.
    let early = store.db().begin().await.expect("begin");
    for (sql, values) in &statements {
        for _ in 0..8 {
            early
                .query_all_raw(run(sql.clone(), values))
                .await
                .expect("run");
        }
    }
    let cached = early
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
             WHERE statement IN ($1, $2)",
            [read.into(), succeed.into()],
        ))
        .await
        .expect("pg_prepared_statements");
    assert_eq!(cached.len(), 2, "both statements prepared");
    for row in &cached {
        let generic: i64 = row.try_get("", "generic_plans").expect("generic_plans");
        let custom: i64 = row.try_get("", "custom_plans").expect("custom_plans");
        assert_eq!((generic, custom), (0, 8), "planned afresh every time");
    }

    // A backlog, and no ANALYZE: what a fresh database under load looks like.
    for created in join_all((0..5_000).map(|_| store.create(noop()))).await {
        created.expect("create");
    }
    for (sql, values) in &statements {
        let plan = explain(&early, run(sql.clone(), values)).await;
        assert!(
            plan.contains("job_records_pkey")
                && !plan.contains("job_records_status_id")
                && !plan.contains("Seq Scan on job_records"),
            "{plan}"
        );
    }
    early.rollback().await.expect("rollback");
}

/// The reads that look for a status other than `succeeded` (an operator's list, the
/// stuck-job sweep) are planned from the `(status, id)` index, which on Postgres holds
/// no `succeeded` record; a list of `succeeded` ones walks the primary key. The table
/// is what production looks like: nearly every record succeeded, a few queued and
/// dead, and no ANALYZE.
#[tokio::test]
async fn status_reads_are_planned_from_the_index_of_the_records_not_succeeded() {
    use engine::store::JobFilter;
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    let app = api_only(Stack::Production).await;
    let store = &app.backends.store;
    for created in join_all((0..5_000).map(|_| store.create(noop()))).await {
        created.expect("create");
    }
    store
        .db()
        .execute_unprepared("UPDATE job_records SET status = 'succeeded'")
        .await
        .expect("succeed them all");
    for created in join_all((0..3).map(|_| store.create(noop()))).await {
        created.expect("create");
    }
    let predicates = store
        .db()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN \
             ('job_records_status_id', 'job_records_queue_status')",
        ))
        .await
        .expect("pg_indexes");
    assert_eq!(predicates.len(), 2);
    for row in &predicates {
        let def: String = row.try_get("", "indexdef").expect("indexdef");
        assert!(
            def.ends_with("WHERE ((status)::text <> 'succeeded'::text)"),
            "{def}"
        );
    }

    let minute = Duration::from_secs(60);
    let stuck = explain(
        store.db(),
        JobStore::stuck_statement(DbBackend::Postgres, minute, minute, 100),
    )
    .await;
    assert!(
        stuck.contains("job_records_status_id") && !stuck.contains("Seq Scan on job_records"),
        "{stuck}"
    );
    for status in [JobStatus::Queued, JobStatus::Dead, JobStatus::Succeeded] {
        let list = JobStore::list_statement(
            DbBackend::Postgres,
            &JobFilter {
                status: Some(status),
                limit: 50,
                ..JobFilter::default()
            },
        );
        let list = explain(store.db(), list).await;
        let expected = match status {
            JobStatus::Succeeded => "job_records_pkey",
            _ => "job_records_status_id",
        };
        assert!(
            list.contains(expected) && !list.contains("Seq Scan on job_records"),
            "{status:?}: {list}"
        );
    }
}
