//! A job's life through the api: queued → running → succeeded; retries, dead, manual
//! retry; cancel; listing; queues; idempotency.

use std::time::Duration;

use serde_json::json;

use engine::store::{AttemptRun, Success};

use crate::helpers::{Stack, new_noop, spawn_app, test_config};
use crate::on_both_stacks;

const WITHIN: Duration = Duration::from_secs(20);

async fn a_job_goes_from_queued_to_succeeded(stack: Stack) {
    let app = spawn_app(stack).await;
    let id = app.enqueue_noop(json!({})).await;
    let job = app.wait_for_status(&id, "succeeded", WITHIN).await;
    assert!(
        job.get("attempt_log").is_none(),
        "no failure, no log: {job}"
    );
    assert_eq!(job["kind"], "system.noop");
    assert_eq!(job["queue"], "default");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["result"], json!({ "attempt": 1 }));
    assert!(
        job["worker"]
            .as_str()
            .unwrap_or("")
            .contains(&std::process::id().to_string())
    );
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());
    assert!(job["elapsed_ms"].is_i64());
    app.stop().await.expect("every role stops cleanly");
}
on_both_stacks!(a_job_goes_from_queued_to_succeeded);

async fn a_failing_job_retries_then_dies_and_can_be_retried_by_hand(stack: Stack) {
    let app = spawn_app(stack).await;
    // max_attempts is 3 in tests: fail 3 times → dead.
    let id = app.enqueue_noop(json!({ "fail_times": 3 })).await;
    let dead = app.wait_for_status(&id, "dead", WITHIN).await;
    assert_eq!(dead["attempts"], 3);
    assert_eq!(
        dead["error"],
        "failing on purpose: attempt 3 of the first 3 fails"
    );
    assert!(dead["finished_at"].is_string());

    // By hand: a fresh budget of 3 attempts; the 4th attempt overall succeeds.
    let (status, body) = app.post(&format!("/jobs/{id}/retry"), &json!({})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["max_attempts"], 6);
    let done = app.wait_for_status(&id, "succeeded", WITHIN).await;
    assert_eq!(done["attempts"], 4);
    assert_eq!(done["error"], serde_json::Value::Null);

    // Every failed attempt is kept, oldest first; the 4th is the record's own fields.
    let log = done["attempt_log"].as_array().expect("an attempt log");
    assert_eq!(log.len(), 3, "{done}");
    for (i, attempt) in log.iter().enumerate() {
        let number = i + 1;
        assert_eq!(attempt["attempt"], number, "{attempt}");
        assert_eq!(
            attempt["error"],
            format!("failing on purpose: attempt {number} of the first 3 fails")
        );
        assert!(attempt["worker"].as_str().is_some_and(|w| !w.is_empty()));
        let started = attempt["started_at"].as_str().expect("started_at");
        let finished = attempt["finished_at"].as_str().expect("finished_at");
        let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).expect("a time");
        assert!(parse(started) <= parse(finished), "{attempt}");
    }
    // A list leaves it out.
    let (_, page) = app.get("/jobs?kind=system.noop").await;
    assert!(page["jobs"][0].get("attempt_log").is_none(), "{page}");

    let (status, body) = app.post(&format!("/jobs/{id}/retry"), &json!({})).await;
    assert_eq!(status, 409, "a succeeded job cannot be retried: {body}");
    assert_eq!(body["error"], "conflict");
}
on_both_stacks!(a_failing_job_retries_then_dies_and_can_be_retried_by_hand);

async fn a_retry_waits_out_its_backoff(stack: Stack) {
    let (mut config, dir) = test_config(stack).await;
    config.delivery.backoff_base_ms = 1_500;
    config.delivery.backoff_max_ms = 1_500;
    let app = crate::helpers::spawn_with(config, dir, conveyor::Role::All).await;
    let id = app.enqueue_noop(json!({ "fail_times": 1 })).await;
    let failed = app.wait_for_status(&id, "failed", WITHIN).await;
    assert_eq!(failed["attempts"], 1);
    let failed_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(failed["started_at"].clone()).expect("started_at");
    let due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(failed["run_at"].clone()).expect("a retry has a due time");
    assert!(
        due - failed_at >= chrono::Duration::milliseconds(1_400),
        "{failed}"
    );
    let done = app.wait_for_status(&id, "succeeded", WITHIN).await;
    assert_eq!(done["attempts"], 2);
    let started: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(done["started_at"].clone()).expect("started_at");
    assert!(
        started >= due - chrono::Duration::milliseconds(5),
        "ran early: {done}"
    );
}
on_both_stacks!(a_retry_waits_out_its_backoff);

