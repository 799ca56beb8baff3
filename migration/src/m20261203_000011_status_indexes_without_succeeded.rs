//! On Postgres, the two indexes that name `status` leave out `succeeded` records.
//!
//! Nearly every record ends `succeeded`, and the reads that filter on a status look for
//! the others: the live ones (`queued`, `running`, `failed`, by the stuck-job sweep and
//! `GET /jobs?status=`) and the ones an operator acts on (`dead`, `cancelled`). Without
//! the succeeded records, these indexes hold only the backlog and the exceptions, and
//! a success, which moves its record out of them, writes no entry into either. The
//! reads of `succeeded` records walk the primary key instead: ids are ULIDs, so newest
//! first (`GET /jobs?status=succeeded`) is its end, and retention's oldest first is
//! its start.
//!
//! Postgres uses such an index for any condition that rules `succeeded` out (`status =
//! 'dead'`, `status IN ('queued', 'failed', 'running')`). SQLite's planner uses a partial
//! index only when the query repeats its condition, so SQLite keeps the full indexes;
//! its single writer is not where throughput is measured.
//!
//! The indexes are rebuilt under a lock that holds writes to `job_records` back for
//! the build, a scan of the table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum JobRecords {
    Table,
    Id,
    Queue,
    Status,
}

/// Replaces `job_records_status_id` and `job_records_queue_status` with indexes over
/// the records not `succeeded` (`partial`), or over every record.
async fn replace(manager: &SchemaManager<'_>, partial: bool) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let indexes = [
        (
            "job_records_status_id",
            [JobRecords::Status, JobRecords::Id],
        ),
        (
            "job_records_queue_status",
            [JobRecords::Queue, JobRecords::Status],
        ),
    ];
    for (name, [first, second]) in indexes {
        manager
            .drop_index(Index::drop().name(name).table(JobRecords::Table).to_owned())
            .await?;
        let mut index = Index::create()
            .name(name)
            .table(JobRecords::Table)
            .col(first)
            .col(second)
            .to_owned();
        if partial {
            index.and_where(Expr::col(JobRecords::Status).ne("succeeded"));
        }
        manager.create_index(index).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, false).await
    }
}
