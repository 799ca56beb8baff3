//! Server process reports: validation, exact statistics, the readiness gate, outliers,
//! concurrency and duplicate delivery.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, spawn_with, test_config};
use crate::on_both_stacks;

const WITHIN: Duration = Duration::from_secs(60);

fn report(server: &str, seconds: i64) -> Value {
    let start = chrono::DateTime::parse_from_rfc3339("2021-05-17T10:00:00Z").expect("time");
    let end = start + chrono::Duration::seconds(seconds);
    json!({
        "server_name": server,
        "start_time": start.to_rfc3339(),
        "end_time": end.to_rfc3339(),
    })
}

async fn app_with(stack: Stack, configure: impl FnOnce(&mut conveyor::Config)) -> TestApp {
    let (mut config, resources) = test_config(stack).await;
    configure(&mut config);
    spawn_with(config, resources, conveyor::Role::All).await
}

/// Posts the durations of each server as one batch and waits until it is stored.
async fn store(app: &TestApp, servers: &[(&str, &[i64])]) {
    let batch: Vec<Value> = servers
        .iter()
        .flat_map(|(name, durations)| durations.iter().map(|d| report(name, *d)))
        .collect();
    let (status, body) = app.post("/process_reports", &Value::Array(batch)).await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().expect("job id");
    app.wait_for_status(id, "succeeded", WITHIN).await;
}

async fn statistics_are_the_old_services_numbers_to_the_unit(stack: Stack) {
    let app = app_with(stack, |_| {}).await;
    store(
        &app,
        &[
            ("alpha", &[10, 20, 30]),
            ("beta", &[40, 50, 60]),
            ("gamma", &[5, 5, 5, 5]),
            // Mean 2.5 rounds half to even: 2; deviation √2 → 1.
            ("delta", &[1, 2, 3, 4]),
            // Mean 1.8 → 2; deviation √2.25 = 1.5 exactly, half to even: 2.
            ("epsilon", &[0, 1, 2, 2, 4]),
        ],
    )
    .await;
    let (status, all) = app.get("/process_statistics").await;
    assert_eq!(status, 200, "{all}");
    // 19 durations: Σ = 249 → mean round(13.1…) = 13; Σ(x−13)² = 5992 → √(5992/18) = 18.2… → 18.
    assert_eq!(all, json!({ "mean": 13, "stddev": 18, "count": 19 }));
    for (server, want) in [
        ("alpha", json!({ "mean": 20, "stddev": 10, "count": 3 })),
        ("gamma", json!({ "mean": 5, "stddev": 0, "count": 4 })),
        ("delta", json!({ "mean": 2, "stddev": 1, "count": 4 })),
        ("epsilon", json!({ "mean": 2, "stddev": 2, "count": 5 })),
    ] {
        let (status, got) = app
            .get(&format!("/process_statistics?server_name={server}"))
            .await;
        assert_eq!(status, 200, "{server}: {got}");
        assert_eq!(got, want, "{server}");
    }
    let (status, body) = app.get("/process_statistics?server_name=nobody").await;
    assert_eq!(status, 404, "{body}");
}
on_both_stacks!(statistics_are_the_old_services_numbers_to_the_unit);

#[tokio::test]
async fn the_readiness_gate_opens_exactly_at_its_thresholds() {
    let app = app_with(Stack::Embedded, |c| {
        c.features.reports.min_total = 6;
        c.features.reports.min_per_server = 3;
    })
    .await;
    let (status, body) = app.get("/process_statistics").await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "Not enough reports received");
    assert_eq!(body["total"], 0);

    store(&app, &[("a", &[1, 2, 3]), ("b", &[4, 5])]).await;
    let (status, body) = app.get("/process_outliers").await;
    assert_eq!(status, 409, "5 reports < 6: {body}");
    assert_eq!(body["total"], 5);
    assert_eq!(body["servers_below_min"], 1);

    store(&app, &[("c", &[7])]).await;
    let (status, body) = app.get("/process_statistics").await;
    assert_eq!(status, 409, "6 reports, but b has 2 and c has 1: {body}");
    assert_eq!(body["servers_below_min"], 2);

    store(&app, &[("b", &[6]), ("c", &[8, 9])]).await;
    let (status, body) = app.get("/process_statistics").await;
    assert_eq!(status, 200, "9 reports, every server at 3: {body}");
    let (status, _) = app.get("/process_outliers").await;
    assert_eq!(status, 200);
}

