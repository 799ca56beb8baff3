//! `ADMIN_TOKEN` on the mutating operator routes, the request body limit, and bad
//! input of every sort answered with a clear 4xx.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Resources, Stack, TestApp, spawn_with, test_config};

const TOKEN: &str = "correct-horse-battery-staple";

async fn app_with(edit: impl FnOnce(&mut conveyor::Config)) -> TestApp {
    let (mut config, resources): (conveyor::Config, Resources) = test_config(Stack::Embedded).await;
    edit(&mut config);
    spawn_with(config, resources, conveyor::Role::All).await
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    (status, challenge, body)
}

/// A dead job to retry and a queued one to cancel (enqueued with the token, which
/// `POST /jobs/noop` needs when one is set).
async fn dead_job(app: &TestApp) -> String {
    let (status, _, body) = send(
        app.client
            .post(app.url("/jobs/noop"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .json(&json!({ "fail_times": 10 })),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().expect("job_id").to_owned();
    app.wait_for_status(&id, "dead", Duration::from_secs(15))
        .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_routes_need_the_admin_token_when_it_is_set() {
    let app = app_with(|c| c.api.admin_token = Some(TOKEN.parse().expect("infallible"))).await;
    let dead = dead_job(&app).await;
    let routes = [
        (reqwest::Method::POST, format!("/jobs/{dead}/retry")),
        (reqwest::Method::POST, format!("/jobs/{dead}/abort")),
        (reqwest::Method::DELETE, format!("/jobs/{dead}")),
        (reqwest::Method::POST, "/rates/refresh".to_owned()),
        (reqwest::Method::POST, "/jobs/noop".to_owned()),
        (reqwest::Method::POST, "/jobs/bulk".to_owned()),
    ];
    let jobs_before = app.get("/jobs").await.1["jobs"].as_array().map(Vec::len);
    for (method, path) in &routes {
        for authorization in [
            None,
            Some("Bearer wrong-token".to_owned()),
            Some(format!("Bearer {TOKEN}x")),
            Some(format!("Basic {TOKEN}")),
        ] {
            let mut request = app.client.request(method.clone(), app.url(path));
            // A well-formed request: only the token is missing.
            if path == "/jobs/noop" {
                request = request.json(&json!({}));
            } else if path == "/jobs/bulk" {
                request = request.json(&json!({ "action": "retry" }));
            }
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            let (status, challenge, body) = send(request).await;
            assert_eq!(
                status, 401,
                "{method} {path} with {authorization:?}: {body}"
            );
            assert_eq!(body["error"], "unauthorized", "{body}");
            assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
            assert!(!body.to_string().contains(TOKEN), "{body}");
        }
    }
    // Refused requests changed nothing, and made no job.
    assert_eq!(app.job(&dead).await["status"], "dead");
    assert_eq!(
        app.get("/jobs").await.1["jobs"].as_array().map(Vec::len),
        jobs_before
    );

    // With the token: the retry runs (the job fails again: it fails 10 times).
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, body) = send(
        app.client
            .post(app.url(&format!("/jobs/{dead}/retry")))
            .header("Authorization", &bearer),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, _, body) = send(
        app.client
            .post(app.url("/rates/refresh?date=2000-01-03"))
            .header("Authorization", &bearer),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, _, body) = send(
        app.client
            .delete(app.url("/jobs/01J0000000000000000000NONE"))
            .header("Authorization", &bearer),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(app.get(&format!("/jobs/{dead}")).await.0, 200);
    assert_eq!(app.get("/queues").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_reads_need_a_token_when_one_is_set() {
    const READ: &str = "read-only-token";
    let app = app_with(|c| {
        c.api.admin_token = Some(TOKEN.parse().expect("infallible"));
        c.api.read_token = Some(READ.parse().expect("infallible"));
    })
    .await;
    let dead = dead_job(&app).await;
    let reads = [
        format!("/jobs/{dead}"),
        "/jobs".to_owned(),
        "/queues".to_owned(),
        "/queues/history".to_owned(),
        "/schedules".to_owned(),
        "/metrics".to_owned(),
        "/access".to_owned(),
    ];
    for path in &reads {
        for authorization in [None, Some("Bearer wrong".to_owned())] {
            let mut request = app.client.get(app.url(path));
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            let (status, challenge, body) = send(request).await;
            assert_eq!(status, 401, "{path} with {authorization:?}: {body}");
            assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
            let text = body.to_string();
            assert!(!text.contains(TOKEN) && !text.contains(READ), "{body}");
        }
        for token in [TOKEN, READ] {
            let request = app.client.get(app.url(path)).bearer_auth(token);
            let (status, _, body) = send(request).await;
            assert_eq!(status, 200, "{path} with a valid token: {body}");
        }
    }
    // `/access` tells the dashboard which token it holds.
    for (token, access) in [(TOKEN, "admin"), (READ, "read")] {
        let (_, _, body) = send(app.client.get(app.url("/access")).bearer_auth(token)).await;
        assert_eq!(body, json!({"access": access}));
    }
    // The read token changes nothing.
    let (status, _, body) = send(
        app.client
            .post(app.url(&format!("/jobs/{dead}/retry")))
            .bearer_auth(READ),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("needs ADMIN_TOKEN"),
        "{body}"
    );
    assert_eq!(app.job(&dead).await["status"], "dead");
    // The product's own routes stay open.
    for path in ["/ping", "/ready", "/process_statistics", "/rates", "/ui"] {
        let status = app
            .client
            .get(app.url(path))
            .send()
            .await
            .expect("GET")
            .status();
        assert_ne!(status.as_u16(), 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_can_be_left_public_for_a_scraper() {
    let app = app_with(|c| {
        c.api.admin_token = Some(TOKEN.parse().expect("infallible"));
        c.api.metrics_public = true;
    })
    .await;
    let (status, _, body) = send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = send(app.client.get(app.url("/queues"))).await;
    assert_eq!(status, 401, "only /metrics is public: {body}");
}

#[tokio::test]
async fn a_read_token_without_an_admin_token_is_refused_at_start() {
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.api.read_token = Some("read".parse().expect("infallible"));
    let backends = conveyor::connect(&config, true).await.expect("connect");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let err = conveyor::run(
        conveyor::Role::Api,
        config,
        backends,
        Some(listener),
        async {},
    )
    .await
    .expect_err("refused");
    assert!(err.to_string().contains("READ_TOKEN"), "{err}");
    drop(resources);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_routes_are_open_without_a_token_and_document_401() {
    let app = app_with(|c| c.api.admin_token = Some("".parse().expect("infallible"))).await;
    let dead = dead_job(&app).await;
    let (status, _, body) = send(app.client.post(app.url(&format!("/jobs/{dead}/retry")))).await;
    assert_eq!(status, 202, "an empty ADMIN_TOKEN means none: {body}");
    let (status, _, body) = send(app.client.get(app.url("/access"))).await;
    assert_eq!((status, body), (200, json!({"access": "open"})));

    let (_, doc) = app.get("/openapi.json").await;
    for (path, method) in [
        ("/jobs/{id}", "delete"),
        ("/jobs/{id}/retry", "post"),
        ("/jobs/{id}/abort", "post"),
        ("/rates/refresh", "post"),
        ("/jobs/noop", "post"),
        ("/jobs/bulk", "post"),
    ] {
        let answer = &doc["paths"][path][method]["responses"]["401"];
        assert!(answer.is_object(), "{method} {path} must document 401");
        let challenge = answer["headers"].as_object().and_then(|h| {
            h.keys()
                .find(|k| k.eq_ignore_ascii_case("www-authenticate"))
        });
        assert!(challenge.is_some(), "{method} {path}: {answer}");
    }
    // The operator reads answer 401 too when a token is set; the product's routes never.
    assert!(doc["paths"]["/jobs/{id}"]["get"]["responses"]["401"].is_object());
    assert!(doc["paths"]["/process_statistics"]["get"]["responses"]["401"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_over_the_limit_answer_413_json_with_or_without_a_length() {
    let app = app_with(|c| c.api.max_body_bytes = 1_024).await;
    let report = json!({
        "server_name": "s1",
        "start_time": "2021-05-17T10:12:33Z",
        "end_time": "2021-05-17T10:12:34Z",
    });
    let big: Vec<Value> = vec![report.clone(); 40];
    let big = serde_json::to_vec(&big).expect("json");
    assert!(big.len() > 1_024);

    // With Content-Length: refused before it is read.
    let (status, _, body) = send(
        app.client
            .post(app.url("/process_reports"))
            .header("Content-Type", "application/json")
            .body(big.clone()),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "payload_too_large");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("1024") && m.contains("MAX_BODY_BYTES")),
        "{body}"
    );

    // Chunked, without a length: refused once the limit is crossed.
    let (status, body) = post_chunked(&app, "/process_reports", &big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");

    // A chunked body under the limit goes through whole.
    let small = serde_json::to_vec(&vec![report; 3]).expect("json");
    let (status, body) = post_chunked(&app, "/process_reports", &small).await;
    assert_eq!(status, 202, "{body}");
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no `Content-Length`), 100 bytes a
/// chunk, over a raw connection; returns the status and the raw answer.
async fn post_chunked(app: &TestApp, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(100) {
        request.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        request.extend(chunk);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_of_another_type_than_json_answers_415_json() {
    let app = app_with(|_| {}).await;
    let cases: &[(&str, &str, &str)] = &[
        ("/jobs/noop", "text/plain", "{}"),
        (
            "/jobs/noop",
            "application/x-www-form-urlencoded",
            "sleep_ms=1",
        ),
        (
            "/jobs/math",
            "text/plain",
            "{\"algo\": \"factorial\", \"n\": 5}",
        ),
        ("/process_report", "application/xml", "<report/>"),
        ("/process_reports", "text/csv", "a,b,c"),
    ];
    for (path, content_type, body) in cases {
        let (status, _, answer) = send(
            app.client
                .post(app.url(path))
                .header("Content-Type", *content_type)
                .body(*body),
        )
        .await;
        assert_eq!(status, 415, "{path} {content_type}: {answer}");
        assert!(
            answer.to_string().contains("application/json"),
            "{path}: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_bodies_answer_400_json() {
    let app = app_with(|_| {}).await;
    let cases: &[(&str, &str, &str)] = &[
        ("/jobs/noop", "application/json", ""),
        ("/jobs/noop", "application/json", "[1,2"),
        ("/jobs/noop", "application/json", "\u{feff}{}"),
        ("/jobs/noop", "application/json", "{\"sleep_ms\": -1}"),
        ("/jobs/noop", "application/json", "{\"sleep_ms\": 1e400}"),
        (
            "/jobs/math",
            "application/json",
            "{\"op\": \"factorial\", \"n\": {}}",
        ),
        ("/process_report", "application/json", "null"),
        ("/process_reports", "application/json", "{}"),
    ];
    for (path, content_type, body) in cases {
        let (status, _, answer) = send(
            app.client
                .post(app.url(path))
                .header("Content-Type", *content_type)
                .body(*body),
        )
        .await;
        assert_eq!(status, 400, "{path} {content_type} {body:?}: {answer}");
        assert!(
            answer.is_object() && answer.get("raw").is_none(),
            "{answer}"
        );
        assert!(answer.to_string().len() < 2_000, "{answer}");
    }
}

/// An error message quotes a short prefix of the value it refuses, never the whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn error_messages_quote_a_short_prefix_of_what_they_refuse() {
    let app = app_with(|_| {}).await;
    let huge = "q".repeat(4_000);
    for path in [
        format!("/statistics?username={huge}"),
        format!("/rates?date={huge}"),
        format!("/api/all?timeout={huge}"),
        format!("/factorial?n={huge}"),
    ] {
        let (status, _, answer) = send(app.client.get(app.url(&path))).await;
        assert!((400..500).contains(&status), "{status}");
        let text = answer.to_string();
        assert!(text.len() < 600, "{}: {} bytes", &path[..20], text.len());
        assert!(text.contains("qqqq"), "the value is quoted: {text}");
    }
    let report = json!({
        "server_name": "a",
        "start_time": huge,
        "end_time": "2021-05-17T10:00:00Z",
    });
    let (status, _, answer) = send(app.client.post(app.url("/process_report")).json(&report)).await;
    assert_eq!(status, 400);
    assert!(answer.to_string().len() < 600, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_non_ascii_and_sql_looking_values_are_plain_data() {
    let app = app_with(|_| {}).await;
    let sql = "'; DROP TABLE jobs; --";
    let encoded = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    // Reads with such values find nothing and break nothing.
    for value in [sql, "ジョブ😀", "\u{0}", &"x".repeat(10_000)] {
        let v = encoded(value);
        let (status, body) = app.get(&format!("/jobs?kind={v}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["jobs"], json!([]));
        let (status, body) = app.get(&format!("/jobs/{v}")).await;
        assert!(status == 404 || status == 400, "{status} {body}");
        let (status, body) = app.get(&format!("/statistics?username={v}")).await;
        assert!((400..500).contains(&status), "{status} {body}");
    }
    // Huge numbers are refused by name, not parsed for minutes.
    let (status, body) = app
        .get(&format!("/factorial?n={}", "9".repeat(5_000)))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.get("/jobs?limit=99999999999999999999999").await;
    assert_eq!(status, 400, "{body}");
    // Stored verbatim and read back the same: no mangling, no injection.
    let name = format!("{sql} ジョブ");
    let (status, body) = app
        .post(
            "/process_report",
            &json!({
                "server_name": name,
                "start_time": "2021-05-17T10:12:33Z",
                "end_time": "2021-05-17T10:12:34Z",
            }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // The jobs table is still there and the report's job holds the name as sent.
    let (status, page) = app.get("/jobs?kind=reports.record").await;
    assert_eq!(status, 200, "{page}");
    let job = &page["jobs"][0];
    assert_eq!(
        job["args"]["reports"][0]["server_name"],
        json!(name),
        "{page}"
    );
    let id = job["id"].as_str().expect("id");
    app.wait_for_status(id, "succeeded", Duration::from_secs(10))
        .await;
}

/// Reads from `stream` until it is closed (or answered), for at most `within`; the bytes
/// read, or `None` when nothing came and the connection stayed open.
async fn read_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0; 4096];
    match tokio::time::timeout(within, stream.read(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        Ok(Err(_)) => Some(Vec::new()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_client_that_sends_no_headers_loses_its_connection() {
    use tokio::io::AsyncWriteExt;
    let app = app_with(|c| c.api.http_header_timeout_ms = 300).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let mut halfway = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    halfway
        .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // Closed without an answer (an empty read), well before the generous bound.
    for (name, stream) in [("silent", &mut silent), ("halfway", &mut halfway)] {
        let read = read_within(stream, Duration::from_secs(20)).await;
        assert_eq!(
            read,
            Some(Vec::new()),
            "{name} connection still open or answered"
        );
    }
    // A client that does send its request is answered as ever.
    let (status, body) = app.get("/ping").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_client_that_dribbles_its_body_is_answered_408_and_loses_its_connection() {
    use tokio::io::AsyncWriteExt;
    let app = app_with(|c| c.api.http_body_timeout_ms = 300).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    slow.write_all(
        b"POST /process_report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"server_name\"",
    )
    .await
    .expect("write");
    let answer = read_within(&mut slow, Duration::from_secs(20))
        .await
        .expect("answered while the body was still missing");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    // Then closed: the rest of its body is not read as another request.
    let rest = read_within(&mut slow, Duration::from_secs(20)).await;
    assert_eq!(rest, Some(Vec::new()), "connection still open");
    // A body sent at once is read as ever.
    let (status, body) = app.get("/ping").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn connections_past_the_bound_wait_until_one_closes() {
    use tokio::io::AsyncWriteExt;
    let app = app_with(|c| c.api.http_max_connections = 2).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect"),
        );
    }
    let mut third = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    third
        .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(
        read_within(&mut third, Duration::from_secs(1)).await,
        None,
        "answered while two connections were held"
    );
    held.clear();
    let answer = read_within(&mut third, Duration::from_secs(20))
        .await
        .expect("answered once a connection closed");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_token_the_document_declares_the_bearer_scheme_of_the_operator_routes() {
    let app = app_with(|c| c.api.admin_token = Some(TOKEN.parse().expect("infallible"))).await;
    let (_, doc) = app.get("/openapi.json").await;
    let scheme = &doc["components"]["securitySchemes"]["adminToken"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    for (path, method) in [
        ("/jobs/{id}", "delete"),
        ("/jobs/{id}/retry", "post"),
        ("/jobs/{id}/abort", "post"),
        ("/rates/refresh", "post"),
        ("/jobs/noop", "post"),
        ("/jobs/bulk", "post"),
    ] {
        assert_eq!(
            doc["paths"][path][method]["security"],
            json!([{ "adminToken": [] }]),
            "{method} {path}"
        );
    }
    assert_eq!(
        doc["paths"]["/jobs"]["get"]["security"],
        json!([{ "adminToken": [] }])
    );
    assert!(doc["paths"]["/ping"]["get"].get("security").is_none());
    // Swagger UI shows the same document, so that it offers "Authorize".
    let docs = app
        .client
        .get(app.url("/docs"))
        .send()
        .await
        .expect("GET /docs");
    assert!(docs.text().await.expect("html").contains("\"adminToken\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_filters_must_be_json_strings() {
    let app = app_with(|_| {}).await;
    for (field, value) in [("queue", json!(false)), ("kind", json!(5))] {
        let (status, _, body) = send(
            app.client
                .post(app.url("/jobs/bulk"))
                .json(&json!({ "action": "retry", field: value })),
        )
        .await;
        assert_eq!(status, 400, "{field}: {value} was taken as text: {body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(field),
            "{body}"
        );
    }
}

/// Everything a connection sends until it closes (or 20 s pass).
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut all)).await;
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn requests_hyper_cannot_read_are_answered_in_json_too() {
    use tokio::io::AsyncWriteExt;
    let app = app_with(|_| {}).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases = [
        (
            "GET /ping HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n".to_owned(),
            "400",
            "bad_request",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)),
            "414",
            "uri_too_long",
        ),
        (
            format!("GET /ping HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            "431",
            "header_fields_too_large",
        ),
    ];
    for (request, status, tag) in cases {
        let mut client = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        client.write_all(request.as_bytes()).await.expect("write");
        let answer = read_until_closed(&mut client).await;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {answer:?}"));
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/json"), "{head}");
        assert!(
            lower.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(body["error"], tag, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    // Good requests are served as ever, on a connection of their own.
    let (status, body) = app.get("/ping").await;
    assert_eq!(status, 200, "{body}");
}
