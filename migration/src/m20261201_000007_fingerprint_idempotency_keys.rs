//! A key names the request it was first used with: a fingerprint of its job's kind and
//! arguments, so that the same key sent with a different request is told apart (422)
//! instead of answered with the first job. Keys claimed before have none, and match
//! any request, as before.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Fingerprint,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .add_column(
                        ColumnDef::new(IdempotencyKeys::Fingerprint)
                            .string_len(16)
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .drop_column(IdempotencyKeys::Fingerprint)
                    .to_owned(),
            )
            .await
    }
}
