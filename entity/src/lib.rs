//! sea-orm entities of Conveyor, one module per table. The schema itself is owned by
//! the `migration` crate; these types mirror it.
//!
//! # Layout
//! - [`job`]: one row per job (SPEC §0 job record).
//! - [`math_result`]: cached values of heavy math.
//! - [`report`], [`server_aggregate`], [`report_total`]: server process reports and
//!   their aggregates.
//! - [`ad_counter`]: ad requests and impressions per user and per SDK version.
//! - [`rate`], [`rate_fetch`]: currency rates and the log of what was fetched.
//! - [`idempotency_key`]: `Idempotency-Key` header → the first job made with it.
//! - [`queue_pause`]: the queues paused by an operator.
//! - [`throughput_minute`]: jobs succeeded and attempts failed per minute and queue.
#![warn(missing_docs)]

pub mod ad_counter;
pub mod idempotency_key;
pub mod job;
pub mod math_result;
pub mod queue_pause;
pub mod rate;
pub mod rate_fetch;
pub mod report;
pub mod report_total;
pub mod server_aggregate;
pub mod throughput_minute;
