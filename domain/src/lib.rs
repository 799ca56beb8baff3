//! Pure logic of Conveyor: everything here is deterministic, synchronous and free of I/O,
//! so it can be tested exhaustively.
//!
//! # Layout
//! - [`calendar`]: the business-day calendar of the rates feature (missing weekdays).
//! - [`fanout`]: the upstream fan-out policies (`all`, `first`, `within-timeout`,
//!   `smart`) as clock-free state machines.
//! - [`job`]: the job lifecycle (statuses and which transitions an operator may ask for).
//! - [`math`]: exact factorial, Fibonacci and Ackermann on big integers, their cost
//!   estimates, and a fast decimal rendering.
//! - [`pyint`]: integers parsed exactly as Python's `int(str)` parses them.
//! - [`stats`]: exact report statistics (mean, deviation, outliers) from aggregates.
//! - [`retry`]: exponential backoff with jitter between attempts.
#![warn(missing_docs)]

pub mod calendar;
pub mod fanout;
pub mod job;
pub mod math;
pub mod pyint;
pub mod retry;
pub mod stats;
