//! Currency rates (SPEC §4): one row per (date, base, currency), and the log of which
//! date each request was answered with.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Rates {
    Table,
    Date,
    Base,
    Currency,
    Rate,
    JobId,
}

#[derive(DeriveIden)]
enum RateFetches {
    Table,
    RequestedDate,
    Base,
    AnsweredDate,
    Currencies,
    JobId,
    FetchedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Rates::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Rates::Date).date().not_null())
                    .col(ColumnDef::new(Rates::Base).string_len(3).not_null())
                    .col(ColumnDef::new(Rates::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(Rates::Rate).double().not_null())
                    .col(ColumnDef::new(Rates::JobId).string_len(26).not_null())
                    .primary_key(
                        Index::create()
                            .col(Rates::Date)
                            .col(Rates::Base)
                            .col(Rates::Currency),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RateFetches::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(RateFetches::RequestedDate).date().not_null())
                    .col(ColumnDef::new(RateFetches::Base).string_len(3).not_null())
                    .col(ColumnDef::new(RateFetches::AnsweredDate).date().not_null())
                    .col(ColumnDef::new(RateFetches::Currencies).integer().not_null())
                    .col(ColumnDef::new(RateFetches::JobId).string_len(26).not_null())
                    .col(
                        ColumnDef::new(RateFetches::FetchedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(RateFetches::RequestedDate)
                            .col(RateFetches::Base),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RateFetches::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Rates::Table).to_owned())
            .await
    }
}
