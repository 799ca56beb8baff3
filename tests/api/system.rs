//! `/`, `/ping`, `/health`, `/ready`, `/metrics`, `/openapi.json`, JSON errors.

use serde_json::{Value, json};

use crate::helpers::{Cut, Stack, spawn_app, spawn_with, test_config};
use crate::on_both_stacks;

async fn ping_and_root_answer_pong(stack: Stack) {
    let app = spawn_app(stack).await;
    assert_eq!(app.get("/ping").await, (200, json!({ "message": "pong" })));
    assert_eq!(app.get("/").await, (200, json!({ "message": "pong" })));
    assert_eq!(app.get("/health").await, (200, json!({ "status": "ok" })));
}
on_both_stacks!(ping_and_root_answer_pong);

#[tokio::test]
async fn a_browser_at_root_is_sent_to_the_docs() {
    let app = spawn_app(Stack::Embedded).await;
    engine::http::install_tls_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client
        .get(app.url("/"))
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("GET /");
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/docs");
    let docs = client
        .get(app.url("/docs"))
        .send()
        .await
        .expect("GET /docs");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await.expect("html").contains("swagger"));
}

async fn ready_names_the_backends_when_they_answer(stack: Stack) {
    let app = spawn_app(stack).await;
    let (status, body) = app.get("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["queue"], "ok");
    let backend = if stack == Stack::Embedded {
        "sqlite"
    } else {
        "redis"
    };
    assert_eq!(body["queue_backend"], backend);
}
on_both_stacks!(ready_names_the_backends_when_they_answer);

#[tokio::test]
async fn ready_answers_503_naming_the_queue_when_redis_is_down() {
    let (mut config, dir) = crate::helpers::test_config(Stack::Embedded).await;
    // A port nothing listens on: the connection manager starts, every command fails.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = unused.local_addr().expect("addr").port();
    drop(unused);
    config.backends.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    let connected = conveyor::connect(&config, true).await;
    // Either the queue refuses at start (a clear error, not a panic) or /ready says so.
    match connected {
        Err(err) => assert!(err.to_string().contains("redis"), "{err:#}"),
        Ok(_) => {
            let app = crate::helpers::spawn_with(config, dir, conveyor::Role::Api).await;
            let (status, body) = app.get("/ready").await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["database"], "ok");
            assert!(
                body["queue"].as_str().unwrap_or("").starts_with("down"),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn metrics_expose_requests_jobs_latency_and_depth() {
    let app = spawn_app(Stack::Embedded).await;
    let id = app.enqueue_noop(json!({})).await;
    app.wait_for_status(&id, "succeeded", std::time::Duration::from_secs(10))
        .await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "conveyor_http_requests_total{",
        "conveyor_jobs_total{kind=\"system.noop\",outcome=\"succeeded\"} 1",
        "conveyor_job_duration_seconds_count{kind=\"system.noop\"} 1",
        "conveyor_queue_depth{queue=\"default\"} 0",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_its_answers() {
    let app = spawn_app(Stack::Embedded).await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let routes: &[(&str, &str, &[&str])] = &[
        ("/", "get", &["200", "303"]),
        ("/ping", "get", &["200"]),
        ("/health", "get", &["200"]),
        ("/ready", "get", &["200", "503"]),
        ("/metrics", "get", &["200", "401"]),
        ("/jobs", "get", &["200", "400", "401", "503"]),
        ("/jobs/{id}", "get", &["200", "401", "404", "503"]),
        ("/jobs/{id}", "delete", &["200", "401", "404", "409", "503"]),
        (
            "/jobs/{id}/retry",
            "post",
            &["202", "401", "404", "409", "503"],
        ),
        (
            "/jobs/{id}/abort",
            "post",
            &["200", "401", "404", "409", "503"],
        ),
        (
            "/jobs/noop",
            "post",
            &["202", "400", "401", "415", "422", "503"],
        ),
        ("/jobs/math", "post", &["202", "400", "415", "422", "503"]),
        ("/queues", "get", &["200", "401", "503"]),
        ("/queues/history", "get", &["200", "400", "401", "503"]),
        (
            "/queues/{queue}/pause",
            "post",
            &["200", "401", "404", "503"],
        ),
        (
            "/queues/{queue}/resume",
            "post",
            &["200", "401", "404", "503"],
        ),
        ("/jobs/bulk", "post", &["200", "400", "401", "415", "503"]),
        (
            "/schedules/{name}/run",
            "post",
            &["202", "401", "404", "409", "503"],
        ),
        (
            "/process_report",
            "post",
            &["202", "400", "415", "422", "503"],
        ),
        (
            "/process_reports",
            "post",
            &["202", "400", "415", "422", "503"],
        ),
        ("/process_statistics", "get", &["200", "404", "409", "503"]),
        ("/process_outliers", "get", &["200", "409", "503"]),
        ("/ad", "get", &["200", "400", "502", "503", "504"]),
        ("/impression", "get", &["200", "400", "503"]),
        ("/statistics", "get", &["200", "400", "404", "503"]),
        ("/factorial", "get", &["200", "202", "400", "500", "503"]),
        ("/fibonacci", "get", &["200", "202", "400", "500", "503"]),
        ("/ackermann", "get", &["200", "202", "400", "500", "503"]),
        ("/api/all", "get", &["200", "400", "502", "503", "504"]),
        ("/api/first", "get", &["200", "400", "502", "503", "504"]),
        ("/api/within-timeout", "get", &["200", "400", "503"]),
        ("/api/smart", "get", &["200", "400", "502", "503", "504"]),
        (
            "/rates/refresh",
            "post",
            &["202", "400", "401", "422", "503"],
        ),
    ];
    for (path, method, codes) in routes {
        let responses = doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} missing from /openapi.json"));
        let mut documented: Vec<&str> = responses.keys().map(String::as_str).collect();
        // Any route may also document 400 for a request poem cannot parse at all.
        documented.retain(|code| *code != "400" || codes.contains(&"400"));
        assert_eq!(&documented, codes, "{method} {path}");
    }
    // A route answers only what it documents: within-timeout never 502/504, a cancel
    // never 202, a retry never 200.
    assert!(doc["paths"]["/api/within-timeout"]["get"]["responses"]["504"].is_null());
    assert!(doc["paths"]["/jobs/{id}"]["delete"]["responses"]["202"].is_null());
    assert!(doc["paths"]["/jobs/{id}/retry"]["post"]["responses"]["200"].is_null());
}

#[tokio::test]
async fn a_wrong_method_answers_405_naming_the_methods_of_the_route() {
    let app = spawn_app(Stack::Embedded).await;
    let (_, doc) = app.get("/openapi.json").await;
    let paths = doc["paths"].as_object().expect("paths");
    let mut routes: Vec<(String, Vec<String>)> = paths
        .iter()
        .map(|(path, operations)| {
            let mut methods: Vec<String> = operations
                .as_object()
                .expect("operations")
                .keys()
                .map(|m| m.to_ascii_uppercase())
                .collect();
            if methods.iter().any(|m| m == "GET") {
                methods.push("HEAD".to_owned());
            }
            (path.replace("{id}", "01JZZZZZZZZZZZZZZZZZZZZZZZ"), methods)
        })
        .collect();
    routes.push(("/ui".to_owned(), vec!["GET".into(), "HEAD".into()]));
    routes.push(("/ui/app.js".to_owned(), vec!["GET".into(), "HEAD".into()]));
    routes.push((
        "/openapi.json".to_owned(),
        vec!["GET".into(), "HEAD".into()],
    ));
    assert!(routes.len() > 30, "{routes:?}");
    for (path, methods) in routes {
        let wrong = if methods.iter().any(|m| m == "PUT") {
            reqwest::Method::PATCH
        } else {
            reqwest::Method::PUT
        };
        let response = app
            .client
            .request(wrong.clone(), app.url(&path))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 405, "{wrong} {path}");
        let allow = response
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("{wrong} {path}: 405 without Allow"))
            .to_str()
            .expect("ASCII")
            .to_owned();
        let mut listed: Vec<&str> = allow.split(", ").collect();
        listed.sort_unstable();
        let mut expected: Vec<&str> = methods.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(listed, expected, "{wrong} {path}");
        let body: serde_json::Value = response.json().await.expect("a JSON error");
        assert_eq!(body["error"], "method_not_allowed", "{path}");
    }
    // What Allow promises holds: HEAD is answered wherever GET is.
    for path in ["/ping", "/jobs", "/ui", "/openapi.json"] {
        let response = app.client.head(app.url(path)).send().await.expect("HEAD");
        assert_eq!(response.status().as_u16(), 200, "HEAD {path}");
    }
}

#[tokio::test]
async fn unknown_routes_and_malformed_bodies_answer_json_errors() {
    let app = spawn_app(Stack::Embedded).await;
    let (status, body) = app.get("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");

    let response = app
        .client
        .post(app.url("/jobs/noop"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["error"], "bad_request");
    assert!(
        body["message"].as_str().unwrap_or("").contains("parse"),
        "{body}"
    );

    let (status, body) = app.post("/jobs/noop", &json!({ "sleep": 1 })).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap_or("").contains("sleep"),
        "{body}"
    );
}

/// Postgres goes away under a running api: a job request is refused with a JSON 503
/// naming the database once `DATABASE_ACQUIRE_TIMEOUT_MS` has run out, not hung.
/// (How long it took is not asserted beyond that lower bound: `tests/faults/run.sh`
/// measures it.)
#[tokio::test]
async fn a_job_request_is_refused_with_json_once_the_database_wait_runs_out() {
    let (mut config, resources) = crate::helpers::test_config(Stack::Production).await;
    let proxy = Cut::database(&mut config).await;
    config.backends.database_acquire_timeout_ms = 1_000;
    let app = crate::helpers::spawn_with(config, resources, conveyor::Role::Api).await;
    let (status, body) = app.post("/jobs/noop", &json!({})).await;
    assert_eq!(status, 202, "{body}");

    proxy.cut();
    // The first request may meet a pooled connection that the cut reset; once none is
    // left, every request waits for a new one until the bound runs out.
    let mut answers = Vec::new();
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let (status, body) = app.post("/jobs/noop", &json!({})).await;
        answers.push((status, body, started.elapsed()));
    }
    for (status, body, _) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"], "unavailable", "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("database unavailable")),
            "{body}"
        );
    }
    let (_, body, waited) = &answers[1];
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("timed out")),
        "refused for another reason than the connection wait: {body}"
    );
    assert!(
        *waited >= std::time::Duration::from_millis(1_000),
        "refused after {waited:?}, before the wait could run out"
    );
}

