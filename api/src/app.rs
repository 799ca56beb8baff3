//! The routes, `/docs` and `/openapi.json` assembled, and the server loop.

use std::future::Future;
use std::time::Duration;

use poem::listener::TcpAcceptor;
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route, Server};
use poem_openapi::OpenApiService;

use crate::ads::AdsApi;
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
            FanoutApi::new(state.fanout.clone()),
        ),
        "Conveyor",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Job queues, workers and a scheduler behind one HTTP API.");
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let metrics = state.metrics.clone();
    Route::new()
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .nest("/", api)
        .catch_all_error(|err: poem::Error| async move { json_error(&err) })
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
    let body = ErrorBody::new(tag, err.to_string());
    poem::web::Json(serde_json::json!({ "error": body.error, "message": body.message }))
        .with_status(status)
        .into_response()
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
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app(state), shutdown, Some(grace))
        .await
}
