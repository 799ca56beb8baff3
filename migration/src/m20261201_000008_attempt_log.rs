//! A job keeps its failed attempts: `attempt_log`, a JSON array of `{attempt, worker,
//! started_at, finished_at, error}` appended by each failure (the last attempt is the
//! record's own fields). Absent (null) until a first failure, so the success path
//! writes nothing more.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum JobRecords {
    Table,
    AttemptLog,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(JobRecords::Table)
                    .add_column(ColumnDef::new(JobRecords::AttemptLog).json().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(JobRecords::Table)
                    .drop_column(JobRecords::AttemptLog)
                    .to_owned(),
            )
            .await
    }
}
