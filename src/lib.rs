//! Conveyor: a job-queue worker system with a scheduler.
//!
//! This crate is the `conveyor` binary's library half: it wires the roles together so
//! that `main.rs` only parses the command line and the end-to-end tests start the very
//! same system on port 0.
//!
//! # Layout
//! - `domain`: pure logic (job lifecycle, backoff, math, statistics). No I/O.
//! - `entity`, `migration`: tables and their schema.
//! - `engine`: the job system (the `Job` trait and registry, records, store, queues).
//! - `features`: the product features: their job kinds, reads, upstream clients.
//! - `api`: HTTP routes. `worker`: the executor and the pool. `scheduler`: timetables
//!   and housekeeping.
//! - here: [`Config`] of a whole process, [`connect`] to its backends, [`run`] a role.
#![warn(missing_docs)]

use std::future::Future;

use engine::config::{BackendConfig, DeliveryConfig, HousekeepingConfig};
use engine::metrics::Metrics;
use engine::{JobStore, Queue, Registry};
use features::{Features, FeaturesConfig};
use futures::FutureExt;

/// Everything a process may need, from the environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Config {
    /// Database and queue backends.
    #[command(flatten)]
    pub backends: BackendConfig,
    /// Retries, timeouts, heartbeats.
    #[command(flatten)]
    pub delivery: DeliveryConfig,
    /// Housekeeping (run by the scheduler, shown by the api).
    #[command(flatten)]
    pub housekeeping: HousekeepingConfig,
    /// The HTTP api.
    #[command(flatten)]
    pub api: api::ApiConfig,
    /// The features: math, reports, ads, rates, fan-out.
    #[command(flatten)]
    pub features: FeaturesConfig,
    /// The workers.
    #[command(flatten)]
    pub worker: worker::WorkerConfig,
}

/// Which parts of Conveyor a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Api, workers and scheduler in one process (the default).
    All,
    /// The HTTP api only.
    Api,
    /// Workers only.
    Worker,
    /// The scheduler only.
    Scheduler,
}

/// Connected backends of a process, and what its features share.
#[derive(Debug, Clone)]
pub struct Backends {
    /// Job records.
    pub store: JobStore,
    /// The queues.
    pub queue: Queue,
    /// Process metrics.
    pub metrics: Metrics,
    /// The features' settings, metrics and upstream clients.
    pub features: Features,
    /// Every job kind of this build.
    pub registry: Registry,
}

async fn database(config: &Config) -> anyhow::Result<sea_orm::DatabaseConnection> {
    engine::db::connect(
        &config.backends.database_url,
        config.backends.database_max_connections,
        config.backends.database_acquire_timeout(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("database {}: {e}", redact(&config.backends.database_url)))
}

/// Applies pending migrations to the database; touches no queue.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = database(config).await?;
    engine::db::migrate(&db).await?;
    db.close().await?;
    Ok(())
}

/// Connects to the database (applying migrations when `migrate`) and the queues.
pub async fn connect(config: &Config, migrate: bool) -> anyhow::Result<Backends> {
    let db = database(config).await?;
    if migrate {
        engine::db::migrate(&db).await?;
    }
    let queue = Queue::connect(&config.backends, &config.delivery, &db).await?;
    let metrics = Metrics::new();
    let features = Features::new(config.features.clone(), &metrics);
    Ok(Backends {
        registry: features::registry(&features, &db),
        store: JobStore::new(db, &config.backends),
        queue,
        features,
        metrics,
    })
}

/// Runs `role` until `shutdown` completes, then stops gracefully: the api finishes
/// open requests, workers finish in-flight tasks within the grace period.
///
/// `listener` is the api's already bound socket (required for `All` and `Api`).
pub async fn run(
    role: Role,
    config: Config,
    backends: Backends,
    listener: Option<std::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = shutdown.shared();
    let grace = config.worker.shutdown_grace();
    let mut tasks = tokio::task::JoinSet::new();
    if matches!(role, Role::All | Role::Api) {
        config.api.check().map_err(anyhow::Error::msg)?;
        let listener = listener.ok_or_else(|| anyhow::anyhow!("the api needs a listener"))?;
        let state = api::AppState {
            store: backends.store.clone(),
            queue: backends.queue.clone(),
            queues: backends.registry.queues(),
            kinds: backends.registry.kinds().collect(),
            metrics: backends.metrics.clone(),
            config: config.api.clone(),
            delivery: config.delivery.clone(),
            housekeeping: config.housekeeping.clone(),
            features: backends.features.clone(),
        };
        let stop = shutdown.clone();
        tasks.spawn(async move {
            api::serve(listener, state, stop, grace)
                .await
                .map_err(|e| anyhow::anyhow!("api: {e}"))
        });
    }
    if matches!(role, Role::All | Role::Worker) {
        let executor = worker::executor::Executor::new(
            backends.store.clone(),
            backends.queue.clone(),
            backends.registry.clone(),
            config.delivery.clone(),
            backends.metrics.clone(),
        );
        let queue = backends.queue.clone();
        let worker_config = config.worker.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            worker::run(queue, executor, worker_config, stop)
                .await
                .map_err(|e| anyhow::anyhow!("worker: {e}"))
        });
    }
    if matches!(role, Role::All | Role::Scheduler) {
        let scheduler = scheduler::Scheduler {
            store: backends.store.clone(),
            queue: backends.queue.clone(),
            queues: backends.registry.queues(),
            housekeeping: config.housekeeping.clone(),
            rates: config.features.rates.clone(),
            max_attempts: config.delivery.max_attempts,
            math_store: config.features.math.store_bounds(),
        };
        let stop = shutdown.clone();
        tasks.spawn(async move {
            scheduler
                .run(stop)
                .await
                .map_err(|e| anyhow::anyhow!("scheduler: {e}"))
        });
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(err) = outcome {
            tracing::error!("{err:#}");
            if result.is_ok() {
                result = Err(err);
            }
            // One role failing stops the process: a half-working process hides faults.
            tasks.abort_all();
        }
    }
    result
}

/// A URL with its password replaced, fit for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/conveyor"),
            "postgres://app:***@db:5432/conveyor"
        );
        assert_eq!(
            redact("postgres://app@db/conveyor"),
            "postgres://app@db/conveyor"
        );
        assert_eq!(
            redact("sqlite://conveyor.db?mode=rwc"),
            "sqlite://conveyor.db?mode=rwc"
        );
    }
}
