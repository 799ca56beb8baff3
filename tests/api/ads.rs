//! `/ad`, `/impression`, `/statistics`: validation, VAST pass-through, upstream
//! failures, counting, key spaces, fill rate, exactness under concurrency.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Stack, TestApp, spawn_with, test_config};
use crate::on_both_stacks;

const VAST: &str = "<?xml version=\"1.0\"?><VAST version=\"4.0\"><Ad id=\"t\"/></VAST>";
const WITHIN: Duration = Duration::from_secs(60);

fn query(user: &str, sdk: &str) -> String {
    format!("sdk_version={sdk}&session_id=s1&platform=ios&username={user}&country_code=DE")
}

async fn vast_server(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/vast"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

async fn app_for(stack: Stack, server: &MockServer, timeout_ms: u64) -> TestApp {
    let (mut config, resources) = test_config(stack).await;
    config.features.ads.vast_url = format!("{}/vast", server.uri());
    config.features.ads.vast_timeout_ms = timeout_ms;
    config.worker.concurrency = 16;
    spawn_with(config, resources, conveyor::Role::All).await
}

/// Waits until every `ads.count` job has succeeded.
async fn settle(app: &TestApp) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let (_, page) = app.get("/jobs?kind=ads.count&status=queued&limit=1").await;
        let (_, running) = app.get("/jobs?kind=ads.count&status=running&limit=1").await;
        let (_, failed) = app.get("/jobs?kind=ads.count&status=failed&limit=1").await;
        if page["jobs"] == json!([]) && running["jobs"] == json!([]) && failed["jobs"] == json!([])
        {
            return;
        }
        assert!(Instant::now() < deadline, "counts did not settle");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn missing_parameters_are_listed_in_the_old_services_words() {
    let server = vast_server(ResponseTemplate::new(200).set_body_string(VAST)).await;
    let app = app_for(Stack::Embedded, &server, 1_000).await;
    for route in ["ad", "impression"] {
        for (q, missing) in [
            (
                "session_id=s&platform=p&country_code=c",
                "['sdk_version', 'username']",
            ),
            (
                "sdk_version=1&session_id=s&platform=p&username=u",
                "['country_code']",
            ),
            (
                "sdk_version=&session_id=s&platform=p&username=u&country_code=c",
                "['sdk_version']",
            ),
            (
                "",
                "['sdk_version', 'session_id', 'platform', 'username', 'country_code']",
            ),
        ] {
            let (status, body) = app.get(&format!("/{route}?{q}")).await;
            assert_eq!(status, 400, "{route}?{q}: {body}");
            assert_eq!(
                body,
                json!({ "success": false, "message": format!("following params are required {missing}") }),
                "{route}?{q}"
            );
        }
    }
    let (_, page) = app.get("/jobs?kind=ads.count").await;
    assert_eq!(page["jobs"], json!([]), "nothing counted");
}

#[tokio::test]
async fn an_ad_is_the_upstream_vast_verbatim_and_is_counted() {
    let server = vast_server(ResponseTemplate::new(200).set_body_string(VAST)).await;
    let app = app_for(Stack::Embedded, &server, 1_000).await;
    let response = app
        .client
        .get(app.url(&format!("/ad?{}", query("jack", "1.0"))))
        .send()
        .await
        .expect("GET /ad");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/xml");
    assert_eq!(response.text().await.expect("body"), VAST);
    let (status, body) = app
        .get(&format!("/impression?{}", query("jack", "1.0")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "success": true, "message": "Successfully fetched" })
    );
    settle(&app).await;
    let (status, body) = app.get("/statistics?username=jack").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "success": true, "jack": { "impressions": 1, "ad_requests": 1, "fill_rate": 1.0 } })
    );
}

