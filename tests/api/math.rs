//! `/factorial`, `/fibonacci`, `/ackermann`, `POST /jobs/math`: exact values, the old
//! service's messages, limits, inline and queued paths, the 202 path and the cache.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Stack, TestApp, spawn_app, spawn_with, test_config};
use crate::on_both_stacks;

async fn raw(app: &TestApp, path: &str) -> (u16, String, String) {
    let response = app.client.get(app.url(path)).send().await.expect("GET");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

async fn digits_of(app: &TestApp, path: &str) -> String {
    let (status, _, body) = raw(app, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    let prefix_end = body.find("\"result\":").expect("a result") + "\"result\":".len();
    let rest = &body[prefix_end..];
    let end = rest.find(',').expect("fields after result");
    rest[..end].to_owned()
}

#[tokio::test]
async fn small_values_are_exact_json_integers() {
    let app = spawn_app(Stack::Embedded).await;
    let (status, content_type, body) = raw(&app, "/factorial?n=5").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(
        body,
        r#"{"algo":"factorial","result":120,"status":"success"}"#
    );
    let cases = [
        ("/factorial?n=0", "1"),
        ("/factorial?n=30", "265252859812191058636308480000000"),
        ("/fibonacci?n=0", "0"),
        ("/fibonacci?n=1", "1"),
        ("/fibonacci?n=100", "354224848179261915075"),
        ("/ackermann?m=0&n=0", "1"),
        ("/ackermann?m=2&n=3", "9"),
        ("/ackermann?m=3&n=3", "61"),
        ("/ackermann?m=4&n=1", "65533"),
    ];
    for (path, want) in cases {
        assert_eq!(digits_of(&app, path).await, want, "{path}");
    }
    // A value far beyond 64 bits parses back as the same exact integer.
    let (_, _, body) = raw(&app, "/factorial?n=30").await;
    let parsed: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    assert!(parsed["result"].is_number());
    assert_eq!(parsed["status"], "success");
}

#[tokio::test]
async fn inputs_are_parsed_like_pythons_int() {
    let app = spawn_app(Stack::Embedded).await;
    for (path, want) in [
        (
            "/factorial?n=%2042%20",
            "1405006117752879898543142606244511569936384000000000",
        ),
        ("/factorial?n=1_0", "3628800"),
        ("/factorial?n=%2B5", "120"),
        ("/factorial?n=007", "5040"),
    ] {
        assert_eq!(digits_of(&app, path).await, want, "{path}");
    }
}

#[tokio::test]
async fn bad_inputs_answer_the_old_services_messages() {
    let app = spawn_app(Stack::Embedded).await;
    let cases = [
        ("/factorial", "factorial", "Bad input"),
        ("/fibonacci", "fibonacci", "Bad input"),
        ("/ackermann?n=1", "ackermann", "Bad input"),
        ("/ackermann?m=1", "ackermann", "Bad input"),
        (
            "/factorial?n=abc",
            "factorial",
            "invalid literal for int() with base 10: 'abc'",
        ),
        (
            "/factorial?n=1.5",
            "factorial",
            "invalid literal for int() with base 10: '1.5'",
        ),
        (
            "/factorial?n=",
            "factorial",
            "invalid literal for int() with base 10: ''",
        ),
        (
            "/fibonacci?n=1__0",
            "fibonacci",
            "invalid literal for int() with base 10: '1__0'",
        ),
        (
            "/ackermann?m=x&n=1",
            "ackermann",
            "invalid literal for int() with base 10: 'x'",
        ),
        ("/factorial?n=-1", "factorial", "Negative Integer"),
        ("/ackermann?m=1&n=-2", "ackermann", "Negative Integer"),
    ];
    for (path, algo, message) in cases {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(
            body,
            json!({ "algo": algo, "result": message, "status": "failed" }),
            "{path}"
        );
    }
}

#[tokio::test]
async fn inputs_over_the_limits_are_refused_naming_the_limit() {
    let app = spawn_app(Stack::Embedded).await;
    for (path, needle) in [
        ("/factorial?n=1000001", "1000000"),
        ("/fibonacci?n=10000001", "10000000"),
        ("/factorial?n=99999999999999999999999999", "1000000"),
        ("/ackermann?m=4&n=3", "10000000"),
        ("/ackermann?m=5&n=5", "10000000"),
        (
            "/ackermann?m=18446744073709551615&n=18446744073709551615",
            "10000000",
        ),
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["status"], "failed");
        assert!(
            body["result"].as_str().unwrap_or("").contains(needle),
            "{path}: {body}"
        );
    }
}

async fn an_expensive_input_runs_as_a_job_and_is_cached(stack: Stack) {
    let app = spawn_app(stack).await;
    // A(4, 2) = 2^65536 − 3: 65 536 bits, over the tests' inline limit of 10 000.
    let digits = digits_of(&app, "/ackermann?m=4&n=2").await;
    assert_eq!(digits.len(), 19_729);
    assert!(
        digits.ends_with("156733"),
        "{}",
        &digits[digits.len() - 10..]
    );
    let (_, page) = app.get("/jobs?kind=math.ackermann").await;
    let jobs = page["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "{page}");
    assert_eq!(jobs[0]["status"], "succeeded");
    assert_eq!(jobs[0]["queue"], "math");
    assert_eq!(jobs[0]["result"]["key"], "ackermann(4,2)");

    // A repeat is a read: same digits, no second job.
    assert_eq!(digits_of(&app, "/ackermann?m=4&n=2").await, digits);
    let (_, page) = app.get("/jobs?kind=math.ackermann").await;
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(1));
}
on_both_stacks!(an_expensive_input_runs_as_a_job_and_is_cached);

async fn identical_requests_share_one_computation(stack: Stack) {
    let app = spawn_app(stack).await;
    // 5000! has 16 326 digits: over the tests' inline limit, so a job.
    let requests = (0..8).map(|_| digits_of(&app, "/factorial?n=5000"));
    let answers = futures::future::join_all(requests).await;
    assert_eq!(answers[0].len(), 16_326);
    assert!(answers.iter().all(|a| *a == answers[0]));
    let (_, page) = app.get("/jobs?kind=math.factorial").await;
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(1), "{page}");

    // A job for a value cached already reads it instead of computing it again.
    let (status, body) = app
        .post("/jobs/math", &json!({ "algo": "factorial", "n": 5000 }))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().expect("job id");
    let job = app
        .wait_for_status(id, "succeeded", Duration::from_secs(20))
        .await;
    assert_eq!(job["result"]["reused"], true, "{job}");
    assert_eq!(job["result"]["digits"], 16_326, "{job}");
    let (_, _, text) = raw(&app, "/metrics").await;
    assert!(
        text.contains("conveyor_math_duration_seconds_count{algo=\"factorial\"} 1"),
        "computed more than once: {text}"
    );
}
on_both_stacks!(identical_requests_share_one_computation);

