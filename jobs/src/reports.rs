//! Server process reports: the `reports.record` job's arguments, the aggregate writes
//! it makes, and the aggregate-only reads of the statistics routes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::stats::{Aggregate, Ratio, Summary, is_outlier, summarize};
use entity::{report, report_total, server_aggregate};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

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

/// Arguments of `reports.record`: one report or a batch, stored all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportsArgs {
    /// The reports.
    pub reports: Vec<ReportRecord>,
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
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            min_total: 10,
            min_per_server: 3,
            outlier_sigmas: Ratio::integer(3),
            batch_max: 10_000,
        }
    }
}

/// Parses a non-negative decimal (`3`, `2.5`, `0.25`) into an exact ratio.
pub fn parse_sigmas(raw: &str) -> Result<Ratio, String> {
    let raw = raw.trim();
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty()
        || !digits_only(whole)
        || !digits_only(fraction)
        || fraction.len() > 9
    {
        return Err(format!(
            "'{raw}' is not a non-negative decimal such as 3 or 2.5"
        ));
    }
    let den = 10u64.pow(fraction.len() as u32);
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| format!("'{raw}' is too large"))?
    };
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        fraction
            .parse()
            .map_err(|_| format!("'{raw}' is not a decimal"))?
    };
    let num = whole
        .checked_mul(den)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(|| format!("'{raw}' is too large"))?;
    Ratio::new(num, den).ok_or_else(|| format!("'{raw}' is not a decimal"))
}

fn to_aggregate(
    count: i64,
    sum: &str,
    sum_sq: &str,
    min: i64,
    max: i64,
) -> Result<Aggregate, DbErr> {
    let parse = |s: &str| {
        s.parse::<i128>()
            .map_err(|e| DbErr::Custom(format!("corrupt aggregate '{s}': {e}")))
    };
    Aggregate::from_parts(
        u64::try_from(count).unwrap_or(0),
        parse(sum)?,
        parse(sum_sq)?,
        Some(min),
        Some(max),
    )
    .map_err(|e| DbErr::Custom(format!("corrupt aggregate: {e}")))
}

fn add_all(aggregate: &mut Aggregate, durations: &[i64]) -> Result<(), DbErr> {
    for &d in durations {
        aggregate
            .try_add(d)
            .map_err(|e| DbErr::Custom(format!("aggregate overflow: {e}")))?;
    }
    Ok(())
}

fn parts(aggregate: &Aggregate) -> (i64, String, String, i64, i64) {
    (
        i64::try_from(aggregate.count()).unwrap_or(i64::MAX),
        aggregate.sum().to_string(),
        aggregate.sum_sq().to_string(),
        aggregate.min().unwrap_or(0),
        aggregate.max().unwrap_or(0),
    )
}

/// Stores `reports` for `job_id` and folds them into the per-server and global
/// aggregates, inside the caller's transaction (the one that marks the job done).
///
/// The global row (seeded by the migration) is locked first, so report writes are
/// serialised: no two jobs can
/// interleave their read-modify-write of an aggregate, and no lock order can deadlock.
pub async fn record(
    tx: &DatabaseTransaction,
    job_id: &str,
    reports: &[ReportRecord],
) -> Result<(), DbErr> {
    let postgres = tx.get_database_backend() == DatabaseBackend::Postgres;
    let now = Utc::now();
    for chunk in reports.chunks(500) {
        let rows = chunk.iter().map(|r| report::ActiveModel {
            job_id: Set(job_id.to_owned()),
            server_name: Set(r.server_name.clone()),
            start_time: Set(r.start_time),
            end_time: Set(r.end_time),
            duration_secs: Set(r.duration_secs),
            created_at: Set(now),
            ..Default::default()
        });
        report::Entity::insert_many(rows)
            .exec_without_returning(tx)
            .await?;
    }

    let mut select = report_total::Entity::find_by_id(1);
    if postgres {
        select = select.lock_exclusive();
    }
    let total = select
        .one(tx)
        .await?
        .ok_or_else(|| DbErr::Custom("report_totals has no row: migrations not applied?".into()))?;
    let mut all = if total.count == 0 {
        Aggregate::default()
    } else {
        to_aggregate(total.count, &total.sum, &total.sum_sq, total.min, total.max)?
    };
    let durations: Vec<i64> = reports.iter().map(|r| r.duration_secs).collect();
    add_all(&mut all, &durations)?;
    let (count, sum, sum_sq, min, max) = parts(&all);
    report_total::Entity::update(report_total::ActiveModel {
        id: Set(1),
        count: Set(count),
        sum: Set(sum),
        sum_sq: Set(sum_sq),
        min: Set(min),
        max: Set(max),
    })
    .exec(tx)
    .await?;

    let mut by_server: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for r in reports {
        by_server
            .entry(&r.server_name)
            .or_default()
            .push(r.duration_secs);
    }
    for (server, durations) in by_server {
        let existing = server_aggregate::Entity::find_by_id(server.to_owned())
            .one(tx)
            .await?;
        let mut aggregate = match &existing {
            Some(row) => to_aggregate(row.count, &row.sum, &row.sum_sq, row.min, row.max)?,
            None => Aggregate::default(),
        };
        add_all(&mut aggregate, &durations)?;
        let (count, sum, sum_sq, min, max) = parts(&aggregate);
        let row = server_aggregate::ActiveModel {
            server_name: Set(server.to_owned()),
            count: Set(count),
            sum: Set(sum),
            sum_sq: Set(sum_sq),
            min: Set(min),
            max: Set(max),
        };
        if existing.is_some() {
            server_aggregate::Entity::update(row).exec(tx).await?;
        } else {
            server_aggregate::Entity::insert(row)
                .exec_without_returning(tx)
                .await?;
        }
    }
    Ok(())
}

