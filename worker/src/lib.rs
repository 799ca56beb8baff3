//! Conveyor's workers: pull tasks, run each task's kind from the registry, record the
//! outcome in the job record (with the job's effect, in one transaction), ack. They
//! know no kind themselves.
//!
//! # Layout
//! - [`aborts`]: the attempts under way, stopped when an operator aborts their job.
//! - [`config`]: the worker role's settings.
//! - [`executor`]: one delivered task from start to recorded outcome: timeouts,
//!   retries with backoff, `dead`, exactly-once effects, unknown kinds.
//! - [`pool`]: one consumer per queue, graceful shutdown.
#![warn(missing_docs)]

pub mod aborts;
pub mod config;
pub mod executor;
pub mod pool;

pub use config::WorkerConfig;
pub use pool::run;
