//! Settings of the scheduler role.

use std::time::Duration;

/// Scheduler settings, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerConfig {
    /// Interval of housekeeping (queue vacuum, stuck-job sweep), in seconds.
    #[arg(long, env = "HOUSEKEEPING_INTERVAL_SECS", default_value_t = 30)]
    pub housekeeping_interval_secs: u64,
    /// A `queued` job older than this, or a `failed` job overdue by this, gets its
    /// task pushed again, in seconds. Far above any normal backlog wait: a duplicate
    /// delivery is harmless (effects are exactly-once) but wasted work.
    #[arg(long, env = "STUCK_AFTER_SECS", default_value_t = 900)]
    pub stuck_after_secs: u64,
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
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            housekeeping_interval_secs: 30,
            stuck_after_secs: 900,
        }
    }
}
