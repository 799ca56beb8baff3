//! The `rates` table: one currency rate per (date, base, currency).

use sea_orm::entity::prelude::*;

/// One rate: 1 `base` = `rate` `currency` on `date`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "rates")]
pub struct Model {
    /// The provider's own date of the rates.
    #[sea_orm(primary_key, auto_increment = false)]
    pub date: Date,
    /// The base currency (`EUR`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub base: String,
    /// The quoted currency, e.g. `USD`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub currency: String,
    /// Units of `currency` per one `base`.
    pub rate: f64,
    /// The `rates.ingest` job that wrote the row last.
    pub job_id: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