async fn an_attempt_over_its_timeout_counts_as_a_failure(stack: Stack) {
    let (mut config, dir) = test_config(stack).await;
    config.delivery.timeout_ms = 100;
    config.delivery.max_attempts = 1;
    let app = crate::helpers::spawn_with(config, dir, conveyor::Role::All).await;
    let id = app.enqueue_noop(json!({ "sleep_ms": 5_000 })).await;
    let dead = app.wait_for_status(&id, "dead", WITHIN).await;
    assert_eq!(dead["error"], "timed out after 100 ms");
}
on_both_stacks!(an_attempt_over_its_timeout_counts_as_a_failure);

async fn unknown_jobs_answer_404(stack: Stack) {
    let app = spawn_app(stack).await;
    let (status, body) = app.get("/jobs/01J00000000000000000000000").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    let (status, _) = app.delete("/jobs/nope").await;
    assert_eq!(status, 404);
    let (status, _) = app.post("/jobs/nope/retry", &json!({})).await;
    assert_eq!(status, 404);
}
on_both_stacks!(unknown_jobs_answer_404);

#[tokio::test]
async fn a_queued_job_can_be_cancelled_and_never_runs() {
    // Api only: no worker takes the job before we cancel it.
    let (config, dir) = test_config(Stack::Embedded).await;
    let api_only = crate::helpers::spawn_with(config.clone(), dir, conveyor::Role::Api).await;
    let id = api_only.enqueue_noop(json!({})).await;
    let (status, body) = api_only.delete(&format!("/jobs/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    let (status, body) = api_only.delete(&format!("/jobs/{id}")).await;
    assert_eq!(status, 409, "{body}");

    // Now a worker comes: the cancelled job's task is skipped.
    let executor = api_only.executor();
    let record = api_only
        .backends
        .store
        .get(id.parse().expect("a job id"))
        .await
        .expect("db")
        .expect("job");
    assert_eq!(
        executor
            .execute(engine::Task::of(&record), "test-worker")
            .await,
        worker::executor::Outcome::Skipped
    );
    assert_eq!(api_only.job(&id).await["status"], "cancelled");
}

/// Found by schemathesis: optional fields were sent as `null`, which their schema (a
/// string, an integer, …, not nullable) does not allow. Absent is what it documents.
#[tokio::test]
async fn a_job_record_leaves_out_the_fields_it_has_no_value_for() {
    // Api only: the job stays queued, so it has no attempt, worker, result or error.
    let (config, dir) = test_config(Stack::Embedded).await;
    let api_only = crate::helpers::spawn_with(config, dir, conveyor::Role::Api).await;
    let id = api_only.enqueue_noop(json!({})).await;
    let job = api_only.job(&id).await;
    let fields = job.as_object().expect("a JSON object");
    for absent in [
        "result",
        "error",
        "worker",
        "started_at",
        "finished_at",
        "elapsed_ms",
        "run_at",
    ] {
        assert!(!fields.contains_key(absent), "{absent} is sent: {job}");
    }
    assert!(fields.values().all(|v| !v.is_null()), "{job}");

    let (status, page) = api_only.get("/jobs").await;
    assert_eq!(status, 200, "{page}");
    let page_fields = page.as_object().expect("a JSON object");
    assert!(
        !page_fields.contains_key("next_before"),
        "last page: {page}"
    );
    assert_eq!(page["jobs"], json!([job]));
}

#[tokio::test]
async fn a_running_job_cannot_be_cancelled() {
    let app = spawn_app(Stack::Embedded).await;
    let id = app.enqueue_noop(json!({ "sleep_ms": 2_000 })).await;
    app.wait_for_status(&id, "running", WITHIN).await;
    let (status, body) = app.delete(&format!("/jobs/{id}")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("running"));
}

/// Found by schemathesis on Postgres + Redis: a NUL character in an id or a filter was
/// a 503 ("database unavailable"), since Postgres text cannot hold it.
async fn ids_and_filters_with_nul_are_answered_not_failed(stack: Stack) {
    let app = spawn_app(stack).await;
    let (status, body) = app.get("/jobs/01J0000000000000000000000%00").await;
    assert_eq!(
        (status, &body["error"]),
        (404, &json!("not_found")),
        "{body}"
    );
    let (status, body) = app.delete("/jobs/a%00b").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.post("/jobs/a%00b/retry", &json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.get("/jobs?kind=system.noop%00").await;
    assert_eq!((status, &body["jobs"]), (200, &json!([])), "{body}");
    let (status, body) = app.get("/jobs?before=01J%00").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "before must be a job id (a 26-character ULID), as next_before hands out"
    );
}
on_both_stacks!(ids_and_filters_with_nul_are_answered_not_failed);

async fn jobs_are_listed_newest_first_with_keyset_pages(stack: Stack) {
    let app = spawn_app(stack).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.enqueue_noop(json!({})).await);
    }
    for id in &ids {
        app.wait_for_status(id, "succeeded", WITHIN).await;
    }
    let (status, page) = app.get("/jobs?limit=2&kind=system.noop").await;
    assert_eq!(status, 200, "{page}");
    let first: Vec<_> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(first, [json!(ids[4]), json!(ids[3])]);
    let before = page["next_before"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, page) = app.get(&format!("/jobs?limit=2&before={before}")).await;
    let second: Vec<_> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(second, [json!(ids[2]), json!(ids[1])]);

    let (_, page) = app.get("/jobs?status=succeeded&limit=500").await;
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(5));
    assert_eq!(page["next_before"], serde_json::Value::Null);
    let (_, page) = app.get("/jobs?status=dead").await;
    assert_eq!(page["jobs"], json!([]));

    let (status, body) = app.get("/jobs?limit=0").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.get("/jobs?limit=501").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.get("/jobs?status=exploded").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "bad_request");
}
on_both_stacks!(jobs_are_listed_newest_first_with_keyset_pages);

