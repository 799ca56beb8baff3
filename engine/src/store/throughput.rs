//! The throughput history: per minute and queue, jobs succeeded and attempts failed.
//! Workers count in memory ([`crate::throughput::Throughput`]) and add their counts
//! here every few seconds; the api reads a window; housekeeping deletes old minutes.

use chrono::{DateTime, Utc};
use entity::throughput_minute;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{JobStore, StoreError};

/// One queue's counts in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCounts {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    /// The logical queue.
    pub queue: String,
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Attempts that failed, retried or dead.
    pub failed: u64,
}

/// Rows per upsert statement: a few hundred bytes of parameters, well below the
/// statement size `DATABASE_BATCH_MAX_BYTES` allows.
const UPSERT_CHUNK: usize = 64;

impl JobStore {
    /// Adds `counts` to the stored minutes (`succeeded = succeeded + excluded.succeeded`),
    /// creating the rows that are missing. Rows are written in (minute, queue) order, so
    /// that two processes adding to the same minutes lock them in the same order.
    pub async fn add_throughput(&self, counts: &[MinuteCounts]) -> Result<(), StoreError> {
        let mut counts: Vec<&MinuteCounts> = counts.iter().collect();
        counts.sort_by(|a, b| (a.minute, &a.queue).cmp(&(b.minute, &b.queue)));
        let sum = |column: throughput_minute::Column| {
            Expr::col((throughput_minute::Entity, column))
                .add(Expr::col((Alias::new("excluded"), column)))
        };
        for chunk in counts.chunks(UPSERT_CHUNK) {
            let rows = chunk.iter().map(|c| throughput_minute::ActiveModel {
                minute: Set(c.minute),
                queue: Set(c.queue.clone()),
                succeeded: Set(i64::try_from(c.succeeded).unwrap_or(i64::MAX)),
                failed: Set(i64::try_from(c.failed).unwrap_or(i64::MAX)),
            });
            throughput_minute::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([
                        throughput_minute::Column::Minute,
                        throughput_minute::Column::Queue,
                    ])
                    .value(
                        throughput_minute::Column::Succeeded,
                        sum(throughput_minute::Column::Succeeded),
                    )
                    .value(
                        throughput_minute::Column::Failed,
                        sum(throughput_minute::Column::Failed),
                    )
                    .to_owned(),
                )
                .exec_without_returning(self.db())
                .await?;
        }
        Ok(())
    }

    /// The stored minutes from `since` on (every queue), oldest first.
    pub async fn throughput_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<MinuteCounts>, StoreError> {
        let rows = throughput_minute::Entity::find()
            .filter(throughput_minute::Column::Minute.gte(since))
            .order_by_asc(throughput_minute::Column::Minute)
            .order_by_asc(throughput_minute::Column::Queue)
            .all(self.db())
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| MinuteCounts {
                minute: row.minute,
                queue: row.queue,
                succeeded: u64::try_from(row.succeeded).unwrap_or(0),
                failed: u64::try_from(row.failed).unwrap_or(0),
            })
            .collect())
    }

    /// Deletes the minutes before `before`; how many rows.
    pub async fn purge_throughput(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let deleted = throughput_minute::Entity::delete_many()
            .filter(throughput_minute::Column::Minute.lt(before))
            .exec(self.db())
            .await?;
        Ok(deleted.rows_affected)
    }
}
