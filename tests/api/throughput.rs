//! The throughput history (`GET /queues/history`) and the failure rate of `GET /queues`:
//! what workers count reaches them after a flush, on both stacks.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use engine::store::MinuteCounts;
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, spawn_with, test_config};
use crate::on_both_stacks;

/// An app whose workers store their counts every 50 ms.
async fn app(stack: Stack) -> TestApp {
    let (mut config, resources) = test_config(stack).await;
    config.worker.throughput_flush_ms = 50;
    spawn_with(config, resources, conveyor::Role::All).await
}

/// `(succeeded, failed)` of `queue` summed over the history's minutes.
fn totals(history: &Value, queue: &str) -> (u64, u64) {
    let minutes = history["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["queue"] == queue)
        .unwrap_or_else(|| panic!("no queue {queue} in {history}"))["minutes"]
        .as_array()
        .expect("minutes")
        .clone();
    minutes.iter().fold((0, 0), |(s, f), m| {
        (
            s + m["succeeded"].as_u64().expect("succeeded"),
            f + m["failed"].as_u64().expect("failed"),
        )
    })
}

/// Polls the history until `queue` shows `expected`, failing after `within`.
async fn wait_for_totals(
    app: &TestApp,
    queue: &str,
    expected: (u64, u64),
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, history) = app.get("/queues/history").await;
        assert_eq!(status, 200, "{history}");
        if totals(&history, queue) == expected {
            return history;
        }
        assert!(
            Instant::now() < deadline,
            "{queue} did not reach {expected:?} within {within:?}; last seen {history}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn queue<'a>(queues: &'a Value, name: &str) -> &'a Value {
    queues
        .as_array()
        .expect("an array")
        .iter()
        .find(|q| q["queue"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {queues}"))
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("{value} is no RFC 3339 time"))
        .with_timezone(&Utc)
}

async fn succeeded_jobs_and_failed_attempts_show_in_the_history_and_the_failure_rate(stack: Stack) {
    let app = app(stack).await;
    // Nothing ran yet: every queue is listed, with no minutes and no failure rate.
    let (status, history) = app.get("/queues/history").await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(totals(&history, "default"), (0, 0));
    let (_, queues) = app.get("/queues").await;
    assert_eq!(
        queue(&queues, "default")["failure_rate"],
        Value::Null,
        "{queues}"
    );

    // Three successes; one job failing once then succeeding; one failing every one of
    // its 3 attempts (dead): 4 succeeded, 4 failed attempts.
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push((app.enqueue_noop(json!({})).await, "succeeded"));
    }
    ids.push((
        app.enqueue_noop(json!({ "fail_times": 1 })).await,
        "succeeded",
    ));
    ids.push((app.enqueue_noop(json!({ "fail_times": 10 })).await, "dead"));
    for (id, status) in &ids {
        app.wait_for_status(id, status, Duration::from_secs(20))
            .await;
    }
    let history = wait_for_totals(&app, "default", (4, 4), Duration::from_secs(20)).await;

    let from = time(&history["from"]);
    let to = time(&history["to"]);
    assert_eq!(
        to - from,
        chrono::Duration::minutes(179),
        "the whole window: {history}"
    );
    let minutes = queue(&history["queues"], "default")["minutes"]
        .as_array()
        .expect("minutes")
        .clone();
    let mut previous = None;
    for minute in &minutes {
        let at = time(&minute["minute"]);
        assert_eq!(
            at.timestamp() % 60,
            0,
            "a minute starts at second zero: {minute}"
        );
        assert!(from <= at && at <= to, "{minute} outside {from}..{to}");
        assert!(
            previous < Some(at),
            "oldest first, each minute once: {history}"
        );
        assert!(
            minute["succeeded"].as_u64() > Some(0) || minute["failed"].as_u64() > Some(0),
            "empty minutes are left out: {history}"
        );
        previous = Some(at);
    }
    assert_eq!(totals(&history, "math"), (0, 0), "{history}");

    let (status, queues) = app.get("/queues").await;
    assert_eq!(status, 200, "{queues}");
    assert_eq!(
        queue(&queues, "default")["failure_rate"],
        json!(0.5),
        "{queues}"
    );
    assert_eq!(
        queue(&queues, "math")["failure_rate"],
        Value::Null,
        "{queues}"
    );

    // The last minute alone holds at most what the whole window does.
    let (status, last) = app.get("/queues/history?minutes=1").await;
    assert_eq!(status, 200, "{last}");
    assert_eq!(last["from"], last["to"], "{last}");
    let (s, f) = totals(&last, "default");
    assert!(s <= 4 && f <= 4, "{last}");
}
on_both_stacks!(succeeded_jobs_and_failed_attempts_show_in_the_history_and_the_failure_rate);

async fn a_stopping_worker_stores_its_last_counts(stack: Stack) {
    let (mut config, resources) = test_config(stack).await;
    // The app's own workers take no job of these; the pool below, which would
    // store its counts only hourly, does.
    config.worker.queues = vec!["elsewhere".to_owned()];
    let app = spawn_with(config, resources, conveyor::Role::All).await;
    let pool = app.spawn_pool(worker::WorkerConfig {
        concurrency: 4,
        throughput_flush_ms: 3_600_000,
        ..worker::WorkerConfig::default()
    });
    let ok = app.enqueue_noop(json!({})).await;
    let bad = app.enqueue_noop(json!({ "fail_times": 10 })).await;
    app.wait_for_status(&ok, "succeeded", Duration::from_secs(20))
        .await;
    app.wait_for_status(&bad, "dead", Duration::from_secs(20))
        .await;
    let (_, history) = app.get("/queues/history").await;
    assert_eq!(
        totals(&history, "default"),
        (0, 0),
        "not flushed yet: {history}"
    );
    pool.stop().await.expect("a graceful stop");
    let (_, history) = app.get("/queues/history").await;
    assert_eq!(totals(&history, "default"), (1, 3), "{history}");
}
on_both_stacks!(a_stopping_worker_stores_its_last_counts);

async fn housekeeping_deletes_minutes_past_the_history(stack: Stack) {
    let app = app(stack).await;
    let now = engine::throughput::minute_of(Utc::now());
    let row = |minutes_ago: i64, succeeded: u64| MinuteCounts {
        minute: now - chrono::Duration::minutes(minutes_ago),
        queue: "default".to_owned(),
        succeeded,
        failed: 0,
    };
    // 180 minutes are kept: this one and the 179 before it.
    let store = &app.backends.store;
    store
        .add_throughput(&[row(240, 1), row(180, 10), row(1, 100)])
        .await
        .expect("stored");
    let since = now - chrono::Duration::days(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let kept: Vec<u64> = store
            .throughput_since(since)
            .await
            .expect("read")
            .iter()
            .map(|m| m.succeeded)
            .collect();
        if kept == [100] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "housekeeping kept {kept:?}; only the recent minute should stay"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, history) = app.get("/queues/history").await;
    assert_eq!(totals(&history, "default"), (100, 0), "{history}");
}
on_both_stacks!(housekeeping_deletes_minutes_past_the_history);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn minutes_outside_the_history_are_refused() {
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.housekeeping.throughput_history_minutes = 30;
    let app = spawn_with(config, resources, conveyor::Role::All).await;
    for minutes in ["0", "31", "-1", "1.5", "ten", "", "99999999999999999999999"] {
        let (status, body) = app.get(&format!("/queues/history?minutes={minutes}")).await;
        assert_eq!(status, 400, "minutes={minutes}: {body}");
        assert_eq!(body["error"], "bad_request", "{body}");
    }
    let (status, body) = app.get("/queues/history?minutes=0").await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("between 1 and 30")),
        "{body}"
    );
    for (minutes, span) in [("1", 0), ("30", 29)] {
        let (status, body) = app.get(&format!("/queues/history?minutes={minutes}")).await;
        assert_eq!(status, 200, "minutes={minutes}: {body}");
        assert_eq!(
            time(&body["to"]) - time(&body["from"]),
            chrono::Duration::minutes(span),
            "{body}"
        );
    }
    let (_, body) = app.get("/queues/history").await;
    assert_eq!(
        time(&body["to"]) - time(&body["from"]),
        chrono::Duration::minutes(29),
        "the whole history by default: {body}"
    );
    let (_, doc) = app.get("/openapi.json").await;
    let parameter = doc["paths"]["/queues/history"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "minutes")
        .cloned()
        .expect("minutes declared");
    assert_eq!(
        (
            &parameter["schema"]["minimum"],
            &parameter["schema"]["maximum"]
        ),
        (&json!(1), &json!(30)),
        "{parameter}"
    );
}
