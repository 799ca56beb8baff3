//! The `math_results` table: computed values by function and arguments, so that a
//! repeated request is a read.

use sea_orm::entity::prelude::*;

/// One cached value.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "math_results")]
pub struct Model {
    /// `factorial(100000)`, `ackermann(4,2)`, …
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// `factorial`, `fibonacci` or `ackermann`.
    pub algo: String,
    /// The exact value in decimal.
    pub digits: String,
    /// Number of digits.
    pub digit_count: i64,
    /// Time the computation took.
    pub elapsed_ms: i64,
    /// The job that computed it.
    pub job_id: String,
    /// When it was computed.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
