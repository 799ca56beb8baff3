//! Retention: finished job records and idempotency keys are deleted once they are
//! past their time, a bounded chunk per statement.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{idempotency_key, job};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{JobStore, StoreError};
use crate::ids::JobId;
use crate::record::JobStatus;

/// How long finished job records are kept before housekeeping deletes them; `None`
/// keeps them for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `succeeded` records.
    pub succeeded: Option<Duration>,
    /// `dead` and `cancelled` records: an operator may still look at or retry them.
    pub dead: Option<Duration>,
}

impl JobStore {
    /// Deletes at most `limit` finished job records past their retention at `now`,
    /// oldest first, and returns how many. A record whose `Idempotency-Key` is still
    /// within its window is kept whatever the retention: without it a repeated request
    /// would make a second job.
    ///
    /// Records are found by id: ids are ULIDs, made when the job was created, so a
    /// record finished before the cutoff has an id below the cutoff's and the scan never
    /// reads the records that are younger. `succeeded` ones are walked along the primary
    /// key from its oldest end; on Postgres the `(status, id)` index holds no
    /// `succeeded` record, only the `dead` and `cancelled` ones.
    pub async fn purge_finished(
        &self,
        retention: &Retention,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let classes = [
            (retention.succeeded, &[JobStatus::Succeeded][..]),
            (retention.dead, &[JobStatus::Dead, JobStatus::Cancelled][..]),
        ];
        let key_expired = before(now, self.idempotency_window);
        let mut expired = sea_orm::Condition::any();
        let mut below = None;
        for (keep, statuses) in classes {
            let Some(keep) = keep else { continue };
            let cutoff = before(now, keep);
            let cutoff_id =
                JobId::floor_at(u64::try_from(cutoff.timestamp_millis()).unwrap_or(0)).to_string();
            expired = expired.add(
                sea_orm::Condition::all()
                    .add(job::Column::Status.is_in(statuses.iter().map(|s| s.as_str())))
                    .add(job::Column::Id.lt(cutoff_id.clone()))
                    .add(job::Column::FinishedAt.lt(cutoff)),
            );
            below = Ord::max(below, Some(cutoff_id));
        }
        let Some(below) = below else { return Ok(0) };
        let ids = sea_orm::sea_query::Query::select()
            .column(job::Column::Id)
            .from(job::Entity)
            .cond_where(
                sea_orm::Condition::all()
                    // Also outside the OR: whichever index the planner walks, the
                    // scan ends at the newest cutoff.
                    .add(job::Column::Id.lt(below))
                    .add(expired)
                    .add(
                        sea_orm::Condition::any()
                            .add(job::Column::IdempotencyKey.is_null())
                            .add(job::Column::CreatedAt.lt(key_expired)),
                    ),
            )
            .order_by(job::Column::Id, sea_orm::Order::Asc)
            .limit(limit)
            .to_owned();
        self.delete_chosen::<job::Entity>(job::Column::Id, ids)
            .await
    }

    /// Deletes at most `limit` idempotency keys older than their window at `now` (they
    /// no longer match anything) and returns how many.
    pub async fn purge_idempotency_keys(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let expired = before(now, self.idempotency_window);
        let keys = sea_orm::sea_query::Query::select()
            .column(idempotency_key::Column::Key)
            .from(idempotency_key::Entity)
            .and_where(idempotency_key::Column::CreatedAt.lt(expired))
            .order_by(idempotency_key::Column::CreatedAt, sea_orm::Order::Asc)
            .limit(limit)
            .to_owned();
        self.delete_chosen::<idempotency_key::Entity>(idempotency_key::Column::Key, keys)
            .await
    }

    /// Deletes the rows of `E` whose `key` is among those `chosen` selects (a bounded,
    /// ordered subquery: one chunk of a purge); returns how many.
    async fn delete_chosen<E: EntityTrait>(
        &self,
        key: E::Column,
        chosen: sea_orm::sea_query::SelectStatement,
    ) -> Result<u64, StoreError> {
        let deleted = E::delete_many()
            .filter(key.in_subquery(chosen))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }
}

/// `duration` before `now`; the start of time for a duration longer than that (a
/// setting of centuries means "for good", not a crash).
pub(super) fn before(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
