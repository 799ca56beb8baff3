//! Server process reports (SPEC §1): the `reports.record` job, the thresholds of the
//! statistics routes, and the aggregate-only reads.
//!
//! # Layout
//! - here: [`ReportRecord`], [`ReportsConfig`], and the stored aggregates' codec.
//! - [`record`]: the `reports.record` job: reports stored and folded into the
//!   aggregates as its effect.
//! - [`read`]: the readiness gate, statistics and outliers, from the aggregates only.

pub mod read;
pub mod record;

use chrono::{DateTime, Utc};
use domain::stats::{Aggregate, Ratio};
use serde::{Deserialize, Serialize};

pub use read::{Gate, gate, gated_statistics, outliers, server_statistics};
pub use record::{Record, ReportsArgs};

/// One validated report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// 1 to 100 characters.
    pub server_name: String,
    /// Process start.
    pub start_time: DateTime<Utc>,
    /// Process end, not before the start.
    pub end_time: DateTime<Utc>,
    /// Whole seconds between them, truncated toward zero.
    pub duration_secs: i64,
}

/// Thresholds of the statistics routes.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportsConfig {
    /// Reports needed in all before statistics are given.
    #[arg(long, env = "MIN_TOTAL", default_value_t = 10)]
    pub min_total: u64,
    /// Reports every server needs before statistics are given.
    #[arg(long, env = "MIN_PER_SERVER", default_value_t = 3)]
    pub min_per_server: u64,
    /// K of the outlier band mean ± K·sd; a decimal such as `3` or `2.5`.
    #[arg(long, env = "OUTLIER_SIGMAS", default_value = "3", value_parser = parse_sigmas)]
    pub outlier_sigmas: Ratio,
    /// Most reports in one `POST /process_reports`.
    #[arg(long, env = "REPORTS_BATCH_MAX", default_value_t = 10_000)]
    pub batch_max: usize,
    /// Longest process a report may describe, in seconds (366 days by default): a
    /// longer one is refused, so that one bad clock cannot skew every statistic.
    #[arg(long, env = "REPORTS_MAX_DURATION_SECS", default_value_t = 366 * 24 * 3600)]
    pub max_duration_secs: i64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        engine::config::defaults()
    }
}

/// `OUTLIER_SIGMAS` is not a non-negative decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a non-negative decimal such as 3 or 2.5 (at most 9 decimals)")]
pub struct BadSigmas(String);

/// Parses a non-negative decimal (`3`, `2.5`, `0.25`) into an exact ratio.
pub fn parse_sigmas(raw: &str) -> Result<Ratio, BadSigmas> {
    let raw = raw.trim();
    let bad = || BadSigmas(raw.chars().take(40).collect());
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty()
        || !digits_only(whole)
        || !digits_only(fraction)
        || fraction.len() > 9
    {
        return Err(bad());
    }
    let den = 10u64.pow(fraction.len() as u32);
    let number = |s: &str| {
        if s.is_empty() {
            Ok(0)
        } else {
            s.parse::<u64>().map_err(|_| bad())
        }
    };
    let num = number(whole)?
        .checked_mul(den)
        .and_then(|w| w.checked_add(number(fraction).ok()?))
        .ok_or_else(bad)?;
    Ratio::new(num, den).ok_or_else(bad)
}

/// A stored aggregate row that does not read back as an aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt report aggregate: {0}")]
pub struct CorruptAggregate(String);

/// An aggregate from its stored parts (Σx and Σx² as decimal text).
fn to_aggregate(
    count: i64,
    sum: &str,
    sum_sq: &str,
    min: i64,
    max: i64,
) -> Result<Aggregate, CorruptAggregate> {
    let parse = |s: &str| {
        s.parse::<i128>()
            .map_err(|e| CorruptAggregate(format!("'{s}': {e}")))
    };
    Aggregate::from_parts(
        u64::try_from(count).unwrap_or(0),
        parse(sum)?,
        parse(sum_sq)?,
        Some(min),
        Some(max),
    )
    .map_err(|e| CorruptAggregate(e.to_string()))
}

/// An aggregate's stored parts: count, Σx, Σx², min, max.
fn parts(aggregate: &Aggregate) -> (i64, String, String, i64, i64) {
    (
        i64::try_from(aggregate.count()).unwrap_or(i64::MAX),
        aggregate.sum().to_string(),
        aggregate.sum_sq().to_string(),
        aggregate.min().unwrap_or(0),
        aggregate.max().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmas_parse_as_exact_ratios() {
        assert_eq!(parse_sigmas("3"), Ok(Ratio::integer(3)));
        assert_eq!(parse_sigmas("2.5").ok(), Ratio::new(5, 2));
        assert_eq!(parse_sigmas(".5").ok(), Ratio::new(1, 2));
        for bad in ["", ".", "-1", "1e3", "abc", "1.2.3"] {
            assert!(parse_sigmas(bad).is_err(), "{bad}");
        }
    }
}
