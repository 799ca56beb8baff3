//! The `throughput_minutes` table: per minute and queue, the jobs that succeeded and
//! the attempts that failed (retried or dead), as the workers counted them.

use sea_orm::entity::prelude::*;

/// One queue's minute.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "throughput_minutes")]
pub struct Model {
    /// The minute's start (seconds zero).
    #[sea_orm(primary_key, auto_increment = false)]
    pub minute: DateTimeUtc,
    /// The logical queue (`default`, `math`, …).
    #[sea_orm(primary_key, auto_increment = false)]
    pub queue: String,
    /// Jobs whose success was recorded in that minute.
    pub succeeded: i64,
    /// Attempts whose failure was recorded in that minute, whether retried or dead.
    pub failed: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
