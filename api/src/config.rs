//! Settings of the api role.

use std::time::Duration;

/// Api settings, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiConfig {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:5000")]
    pub bind_addr: String,
    /// How long an `Idempotency-Key` returns the first job, in seconds.
    #[arg(long, env = "IDEMPOTENCY_WINDOW_SECS", default_value_t = 86_400)]
    pub idempotency_window_secs: u64,
    /// Largest page of `GET /jobs`.
    #[arg(long, env = "JOBS_PAGE_MAX", default_value_t = 500)]
    pub jobs_page_max: u64,
}

impl ApiConfig {
    /// The idempotency window.
    pub fn idempotency_window(&self) -> Duration {
        Duration::from_secs(self.idempotency_window_secs)
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bind_addr: "0.0.0.0:5000".to_owned(),
            idempotency_window_secs: 86_400,
            jobs_page_max: 500,
        }
    }
}
