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

const STATUS_ID: &str = "job_records_status_id";
const QUEUE_STATUS: &str = "job_records_queue_status";

/// The two indexes, over every record or (`partial`) over those not `succeeded`.
fn indexes(partial: bool) -> [IndexCreateStatement; 2] {
    let mut status_id = Index::create()
        .name(STATUS_ID)
        .table(JobRecords::Table)
        .col(JobRecords::Status)
        .col(JobRecords::Id)
        .to_owned();
    let mut queue_status = Index::create()
        .name(QUEUE_STATUS)
        .table(JobRecords::Table)
        .col(JobRecords::Queue)
        .col(JobRecords::Status)
        .to_owned();
    if partial {
        for index in [&mut status_id, &mut queue_status] {
            index.and_where(Expr::col(JobRecords::Status).ne("succeeded"));
        }
    }
    [status_id, queue_status]
}

async fn replace(manager: &SchemaManager<'_>, partial: bool) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for index in indexes(partial) {
        let name = index
            .get_index_spec()
            .get_name()
            .unwrap_or_default()
            .to_owned();
        manager
            .drop_index(Index::drop().name(name).table(JobRecords::Table).to_owned())
            .await?;
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