#[tokio::test]
async fn the_document_declares_required_parameters_and_configured_bounds() {
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.features.math.factorial_max_n = 1_234;
    config.api.jobs_page_max = 77;
    let app = spawn_with(config, resources, conveyor::Role::All).await;
    let (_, doc) = app.get("/openapi.json").await;
    let parameter = |method: &str, path: &str, name: &str| -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
    };
    // A parameter the service refuses to go without is required in the document.
    let n = parameter("get", "/factorial", "n");
    assert_eq!(n["required"], true);
    assert_eq!(n["schema"]["type"], "integer");
    assert_eq!(n["schema"]["maximum"], 1_234);
    for name in [
        "sdk_version",
        "session_id",
        "platform",
        "username",
        "country_code",
    ] {
        assert_eq!(
            parameter("get", "/impression", name)["required"],
            true,
            "{name}"
        );
    }
    assert_eq!(parameter("get", "/api/all", "timeout")["required"], true);
    let limit = parameter("get", "/jobs", "limit");
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(77))
    );
    let key = parameter("post", "/jobs/noop", "Idempotency-Key");
    assert_eq!(key["schema"]["pattern"], "^[!-~]{1,200}$");
    let bulk = &doc["components"]["schemas"]["BulkRequest"];
    assert_eq!(bulk["additionalProperties"], false);
    // Without a token the operator routes are open, and no scheme is declared.
    assert!(doc["components"].get("securitySchemes").is_none());
    // /docs embeds this document, not the looser one generated from the types.
    let docs = app
        .client
        .get(app.url("/docs"))
        .send()
        .await
        .expect("GET /docs");
    let html = docs.text().await.expect("html");
    assert!(
        html.contains("\"pattern\": \"^[!-~]{1,200}$\""),
        "Swagger UI shows the declared document"
    );
}