/// Whether enough reports arrived for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// Reports in all.
    pub total: u64,
    /// Servers with fewer than `min_per_server` reports.
    pub servers_below: u64,
    /// True when statistics may be given.
    pub open: bool,
}

/// Evaluates the readiness gate from the aggregates.
///
/// When the gate is open this is two point reads (the totals row, and "is any server
/// below the minimum?" as a `LIMIT 1` on the count index); only a closed gate counts
/// the servers below, for its answer.
pub async fn gate(db: &DatabaseConnection, config: &ReportsConfig) -> Result<Gate, DbErr> {
    let total = report_total::Entity::find_by_id(1)
        .one(db)
        .await?
        .map_or(0, |t| u64::try_from(t.count).unwrap_or(0));
    let below = i64::try_from(config.min_per_server).unwrap_or(i64::MAX);
    let below_min =
        || server_aggregate::Entity::find().filter(server_aggregate::Column::Count.lt(below));
    let any_below = below_min()
        .order_by_asc(server_aggregate::Column::Count)
        .limit(1)
        .one(db)
        .await?
        .is_some();
    if total >= config.min_total && !any_below {
        return Ok(Gate {
            total,
            servers_below: 0,
            open: true,
        });
    }
    let servers_below = if any_below {
        below_min().count(db).await?
    } else {
        0
    };
    Ok(Gate {
        total,
        servers_below,
        open: false,
    })
}

/// Statistics over every report, or over one server's (`None`: no such server).
pub async fn statistics(
    db: &DatabaseConnection,
    server: Option<&str>,
) -> Result<Option<Summary>, DbErr> {
    let aggregate = match server {
        None => match report_total::Entity::find_by_id(1).one(db).await? {
            Some(t) if t.count > 0 => to_aggregate(t.count, &t.sum, &t.sum_sq, t.min, t.max)?,
            _ => return Ok(None),
        },
        Some(name) => match server_aggregate::Entity::find_by_id(name.to_owned())
            .one(db)
            .await?
        {
            Some(s) => to_aggregate(s.count, &s.sum, &s.sum_sq, s.min, s.max)?,
            None => return Ok(None),
        },
    };
    Ok(summarize(&aggregate))
}

/// Servers with a duration outside their own mean ± K·sd, ascending by name.
/// Reads the aggregates only: min and max decide it.
pub async fn outliers(db: &DatabaseConnection, k: Ratio) -> Result<Vec<String>, DbErr> {
    let rows = server_aggregate::Entity::find()
        .order_by_asc(server_aggregate::Column::ServerName)
        .all(db)
        .await?;
    let mut names = Vec::new();
    for row in rows {
        let aggregate = to_aggregate(row.count, &row.sum, &row.sum_sq, row.min, row.max)?;
        if is_outlier(&aggregate, k) {
            names.push(row.server_name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmas_parse_as_exact_ratios() {
        assert_eq!(parse_sigmas("3"), Ok(Ratio::integer(3)));
        assert_eq!(
            parse_sigmas("2.5"),
            Ratio::new(5, 2).ok_or_else(String::new)
        );
        assert_eq!(parse_sigmas(".5"), Ratio::new(1, 2).ok_or_else(String::new));
        for bad in ["", ".", "-1", "1e3", "abc", "1.2.3"] {
            assert!(parse_sigmas(bad).is_err(), "{bad}");
        }
    }
}