/// A per-server read asks only that server to have `MIN_PER_SERVER` reports: one new
/// server elsewhere (or too few in all) does not turn it off.
#[tokio::test]
async fn a_server_with_enough_reports_has_statistics_whatever_the_others_have() {
    let app = app_with(Stack::Embedded, |c| {
        c.features.reports.min_total = 100;
        c.features.reports.min_per_server = 3;
    })
    .await;
    store(&app, &[("a", &[10, 20, 30]), ("new", &[5])]).await;
    let (status, body) = app.get("/process_statistics").await;
    assert_eq!(
        status, 409,
        "the global gate stays the old service's: {body}"
    );
    let (status, body) = app.get("/process_statistics?server_name=a").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["mean"].clone(), body["count"].clone()),
        (json!(20), json!(3))
    );
    let (status, body) = app.get("/process_statistics?server_name=new").await;
    assert_eq!(status, 409, "one report of three: {body}");
    assert_eq!(body["total"], 1);
    assert_eq!(body["servers_below_min"], 1);
    let (status, _) = app.get("/process_statistics?server_name=unknown").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn outliers_are_strictly_outside_their_own_band() {
    let app = app_with(Stack::Embedded, |c| {
        c.features.reports.min_total = 1;
        c.features.reports.outlier_sigmas = domain::stats::Ratio::integer(1);
    })
    .await;
    store(
        &app,
        &[
            // Mean 2, sd 1, K = 1: band [1, 3]; 1 and 3 are on it, not outside.
            ("on-band", &[1, 2, 3]),
            // Mean 5, sd 5: band [0, 10]: on it.
            ("wide", &[0, 5, 10]),
            // Mean 4, sd √(50/3) → 4: band [0, 8]; 10 is above it.
            ("above", &[1, 2, 3, 10]),
            // Mean 27.5 → 28 (half to even), sd √(1876/3) → 25: band [3, 53]; 0 and 60 outside.
            ("zz-spiky", &[0, 20, 30, 60]),
            // Mean 96, sd √80 → 9: band [87, 105]; 80 is below it.
            ("below", &[100, 100, 100, 80, 100]),
        ],
    )
    .await;
    let (status, body) = app.get("/process_outliers").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!(["above", "below", "zz-spiky"]));
}

#[tokio::test]
async fn every_validation_error_names_its_field() {
    let app = app_with(Stack::Embedded, |_| {}).await;
    let good = report("a", 1);
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = good.clone();
        body.as_object_mut().expect("object").remove(field);
        body
    };
    for (body, field) in [
        (without("server_name"), "server_name"),
        (without("start_time"), "start_time"),
        (without("end_time"), "end_time"),
        (with("server_name", json!("")), "server_name"),
        (with("server_name", json!("x".repeat(101))), "server_name"),
        (with("start_time", json!("yesterday")), "start_time"),
        (with("end_time", json!("2021-13-01T00:00:00Z")), "end_time"),
        (with("end_time", json!("2021-05-17T09:59:59Z")), "end_time"),
    ] {
        let (status, answer) = app.post("/process_report", &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap_or("").contains(field),
            "{body}: {answer}"
        );
    }
    let response = app
        .client
        .post(app.url("/process_report"))
        .header("Content-Type", "application/json")
        .body("{\"server_name\": ")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.expect("a JSON error");
    assert!(
        answer["error"].as_str().unwrap_or("").contains("malformed"),
        "{answer}"
    );
    let (_, page) = app.get("/jobs?kind=reports.record").await;
    assert_eq!(page["jobs"], json!([]), "nothing was enqueued");
}

/// Found by schemathesis: `field` and `index` were sent as `null` when they did not
/// apply, which their schema (a string, an integer) does not allow.
#[tokio::test]
async fn an_error_leaves_out_the_field_and_index_that_do_not_apply() {
    let app = app_with(Stack::Embedded, |_| {}).await;
    let response = app
        .client
        .post(app.url("/process_report"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.expect("a JSON error");
    let fields = answer.as_object().expect("a JSON object");
    assert!(
        !fields.contains_key("field") && !fields.contains_key("index"),
        "{answer}"
    );

    let mut body = report("a", 1);
    body["start_time"] = json!("yesterday");
    let (status, answer) = app.post("/process_report", &body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "start_time");
    let fields = answer.as_object().expect("a JSON object");
    assert!(
        !fields.contains_key("index"),
        "one report has no index: {answer}"
    );
}

#[tokio::test]
async fn a_batch_with_a_bad_item_is_refused_whole_naming_its_index() {
    let app = app_with(Stack::Embedded, |c| c.features.reports.min_total = 1).await;
    let mut bad = report("b", 3);
    bad["end_time"] = json!("2000-01-01T00:00:00Z");
    let batch = json!([report("a", 1), report("a", 2), bad, report("c", 4)]);
    let (status, body) = app.post("/process_reports", &batch).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["index"], 2);
    assert_eq!(body["field"], "end_time");
    assert!(
        body["error"].as_str().unwrap_or("").starts_with("item 2:"),
        "{body}"
    );
    let (status, body) = app.post("/process_reports", &json!([])).await;
    assert_eq!(status, 400, "{body}");
    let (_, page) = app.get("/jobs?kind=reports.record").await;
    assert_eq!(page["jobs"], json!([]));
}

/// Found by schemathesis on Postgres + Redis: a NUL character in a server name was a
/// 503 ("database unavailable"), since Postgres text cannot hold it.
async fn a_server_name_with_nul_is_refused_not_failed(stack: Stack) {
    let app = app_with(stack, |c| {
        c.features.reports.min_total = 1;
        c.features.reports.min_per_server = 1;
    })
    .await;
    let (status, body) = app.post("/process_report", &report("a\0b", 1)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "server_name");
    assert_eq!(body["error"], "server_name must not contain NUL characters");

    store(&app, &[("a", &[1])]).await;
    let (status, body) = app.get("/process_statistics?server_name=a%00b").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.get("/process_statistics?server_name=a").await;
    assert_eq!(status, 200, "{body}");
}
on_both_stacks!(a_server_name_with_nul_is_refused_not_failed);

async fn concurrent_reports_are_all_counted_once(stack: Stack) {
    let app = app_with(stack, |c| {
        c.features.reports.min_total = 1;
        c.features.reports.min_per_server = 1;
        c.worker.concurrency = 16;
    })
    .await;
    const N: usize = 1_000;
    let requests = (0..N).map(|i| {
        let client = crate::helpers::http_client();
        let url = app.url("/process_report");
        let body = report(&format!("server-{}", i % 50), (i % 7) as i64);
        async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(202))),
        "{statuses:?}"
    );
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let (status, body) = app.get("/process_statistics").await;
        if status == 200 && body["count"] == N {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all counted: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, body) = app.get("/process_statistics?server_name=server-0").await;
    assert_eq!(body["count"], N / 50);
}
on_both_stacks!(concurrent_reports_are_all_counted_once);