async fn a_list_leaves_out_large_values_and_cuts_long_errors(stack: Stack) {
    let app = spawn_app(stack).await;
    // Large arguments: a batch of 60 reports.
    let reports: Vec<_> = (0..60)
        .map(|i| {
            json!({
                "server_name": format!("server-{i:03}"),
                "start_time": "2021-05-17T10:00:00Z",
                "end_time": "2021-05-17T10:11:00Z",
            })
        })
        .collect();
    let (status, body) = app.post("/process_reports", &json!(reports)).await;
    assert_eq!(status, 202, "{body}");
    let batch = body["job_id"].as_str().expect("job_id").to_owned();
    let small = app.enqueue_noop(json!({})).await;
    for id in [&batch, &small] {
        app.wait_for_status(id, "succeeded", WITHIN).await;
    }
    // No kind returns a large result or error on demand: two jobs are finished through
    // the store, one with 5 000 characters of result, one buried with 5 000 characters
    // of error. Their tasks are not pushed, so that no worker races the test for them.
    let store = &app.backends.store;
    let big_task = new_noop(&app, json!({ "sleep_ms": 60_000 })).await;
    let big = big_task.envelope.job_id.to_string();
    let success = Success {
        job_id: big_task.envelope.job_id,
        task_id: big_task.envelope.task_id,
        attempt: AttemptRun {
            number: 1,
            worker: "test".to_owned(),
            started_at: chrono::Utc::now(),
        },
        result: json!({ "text": "r".repeat(5_000) }),
        elapsed: Duration::ZERO,
        effect: (),
    };
    assert!(
        store
            .succeed("system.noop", success)
            .await
            .expect("succeed")
    );
    let long_task = new_noop(&app, json!({ "sleep_ms": 60_000 })).await;
    let long = long_task.envelope.job_id.to_string();
    assert!(
        store
            .bury(&long_task.envelope, &"e".repeat(5_000))
            .await
            .expect("bury")
    );

    let (status, page) = app.get("/jobs?limit=10").await;
    assert_eq!(status, 200, "{page}");
    let listed = |id: &str| {
        page["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .find(|j| j["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {page}"))
            .clone()
    };
    let batch_listed = listed(&batch);
    assert_eq!(batch_listed["omitted"], json!(["args"]), "{batch_listed}");
    assert_eq!(batch_listed["args"], json!(null));
    let big_listed = listed(&big);
    assert_eq!(big_listed["omitted"], json!(["result"]), "{big_listed}");
    assert!(big_listed.get("result").is_none(), "{big_listed}");
    assert_eq!(big_listed["args"]["sleep_ms"], 60_000);
    let small_listed = listed(&small);
    assert!(small_listed.get("omitted").is_none(), "{small_listed}");
    assert_eq!(
        small_listed["args"],
        json!({ "sleep_ms": 0, "fail_times": 0 })
    );
    assert_eq!(small_listed["result"], json!({ "attempt": 1 }));
    let error = listed(&long)["error"].as_str().expect("error").to_owned();
    assert_eq!(error.chars().count(), 1_025, "cut to 1 024 and …");
    assert!(error.ends_with('…'));

    // The records themselves keep everything.
    assert_eq!(
        app.job(&batch).await["args"]["reports"]
            .as_array()
            .map(Vec::len),
        Some(60)
    );
    assert_eq!(
        app.job(&big).await["result"]["text"].as_str().map(str::len),
        Some(5_000)
    );
    assert_eq!(
        app.job(&long).await["error"].as_str().map(str::len),
        Some(5_000)
    );
}
on_both_stacks!(a_list_leaves_out_large_values_and_cuts_long_errors);

/// The ids of a `GET /jobs` page, in its order.
fn listed_ids(page: &serde_json::Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn jobs_are_found_by_queue_and_by_part_of_their_kind(stack: Stack) {
    let app = spawn_app(stack).await;
    let noop = app.enqueue_noop(json!({})).await;
    let (status, body) = app
        .post("/jobs/math", &json!({ "algo": "fibonacci", "n": 30 }))
        .await;
    assert_eq!(status, 202, "{body}");
    let math = body["job_id"].as_str().expect("job_id").to_owned();
    for id in [&noop, &math] {
        app.wait_for_status(id, "succeeded", WITHIN).await;
    }
    for (query, expected) in [
        ("kind=noop", vec![noop.clone()]),
        ("kind=NOOP", vec![noop.clone()]),
        ("kind=system.noop", vec![noop.clone()]),
        ("kind=math.", vec![math.clone()]),
        ("kind=fibo", vec![math.clone()]),
        ("queue=math", vec![math.clone()]),
        ("queue=default", vec![noop.clone()]),
        ("queue=default&kind=math", vec![]),
        ("kind=&queue=", vec![math.clone(), noop.clone()]),
        ("kind=nothing.like.it", vec![]),
        ("queue=nowhere", vec![]),
    ] {
        let (status, page) = app.get(&format!("/jobs?{query}")).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(listed_ids(&page), expected, "{query}");
    }
}
on_both_stacks!(jobs_are_found_by_queue_and_by_part_of_their_kind);

async fn jobs_are_found_by_their_id_or_its_beginning(stack: Stack) {
    let app = spawn_app(stack).await;
    let first = app.enqueue_noop(json!({})).await;
    let second = app.enqueue_noop(json!({})).await;
    // The longest beginning the two ids share finds both, newest first; one more
    // character tells them apart. (On their queue: the jobs of start-up, on others,
    // may share a short beginning.)
    let shared = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let both = &first[..shared];
    for (query, expected) in [
        (first.clone(), vec![first.clone()]),
        (first.to_lowercase(), vec![first.clone()]),
        (second[..shared + 1].to_owned(), vec![second.clone()]),
        (both.to_owned(), vec![second.clone(), first.clone()]),
        ("7ZZZZZZZZZZZZZZZZZZZZZZZZZ".to_owned(), vec![]),
    ] {
        let (status, page) = app.get(&format!("/jobs?queue=default&id={query}")).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(listed_ids(&page), expected, "{query}");
    }
    for refused in ["", "01I", "not-an-id", &format!("{first}0")] {
        let (status, body) = app.get(&format!("/jobs?id={refused}")).await;
        assert_eq!(status, 400, "{refused:?}: {body}");
        assert_eq!(body["error"], "bad_request", "{body}");
    }
}
on_both_stacks!(jobs_are_found_by_their_id_or_its_beginning);

async fn dead_jobs_are_retried_and_queued_ones_cancelled_in_bulk(stack: Stack) {
    let app = spawn_app(stack).await;
    // max_attempts is 3 in tests: failing 3 times makes them dead; a 4th attempt passes.
    let mut dead = Vec::new();
    for _ in 0..3 {
        dead.push(app.enqueue_noop(json!({ "fail_times": 3 })).await);
    }
    for id in &dead {
        app.wait_for_status(id, "dead", WITHIN).await;
    }
    let retry = json!({ "action": "retry", "kind": "noop", "limit": 2 });
    let (status, body) = app.post("/jobs/bulk", &retry).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "action": "retry", "matched": 2, "done": 2, "more": true })
    );
    let (_, body) = app.post("/jobs/bulk", &retry).await;
    assert_eq!(
        body,
        json!({ "action": "retry", "matched": 1, "done": 1, "more": false })
    );
    for id in &dead {
        let job = app.wait_for_status(id, "succeeded", WITHIN).await;
        assert_eq!(job["attempts"], 4, "{job}");
    }
    // Nothing is dead any more: a repeat does nothing.
    let (_, body) = app.post("/jobs/bulk", &retry).await;
    assert_eq!(
        body,
        json!({ "action": "retry", "matched": 0, "done": 0, "more": false })
    );
    // Another queue's or kind's dead jobs are not touched.
    let (_, body) = app
        .post("/jobs/bulk", &json!({ "action": "retry", "queue": "math" }))
        .await;
    assert_eq!(body["matched"], 0, "{body}");

    let (status, body) = app
        .post("/jobs/bulk", &json!({ "action": "explode" }))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .post("/jobs/bulk", &json!({ "action": "retry", "limit": 1001 }))
        .await;
    assert_eq!(status, 400, "{body}");
}
on_both_stacks!(dead_jobs_are_retried_and_queued_ones_cancelled_in_bulk);

