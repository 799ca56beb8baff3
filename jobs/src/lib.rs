//! The contract between Conveyor's producers (api, scheduler) and consumers (workers).
//!
//! # Layout
//! - [`ads`]: the `ads.count` job's arguments, counter upsert and reads.
//! - [`config`]: configuration of backends and delivery, read from the environment.
//! - [`kind`]: the job kinds, their queues and their argument types.
//! - [`math`]: arguments, limits and computation of the `math.*` jobs.
//! - [`reports`]: the `reports.record` job's arguments, aggregate writes and reads.
//! - [`envelope`]: what travels on a queue: a job id, its kind and arguments.
//! - [`db`]: connecting to the database and applying migrations.
//! - [`rates`]: currency rates: the `rates.ingest` job, its providers, storage and reads.
//! - [`secret`]: secrets from the environment, never printed, compared in constant time.
//! - [`submit`]: a job record, then its first task: what every producer calls.
//! - [`http`]: the one way Conveyor builds HTTP clients (TLS provider installed).
//! - `batch`: group commit: many callers' record writes carried by one statement.
//! - [`store`]: job records: creation, lifecycle transitions, queries.
//! - [`metrics`]: Prometheus metrics of the process.
//! - [`queue`]: [`Queue`], the only place that knows which queue backend runs.
#![warn(missing_docs)]

pub mod ads;
pub(crate) mod batch;
pub mod config;
pub mod db;
pub mod envelope;
pub mod http;
pub mod kind;
pub mod math;
pub mod metrics;
pub mod queue;
pub mod rates;
pub mod reports;
pub mod secret;
pub mod store;
pub mod submit;

pub use envelope::Envelope;
pub use kind::JobKind;
pub use queue::Queue;
pub use store::JobStore;
