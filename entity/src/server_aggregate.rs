//! The `server_aggregates` table: per-server count, sum, sum of squares, min, max of
//! report durations. Sums are decimal text: a sum of squares outgrows 64 bits.

use sea_orm::entity::prelude::*;

/// One server's aggregate.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "server_aggregates")]
pub struct Model {
    /// The server.
    #[sea_orm(primary_key, auto_increment = false)]
    pub server_name: String,
    /// Reports.
    pub count: i64,
    /// Σ duration, decimal.
    pub sum: String,
    /// Σ duration², decimal.
    pub sum_sq: String,
    /// Shortest duration.
    pub min: i64,
    /// Longest duration.
    pub max: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
