//! Configuration shared by every role, from environment variables with defaults.
//! clap lists each variable and its default in `--help`.

use std::time::Duration;

use domain::retry::Backoff;

/// Where job records and queues live.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendConfig {
    /// Database for job records and results: `sqlite://file?mode=rwc` or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://conveyor.db?mode=rwc"
    )]
    pub database_url: String,
    /// Redis for the queues. Unset: the queues live in the SQLite database (embedded mode).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every queue name, so that several deployments (or tests) share one Redis.
    /// Letters, digits, `-` and `_` only.
    #[arg(long, env = "QUEUE_PREFIX", default_value = "conveyor")]
    pub queue_prefix: String,
    /// Maximum database connections per process.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
    /// Longest wait for a database connection, in milliseconds. While the database is
    /// unreachable a request answers 503 after about this long (a route that reads and
    /// then writes, up to twice as long): keep it below the clients' own timeout.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 5_000)]
    pub database_acquire_timeout_ms: u64,
}

impl BackendConfig {
    /// Longest wait for a database connection (at least 100 ms).
    pub fn database_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.database_acquire_timeout_ms.max(100))
    }
}

/// How tasks are delivered and retried.
#[derive(Debug, Clone, clap::Args)]
pub struct DeliveryConfig {
    /// Attempts before a job is `dead` (at least 1).
    #[arg(long, env = "JOB_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; it doubles on each retry.
    #[arg(long, env = "JOB_BACKOFF_BASE_MS", default_value_t = 1_000)]
    pub backoff_base_ms: u64,
    /// Upper bound of any retry delay, in milliseconds.
    #[arg(long, env = "JOB_BACKOFF_MAX_MS", default_value_t = 300_000)]
    pub backoff_max_ms: u64,
    /// Share of each retry delay that is randomised (0 to 1).
    #[arg(long, env = "JOB_BACKOFF_JITTER", default_value_t = 0.5)]
    pub backoff_jitter: f64,
    /// Timeout of one attempt, in milliseconds, for kinds that do not set their own.
    #[arg(long, env = "JOB_TIMEOUT_MS", default_value_t = 300_000)]
    pub timeout_ms: u64,
    /// How often a worker proves it is alive, in milliseconds.
    #[arg(long, env = "WORKER_HEARTBEAT_MS", default_value_t = 5_000)]
    pub heartbeat_ms: u64,
    /// Missed heartbeats after which a worker's in-flight tasks are given to others.
    #[arg(long, env = "WORKER_MISSED_HEARTBEATS", default_value_t = 3)]
    pub missed_heartbeats: usize,
    /// Longest wait between two looks at a queue when no push signal arrives, in
    /// milliseconds. Pushes wake workers at once; this only bounds a missed signal.
    #[arg(long, env = "QUEUE_POLL_MS", default_value_t = 1_000)]
    pub poll_ms: u64,
    /// How often delayed tasks (retries) that have come due are moved onto their
    /// queue, in milliseconds.
    #[arg(long, env = "QUEUE_PROMOTE_MS", default_value_t = 100)]
    pub promote_ms: u64,
    /// Tasks a worker fetches from its queue at once.
    #[arg(long, env = "QUEUE_FETCH_BATCH", default_value_t = 32)]
    pub fetch_batch: usize,
}

impl DeliveryConfig {
    /// The retry schedule.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.backoff_base_ms),
            max: Duration::from_millis(self.backoff_max_ms),
            jitter: self.backoff_jitter,
        }
    }

    /// Default timeout of an attempt.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Interval between heartbeats.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// Interval of the delayed-task promoter.
    pub fn promote_interval(&self) -> Duration {
        Duration::from_millis(self.promote_ms)
    }

    /// Upper bound of the idle wait on a queue.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            backoff_jitter: 0.5,
            timeout_ms: 300_000,
            heartbeat_ms: 5_000,
            missed_heartbeats: 3,
            poll_ms: 1_000,
            promote_ms: 100,
            fetch_batch: 32,
        }
    }
}