async fn dead_jobs_are_discarded_in_bulk_with_their_keys(stack: Stack) {
    let app = spawn_app(stack).await;
    let with_key = |key: &'static str| {
        app.client
            .post(app.url("/jobs/noop"))
            .header("Idempotency-Key", key)
            .json(&json!({ "fail_times": 9 }))
    };
    let mut dead = Vec::new();
    for key in ["discard-1", "discard-2"] {
        let body: serde_json::Value = with_key(key)
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        dead.push(body["job_id"].as_str().expect("job_id").to_owned());
    }
    let alive = app.enqueue_noop(json!({})).await;
    for id in &dead {
        app.wait_for_status(id, "dead", WITHIN).await;
    }
    app.wait_for_status(&alive, "succeeded", WITHIN).await;

    let discard = json!({ "action": "discard", "queue": "default" });
    let (status, body) = app.post("/jobs/bulk", &discard).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "action": "discard", "matched": 2, "done": 2, "more": false })
    );
    for id in &dead {
        assert_eq!(app.get(&format!("/jobs/{id}")).await.0, 404, "{id} is gone");
    }
    assert_eq!(
        app.job(&alive).await["status"],
        "succeeded",
        "only dead jobs go"
    );
    let (_, body) = app.post("/jobs/bulk", &discard).await;
    assert_eq!(body["matched"], 0, "a repeat finds nothing: {body}");
    // The dead job applied nothing, so its key no longer holds the request back.
    let again = with_key("discard-1").send().await.expect("post");
    assert_eq!(again.status().as_u16(), 202);
    let again: serde_json::Value = again.json().await.expect("json");
    assert_ne!(
        again["job_id"].as_str(),
        Some(dead[0].as_str()),
        "a new job"
    );
}
on_both_stacks!(dead_jobs_are_discarded_in_bulk_with_their_keys);