#[tokio::test]
async fn upstream_failures_answer_502_or_504_and_still_count() {
    let failing = vast_server(ResponseTemplate::new(500)).await;
    let app = app_for(Stack::Embedded, &failing, 300).await;
    let (status, body) = app.get(&format!("/ad?{}", query("ann", "2.0"))).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["success"], false);

    let hanging = vast_server(
        ResponseTemplate::new(200)
            .set_body_string(VAST)
            .set_delay(Duration::from_secs(5)),
    )
    .await;
    let app2 = app_for(Stack::Embedded, &hanging, 300).await;
    let started = Instant::now();
    let (status, body) = app2.get(&format!("/ad?{}", query("ann", "2.0"))).await;
    assert_eq!(status, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at the timeout"
    );

    // Unreachable: a port nothing listens on.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = unused.local_addr().expect("addr").port();
    drop(unused);
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.features.ads.vast_url = format!("http://127.0.0.1:{port}/vast");
    let app3 = spawn_with(config, resources, conveyor::Role::All).await;
    let (status, _) = app3.get(&format!("/ad?{}", query("ann", "2.0"))).await;
    assert_eq!(status, 504);

    for app in [&app, &app2, &app3] {
        settle(app).await;
        let (status, body) = app.get("/statistics?username=ann").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ann"]["ad_requests"], 1, "counted either way: {body}");
        assert_eq!(body["ann"]["fill_rate"], 0.0);
    }
}

#[tokio::test]
async fn users_and_sdk_versions_are_separate_key_spaces() {
    let server = vast_server(ResponseTemplate::new(200).set_body_string(VAST)).await;
    let app = app_for(Stack::Embedded, &server, 1_000).await;
    // A user named "1.0" on SDK 2.0, and a user "bob" on SDK 1.0.
    for _ in 0..3 {
        app.get(&format!("/impression?{}", query("1.0", "2.0")))
            .await;
    }
    app.get(&format!("/ad?{}", query("bob", "1.0"))).await;
    app.get(&format!("/impression?{}", query("bob", "1.0")))
        .await;
    app.get(&format!("/ad?{}", query("bob", "1.0"))).await;
    settle(&app).await;
    let (_, user) = app.get("/statistics?username=1.0").await;
    assert_eq!(
        user,
        json!({ "success": true, "1.0": { "impressions": 3, "ad_requests": 0, "fill_rate": 0.0 } })
    );
    let (_, sdk) = app.get("/statistics?sdk=1.0").await;
    assert_eq!(
        sdk,
        json!({ "success": true, "1.0": { "impressions": 1, "ad_requests": 2, "fill_rate": 0.5 } })
    );
    // The first of the two parameters wins.
    let (_, first) = app.get("/statistics?sdk=2.0&username=bob").await;
    assert_eq!(first["2.0"]["impressions"], 3, "{first}");
    let (_, first) = app.get("/statistics?username=bob&sdk=2.0").await;
    assert_eq!(first["bob"]["ad_requests"], 2, "{first}");

    let (status, body) = app.get("/statistics?username=nobody").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({ "success": false, "message": "nobody not found" })
    );
    let (status, body) = app.get("/statistics").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({ "success": false, "message": "following params are required ['username', 'sdk']" })
    );
}

