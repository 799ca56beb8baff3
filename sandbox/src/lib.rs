//! Stand-ins for Conveyor's upstream services, so that a fresh checkout can demo and
//! load-test offline (tests mock upstreams with wiremock instead).
//!
//! # Layout
//! - [`SandboxConfig`]: address, seed and the failure mix.
//! - [`work`]: the unreliable "work" server of the fan-out routes (`GET /work`).
//! - [`rates`]: the rate providers in fixer's and frankfurter's shapes
//!   (`GET /fixer/{date}`, `GET /frankfurter/{date}`).
//! - [`vast`]: the VAST ad server of `GET /ad` (`GET /vast`).
//! - [`app`] / [`serve`]: the routes assembled and served.
#![warn(missing_docs)]

pub mod rates;
pub mod vast;
pub mod work;

use std::future::Future;

use poem::listener::TcpAcceptor;
use poem::{Endpoint, EndpointExt, Route, Server, get};

/// Sandbox settings, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxConfig {
    /// Address the sandbox listens on.
    #[arg(long, env = "SANDBOX_BIND_ADDR", default_value = "0.0.0.0:5001")]
    pub bind_addr: String,
    /// Seed of the failure mix: the same seed gives the same sequence of answers.
    #[arg(long, env = "SANDBOX_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Shortest delay of a normal `/work` answer, in ms.
    #[arg(long, env = "SANDBOX_WORK_MIN_MS", default_value_t = 100)]
    pub work_min_ms: u64,
    /// Longest delay of a normal `/work` answer, in ms.
    #[arg(long, env = "SANDBOX_WORK_MAX_MS", default_value_t = 600)]
    pub work_max_ms: u64,
    /// Share of `/work` answers that are HTTP 500.
    #[arg(long, env = "SANDBOX_WORK_500", default_value_t = 0.10)]
    pub work_500: f64,
    /// Share of `/work` answers that are HTTP 429.
    #[arg(long, env = "SANDBOX_WORK_429", default_value_t = 0.05)]
    pub work_429: f64,
    /// Share of `/work` answers whose body is not JSON.
    #[arg(long, env = "SANDBOX_WORK_INVALID_JSON", default_value_t = 0.05)]
    pub work_invalid_json: f64,
    /// Share of `/work` requests that hang for `SANDBOX_WORK_HANG_MS`.
    #[arg(long, env = "SANDBOX_WORK_HANG", default_value_t = 0.05)]
    pub work_hang: f64,
    /// How long a hanging `/work` request hangs, in ms.
    #[arg(long, env = "SANDBOX_WORK_HANG_MS", default_value_t = 10_000)]
    pub work_hang_ms: u64,
}

/// The sandbox's routes.
pub fn app(config: &SandboxConfig) -> impl Endpoint + use<> {
    let work = work::WorkServer::new(config);
    Route::new()
        .at("/work", get(work::answer).data(work))
        .at("/vast", get(vast::answer))
        .at("/fixer/:date", get(rates::fixer))
        .at("/frankfurter/:date", get(rates::frankfurter))
}

/// Serves the sandbox on `listener` until `shutdown` completes.
pub async fn serve(
    listener: std::net::TcpListener,
    config: SandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let acceptor = TcpAcceptor::from_tokio(tokio::net::TcpListener::from_std(listener)?)?;
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app(&config), shutdown, None)
        .await
}
