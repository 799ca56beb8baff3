//! Job records and idempotency keys (SPEC §0). The table is `job_records`, not `jobs`:
//! apalis-sqlite owns `Jobs` in the same SQLite file and SQLite names ignore case.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum JobRecords {
    Table,
    Id,
    Kind,
    Queue,
    Args,
    Status,
    Attempts,
    MaxAttempts,
    Result,
    Error,
    Worker,
    IdempotencyKey,
    CreatedAt,
    StartedAt,
    FinishedAt,
    ElapsedMs,
    RunAt,
    TaskId,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Key,
    JobId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobRecords::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(JobRecords::Id)
                            .string_len(26)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(JobRecords::Kind).string_len(64).not_null())
                    .col(ColumnDef::new(JobRecords::Queue).string_len(128).not_null())
                    .col(ColumnDef::new(JobRecords::Args).json().not_null())
                    .col(ColumnDef::new(JobRecords::Status).string_len(16).not_null())
                    .col(
                        ColumnDef::new(JobRecords::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(JobRecords::MaxAttempts).integer().not_null())
                    .col(ColumnDef::new(JobRecords::Result).json().null())
                    .col(ColumnDef::new(JobRecords::Error).text().null())
                    .col(ColumnDef::new(JobRecords::Worker).string_len(255).null())
                    .col(
                        ColumnDef::new(JobRecords::IdempotencyKey)
                            .string_len(255)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(JobRecords::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(JobRecords::StartedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(JobRecords::FinishedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(JobRecords::ElapsedMs).big_integer().null())
                    .col(
                        ColumnDef::new(JobRecords::RunAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(JobRecords::TaskId).string_len(26).not_null())
                    .to_owned(),
            )
            .await?;
        // `GET /jobs?status=` and `?kind=` page newest first by id.
        manager
            .create_index(
                Index::create()
                    .name("job_records_status_id")
                    .table(JobRecords::Table)
                    .col(JobRecords::Status)
                    .col(JobRecords::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("job_records_kind_id")
                    .table(JobRecords::Table)
                    .col(JobRecords::Kind)
                    .col(JobRecords::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("job_records_queue_status")
                    .table(JobRecords::Table)
                    .col(JobRecords::Queue)
                    .col(JobRecords::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(IdempotencyKeys::Key)
                            .string_len(300)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::JobId)
                            .string_len(26)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(JobRecords::Table).to_owned())
            .await
    }
}