#[tokio::test]
async fn queued_jobs_are_cancelled_in_bulk() {
    // The api alone: nothing takes the jobs, so they stay queued.
    let (config, resources) = test_config(Stack::Embedded).await;
    let app = crate::helpers::spawn_with(config, resources, conveyor::Role::Api).await;
    let mut queued = Vec::new();
    for _ in 0..3 {
        queued.push(app.enqueue_noop(json!({})).await);
    }
    let cancel = json!({ "action": "cancel", "queue": "default" });
    let (status, body) = app.post("/jobs/bulk", &cancel).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "action": "cancel", "matched": 3, "done": 3, "more": false })
    );
    for id in &queued {
        assert_eq!(app.job(id).await["status"], "cancelled");
    }
    let (_, body) = app.post("/jobs/bulk", &cancel).await;
    assert_eq!(body["matched"], 0, "{body}");
}

async fn queues_count_jobs_by_status_and_name_live_workers(stack: Stack) {
    let app = spawn_app(stack).await;
    let ok = app.enqueue_noop(json!({})).await;
    let dead = app.enqueue_noop(json!({ "fail_times": 9 })).await;
    app.wait_for_status(&ok, "succeeded", WITHIN).await;
    app.wait_for_status(&dead, "dead", WITHIN).await;
    let (status, queues) = app.get("/queues").await;
    assert_eq!(status, 200, "{queues}");
    let default = queues
        .as_array()
        .expect("array")
        .iter()
        .find(|q| q["queue"] == "default")
        .expect("the default queue")
        .clone();
    assert_eq!(default["succeeded"], 1);
    assert_eq!(default["dead"], 1);
    assert_eq!(default["queued"], 0);
    assert_eq!(default["depth"], 0);
    let workers = default["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 1, "{default}");
    assert!(
        workers[0]
            .as_str()
            .unwrap_or("")
            .contains(&std::process::id().to_string())
    );
}
on_both_stacks!(queues_count_jobs_by_status_and_name_live_workers);

async fn the_same_idempotency_key_returns_the_first_job(stack: Stack) {
    let app = spawn_app(stack).await;
    let post = |key: &'static str| {
        app.client
            .post(app.url("/jobs/noop"))
            .header("Idempotency-Key", key)
            .json(&json!({}))
            .send()
    };
    let first: serde_json::Value = post("order-42")
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let again = post("order-42").await.expect("POST");
    assert_eq!(again.status().as_u16(), 202);
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(first["job_id"], again["job_id"]);
    let other: serde_json::Value = post("order-43")
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    assert_ne!(first["job_id"], other["job_id"]);

    let (_, page) = app.get("/jobs?limit=500").await;
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(2));

    let bad = app
        .client
        .post(app.url("/jobs/noop"))
        .header("Idempotency-Key", "x".repeat(256))
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status().as_u16(), 400);
}
on_both_stacks!(the_same_idempotency_key_returns_the_first_job);

