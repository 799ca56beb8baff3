//! Throughput history: per minute and queue, the jobs that succeeded and the attempts
//! that failed. Workers add their counts with one upsert per row every few seconds;
//! housekeeping deletes the minutes past `THROUGHPUT_HISTORY_MINUTES`. The primary key
//! leads with the minute, so reads of a window and the purge walk it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ThroughputMinutes {
    Table,
    Minute,
    Queue,
    Succeeded,
    Failed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ThroughputMinutes::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ThroughputMinutes::Minute)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ThroughputMinutes::Queue)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ThroughputMinutes::Succeeded)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(ThroughputMinutes::Failed)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .primary_key(
                        Index::create()
                            .col(ThroughputMinutes::Minute)
                            .col(ThroughputMinutes::Queue),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ThroughputMinutes::Table).to_owned())
            .await
    }
}
