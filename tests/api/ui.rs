//! `/ui`: the dashboard's embedded assets, and that the page reads only routes the
//! OpenAPI document has (it keeps no data of its own). `tests/ui/run.sh` drives it in
//! a browser.

use serde_json::Value;

use crate::helpers::{Stack, TestApp, spawn_app};
use crate::on_both_stacks;

/// Status, content type, cache-control and body of `GET path`.
async fn fetch(app: &TestApp, path: &str) -> (u16, String, String, String) {
    let response = app.client.get(app.url(path)).send().await.expect("GET");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (content_type, cache) = (header("content-type"), header("cache-control"));
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    (status, content_type, cache, body)
}

/// The page cannot be framed (clickjacking its operator buttons), load anything but its
/// own script, style and JSON routes, nor have its types sniffed.
#[tokio::test]
async fn the_dashboard_is_served_with_security_headers() {
    let app = spawn_app(Stack::Embedded).await;
    for path in ["/ui", "/ui/app.js", "/ui/app.css"] {
        let response = app.client.get(app.url(path)).send().await.expect("GET");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
    }
}

async fn the_dashboard_and_its_assets_are_served_from_the_binary(stack: Stack) {
    let app = spawn_app(stack).await;
    for path in ["/ui", "/ui/", "/ui/index.html"] {
        let (status, content_type, cache, body) = fetch(&app, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(content_type, "text/html; charset=utf-8", "{path}");
        assert_eq!(cache, "no-cache", "{path}");
        for section in ["overview", "jobs", "schedules", "features"] {
            assert!(
                body.contains(&format!("<section id=\"{section}\"")),
                "{path} has no {section} section"
            );
        }
        // Absolute, so that `/ui` (no trailing slash) loads them too.
        assert!(body.contains("src=\"/ui/app.js\""), "{path}");
        assert!(body.contains("href=\"/ui/app.css\""), "{path}");
        assert!(body.contains("id=\"admin-token\""), "{path}");
    }
    let (status, content_type, cache, script) = fetch(&app, "/ui/app.js").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/javascript; charset=utf-8");
    assert_eq!(cache, "no-cache");
    assert!(script.contains("Authorization") || script.contains("authorization"));
    let (status, content_type, _, style) = fetch(&app, "/ui/app.css").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/css; charset=utf-8");
    assert!(style.contains("@media"), "the page folds on a phone");

    for path in ["/ui/nope.js", "/ui/app.js/x", "/ui/APP.CSS"] {
        let (status, _, _, body) = fetch(&app, path).await;
        assert_eq!(status, 404, "{path}");
        let body: Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(body["error"], "not_found", "{path}");
    }
}
on_both_stacks!(the_dashboard_and_its_assets_are_served_from_the_binary);

async fn the_dashboard_reads_only_documented_routes_and_is_not_one_itself(stack: Stack) {
    let app = spawn_app(stack).await;
    let (_, _, _, script) = fetch(&app, "/ui/app.js").await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(
        paths.keys().all(|p| !p.starts_with("/ui")),
        "the dashboard is not part of the API document"
    );
    // Every route the script calls, as the script spells it, and as documented.
    let routes = [
        ("\"/queues\"", "/queues", "get"),
        ("`/jobs${", "/jobs", "get"),
        ("`/jobs/${", "/jobs/{id}", "get"),
        // A job's actions: a table of method and path after `/jobs/{id}`.
        (
            "`/jobs/${encodeURIComponent(id)}${path}`",
            "/jobs/{id}",
            "get",
        ),
        (
            "method: \"POST\", path: \"/retry\"",
            "/jobs/{id}/retry",
            "post",
        ),
        ("method: \"DELETE\", path: \"\"", "/jobs/{id}", "delete"),
        (
            "method: \"POST\", path: \"/abort\"",
            "/jobs/{id}/abort",
            "post",
        ),
        ("call(\"POST\", \"/jobs/bulk\"", "/jobs/bulk", "post"),
        (
            "`/queues/${encodeURIComponent(queue)}/${action}`",
            "/queues/{queue}/pause",
            "post",
        ),
        (
            "`/queues/${encodeURIComponent(queue)}/${action}`",
            "/queues/{queue}/resume",
            "post",
        ),
        ("`/queues/history${", "/queues/history", "get"),
        (
            "`/schedules/${encodeURIComponent(name)}/run`",
            "/schedules/{name}/run",
            "post",
        ),
        ("\"/schedules\"", "/schedules", "get"),
        ("\"/access\"", "/access", "get"),
        ("\"/rates\"", "/rates", "get"),
        ("`/statistics${", "/statistics", "get"),
        ("`/process_statistics${", "/process_statistics", "get"),
        ("\"/process_outliers\"", "/process_outliers", "get"),
    ];
    for (spelled, path, method) in routes {
        assert!(script.contains(spelled), "app.js does not call {spelled}");
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not in /openapi.json"
        );
    }
}
on_both_stacks!(the_dashboard_reads_only_documented_routes_and_is_not_one_itself);
