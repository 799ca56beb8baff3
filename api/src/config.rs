//! Settings of the api role.

use engine::secret::Secret;

/// Api settings, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiConfig {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:5000")]
    pub bind_addr: String,
    /// Largest page of `GET /jobs`.
    #[arg(long, env = "JOBS_PAGE_MAX", default_value_t = 500)]
    pub jobs_page_max: u64,
    /// Bearer token of the operator routes: when set, the mutating ones
    /// (`DELETE /jobs/{id}`, `POST /jobs/…`, `POST /queues/…`, `POST /schedules/…`,
    /// `POST /rates/refresh`, the test kind's `POST /jobs/noop`) answer 401 without
    /// `Authorization: Bearer <token>`, and the operator reads (`/jobs…`, `/queues`,
    /// `/schedules`, `/metrics`) without it or `READ_TOKEN`. Unset or empty: open.
    /// From the environment only (a command-line value would show in `ps`); never
    /// logged.
    #[arg(skip = Secret::from_env("ADMIN_TOKEN"))]
    pub admin_token: Option<Secret>,
    /// With `ADMIN_TOKEN` set, a second bearer token that reads the operator routes
    /// and changes nothing (for dashboards and monitoring). From the environment only.
    #[arg(skip = Secret::from_env("READ_TOKEN"))]
    pub read_token: Option<Secret>,
    /// With `ADMIN_TOKEN` set, serve `/metrics` without a token (for a Prometheus that
    /// scrapes without credentials).
    #[arg(long, env = "METRICS_PUBLIC", default_value_t = false, action = clap::ArgAction::Set)]
    pub metrics_public: bool,
    /// Largest request body in bytes; a larger one is answered 413. The default, 4 MiB,
    /// holds a full `POST /process_reports` batch of `REPORTS_BATCH_MAX` reports with
    /// room to spare.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How long a client has to send a request's headers, in ms, from the moment the
    /// connection is ready for them; a keep-alive connection idle that long is closed
    /// too. A client that sends nothing, or stops halfway, cannot hold a connection.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout_ms: u64,
    /// How long a client has to send a request's whole body, in ms, from the end of its
    /// headers; a slower one is answered 408 and its connection closed. A client that
    /// sends a body a byte at a time cannot hold a connection and a task for long.
    #[arg(long, env = "HTTP_BODY_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_body_timeout_ms: u64,
    /// Connections served at once; further clients wait in the listen backlog until
    /// one closes. Keep it below the process's file descriptor limit.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub http_max_connections: usize,
    /// The window of each queue's `failure_rate` in `GET /queues`, in minutes up to
    /// now: failed attempts / (succeeded jobs + failed attempts) within it. Longer than
    /// `THROUGHPUT_HISTORY_MINUTES` counts only what that keeps.
    #[arg(long, env = "FAILURE_RATE_MINUTES", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub failure_rate_minutes: u64,
}

impl ApiConfig {
    /// The admin token, when one is set and not empty.
    pub fn admin_token(&self) -> Option<&Secret> {
        self.admin_token.as_ref().filter(|t| !t.is_empty())
    }

    /// The read token, when one is set and not empty.
    pub fn read_token(&self) -> Option<&Secret> {
        self.read_token.as_ref().filter(|t| !t.is_empty())
    }

    /// Refuses settings that cannot mean what they say: a read token without an admin
    /// token would guard the reads and leave every change open.
    pub fn check(&self) -> Result<(), String> {
        if self.read_token().is_some() && self.admin_token().is_none() {
            return Err("READ_TOKEN is set without ADMIN_TOKEN: set both, or neither".into());
        }
        Ok(())
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        engine::config::defaults()
    }
}
