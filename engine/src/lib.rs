//! Conveyor's job system. It names no feature: features bring their kinds as [`Job`]
//! implementations, registered in a [`Registry`].
//!
//! # Layout
//! - [`job`]: the [`Job`] trait (kind, queue, typed arguments, run, effect).
//! - [`registry`]: every kind a build runs, by wire name.
//! - [`ids`], [`record`], [`task`]: typed job and task ids, the job record, and what
//!   travels on a queue.
//! - [`submit`]: a job record, then its first task: what every producer calls.
//! - [`store`]: job records: creation, lifecycle transitions, queries, retention.
//! - [`queue`]: [`Queue`], the only place that knows which queue backend runs.
//! - [`throughput`]: jobs succeeded and attempts failed, counted in memory per minute
//!   and queue and flushed to the stored history every few seconds.
//! - [`config`]: settings of backends, delivery and housekeeping, with their defaults.
//! - [`db`]: connecting to the database and applying migrations.
//! - [`metrics`]: Prometheus metrics of the process.
//! - [`http`]: the one way Conveyor builds HTTP clients (TLS provider installed).
//! - [`secret`]: secrets from the environment, never printed, compared in constant time.
#![warn(missing_docs)]

mod batch;
pub mod config;
pub mod db;
pub mod http;
pub mod ids;
pub mod job;
pub mod metrics;
pub mod queue;
pub mod record;
pub mod registry;
pub mod secret;
pub mod store;
pub mod submit;
pub mod task;
pub mod throughput;

pub use ids::{JobId, TaskId};
pub use job::{Attempt, Done, Effect, EffectError, Job, JobError, Kind, Load, NewJob};
pub use queue::Queue;
pub use record::{FailedAttempt, JobRecord, JobStatus};
pub use registry::Registry;
pub use store::JobStore;
pub use submit::{SubmitError, submit};
pub use task::{Envelope, Task};
