//! Configuration of the job system, from environment variables with defaults. clap
//! lists each variable and its default in `--help`; [`defaults`] reads the same
//! declarations, so a default is written once.

use std::time::Duration;

use domain::retry::Backoff;

use crate::store::Retention;

/// A configuration with every setting at its declared default, whatever the
/// environment says: the one way the `Default` of a settings struct is made.
///
/// # Panics
/// When a setting of `T` has no default (a programming error the settings' own tests
/// find).
pub fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults"))
        .mut_args(|arg| arg.env(None::<&'static str>));
    let matches = command
        .try_get_matches_from(["defaults"])
        .unwrap_or_else(|err| panic!("a setting has no default: {err}"));
    T::from_arg_matches(&matches).unwrap_or_else(|err| panic!("defaults do not parse: {err}"))
}

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
    /// Most job records one batched statement writes or reads.
    #[arg(long, env = "DATABASE_BATCH_MAX_ROWS", default_value_t = 256)]
    pub database_batch_max_rows: usize,
    /// Most bytes of rows one batched statement carries (a larger row goes alone): it
    /// bounds a statement's size when rows are large; rows of a few hundred bytes
    /// fill `DATABASE_BATCH_MAX_ROWS` first.
    #[arg(long, env = "DATABASE_BATCH_MAX_BYTES", default_value_t = 256 * 1024)]
    pub database_batch_max_bytes: usize,
    /// How long an `Idempotency-Key` returns the first job, in seconds (the api's
    /// requests and the scheduler's timetables alike).
    #[arg(long, env = "IDEMPOTENCY_WINDOW_SECS", default_value_t = 86_400)]
    pub idempotency_window_secs: u64,
    /// Largest arguments, in bytes of JSON, that a job's first task carries on its
    /// queue. A worker starts such a task without reading the job record first (one
    /// statement less per job); larger arguments stay in the record alone, so that a
    /// queue's memory does not grow with them. 0: every attempt reads its record.
    #[arg(long, env = "TASK_INLINE_ARGS_MAX_BYTES", default_value_t = 2_048)]
    pub task_inline_args_max_bytes: usize,
}

impl Default for BackendConfig {
    fn default() -> Self {
        defaults()
    }
}

impl BackendConfig {
    /// How long an `Idempotency-Key` returns the first job.
    pub fn idempotency_window(&self) -> Duration {
        Duration::from_secs(self.idempotency_window_secs)
    }

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
    /// How long an attempt runs before its record says `running`, in milliseconds. An
    /// attempt that ends sooner is written once, with its outcome: one write less per
    /// job on the hot path, at the price of `queued` showing for its first moments.
    #[arg(long, env = "JOB_RUNNING_MARK_MS", default_value_t = 250)]
    pub running_mark_ms: u64,
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

    /// How long an attempt runs before its record says `running`.
    pub fn running_mark(&self) -> Duration {
        Duration::from_millis(self.running_mark_ms)
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
        defaults()
    }
}

/// Housekeeping, run by the scheduler: queue vacuum, the stuck-job sweep, retention.
#[derive(Debug, Clone, clap::Args)]
pub struct HousekeepingConfig {
    /// Interval of housekeeping (queue vacuum, stuck-job sweep, retention), in seconds.
    #[arg(long, env = "HOUSEKEEPING_INTERVAL_SECS", default_value_t = 30)]
    pub housekeeping_interval_secs: u64,
    /// A `queued` job older than this, or a `failed` job overdue by this, gets its
    /// task pushed again, in seconds. Far above any normal backlog wait: a duplicate
    /// delivery is harmless (effects are exactly-once) but wasted work.
    #[arg(long, env = "STUCK_AFTER_SECS", default_value_t = 900)]
    pub stuck_after_secs: u64,
    /// How long a `succeeded` job record is kept after it finished, in seconds; 0 keeps
    /// them for good. A record whose `Idempotency-Key` is still in its window is kept
    /// until the window ends.
    #[arg(long, env = "JOB_RETENTION_SECS", default_value_t = 604_800)]
    pub job_retention_secs: u64,
    /// How long a `dead` or `cancelled` job record is kept after it finished, in
    /// seconds; 0 keeps them for good. Longer than `JOB_RETENTION_SECS` by default:
    /// these are the records an operator looks at and retries.
    #[arg(long, env = "DEAD_JOB_RETENTION_SECS", default_value_t = 2_592_000)]
    pub dead_job_retention_secs: u64,
    /// Minutes of throughput history kept (jobs succeeded and attempts failed per
    /// minute and queue), 1 to 10 080 (a week): housekeeping deletes older minutes,
    /// and `GET /queues/history` answers at most this many.
    #[arg(long, env = "THROUGHPUT_HISTORY_MINUTES", default_value_t = 180,
          value_parser = clap::value_parser!(u64).range(1..=10_080))]
    pub throughput_history_minutes: u64,
}

impl Default for HousekeepingConfig {
    fn default() -> Self {
        defaults()
    }
}

impl HousekeepingConfig {
    /// Interval of housekeeping (at least a second).
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.housekeeping_interval_secs.max(1))
    }

    /// Age after which a waiting job is considered stuck.
    pub fn stuck_after(&self) -> Duration {
        Duration::from_secs(self.stuck_after_secs)
    }

    /// Minutes of throughput history kept (at least one).
    pub fn throughput_history_minutes(&self) -> u64 {
        self.throughput_history_minutes.max(1)
    }

    /// How long finished job records are kept (0 in a setting: for good).
    pub fn retention(&self) -> Retention {
        let keep = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        Retention {
            succeeded: keep(self.job_retention_secs),
            dead: keep(self.dead_job_retention_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_declared_ones_whatever_the_environment() {
        let delivery: DeliveryConfig = defaults();
        assert_eq!(delivery.max_attempts, 5);
        assert_eq!(delivery.fetch_batch, 32);
        let backends = BackendConfig::default();
        assert_eq!(backends.database_url, "sqlite://conveyor.db?mode=rwc");
        assert_eq!(backends.redis_url, None);
        assert_eq!(backends.idempotency_window(), Duration::from_secs(86_400));
        let housekeeping = HousekeepingConfig::default();
        assert_eq!(housekeeping.interval(), Duration::from_secs(30));
        assert_eq!(
            housekeeping.retention().dead,
            Some(Duration::from_secs(2_592_000))
        );
    }
}
