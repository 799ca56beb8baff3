//! The `reports` table: one row per server process report, for the record; reads
//! use the aggregates.

use sea_orm::entity::prelude::*;

/// One report.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reports")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The `reports.record` job that stored it.
    pub job_id: String,
    /// Server that ran the process.
    pub server_name: String,
    /// Process start.
    pub start_time: DateTimeUtc,
    /// Process end.
    pub end_time: DateTimeUtc,
    /// Whole seconds of `end_time − start_time`, truncated toward zero.
    pub duration_secs: i64,
    /// When it was stored.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
