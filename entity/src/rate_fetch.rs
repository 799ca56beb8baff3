//! The `rate_fetches` table: which dates the provider was asked for and which date it
//! answered with. A holiday is answered with the previous business day's date; this
//! log keeps the calendar from asking for that holiday again and again.

use sea_orm::entity::prelude::*;

/// One answered request.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rate_fetches")]
pub struct Model {
    /// The date asked for.
    #[sea_orm(primary_key, auto_increment = false)]
    pub requested_date: Date,
    /// The base currency asked for.
    #[sea_orm(primary_key, auto_increment = false)]
    pub base: String,
    /// The date the provider answered with (the date the rates are stored under).
    pub answered_date: Date,
    /// How many currencies the answer held.
    pub currencies: i32,
    /// The `rates.ingest` job that fetched it last.
    pub job_id: String,
    /// When.
    pub fetched_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