#[tokio::test]
async fn a_slow_computation_answers_202_with_the_job() {
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.features.math.wait_ms = 0;
    // The api alone: nothing computes the job, so the route must answer 202.
    let app = spawn_with(config, resources, conveyor::Role::Api).await;
    let response = app
        .client
        .get(app.url("/factorial?n=5000"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 202);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: serde_json::Value = response.json().await.expect("json");
    let id = body["job_id"].as_str().expect("job id");
    assert_eq!(location, format!("/jobs/{id}"));
    assert_eq!(app.job(id).await["status"], "queued");
}

#[tokio::test]
async fn post_jobs_math_always_enqueues() {
    let app = spawn_app(Stack::Embedded).await;
    let (status, body) = app
        .post("/jobs/math", &json!({ "algo": "factorial", "n": 20 }))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().expect("job id");
    let job = app
        .wait_for_status(id, "succeeded", Duration::from_secs(20))
        .await;
    assert_eq!(job["kind"], "math.factorial");
    assert_eq!(job["result"]["key"], "factorial(20)");
    // The cached value now answers the route.
    assert_eq!(
        digits_of(&app, "/factorial?n=20").await,
        "2432902008176640000"
    );

    for (bad, needle) in [
        (json!({ "algo": "ackermann", "n": 1 }), "needs m"),
        (json!({ "algo": "factorial", "n": 1, "m": 2 }), "takes no m"),
        (json!({ "algo": "factorial", "n": 2_000_000 }), "1000000"),
        (json!({ "algo": "square", "n": 1 }), "square"),
        (json!({ "algo": "factorial", "n": -1 }), "uint64"),
    ] {
        let (status, body) = app.post("/jobs/math", &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(needle),
            "{bad}: {body}"
        );
    }
}

#[tokio::test]
async fn computation_times_are_in_metrics() {
    let app = spawn_app(Stack::Embedded).await;
    digits_of(&app, "/fibonacci?n=50").await;
    let (_, _, text) = raw(&app, "/metrics").await;
    assert!(
        text.contains("conveyor_math_duration_seconds_count{algo=\"fibonacci\"} 1"),
        "{text}"
    );
}

/// A cheap value is computed once and then answered from memory; with no memory cache,
/// every request computes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cheap_values_are_computed_once_then_remembered() {
    for (cache_bytes, computed) in [(1_000_000, 1), (0, 3)] {
        let (mut config, resources) = test_config(Stack::Embedded).await;
        config.features.math.cache_bytes = cache_bytes;
        let app = spawn_with(config, resources, conveyor::Role::Api).await;
        let first = digits_of(&app, "/factorial?n=100").await;
        for _ in 0..2 {
            assert_eq!(digits_of(&app, "/factorial?n=100").await, first);
        }
        let (_, _, text) = raw(&app, "/metrics").await;
        let count =
            format!("conveyor_math_duration_seconds_count{{algo=\"factorial\"}} {computed}\n");
        assert!(
            text.contains(&count),
            "cache of {cache_bytes} bytes: {text}"
        );
    }
}

