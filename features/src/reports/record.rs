//! `reports.record`: store reports and fold them into the per-server and global
//! aggregates, as the job's effect (so a redelivered job never counts its reports
//! twice).

use std::collections::BTreeMap;

use chrono::Utc;
use domain::stats::Aggregate;
use engine::{Attempt, Done, Effect, EffectError, Job, JobError, JobId, Kind};
use entity::{report, report_total, server_aggregate};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set};
use serde::{Deserialize, Serialize};

use super::{ReportRecord, parts, to_aggregate};

/// Arguments of `reports.record`: one report or a batch, stored all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportsArgs {
    /// The reports.
    pub reports: Vec<ReportRecord>,
}

/// What a `reports.record` job records as its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stored {
    /// Reports stored.
    pub stored: usize,
}

/// The `reports.record` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Record;

/// The effect of one `reports.record` job: its reports, stored under its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReports {
    job_id: JobId,
    reports: Vec<ReportRecord>,
}

impl Job for Record {
    const KIND: Kind = Kind::io("reports.record", "reports");
    type Args = ReportsArgs;
    type Output = Stored;
    type Effect = NewReports;

    /// Validates nothing new (the api did): the work is the effect.
    async fn run(
        &self,
        attempt: Attempt<ReportsArgs>,
    ) -> Result<Done<Stored, NewReports>, JobError> {
        Ok(Done {
            output: Stored {
                stored: attempt.args.reports.len(),
            },
            effect: NewReports {
                job_id: attempt.job_id,
                reports: attempt.args.reports,
            },
        })
    }
}

impl Effect for NewReports {
    /// Stores the reports of every job recorded together and folds them into the
    /// aggregates at once: one read and one write of each server's aggregate and of
    /// the totals per batch, however many jobs it holds.
    async fn apply(tx: &DatabaseTransaction, jobs: &[&Self]) -> Result<(), EffectError> {
        record(tx, jobs).await
    }
}

fn rejected(err: impl std::fmt::Display) -> EffectError {
    EffectError::Rejected(err.to_string())
}

fn add_all(aggregate: &mut Aggregate, durations: &[i64]) -> Result<(), EffectError> {
    for &d in durations {
        aggregate
            .try_add(d)
            .map_err(|e| rejected(format!("aggregate overflow: {e}")))?;
    }
    Ok(())
}

/// Rows per multi-row statement: a statement of bounded size and parameter count,
/// however many reports a batch carries.
const CHUNK: usize = 64;

/// Stores `jobs`' reports, each under its job's id, and folds them into the
/// per-server and global aggregates, inside the caller's transaction (the one that
/// marks the jobs done).
///
/// The global row (seeded by the migration) is locked first, so report writes are
/// serialised: no two batches can interleave their read-modify-write of an
/// aggregate, and no lock order can deadlock. The sums are exact (i128, decimal text
/// in the database), which SQL on SQLite could not add: hence read, add, write.
async fn record(tx: &DatabaseTransaction, jobs: &[&NewReports]) -> Result<(), EffectError> {
    let now = Utc::now();
    let reports: Vec<(JobId, &ReportRecord)> = jobs
        .iter()
        .flat_map(|job| job.reports.iter().map(|r| (job.job_id, r)))
        .collect();
    for chunk in reports.chunks(CHUNK) {
        let rows = chunk.iter().map(|(job_id, r)| report::ActiveModel {
            job_id: Set(job_id.to_string()),
            server_name: Set(r.server_name.clone()),
            start_time: Set(r.start_time),
            end_time: Set(r.end_time),
            duration_secs: Set(r.duration_secs),
            created_at: Set(now),
            ..Default::default()
        });
        report::Entity::insert_many(rows)
            .exec_without_returning(tx)
            .await?;
    }

    // `FOR UPDATE` on Postgres; SQLite's write transactions are exclusive already
    // (the clause is left out there).
    let total = report_total::Entity::find_by_id(1)
        .lock_exclusive()
        .one(tx)
        .await?
        .ok_or_else(|| rejected("report_totals has no row: migrations not applied?"))?;
    let mut all = if total.count == 0 {
        Aggregate::default()
    } else {
        to_aggregate(total.count, &total.sum, &total.sum_sq, total.min, total.max)
            .map_err(rejected)?
    };
    let durations: Vec<i64> = reports.iter().map(|(_, r)| r.duration_secs).collect();
    add_all(&mut all, &durations)?;
    let (count, sum, sum_sq, min, max) = parts(&all);
    report_total::Entity::update(report_total::ActiveModel {
        id: Set(1),
        count: Set(count),
        sum: Set(sum),
        sum_sq: Set(sum_sq),
        min: Set(min),
        max: Set(max),
    })
    .exec(tx)
    .await?;

    let mut by_server: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (_, r) in &reports {
        by_server
            .entry(&r.server_name)
            .or_default()
            .push(r.duration_secs);
    }
    let servers: Vec<(&str, Vec<i64>)> = by_server.into_iter().collect();
    for chunk in servers.chunks(CHUNK) {
        fold_servers(tx, chunk).await?;
    }
    Ok(())
}

/// Adds each server's `durations` to its aggregate: one read of them all, one upsert.
async fn fold_servers(
    tx: &DatabaseTransaction,
    servers: &[(&str, Vec<i64>)],
) -> Result<(), EffectError> {
    let names = servers.iter().map(|(name, _)| (*name).to_owned());
    let mut existing: BTreeMap<String, server_aggregate::Model> = server_aggregate::Entity::find()
        .filter(server_aggregate::Column::ServerName.is_in(names))
        .all(tx)
        .await?
        .into_iter()
        .map(|row| (row.server_name.clone(), row))
        .collect();
    let mut rows = Vec::with_capacity(servers.len());
    for (server, durations) in servers {
        let mut aggregate = match existing.remove(*server) {
            Some(row) => to_aggregate(row.count, &row.sum, &row.sum_sq, row.min, row.max)
                .map_err(rejected)?,
            None => Aggregate::default(),
        };
        add_all(&mut aggregate, durations)?;
        let (count, sum, sum_sq, min, max) = parts(&aggregate);
        rows.push(server_aggregate::ActiveModel {
            server_name: Set((*server).to_owned()),
            count: Set(count),
            sum: Set(sum),
            sum_sq: Set(sum_sq),
            min: Set(min),
            max: Set(max),
        });
    }
    server_aggregate::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(server_aggregate::Column::ServerName)
                .update_columns([
                    server_aggregate::Column::Count,
                    server_aggregate::Column::Sum,
                    server_aggregate::Column::SumSq,
                    server_aggregate::Column::Min,
                    server_aggregate::Column::Max,
                ])
                .to_owned(),
        )
        .exec_without_returning(tx)
        .await?;
    Ok(())
}
