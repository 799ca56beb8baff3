//! The `report_totals` table: one row (id 1), the aggregate over every server.

use sea_orm::entity::prelude::*;

/// The aggregate of all reports.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "report_totals")]
pub struct Model {
    /// Always 1.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
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