/// A key that is not visible ASCII is refused (it was taken for no key at all, and
/// made a job each time); the same key with another request is refused with 422 (it
/// answered the first job, as if that were this request's).
async fn idempotency_keys_are_checked_byte_by_byte_and_bound_to_their_request(stack: Stack) {
    let app = spawn_app(stack).await;
    let post = |key: reqwest::header::HeaderValue, body: serde_json::Value| {
        app.client
            .post(app.url("/jobs/noop"))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let non_ascii = reqwest::header::HeaderValue::from_bytes("clé-ü".as_bytes()).expect("bytes");
    for _ in 0..2 {
        let answer = post(non_ascii.clone(), json!({})).await.expect("POST");
        assert_eq!(answer.status().as_u16(), 400);
        let body: serde_json::Value = answer.json().await.expect("json");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .contains("visible ASCII"),
            "{body}"
        );
    }
    let (_, page) = app.get("/jobs?kind=system.noop").await;
    assert_eq!(page["jobs"], json!([]), "no job was made");

    let key = reqwest::header::HeaderValue::from_static("order-7");
    let first = post(key.clone(), json!({ "sleep_ms": 1 }))
        .await
        .expect("POST");
    assert_eq!(first.status().as_u16(), 202);
    let first: serde_json::Value = first.json().await.expect("json");
    let same = post(key.clone(), json!({ "sleep_ms": 1 }))
        .await
        .expect("POST");
    assert_eq!(same.status().as_u16(), 202);
    let same: serde_json::Value = same.json().await.expect("json");
    assert_eq!(same["job_id"], first["job_id"]);
    let other = post(key, json!({ "sleep_ms": 2 })).await.expect("POST");
    assert_eq!(other.status().as_u16(), 422);
    let other: serde_json::Value = other.json().await.expect("json");
    assert_eq!(other["error"], "key_reused", "{other}");
    let (_, page) = app.get("/jobs?kind=system.noop").await;
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(1), "{page}");
}
on_both_stacks!(idempotency_keys_are_checked_byte_by_byte_and_bound_to_their_request);

/// A 255-character key passed the check but not the 255-character column that holds
/// `<route> <key>`: a 503 on Postgres. Keys now end at 200 characters, which every
/// route's record can hold.
async fn the_longest_idempotency_key_fits_every_route(stack: Stack) {
    let app = spawn_app(stack).await;
    let report = json!({ "server_name": "a", "start_time": "2021-05-17T10:00:00Z",
                         "end_time": "2021-05-17T10:00:01Z" });
    for (route, body) in [
        ("/jobs/noop", json!({})),
        ("/process_reports", json!([report])),
    ] {
        for (key, status) in [("k".repeat(200), 202), ("k".repeat(201), 400)] {
            let response = app
                .client
                .post(app.url(route))
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await
                .expect("POST");
            assert_eq!(
                response.status().as_u16(),
                status,
                "{route} with {} characters",
                key.len()
            );
        }
    }
}
on_both_stacks!(the_longest_idempotency_key_fits_every_route);