async fn a_duplicated_delivery_counts_once(stack: Stack) {
    let (mut config, resources) = test_config(stack).await;
    config.features.reports.min_total = 1;
    config.features.reports.min_per_server = 1;
    let app = spawn_with(config.clone(), resources, conveyor::Role::Api).await;
    let (status, body) = app.post("/process_report", &report("dup", 42)).await;
    assert_eq!(status, 202, "{body}");
    let record = app
        .backends
        .store
        .get(
            body["job_id"]
                .as_str()
                .expect("id")
                .parse()
                .expect("a job id"),
        )
        .await
        .expect("db")
        .expect("job");
    let envelope = engine::Task::of(&record);
    let executor = app.executor();
    let (a, b) = tokio::join!(
        executor.execute(envelope.clone(), "w1"),
        executor.execute(envelope.clone(), "w2")
    );
    executor.execute(envelope, "w3").await;
    assert!(
        [&a, &b]
            .iter()
            .filter(|o| ***o == worker::executor::Outcome::Succeeded)
            .count()
            == 1,
        "{a:?} {b:?}"
    );
    let (status, body) = app.get("/process_statistics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 1);
}
on_both_stacks!(a_duplicated_delivery_counts_once);

#[tokio::test]
async fn fields_of_another_type_and_implausible_durations_are_refused() {
    let app = app_with(Stack::Embedded, |_| {}).await;
    for (field, value) in [
        ("server_name", json!(123)),
        ("server_name", json!(true)),
        ("start_time", json!(1_621_245_153)),
        ("end_time", json!(["2021-05-17T10:12:33Z"])),
    ] {
        let mut body = report("a", 1);
        body[field] = value.clone();
        let (status, answer) = app.post("/process_report", &body).await;
        assert_eq!(status, 400, "{field}: {value}: {answer}");
        assert!(
            answer.to_string().contains(field),
            "{field}: {value}: {answer}"
        );
    }
    // A year and a day: the default bound is 366 days.
    let (status, answer) = app
        .post("/process_report", &report("a", 367 * 24 * 3600))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "end_time", "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("REPORTS_MAX_DURATION_SECS")),
        "{answer}"
    );
    let (status, answer) = app
        .post("/process_report", &report("a", 366 * 24 * 3600))
        .await;
    assert_eq!(status, 202, "{answer}");
}

/// The embedded default under back-to-back full batches: every batch is accepted, each
/// job succeeds at its first attempt (no write lost to a busy database and redelivered)
/// and every report is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_embedded_default_takes_full_batches_back_to_back() {
    let app = app_with(Stack::Embedded, |c| {
        c.features.reports.min_total = 1;
        c.features.reports.min_per_server = 1;
        c.features.reports.batch_max = BATCH;
    })
    .await;
    const BATCHES: usize = 12;
    const BATCH: usize = 10_000;
    let batch = Value::Array(
        (0..BATCH)
            .map(|i| report(&format!("server-{}", i % 50), (i % 7) as i64))
            .collect(),
    );
    let mut ids = Vec::new();
    for _ in 0..BATCHES {
        let (status, body) = app.post("/process_reports", &batch).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["job_id"].as_str().expect("job id").to_owned());
    }
    for id in &ids {
        let job = app.wait_for_status(id, "succeeded", WITHIN * 4).await;
        assert_eq!(job["attempts"], 1, "{job}");
        assert!(job["attempt_log"].is_null(), "{job}");
    }
    let (status, body) = app.get("/process_statistics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], BATCHES * BATCH, "{body}");
    let (status, body) = app.get("/ready").await;
    assert_eq!(status, 200, "{body}");
}
