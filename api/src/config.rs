//! Settings of the api role.

use std::time::Duration;

use jobs::secret::Secret;

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
    /// Bearer token of the mutating operator routes (`DELETE /jobs/{id}`,
    /// `POST /jobs/{id}/retry`, `POST /rates/refresh`): when set, they answer 401
    /// without `Authorization: Bearer <token>`. Unset or empty: open. Never logged.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Largest request body in bytes; a larger one is answered 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
}

/// 4 MiB: a full `POST /process_reports` batch of `REPORTS_BATCH_MAX` reports with
/// room to spare.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

impl ApiConfig {
    /// The admin token, when one is set and not empty.
    pub fn admin_token(&self) -> Option<&Secret> {
        self.admin_token.as_ref().filter(|t| !t.is_empty())
    }

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
            admin_token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Settings of the fan-out routes (SPEC §5).
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutConfig {
    /// The upstream work server (GET).
    #[arg(long, env = "WORK_URL", default_value = "http://127.0.0.1:5001/work")]
    pub work_url: String,
    /// Upstream requests in flight at once across all fan-out routes; a fan-out that
    /// would exceed it is answered 503.
    #[arg(long, env = "FANOUT_MAX_INFLIGHT", default_value_t = 3_000)]
    pub max_inflight: usize,
    /// Longest a fan-out may take, in ms: `smart`'s deadline when none is given, and
    /// the cap of every `timeout`.
    #[arg(long, env = "FANOUT_MAX_MS", default_value_t = 30_000)]
    pub max_ms: u64,
    /// How long `smart` waits on its first request before firing two more, in ms.
    #[arg(long, env = "FANOUT_HEDGE_MS", default_value_t = 300)]
    pub hedge_ms: u64,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            work_url: "http://127.0.0.1:5001/work".to_owned(),
            max_inflight: 3_000,
            max_ms: 30_000,
            hedge_ms: 300,
        }
    }
}
