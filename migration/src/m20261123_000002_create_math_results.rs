//! Cached results of heavy math (SPEC §3), keyed by function and arguments.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum MathResults {
    Table,
    Key,
    Algo,
    Digits,
    DigitCount,
    ElapsedMs,
    JobId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MathResults::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(MathResults::Key)
                            .string_len(80)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(MathResults::Algo).string_len(16).not_null())
                    .col(ColumnDef::new(MathResults::Digits).text().not_null())
                    .col(
                        ColumnDef::new(MathResults::DigitCount)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MathResults::ElapsedMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(MathResults::JobId).string_len(26).not_null())
                    .col(
                        ColumnDef::new(MathResults::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MathResults::Table).to_owned())
            .await
    }
}
