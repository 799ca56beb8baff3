//! Server process reports and their aggregates (SPEC §1). Reads use only the
//! aggregates; sums are kept as decimal text because a sum of squares outgrows 64 bits.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Reports {
    Table,
    Id,
    JobId,
    ServerName,
    StartTime,
    EndTime,
    DurationSecs,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ServerAggregates {
    Table,
    ServerName,
    Count,
    Sum,
    SumSq,
    Min,
    Max,
}

#[derive(DeriveIden)]
enum ReportTotals {
    Table,
    Id,
    Count,
    Sum,
    SumSq,
    Min,
    Max,
}

fn aggregate_columns(
    table: &mut TableCreateStatement,
    count: impl IntoIden,
    sum: impl IntoIden,
    sum_sq: impl IntoIden,
    min: impl IntoIden,
    max: impl IntoIden,
) {
    table
        .col(ColumnDef::new(count).big_integer().not_null())
        .col(ColumnDef::new(sum).text().not_null())
        .col(ColumnDef::new(sum_sq).text().not_null())
        .col(ColumnDef::new(min).big_integer().not_null())
        .col(ColumnDef::new(max).big_integer().not_null());
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Reports::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Reports::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Reports::JobId).string_len(26).not_null())
                    .col(
                        ColumnDef::new(Reports::ServerName)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Reports::StartTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Reports::EndTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Reports::DurationSecs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Reports::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        let mut servers = Table::create();
        servers.table(ServerAggregates::Table).if_not_exists().col(
            ColumnDef::new(ServerAggregates::ServerName)
                .string_len(100)
                .not_null()
                .primary_key(),
        );
        aggregate_columns(
            &mut servers,
            ServerAggregates::Count,
            ServerAggregates::Sum,
            ServerAggregates::SumSq,
            ServerAggregates::Min,
            ServerAggregates::Max,
        );
        manager.create_table(servers.to_owned()).await?;
        // The readiness gate asks for the smallest per-server count: an index answers it.
        manager
            .create_index(
                Index::create()
                    .name("server_aggregates_count")
                    .table(ServerAggregates::Table)
                    .col(ServerAggregates::Count)
                    .to_owned(),
            )
            .await?;
        let mut totals = Table::create();
        totals.table(ReportTotals::Table).if_not_exists().col(
            ColumnDef::new(ReportTotals::Id)
                .integer()
                .not_null()
                .primary_key(),
        );
        aggregate_columns(
            &mut totals,
            ReportTotals::Count,
            ReportTotals::Sum,
            ReportTotals::SumSq,
            ReportTotals::Min,
            ReportTotals::Max,
        );
        manager.create_table(totals.to_owned()).await?;
        // The one totals row exists from the start, so that writers only ever lock
        // and update it.
        let seed = Query::insert()
            .into_table(ReportTotals::Table)
            .columns([
                ReportTotals::Id,
                ReportTotals::Count,
                ReportTotals::Sum,
                ReportTotals::SumSq,
                ReportTotals::Min,
                ReportTotals::Max,
            ])
            .values([
                1.into(),
                0.into(),
                "0".into(),
                "0".into(),
                0.into(),
                0.into(),
            ])
            .map_err(|e| DbErr::Custom(format!("seeding report_totals: {e}")))?
            .to_owned();
        manager.exec_stmt(seed).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ReportTotals::Table.into_iden(),
            ServerAggregates::Table.into_iden(),
            Reports::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
