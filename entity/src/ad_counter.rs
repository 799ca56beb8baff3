//! The `ad_counters` table: impressions and ad requests per user and per SDK version,
//! in separate key spaces (`scope` = `user` or `sdk`).

use sea_orm::entity::prelude::*;

/// One counter row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ad_counters")]
pub struct Model {
    /// `user` or `sdk`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    /// The username or the SDK version.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// Impressions counted.
    pub impressions: i64,
    /// Ad requests counted.
    pub ad_requests: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