async fn concurrent_requests_with_one_idempotency_key_make_one_job(stack: Stack) {
    let app = spawn_app(stack).await;
    let requests = (0..20).map(|_| {
        app.client
            .post(app.url("/jobs/noop"))
            .header("Idempotency-Key", "same")
            .json(&json!({}))
            .send()
    });
    let answers = futures::future::join_all(requests).await;
    let mut ids = std::collections::BTreeSet::new();
    for answer in answers {
        let answer = answer.expect("POST");
        assert_eq!(answer.status().as_u16(), 202);
        let body: serde_json::Value = answer.json().await.expect("json");
        ids.insert(body["job_id"].as_str().expect("id").to_owned());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
}
on_both_stacks!(concurrent_requests_with_one_idempotency_key_make_one_job);

/// Retention (housekeeping) deletes finished records past their time and nothing else:
/// not a younger record, not a running one, and not one whose `Idempotency-Key` still
/// returns it. `purge_finished` is given a clock days ahead; the last step runs a real
/// housekeeping round with a 1 s retention to check the settings reach it.
async fn finished_jobs_are_deleted_after_their_retention_and_nothing_else_is(stack: Stack) {
    use chrono::Utc;
    use engine::store::Retention;

    let (config, resources) = test_config(stack).await;
    let window = config.backends.idempotency_window();
    let app = crate::helpers::spawn_with(config, resources, conveyor::Role::All).await;
    let store = &app.backends.store;
    let hours = |h: u64| Duration::from_secs(h * 3_600);

    let succeeded = app.enqueue_noop(json!({})).await;
    let (status, keyed) = {
        let answer = app
            .client
            .post(app.url("/jobs/noop"))
            .header("Idempotency-Key", "kept-while-fresh")
            .json(&json!({}))
            .send()
            .await
            .expect("POST");
        let status = answer.status().as_u16();
        let body: serde_json::Value = answer.json().await.expect("json");
        (status, body["job_id"].as_str().expect("id").to_owned())
    };
    assert_eq!(status, 202);
    let dead = app.enqueue_noop(json!({ "fail_times": 3 })).await;
    let running = app.enqueue_noop(json!({ "sleep_ms": 60_000 })).await;
    app.wait_for_status(&succeeded, "succeeded", WITHIN).await;
    app.wait_for_status(&keyed, "succeeded", WITHIN).await;
    app.wait_for_status(&dead, "dead", WITHIN).await;
    app.wait_for_status(&running, "running", WITHIN).await;
    let gone = |id: String| {
        let app = &app;
        async move { app.get(&format!("/jobs/{id}")).await.0 == 404 }
    };

    let purged = async |retention: &Retention, at| {
        store
            .purge_finished(retention, at, 100)
            .await
            .expect("record retention")
    };
    let keys_purged = async |at| {
        store
            .purge_idempotency_keys(at, 100)
            .await
            .expect("key retention")
    };
    let retention = Retention {
        succeeded: Some(hours(1)),
        dead: Some(hours(48)),
    };
    // Nothing has been finished for an hour yet.
    assert_eq!(purged(&retention, Utc::now()).await, 0);

    // Two hours on: the plain succeeded record goes; the keyed one stays while its key
    // is fresh, the dead one for its own retention, the running one whatever the clock.
    let later = Utc::now() + chrono::Duration::hours(2);
    assert!(
        window > hours(2),
        "the test needs a key window over 2 h: {window:?}"
    );
    assert_eq!(purged(&retention, later).await, 1);
    assert!(
        gone(succeeded.clone()).await,
        "the succeeded record is still there"
    );
    for kept in [&keyed, &dead, &running] {
        assert!(!gone(kept.clone()).await, "{kept} was deleted");
    }
    assert_eq!(keys_purged(later).await, 0);

    // Past the key window and the dead retention: both go, the running job stays.
    let much_later =
        Utc::now() + chrono::Duration::from_std(window + hours(48)).expect("a window in range");
    assert_eq!(purged(&retention, much_later).await, 2);
    assert!(gone(keyed.clone()).await && gone(dead.clone()).await);
    assert!(!gone(running.clone()).await, "a running job was deleted");
    assert_eq!(keys_purged(much_later).await, 1);
    // None: retention switched off for that class.
    let forever = Retention {
        succeeded: None,
        dead: None,
    };
    assert_eq!(purged(&forever, much_later).await, 0);

    // A real round: settings of 1 s, and a record finished over 1 s ago.
    let fresh = app.enqueue_noop(json!({})).await;
    app.wait_for_status(&fresh, "succeeded", WITHIN).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let settings = engine::config::HousekeepingConfig {
        job_retention_secs: 1,
        ..engine::config::HousekeepingConfig::default()
    };
    let queues = app.backends.registry.queues();
    scheduler::housekeeping::once(store, &app.backends.queue, &queues, &settings).await;
    assert!(
        gone(fresh).await,
        "a housekeeping round kept a record past JOB_RETENTION_SECS"
    );
    assert!(!gone(running).await);
}
on_both_stacks!(finished_jobs_are_deleted_after_their_retention_and_nothing_else_is);

async fn a_paused_queue_keeps_its_jobs_waiting_until_resumed(stack: Stack) {
    let (mut config, resources) = test_config(stack).await;
    config.worker.pause_poll_ms = 100;
    let app = crate::helpers::spawn_with(config, resources, conveyor::Role::All).await;
    let long = app.enqueue_noop(json!({ "sleep_ms": 8_000 })).await;
    app.wait_for_status(&long, "running", WITHIN).await;
    let (status, body) = app.post("/queues/default/pause", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "queue": "default", "paused": true }));
    let (status, _) = app.post("/queues/default/pause", &json!({})).await;
    assert_eq!(status, 200, "pausing a paused queue changes nothing");
    // Within the poll period every consumer of the queue has stopped.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let id = app.enqueue_noop(json!({})).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        app.job(&id).await["status"],
        "queued",
        "a paused queue runs nothing"
    );
    let (_, queues) = app.get("/queues").await;
    let default = queues
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["queue"] == "default"))
        .cloned()
        .expect("the default queue");
    assert_eq!(
        (&default["paused"], &default["queued"], &default["running"]),
        (&json!(true), &json!(1), &json!(1)),
        "the running job goes on while the new one waits"
    );
    let latency = default["latency_ms"].as_u64().expect("latency_ms");
    assert!(
        latency >= 1_500,
        "the job has waited 1.5 s at least: {latency} ms"
    );
    let math = queues
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["queue"] == "math"))
        .cloned()
        .expect("the math queue");
    assert_eq!(math["paused"], false, "other queues run on");
    assert_eq!(math["latency_ms"], 0, "nothing waits on math");

    let (status, body) = app.post("/queues/default/resume", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], false);
    app.wait_for_status(&id, "succeeded", WITHIN).await;
    // The resume did not wait for the running job, which a pause lets finish.
    assert_eq!(app.job(&long).await["status"], "running");
    app.wait_for_status(&long, "succeeded", WITHIN).await;

    let (status, body) = app.post("/queues/nonesuch/pause", &json!({})).await;
    assert_eq!(status, 404, "{body}");
    app.stop().await.expect("every role stops cleanly");
}
on_both_stacks!(a_paused_queue_keeps_its_jobs_waiting_until_resumed);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pause_outlasts_a_restart() {
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.worker.pause_poll_ms = 100;
    let api_only = crate::helpers::spawn_with(
        config.clone(),
        crate::helpers::Resources::none(),
        conveyor::Role::Api,
    )
    .await;
    let (status, _) = api_only.post("/queues/default/pause", &json!({})).await;
    assert_eq!(status, 200);
    let id = api_only.enqueue_noop(json!({})).await;
    api_only.stop().await.expect("the api stops");
    // A worker process started afterwards reads the pause before it takes a task.
    let app = crate::helpers::spawn_with(config, resources, conveyor::Role::All).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(app.job(&id).await["status"], "queued");
    app.post("/queues/default/resume", &json!({})).await;
    app.wait_for_status(&id, "succeeded", WITHIN).await;
    app.stop().await.expect("every role stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_hangs_up_leaves_no_job_without_its_task() {
    let app = spawn_app(Stack::Embedded).await;
    crate::helpers::http_client();
    // Clients that give up at every point of the way: before the record is written,
    // between it and the push of its task, after.
    for i in 0..300u64 {
        let hasty = reqwest::Client::builder()
            .timeout(Duration::from_micros(300 + (i % 50) * 100))
            .build()
            .expect("client");
        let _ = hasty
            .post(app.url("/jobs/noop"))
            .json(&json!({}))
            .send()
            .await;
    }
    // Every job that was made runs: none stays queued for want of its task.
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let (_, page) = app.get("/jobs?status=queued&limit=500").await;
        let queued = page["jobs"].as_array().map_or(0, Vec::len);
        if queued == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{queued} jobs left queued without a task by clients that hung up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each queue names the kinds that run on it: what the dashboard offers as kind filters.
#[tokio::test]
async fn each_queue_names_its_kinds() {
    let (config, resources) = test_config(Stack::Embedded).await;
    let app = crate::helpers::spawn_with(config, resources, conveyor::Role::Api).await;
    let (status, queues) = app.get("/queues").await;
    assert_eq!(status, 200, "{queues}");
    let kinds_of = |queue: &str| {
        queues
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["queue"] == queue))
            .map(|q| q["kinds"].clone())
            .unwrap_or_else(|| panic!("queue {queue} in {queues}"))
    };
    assert_eq!(kinds_of("ads"), json!(["ads.count"]));
    assert_eq!(kinds_of("default"), json!(["system.noop"]));
    assert_eq!(
        kinds_of("math"),
        json!(["math.ackermann", "math.factorial", "math.fibonacci"]),
        "sorted"
    );
}
