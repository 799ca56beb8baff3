//! Ad-request and impression counters (SPEC §2): one row per (scope, key), where scope
//! is `user` or `sdk`, so that a user named "1.0" is not SDK 1.0.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum AdCounters {
    Table,
    Scope,
    Key,
    Impressions,
    AdRequests,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AdCounters::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(AdCounters::Scope).string_len(8).not_null())
                    .col(ColumnDef::new(AdCounters::Key).string_len(255).not_null())
                    .col(
                        ColumnDef::new(AdCounters::Impressions)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(AdCounters::AdRequests)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .primary_key(Index::create().col(AdCounters::Scope).col(AdCounters::Key))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AdCounters::Table).to_owned())
            .await
    }
}
