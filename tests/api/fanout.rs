//! `/api/all`, `/api/first`, `/api/within-timeout`, `/api/smart` against a wiremock
//! work server with delays and failures.

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Stack, TestApp, spawn_with, test_config};

const HANG: Duration = Duration::from_secs(5);

fn ok(time: i64, delay_ms: u64) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({ "time": time }))
        .set_delay(Duration::from_millis(delay_ms))
}

fn hang() -> ResponseTemplate {
    ok(999, HANG.as_millis() as u64)
}

/// A work server that answers the first `n` requests with `first` and the rest with
/// `rest`.
async fn work_server(first: ResponseTemplate, n: u64, rest: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/work"))
        .respond_with(first)
        .up_to_n_times(n)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/work"))
        .respond_with(rest)
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

async fn app_for(server: &MockServer) -> TestApp {
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.features.fanout.work_url = format!("{}/work", server.uri());
    spawn_with(config, resources, conveyor::Role::Api).await
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

#[tokio::test]
async fn all_answers_every_success_once_all_three_finished() {
    let server = work_server(ok(1, 50), 3, ok(2, 50)).await;
    let app = app_for(&server).await;
    let (status, body) = app.get("/api/all?timeout=2000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!([{ "time": 1 }, { "time": 1 }, { "time": 1 }]));
}

#[tokio::test]
async fn all_keeps_only_the_successes() {
    let server = work_server(ok(7, 20), 1, ResponseTemplate::new(500)).await;
    let app = app_for(&server).await;
    let (status, body) = app.get("/api/all?timeout=2000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!([{ "time": 7 }]));
}

#[tokio::test]
async fn all_answers_502_when_nothing_succeeded() {
    // 429, then invalid JSON, then a float where an integer belongs: all failures.
    let server = MockServer::start().await;
    for (priority, response) in [
        (1, ResponseTemplate::new(429)),
        (2, ResponseTemplate::new(200).set_body_string("{not json")),
        (
            3,
            ResponseTemplate::new(200).set_body_json(json!({ "time": 1.5 })),
        ),
    ] {
        Mock::given(method("GET"))
            .respond_with(response)
            .up_to_n_times(1)
            .with_priority(priority)
            .mount(&server)
            .await;
    }
    let app = app_for(&server).await;
    let (status, body) = app.get("/api/all?timeout=2000").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn all_answers_504_at_the_timeout_and_drops_what_is_in_flight() {
    let server = work_server(ok(1, 10), 2, hang()).await;
    let app = app_for(&server).await;
    let started = Instant::now();
    let (status, body) = app.get("/api/all?timeout=300").await;
    let elapsed = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(
        elapsed < HANG,
        "answered at the timeout, not when the upstream did: {elapsed:?}"
    );
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics["raw"]
            .as_str()
            .unwrap_or("")
            .contains("conveyor_fanout_in_flight 0\n"),
        "nothing left in flight: {metrics}"
    );
}

#[tokio::test]
async fn first_answers_the_first_success_without_waiting_for_the_rest() {
    let server = work_server(ok(42, 30), 1, hang()).await;
    let app = app_for(&server).await;
    let started = Instant::now();
    let (status, body) = app.get("/api/first?timeout=3000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "time": 42 }));
    assert!(started.elapsed() < HANG);
}

#[tokio::test]
async fn first_answers_502_as_soon_as_all_three_failed() {
    let server = work_server(ResponseTemplate::new(500), 3, ResponseTemplate::new(500)).await;
    let app = app_for(&server).await;
    let started = Instant::now();
    let (status, _) = app.get("/api/first?timeout=4000").await;
    assert_eq!(status, 502);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "did not wait for the timeout"
    );
}

#[tokio::test]
async fn first_answers_504_when_nothing_succeeds_in_time() {
    let server = work_server(hang(), 3, hang()).await;
    let app = app_for(&server).await;
    let (status, body) = app.get("/api/first?timeout=200").await;
    assert_eq!(status, 504, "{body}");
}

#[tokio::test]
async fn within_timeout_answers_what_arrived_before_the_timeout() {
    let server = work_server(ok(5, 20), 1, hang()).await;
    let app = app_for(&server).await;
    let (status, body) = app.get("/api/within-timeout?timeout=400").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!([{ "time": 5 }]));
}

#[tokio::test]
async fn within_timeout_answers_an_empty_array_when_nothing_arrived() {
    let server = work_server(hang(), 3, ResponseTemplate::new(500)).await;
    let app = app_for(&server).await;
    let (status, body) = app.get("/api/within-timeout?timeout=200").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!([]));
}

#[tokio::test]
async fn smart_answers_a_fast_success_with_a_single_request() {
    let server = work_server(ok(3, 20), 3, ok(4, 20)).await;
    let app = app_for(&server).await;
    let (status, body) = app.get("/api/smart?timeout=2000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "time": 3 }));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(requests(&server).await, 1, "no hedge after a success");
}

#[tokio::test]
async fn smart_hedges_at_once_when_its_first_request_fails() {
    let server = work_server(ResponseTemplate::new(500), 1, ok(8, 20)).await;
    let app = app_for(&server).await;
    let started = Instant::now();
    let (status, body) = app.get("/api/smart?timeout=2000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "time": 8 }));
    assert_eq!(requests(&server).await, 3);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "a failure hedges without waiting out the 300 ms: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn smart_hedges_after_300_ms_of_silence() {
    let server = work_server(hang(), 1, ok(9, 20)).await;
    let app = app_for(&server).await;
    let started = Instant::now();
    let (status, body) = app.get("/api/smart?timeout=3000").await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "time": 9 }));
    assert_eq!(requests(&server).await, 3);
    assert!(
        elapsed >= Duration::from_millis(300),
        "hedged too early: {elapsed:?}"
    );
}

#[tokio::test]
async fn smart_with_a_timeout_under_300_ms_answers_504_with_one_request() {
    let server = work_server(hang(), 3, hang()).await;
    let app = app_for(&server).await;
    let (status, _) = app.get("/api/smart?timeout=100").await;
    assert_eq!(status, 504);
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn smart_answers_502_when_all_three_failed() {
    let server = work_server(ResponseTemplate::new(500), 3, ResponseTemplate::new(503)).await;
    let app = app_for(&server).await;
    let (status, _) = app.get("/api/smart?timeout=2000").await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn smart_without_a_timeout_has_no_deadline() {
    let server = work_server(ok(1, 20), 3, ok(1, 20)).await;
    let app = app_for(&server).await;
    let (status, body) = app.get("/api/smart").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_bad_timeout_answers_400_with_an_error() {
    let server = work_server(ok(1, 1), 3, ok(1, 1)).await;
    let app = app_for(&server).await;
    for route in ["all", "first", "within-timeout", "smart"] {
        for bad in ["abc", "0", "-5", "1.5", ""] {
            let (status, body) = app.get(&format!("/api/{route}?timeout={bad}")).await;
            assert_eq!(status, 400, "{route} timeout={bad}: {body}");
            assert!(
                body["error"].as_str().unwrap_or("").contains("timeout"),
                "{body}"
            );
        }
    }
    for route in ["all", "first", "within-timeout"] {
        let (status, body) = app.get(&format!("/api/{route}")).await;
        assert_eq!(status, 400, "{route} without timeout: {body}");
    }
    assert_eq!(requests(&server).await, 0);
}

#[tokio::test]
async fn fan_outs_over_the_in_flight_bound_answer_503() {
    let server = work_server(hang(), 3, hang()).await;
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.features.fanout.work_url = format!("{}/work", server.uri());
    config.features.fanout.max_inflight = 3;
    let app = spawn_with(config, resources, conveyor::Role::Api).await;
    let (first, second) = tokio::join!(app.get("/api/all?timeout=500"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.get("/api/all?timeout=500").await
    });
    assert_eq!(first.0, 504);
    assert_eq!(second.0, 503, "{}", second.1);
    assert!(second.1["error"].is_string());
}

#[tokio::test]
async fn one_client_cannot_take_every_fan_out() {
    let server = work_server(hang(), 9, hang()).await;
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.features.fanout.work_url = format!("{}/work", server.uri());
    config.features.fanout.max_inflight_per_client = 3;
    let app = spawn_with(config, resources, conveyor::Role::Api).await;
    // Another client: the same machine, another loopback address.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let (first, second, elsewhere) = tokio::join!(
        app.get("/api/all?timeout=600"),
        async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            app.get("/api/all?timeout=600").await
        },
        async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let response = other
                .get(app.url("/api/all?timeout=600"))
                .send()
                .await
                .expect("GET");
            response.status().as_u16()
        }
    );
    assert_eq!(first.0, 504, "{}", first.1);
    assert_eq!(second.0, 503, "{}", second.1);
    assert!(
        second.1["error"]
            .as_str()
            .is_some_and(|e| e.contains("this client")),
        "{}",
        second.1
    );
    assert_eq!(elsewhere, 504, "another client's fan-out runs");
    // Its share is given back: the same client runs again.
    let (status, body) = app.get("/api/all?timeout=300").await;
    assert_eq!(status, 504, "{body}");
}
