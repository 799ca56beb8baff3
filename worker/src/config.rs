//! Settings of the worker role.

use std::time::Duration;

/// Worker settings, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// Tasks run at once per queue in this process.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// Logical queues to consume, comma-separated; empty means all.
    #[arg(long, env = "WORKER_QUEUES", value_delimiter = ',', default_value = "")]
    pub queues: Vec<String>,
    /// After SIGTERM/SIGINT, how long in-flight tasks may take to finish, in ms.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 30_000)]
    pub shutdown_grace_ms: u64,
    /// Pause before a consumer that failed is started again, in ms.
    #[arg(long, env = "WORKER_RESTART_MS", default_value_t = 1_000)]
    pub restart_ms: u64,
}

impl WorkerConfig {
    /// The queues this process consumes: those named, or else `all`.
    pub fn queues(&self, all: &[&str]) -> Vec<String> {
        let named: Vec<String> = self
            .queues
            .iter()
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty())
            .collect();
        if named.is_empty() {
            all.iter().map(|q| (*q).to_owned()).collect()
        } else {
            named
        }
    }

    /// The pause before restarting a failed consumer.
    pub fn restart_delay(&self) -> Duration {
        Duration::from_millis(self.restart_ms)
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        engine::config::defaults()
    }
}
