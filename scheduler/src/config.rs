//! Settings of the scheduler role.

use std::time::Duration;

use jobs::store::Retention;

/// Scheduler settings, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerConfig {
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
}

impl SchedulerConfig {
    /// Interval of housekeeping.
    pub fn housekeeping_interval(&self) -> Duration {
        Duration::from_secs(self.housekeeping_interval_secs.max(1))
    }

    /// Age after which a waiting job is considered stuck.
    pub fn stuck_after(&self) -> Duration {
        Duration::from_secs(self.stuck_after_secs)
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

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            housekeeping_interval_secs: 30,
            stuck_after_secs: 900,
            job_retention_secs: 604_800,
            dead_job_retention_secs: 2_592_000,
        }
    }
}