/// A cheap input is computed without any database round trip, and a queued value once
/// read is served from memory: both answer with the database gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cheap_and_remembered_values_answer_without_the_database() {
    let (mut config, resources) = test_config(Stack::Production).await;
    let proxy = crate::helpers::Cut::database(&mut config).await;
    config.backends.database_acquire_timeout_ms = 1_000;
    let app = spawn_with(config, resources, conveyor::Role::All).await;
    // A(4, 2): over the tests' inline limit, so a job computes it.
    let queued = digits_of(&app, "/ackermann?m=4&n=2").await;
    assert_eq!(queued.len(), 19_729);

    proxy.cut();
    assert_eq!(digits_of(&app, "/factorial?n=100").await.len(), 158);
    assert_eq!(digits_of(&app, "/ackermann?m=4&n=2").await, queued);
    // What needs the database still says so.
    let (status, _, body) = raw(&app, "/fibonacci?n=1000000").await;
    assert_eq!(status, 503, "{body}");
}

async fn stored_values_are_bounded_by_age_and_by_digits(stack: Stack) {
    use entity::math_result;
    use features::math::purge::{StoreBounds, purge_cache};
    use sea_orm::{ActiveValue::Set, EntityTrait};

    let app = spawn_app(stack).await;
    let db = app.backends.store.db();
    let now = chrono::Utc::now();
    // Four values of 1 000 digits, one a day older than the next.
    for age_days in 0..4 {
        let key = format!("factorial({age_days})");
        math_result::Entity::insert(math_result::ActiveModel {
            key: Set(key),
            algo: Set("factorial".to_owned()),
            digits: Set("7".repeat(1_000)),
            digit_count: Set(1_000),
            elapsed_ms: Set(1),
            job_id: Set(engine::JobId::generate().to_string()),
            created_at: Set(now - chrono::Duration::days(age_days)),
        })
        .exec(db)
        .await
        .expect("insert");
    }
    let keys = || async {
        let mut keys: Vec<String> = math_result::Entity::find()
            .all(db)
            .await
            .expect("read")
            .into_iter()
            .map(|row| row.key)
            .collect();
        keys.sort();
        keys
    };
    let unbounded = StoreBounds {
        retention: None,
        max_digits: None,
    };
    assert_eq!(purge_cache(db, unbounded, now).await.expect("purge"), 0);

    // Older than two and a half days: the value of day 3 goes.
    let by_age = StoreBounds {
        retention: Some(Duration::from_secs(60 * 60 * 60)),
        max_digits: None,
    };
    assert_eq!(purge_cache(db, by_age, now).await.expect("purge"), 1);
    assert_eq!(
        keys().await,
        ["factorial(0)", "factorial(1)", "factorial(2)"]
    );

    // 2 500 digits at most: the newest two stay.
    let by_size = StoreBounds {
        retention: None,
        max_digits: Some(2_500),
    };
    assert_eq!(purge_cache(db, by_size, now).await.expect("purge"), 1);
    assert_eq!(keys().await, ["factorial(0)", "factorial(1)"]);
    assert_eq!(
        purge_cache(db, by_size, now).await.expect("purge"),
        0,
        "nothing more"
    );
}
on_both_stacks!(stored_values_are_bounded_by_age_and_by_digits);
