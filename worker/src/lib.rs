//! Conveyor's workers: pull tasks, run the handler of each task's kind, record the
//! outcome in the job record (with the job's effect, in one transaction), ack.
//!
//! # Layout
//! - [`config`]: the worker role's settings.
//! - [`executor`]: one delivered task from start to recorded outcome: timeouts,
//!   retries with backoff, `dead`, exactly-once effects.
//! - [`handlers`]: one module per feature, each turning a job's arguments into a result.
//! - [`pool`]: one consumer per queue, graceful shutdown.
#![warn(missing_docs)]

pub mod config;
pub mod executor;
pub mod handlers;
pub mod pool;

pub use config::WorkerConfig;
pub use pool::run;
