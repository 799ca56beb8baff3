//! Settings of the worker role.

use std::time::Duration;

use engine::Load;

/// Worker settings, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// Tasks run at once per queue in this process, on queues whose jobs mostly wait
    /// (the database, an upstream). Many in flight is what fills the batches their
    /// outcomes are written in.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
    /// Tasks run at once per queue in this process, on queues whose jobs compute
    /// (`math`); 0 means one per core.
    #[arg(long, env = "WORKER_CPU_CONCURRENCY", default_value_t = 0)]
    pub cpu_concurrency: usize,
    /// Logical queues to consume, comma-separated; empty means all.
    #[arg(long, env = "WORKER_QUEUES", value_delimiter = ',', default_value = "")]
    pub queues: Vec<String>,
    /// After SIGTERM/SIGINT, how long in-flight tasks may take to finish, in ms.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 30_000)]
    pub shutdown_grace_ms: u64,
    /// Pause before a consumer that failed is started again, in ms.
    #[arg(long, env = "WORKER_RESTART_MS", default_value_t = 1_000)]
    pub restart_ms: u64,
    /// How often the paused queues are read, in ms: a pause or resume takes effect
    /// within this time in every worker process.
    #[arg(long, env = "QUEUE_PAUSE_POLL_MS", default_value_t = 1_000)]
    pub pause_poll_ms: u64,
    /// How often this process adds the jobs it finished to the throughput history, in
    /// ms (one upsert row per minute and queue). Counts reach `GET /queues/history`
    /// and the failure rate of `GET /queues` within this time; a graceful stop adds
    /// the last ones, a killed process loses at most this much.
    #[arg(long, env = "THROUGHPUT_FLUSH_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub throughput_flush_ms: u64,
    /// How often, while jobs run, a worker reads which of them an operator aborted, in
    /// ms: an aborted attempt is dropped (and its slot freed) within this time.
    #[arg(long, env = "JOB_ABORT_POLL_MS", default_value_t = 500)]
    pub abort_poll_ms: u64,
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

    /// Tasks run at once on a queue of `load`.
    pub fn concurrency_for(&self, load: Load) -> usize {
        match load {
            Load::Io => self.concurrency,
            Load::Cpu if self.cpu_concurrency > 0 => self.cpu_concurrency,
            Load::Cpu => std::thread::available_parallelism().map_or(1, usize::from),
        }
        .max(1)
    }

    /// The pause before restarting a failed consumer.
    pub fn restart_delay(&self) -> Duration {
        Duration::from_millis(self.restart_ms)
    }

    /// How often the paused queues are read.
    pub fn pause_poll(&self) -> Duration {
        Duration::from_millis(self.pause_poll_ms.max(1))
    }

    /// How often the throughput counts are stored.
    pub fn throughput_flush(&self) -> Duration {
        Duration::from_millis(self.throughput_flush_ms.max(1))
    }

    /// How often the running jobs are checked for aborts.
    pub fn abort_poll(&self) -> Duration {
        Duration::from_millis(self.abort_poll_ms.max(1))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computing_queues_run_one_task_per_core_unless_told_otherwise() {
        let config = WorkerConfig::default();
        assert_eq!(config.concurrency_for(Load::Io), 256);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(config.concurrency_for(Load::Cpu), cores);
        let told = WorkerConfig {
            cpu_concurrency: 3,
            ..config
        };
        assert_eq!(told.concurrency_for(Load::Cpu), 3);
    }
}
