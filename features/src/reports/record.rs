//! `reports.record`: store reports and fold them into the per-server and global
//! aggregates, as the job's effect (so a redelivered job never counts its reports
//! twice).

use std::collections::BTreeMap;

use chrono::Utc;
use domain::stats::Aggregate;
use engine::{Attempt, Done, Effect, EffectError, Job, JobError, JobId, Kind};
use entity::{report, report_total, server_aggregate};
use sea_orm::{DatabaseTransaction, EntityTrait, QuerySelect, Set};
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
    const KIND: Kind = Kind {
        name: "reports.record",
        queue: "reports",
    };
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
    async fn apply(tx: &DatabaseTransaction, jobs: &[&Self]) -> Result<(), EffectError> {
        for job in jobs {
            record(tx, job.job_id, &job.reports).await?;
        }
        Ok(())
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

/// Stores `reports` for `job_id` and folds them into the per-server and global
/// aggregates, inside the caller's transaction (the one that marks the job done).
///
/// The global row (seeded by the migration) is locked first, so report writes are
/// serialised: no two jobs can
/// interleave their read-modify-write of an aggregate, and no lock order can deadlock.
async fn record(
    tx: &DatabaseTransaction,
    job_id: JobId,
    reports: &[ReportRecord],
) -> Result<(), EffectError> {
    let now = Utc::now();
    for chunk in reports.chunks(500) {
        let rows = chunk.iter().map(|r| report::ActiveModel {
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
    let durations: Vec<i64> = reports.iter().map(|r| r.duration_secs).collect();
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
    for r in reports {
        by_server
            .entry(&r.server_name)
            .or_default()
            .push(r.duration_secs);
    }
    for (server, durations) in by_server {
        let existing = server_aggregate::Entity::find_by_id(server.to_owned())
            .one(tx)
            .await?;
        let mut aggregate = match &existing {
            Some(row) => to_aggregate(row.count, &row.sum, &row.sum_sq, row.min, row.max)
                .map_err(rejected)?,
            None => Aggregate::default(),
        };
        add_all(&mut aggregate, &durations)?;
        let (count, sum, sum_sq, min, max) = parts(&aggregate);
        let row = server_aggregate::ActiveModel {
            server_name: Set(server.to_owned()),
            count: Set(count),
            sum: Set(sum),
            sum_sq: Set(sum_sq),
            min: Set(min),
            max: Set(max),
        };
        if existing.is_some() {
            server_aggregate::Entity::update(row).exec(tx).await?;
        } else {
            server_aggregate::Entity::insert(row)
                .exec_without_returning(tx)
                .await?;
        }
    }
    Ok(())
}
