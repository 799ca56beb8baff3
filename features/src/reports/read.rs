//! The statistics routes' reads: from the aggregates only, never by scanning reports.

use domain::stats::{Ratio, Summary, is_outlier, summarize};
use entity::{report_total, server_aggregate};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{CorruptAggregate, ReportsConfig, to_aggregate};

/// Why a statistics read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The database did not answer.
    #[error("database unavailable: {0}")]
    Database(#[from] DbErr),
    /// A stored aggregate is corrupt.
    #[error(transparent)]
    Corrupt(#[from] CorruptAggregate),
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
pub async fn gate(db: &DatabaseConnection, config: &ReportsConfig) -> Result<Gate, ReadError> {
    Ok(gate_and_totals(db, config).await?.0)
}

/// Statistics over every report behind the readiness gate, from the totals row the
/// gate read (one read of it, not two): the closed gate instead, or a gate of no
/// reports when there is nothing to summarize.
pub async fn gated_statistics(
    db: &DatabaseConnection,
    config: &ReportsConfig,
) -> Result<Result<Summary, Gate>, ReadError> {
    let (gate, totals) = gate_and_totals(db, config).await?;
    if !gate.open {
        return Ok(Err(gate));
    }
    let summary = match totals {
        Some(t) if t.count > 0 => {
            summarize(&to_aggregate(t.count, &t.sum, &t.sum_sq, t.min, t.max)?)
        }
        _ => None,
    };
    Ok(summary.ok_or(Gate {
        total: 0,
        servers_below: 0,
        open: false,
    }))
}

/// The gate and the totals row it was evaluated from.
async fn gate_and_totals(
    db: &DatabaseConnection,
    config: &ReportsConfig,
) -> Result<(Gate, Option<report_total::Model>), ReadError> {
    let totals = report_total::Entity::find_by_id(1).one(db).await?;
    let total = totals
        .as_ref()
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
        let open = Gate {
            total,
            servers_below: 0,
            open: true,
        };
        return Ok((open, totals));
    }
    let servers_below = if any_below {
        below_min().count(db).await?
    } else {
        0
    };
    let closed = Gate {
        total,
        servers_below,
        open: false,
    };
    Ok((closed, totals))
}

/// Statistics over one server's reports (`None`: no such server).
pub async fn server_statistics(
    db: &DatabaseConnection,
    server: &str,
) -> Result<Option<Summary>, ReadError> {
    match server_aggregate::Entity::find_by_id(server.to_owned())
        .one(db)
        .await?
    {
        Some(s) => Ok(summarize(&to_aggregate(
            s.count, &s.sum, &s.sum_sq, s.min, s.max,
        )?)),
        None => Ok(None),
    }
}

/// Servers with a duration outside their own mean ± K·sd, ascending by name.
/// Reads the aggregates only: min and max decide it.
pub async fn outliers(db: &DatabaseConnection, k: Ratio) -> Result<Vec<String>, ReadError> {
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
