//! The `idempotency_keys` table: an `Idempotency-Key` header maps to the first job
//! created with it, for as long as the key's window lasts.

use sea_orm::entity::prelude::*;

/// One claimed key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    /// The header value, scoped by the route that received it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// The job created by the first request with this key.
    pub job_id: String,
    /// When the key was claimed; it expires after the configured window.
    pub created_at: DateTimeUtc,
    /// Fingerprint of the request (the job's kind and arguments) the key was first
    /// used with; absent for keys claimed before fingerprints were kept.
    pub fingerprint: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
