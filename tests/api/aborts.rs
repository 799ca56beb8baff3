//! Aborting a job: `POST /jobs/{id}/abort` cancels even a running job, whose worker
//! drops the attempt and takes its next task; `DELETE /jobs/{id}` still refuses a
//! running one.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Stack, spawn_with, test_config};
use crate::on_both_stacks;

const WITHIN: Duration = Duration::from_secs(20);

async fn a_running_job_is_aborted_and_its_worker_takes_the_next_task(stack: Stack) {
    let (mut config, resources) = test_config(stack).await;
    // One slot on each queue: the next job runs only once the aborted one let go.
    config.worker.concurrency = 1;
    config.worker.abort_poll_ms = 100;
    // Far beyond the test: only the abort ends the attempt.
    config.delivery.timeout_ms = 3_600_000;
    let app = spawn_with(config, resources, conveyor::Role::All).await;
    let long = app.enqueue_noop(json!({ "sleep_ms": 600_000 })).await;
    app.wait_for_status(&long, "running", WITHIN).await;
    let next = app.enqueue_noop(json!({})).await;

    // The cancel of SPEC keeps its contract: not a running job.
    let (status, body) = app.delete(&format!("/jobs/{long}")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(app.job(&next).await["status"], "queued", "the slot is held");

    let (status, body) = app.post(&format!("/jobs/{long}/abort"), &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled", "at once: {body}");
    assert_eq!(body["error"], engine::store::ABORTED);
    assert!(body["finished_at"].is_string(), "{body}");

    // The worker dropped the attempt and its only slot ran the next job.
    app.wait_for_status(&next, "succeeded", WITHIN).await;
    let aborted = app.job(&long).await;
    assert_eq!(aborted["status"], "cancelled", "never succeeded: {aborted}");
    assert_eq!(aborted["attempts"], 1);
    assert!(aborted.get("result").is_none(), "{aborted}");
    let log = aborted["attempt_log"]
        .as_array()
        .expect("the attempt is logged");
    assert_eq!(log.len(), 1, "{aborted}");
    assert_eq!(log[0]["attempt"], 1);
    assert_eq!(log[0]["error"], engine::store::ABORTED);
    assert_eq!(log[0]["worker"], aborted["worker"]);
    let (_, metrics) = app.get("/metrics").await;
    let metrics = metrics["raw"].as_str().unwrap_or_default();
    assert!(
        metrics.contains(r#"conveyor_jobs_total{kind="system.noop",outcome="aborted"} 1"#),
        "{metrics}"
    );

    // Finished jobs are not aborted, the aborted one included; unknown ones are not found.
    for finished in [&long, &next] {
        let (status, body) = app
            .post(&format!("/jobs/{finished}/abort"), &json!({}))
            .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"], "conflict");
    }
    for unknown in ["01J0000000000000000000NONE", "nope"] {
        let (status, body) = app
            .post(&format!("/jobs/{unknown}/abort"), &json!({}))
            .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"], "not_found");
    }
    app.stop().await.expect("every role stops cleanly");
}
on_both_stacks!(a_running_job_is_aborted_and_its_worker_takes_the_next_task);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_no_worker_holds_is_aborted_as_a_cancel() {
    // Api only: the job stays queued.
    let (config, resources) = test_config(Stack::Embedded).await;
    let api_only = spawn_with(config, resources, conveyor::Role::Api).await;
    let id = api_only.enqueue_noop(json!({})).await;
    let (status, body) = api_only
        .post(&format!("/jobs/{id}/abort"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert!(body.get("attempt_log").is_none(), "no attempt ran: {body}");
    let (status, body) = api_only.delete(&format!("/jobs/{id}")).await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abort_needs_the_admin_token_when_one_is_set() {
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.api.admin_token = Some("abort-token".parse().expect("infallible"));
    let app = spawn_with(config, resources, conveyor::Role::Api).await;
    let id = app.enqueue_noop(json!({})).await;
    let abort = app.url(&format!("/jobs/{id}/abort"));
    for authorization in [None, Some("Bearer wrong")] {
        let mut request = app.client.post(&abort);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.expect("POST");
        assert_eq!(response.status().as_u16(), 401, "{authorization:?}");
        assert!(response.headers().contains_key("www-authenticate"));
    }
    assert_eq!(
        app.job(&id).await["status"],
        "queued",
        "a refusal changes nothing"
    );
    let (status, body) = app.post(&format!("/jobs/{id}/abort"), &json!({})).await;
    assert_eq!(status, 200, "with the token: {body}");
}
