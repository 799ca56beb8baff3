//! Schema migrations of Conveyor. Every migration must run on Postgres and SQLite:
//! on SQLite, one `add_column` per `alter_table` and foreign keys only in `create_table`.
#![warn(missing_docs)]

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_job_records;
mod m20261123_000002_create_math_results;
mod m20261123_000003_create_reports;
mod m20261123_000004_create_ad_counters;
mod m20261123_000005_create_rates;
mod m20261124_000006_index_idempotency_keys_by_age;
mod m20261201_000007_fingerprint_idempotency_keys;
mod m20261201_000008_attempt_log;
mod m20261201_000009_queue_pauses;
mod m20261201_000010_throughput_minutes;
mod m20261203_000011_status_indexes_without_succeeded;

/// All migrations, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_job_records::Migration),
            Box::new(m20261123_000002_create_math_results::Migration),
            Box::new(m20261123_000003_create_reports::Migration),
            Box::new(m20261123_000004_create_ad_counters::Migration),
            Box::new(m20261123_000005_create_rates::Migration),
            Box::new(m20261124_000006_index_idempotency_keys_by_age::Migration),
            Box::new(m20261201_000007_fingerprint_idempotency_keys::Migration),
            Box::new(m20261201_000008_attempt_log::Migration),
            Box::new(m20261201_000009_queue_pauses::Migration),
            Box::new(m20261201_000010_throughput_minutes::Migration),
            Box::new(m20261203_000011_status_indexes_without_succeeded::Migration),
        ]
    }
}
