//! The routes, `/docs` and `/openapi.json` assembled, and the server loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use poem::error::ReadBodyError;
use poem::http::header::{ALLOW, CONNECTION, TRANSFER_ENCODING};
use poem::http::{HeaderValue, Method, StatusCode};
use poem::web::Html;
use poem::web::headers::{self, HeaderMapExt};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::OpenApiService;

use crate::ads::AdsApi;
use crate::allow::AllowedMethods;
use crate::error::ErrorBody;
use crate::fanout::FanoutApi;
use crate::jobs::JobsApi;
use crate::math::MathApi;
use crate::rates::RatesApi;
use crate::reports::ReportsApi;
use crate::state::AppState;
use crate::system::SystemApi;

/// Every route, the explorer at `/docs` and the document at `/openapi.json`.
pub fn app(state: AppState) -> impl Endpoint {
    let api = OpenApiService::new(
        (
            SystemApi::new(state.clone()),
            JobsApi::new(state.clone()),
            ReportsApi::new(state.clone()),
            AdsApi::new(state.clone()),
            MathApi::new(state.clone()),
            RatesApi::new(state.clone()),
            crate::schedules::SchedulesApi::new(state.clone()),
            FanoutApi::new(state.features.fanouts.clone()),
        ),
        "Conveyor",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Job queues, workers and a scheduler behind one HTTP API.");
    let generated = api.spec();
    let document = crate::contract::declare(
        serde_json::from_str(&generated).expect("poem-openapi writes its document as JSON"),
        &crate::contract::Bounds::of(&state),
    );
    let spec = serde_json::to_string_pretty(&document).expect("a JSON value serialises");
    // Swagger UI embeds the document it shows: the declared one, not the generated one.
    let docs_html = api.swagger_ui_html();
    assert!(
        docs_html.contains(&generated),
        "Swagger UI embeds the generated document"
    );
    let docs_html = docs_html.replacen(&generated, &spec, 1);
    let allowed = Arc::new(AllowedMethods::new(
        &document,
        &[
            ("/openapi.json", &[Method::GET]),
            ("/ui", &[Method::GET]),
            ("/ui/index.html", &[Method::GET]),
            ("/ui/app.js", &[Method::GET]),
            ("/ui/app.css", &[Method::GET]),
        ],
    ));
    let metrics = state.metrics.clone();
    let max_body = state.config.max_body_bytes;
    let body_timeout = Duration::from_millis(state.config.http_body_timeout_ms);
    Route::new()
        .nest(
            "/docs",
            poem::get(poem::endpoint::make_sync(move |_| Html(docs_html.clone()))),
        )
        .at(
            "/openapi.json",
            poem::get(poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            })),
        )
        .nest("/", api)
        .nest("/ui", crate::ui::routes())
        .around(move |ep, req| async move {
            match limit_body(req, max_body, body_timeout).await {
                Ok(req) => ep.call(req).await.map(IntoResponse::into_response),
                Err(too_large) => Ok(too_large),
            }
        })
        .catch_all_error(|err: poem::Error| async move { json_error(&err) })
        .around(move |ep, req| {
            let allowed = allowed.clone();
            async move {
                let path = req.uri().path().to_owned();
                let mut response = ep.get_response(req).await;
                if response.status() == StatusCode::METHOD_NOT_ALLOWED
                    && let Some(allow) = allowed.for_path(&path)
                {
                    response.headers_mut().insert(ALLOW, allow.clone());
                }
                Ok(response)
            }
        })
        .around(move |ep, req| {
            let metrics = metrics.clone();
            async move {
                let method = req.method().to_string();
                let response = ep.get_response(req).await;
                metrics.request(&method, response.status().as_u16());
                Ok(response)
            }
        })
}

/// Errors that reach the top (unknown route, wrong method, oversized body) as JSON.
fn json_error(err: &poem::Error) -> Response {
    let status = err.status();
    let tag = match status.as_u16() {
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        s if s < 500 => "bad_request",
        _ => "internal",
    };
    error_response(status, ErrorBody::new(tag, err.to_string()))
}

/// `{"error", "message"}` with this status.
fn error_response(status: StatusCode, body: ErrorBody) -> Response {
    poem::web::Json(serde_json::json!({ "error": body.error, "message": body.message }))
        .with_status(status)
        .into_response()
}

/// Reads a request's body before any route does: refuses one over `max` bytes with 413
/// (at once by its `Content-Length`, else once more than `max` bytes have arrived), and
/// one that has not fully arrived within `timeout` with 408, closing the connection,
/// whose unread rest would otherwise be taken for the next request. Both in JSON.
async fn limit_body(mut req: Request, max: usize, timeout: Duration) -> Result<Request, Response> {
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorBody::new(
                "payload_too_large",
                format!("the request body is larger than {max} bytes (MAX_BODY_BYTES)"),
            ),
        )
    };
    let has_body = match req.headers().typed_get::<headers::ContentLength>() {
        Some(length) if length.0 > max as u64 => return Err(too_large()),
        Some(length) => length.0 > 0,
        None => req.headers().contains_key(TRANSFER_ENCODING),
    };
    if !has_body {
        return Ok(req);
    }
    match tokio::time::timeout(timeout, req.take_body().into_bytes_limit(max)).await {
        Ok(Ok(bytes)) => {
            req.set_body(bytes);
            Ok(req)
        }
        Ok(Err(ReadBodyError::PayloadTooLarge)) => Err(too_large()),
        Ok(Err(err)) => Err(json_error(&err.into())),
        Err(_elapsed) => {
            let mut answer = error_response(
                StatusCode::REQUEST_TIMEOUT,
                ErrorBody::new(
                    "request_timeout",
                    format!(
                        "the request body did not arrive within {} ms (HTTP_BODY_TIMEOUT_MS)",
                        timeout.as_millis()
                    ),
                ),
            );
            answer
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            Err(answer)
        }
    }
}

/// Serves on an already bound listener until `shutdown` completes, then lets open
/// requests finish for up to `grace`.
pub async fn serve(
    listener: std::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let limits = crate::server::Limits {
        header_timeout: Duration::from_millis(state.config.http_header_timeout_ms),
        max_connections: state.config.http_max_connections,
    };
    crate::server::run(listener, app(state), limits, shutdown, grace).await
}
