//! The database cache of computed values is bounded: values older than
//! `MATH_STORE_RETENTION_SECS` go, and beyond `MATH_STORE_MAX_DIGITS` digits in all the
//! oldest go first. Housekeeping runs it every round.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::math_result;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};

/// Keys one delete statement names at most.
const DELETE_CHUNK: usize = 500;

/// How the database cache is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreBounds {
    /// Values older than this go; `None` keeps them for good.
    pub retention: Option<Duration>,
    /// Digits kept in all; `None` keeps any number.
    pub max_digits: Option<u64>,
}

/// Deletes the cached values past `bounds` at `now`; how many.
pub async fn purge_cache(
    db: &DatabaseConnection,
    bounds: StoreBounds,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut deleted = 0;
    if let Some(retention) = bounds.retention {
        let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        deleted += math_result::Entity::delete_many()
            .filter(math_result::Column::CreatedAt.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected;
    }
    if let Some(max_digits) = bounds.max_digits {
        #[derive(FromQueryResult)]
        struct Size {
            key: String,
            digit_count: i64,
        }
        // Keys and sizes only, newest first: the digits themselves are not read.
        let sizes = math_result::Entity::find()
            .select_only()
            .column(math_result::Column::Key)
            .column(math_result::Column::DigitCount)
            .order_by_desc(math_result::Column::CreatedAt)
            .order_by_desc(math_result::Column::Key)
            .into_model::<Size>()
            .all(db)
            .await?;
        let mut kept: u64 = 0;
        let over: Vec<String> = sizes
            .into_iter()
            .filter_map(|size| {
                kept = kept.saturating_add(u64::try_from(size.digit_count).unwrap_or(0));
                (kept > max_digits).then_some(size.key)
            })
            .collect();
        for chunk in over.chunks(DELETE_CHUNK) {
            deleted += math_result::Entity::delete_many()
                .filter(math_result::Column::Key.is_in(chunk.iter().cloned()))
                .exec(db)
                .await?
                .rows_affected;
        }
    }
    Ok(deleted)
}
