//! The `queue_pauses` table: the queues workers take no task from until resumed.

use sea_orm::entity::prelude::*;

/// One paused queue.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "queue_pauses")]
pub struct Model {
    /// The logical queue (`default`, `math`, …).
    #[sea_orm(primary_key, auto_increment = false)]
    pub queue: String,
    /// When it was paused.
    pub paused_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