/// Found by schemathesis on Postgres + Redis: a NUL character was a 503 ("database
/// unavailable": Postgres text cannot hold it), and a username over 255 characters
/// was answered 200 while its job could never be recorded.
async fn unstorable_keys_are_refused_not_failed(stack: Stack) {
    let server = vast_server(ResponseTemplate::new(200).set_body_string(VAST)).await;
    let app = app_for(stack, &server, 1_000).await;
    let long = "u".repeat(256);
    for route in ["ad", "impression"] {
        for (q, message) in [
            (
                query("a%00b", "1.0"),
                "username must not contain NUL characters",
            ),
            (
                query("bob", "1.%00"),
                "sdk_version must not contain NUL characters",
            ),
            (
                query("bob", "1.0").replace("platform=ios", "platform=i%00s"),
                "platform must not contain NUL characters",
            ),
            (
                query(&long, "1.0"),
                "username must be at most 255 characters",
            ),
            (
                query("bob", &long),
                "sdk_version must be at most 255 characters",
            ),
        ] {
            let (status, body) = app.get(&format!("/{route}?{q}")).await;
            assert_eq!(status, 400, "/{route}?{q}: {body}");
            assert_eq!(body, json!({ "success": false, "message": message }));
        }
    }
    let (status, body) = app.get("/statistics?username=a%00b").await;
    assert_eq!((status, &body["success"]), (404, &json!(false)), "{body}");
    let (status, body) = app.get("/statistics?sdk=1.%00").await;
    assert_eq!(status, 404, "{body}");

    // The longest key is counted.
    let longest = "u".repeat(255);
    let (status, body) = app
        .get(&format!("/impression?{}", query(&longest, "1.0")))
        .await;
    assert_eq!(status, 200, "{body}");
    settle(&app).await;
    let (status, body) = app.get(&format!("/statistics?username={longest}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[&longest]["impressions"], 1, "{body}");
}
on_both_stacks!(unstorable_keys_are_refused_not_failed);

async fn concurrent_requests_are_counted_exactly(stack: Stack) {
    let server = vast_server(ResponseTemplate::new(200).set_body_string(VAST)).await;
    let app = app_for(stack, &server, 2_000).await;
    // A second, independent worker pool on the same backends: two workers.
    let second = app.spawn_pool(worker::WorkerConfig::default());
    const N: usize = 2_000;
    let requests = (0..N).map(|i| {
        let client = crate::helpers::http_client();
        let route = if i % 2 == 0 { "impression" } else { "ad" };
        let url = app.url(&format!(
            "/{route}?{}",
            query(&format!("user{}", i % 20), "9.9")
        ));
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures::stream::iter(requests)
        .buffer_unordered(200)
        .collect::<Vec<_>>()
        .await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "{:?}",
        statuses
            .iter()
            .filter(|s| !matches!(s, Ok(200)))
            .take(3)
            .collect::<Vec<_>>()
    );
    settle(&app).await;
    let (_, sdk) = app.get("/statistics?sdk=9.9").await;
    assert_eq!(sdk["9.9"]["impressions"], N / 2, "{sdk}");
    assert_eq!(sdk["9.9"]["ad_requests"], N / 2, "{sdk}");
    // user0 gets every 20th request from 0: all even, all impressions; user1 all ads.
    let (_, user) = app.get("/statistics?username=user0").await;
    assert_eq!(user["user0"]["impressions"], N / 20, "{user}");
    assert_eq!(user["user0"]["ad_requests"], 0, "{user}");
    let (_, user) = app.get("/statistics?username=user1").await;
    assert_eq!(user["user1"]["ad_requests"], N / 20, "{user}");
    second.stop().await.expect("second pool stops cleanly");
}
on_both_stacks!(concurrent_requests_are_counted_exactly);

async fn a_count_delivered_twice_counts_once(stack: Stack) {
    let server = vast_server(ResponseTemplate::new(200).set_body_string(VAST)).await;
    let (mut config, resources) = test_config(stack).await;
    config.features.ads.vast_url = format!("{}/vast", server.uri());
    let app = spawn_with(config.clone(), resources, conveyor::Role::Api).await;
    app.get(&format!("/impression?{}", query("dup", "1.1")))
        .await;
    let (_, page) = app.get("/jobs?kind=ads.count").await;
    let id = page["jobs"][0]["id"].as_str().expect("a job").to_owned();
    let record = app
        .backends
        .store
        .get(id.parse().expect("a job id"))
        .await
        .expect("db")
        .expect("job");
    let envelope = engine::Task::of(&record);
    let executor = app.executor();
    let _ = tokio::join!(
        executor.execute(envelope.clone(), "a"),
        executor.execute(envelope.clone(), "b")
    );
    executor.execute(envelope, "c").await;
    let (_, body): (u16, Value) = app.get("/statistics?username=dup").await;
    assert_eq!(body["dup"]["impressions"], 1, "{body}");
}
on_both_stacks!(a_count_delivered_twice_counts_once);
