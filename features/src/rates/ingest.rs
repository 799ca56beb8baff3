//! `rates.ingest`: fetch one day from the configured provider and store all of it in
//! the transaction that marks the job done. A provider failure fails the attempt (it
//! is retried with backoff, then the job is dead with the provider's message); nothing
//! is written for a failed day.

use std::sync::Arc;

use chrono::NaiveDate;
use engine::{Attempt, Done, Effect, EffectError, Job, JobError, JobId, Kind};
use sea_orm::DatabaseTransaction;
use serde::Serialize;

use super::RatesArgs;
use super::provider::{DayRates, RatesProvider};
use super::store::store_day;

/// The `rates.ingest` kind, fetching from one provider.
#[derive(Debug, Clone)]
pub struct Ingest {
    provider: Arc<dyn RatesProvider>,
}

impl Ingest {
    /// The kind, fetching from `provider`.
    pub fn new(provider: Arc<dyn RatesProvider>) -> Self {
        Ingest { provider }
    }
}

/// What a `rates.ingest` job records as its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ingested {
    /// The provider asked.
    pub provider: &'static str,
    /// The day asked for.
    pub requested: NaiveDate,
    /// The provider's own date for it (earlier on holidays).
    pub date: NaiveDate,
    /// The base currency.
    pub base: String,
    /// How many currencies were stored.
    pub currencies: usize,
}

/// The effect of a `rates.ingest` job: the day as answered, stored whole.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreDay {
    job_id: JobId,
    requested: NaiveDate,
    day: DayRates,
}

impl Job for Ingest {
    // Its own queue: waits on a slow upstream must not hold up counting.
    const KIND: Kind = Kind::io("rates.ingest", "rates");
    type Args = RatesArgs;
    type Output = Ingested;
    type Effect = StoreDay;

    async fn run(&self, attempt: Attempt<RatesArgs>) -> Result<Done<Ingested, StoreDay>, JobError> {
        let requested = attempt.args.date;
        let day = self
            .provider
            .fetch(requested)
            .await
            .map_err(JobError::failed)?;
        Ok(Done {
            output: Ingested {
                provider: self.provider.name(),
                requested,
                date: day.date,
                base: day.base.clone(),
                currencies: day.rates.len(),
            },
            effect: StoreDay {
                job_id: attempt.job_id,
                requested,
                day,
            },
        })
    }
}

impl Effect for StoreDay {
    async fn apply(tx: &DatabaseTransaction, days: &[&Self]) -> Result<(), EffectError> {
        for day in days {
            store_day(tx, day.requested, &day.day, day.job_id).await?;
        }
        Ok(())
    }
}
