//! The rates timetable (SPEC §4): on every tick of `RATES_CRON` in `RATES_TZ`, and
//! once at start, enqueue `rates.ingest` for today and for every weekday of the last
//! `RATES_LOOKBACK_DAYS` days that has no rates.
//!
//! # Once across replicas
//! apalis-cron ticks in every replica. Each job is submitted with an idempotency key
//! made of the tick's scheduled instant and the date, e.g.
//! `rates.ingest cron 1795424400 2026-11-23`: every replica computes the same key for
//! the same tick, the job store's unique key lets the first one in create the job,
//! and the others get that job back. There is no holder to lose: when a replica dies
//! the others keep ticking, and a tick is enqueued once whichever replicas are alive.
//! The start-up backfill's key holds the date and a ten-minute bucket of the start, so
//! replicas started together share one backfill and a later restart makes a new one.

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use domain::calendar::dates_to_fetch;
use engine::store::Created;
use engine::{JobId, JobStore, NewJob, Queue, SubmitError, submit};
use features::rates::store::covered_dates;
use features::rates::{BadCron, Ingest, IngestReason, RatesArgs, RatesConfig};
use futures::StreamExt;

/// Replicas whose start falls in the same bucket of this many seconds share one
/// start-up backfill.
const STARTUP_BUCKET_SECS: i64 = 600;

/// The rates timetable of one scheduler.
#[derive(Debug, Clone)]
pub struct RatesTimetable {
    store: JobStore,
    queue: Queue,
    config: RatesConfig,
    schedule: cron::Schedule,
    max_attempts: u32,
}

/// What one tick enqueued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Jobs this scheduler created.
    pub created: Vec<JobId>,
    /// Jobs another replica had already created for the same tick and date.
    pub existing: Vec<JobId>,
}

/// Why the timetable could not run or a tick enqueued nothing.
#[derive(Debug, thiserror::Error)]
pub enum TimetableError {
    /// `RATES_CRON` is no cron expression with a seconds field.
    #[error(transparent)]
    BadCron(#[from] BadCron),
    /// The stored dates could not be read.
    #[error("database unavailable: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A job could not be encoded.
    #[error("encoding a job: {0}")]
    Encode(#[from] serde_json::Error),
    /// A job could not be submitted.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The schedule has no further ticks.
    #[error("the rates timetable has no further ticks")]
    Exhausted,
}

impl RatesTimetable {
    /// A timetable over these backends, `None` when `RATES_CRON` is `off`; a bad
    /// `RATES_CRON` is an error that names the variable.
    pub fn new(
        store: JobStore,
        queue: Queue,
        config: RatesConfig,
        max_attempts: u32,
    ) -> Result<Option<Self>, TimetableError> {
        let Some(schedule) = config.schedule()? else {
            return Ok(None);
        };
        Ok(Some(RatesTimetable {
            store,
            queue,
            config,
            schedule,
            max_attempts,
        }))
    }

    /// Runs the start-up backfill, then every tick, until dropped.
    pub async fn run(self) -> Result<(), TimetableError> {
        let now = Utc::now();
        match self.startup(now).await {
            Ok(report) => tracing::info!(
                created = report.created.len(),
                existing = report.existing.len(),
                "rates backfill at start"
            ),
            // The next tick fetches whatever is still missing.
            Err(err) => tracing::warn!(%err, "rates backfill at start failed"),
        }
        let mut ticks = apalis_cron::CronScheduler::new(self.schedule.clone())
            .with_timezone(self.config.tz)
            .into_stream()
            .boxed();
        while let Some(tick) = ticks.next().await {
            let tick = match tick {
                Ok(tick) => tick,
                Err(err) => {
                    tracing::warn!(%err, "rates timetable skipped a tick");
                    continue;
                }
            };
            let at = i64::try_from(tick.get_timestamp())
                .ok()
                .and_then(|secs| Utc.timestamp_opt(secs, 0).single());
            let Some(at) = at else {
                tracing::warn!(tick = tick.get_timestamp(), "tick out of range");
                continue;
            };
            match self.tick(at).await {
                Ok(report) => tracing::info!(
                    %at,
                    created = report.created.len(),
                    existing = report.existing.len(),
                    "rates tick"
                ),
                Err(err) => tracing::warn!(%at, %err, "rates tick failed"),
            }
        }
        Err(TimetableError::Exhausted)
    }

    /// Enqueues what the tick scheduled at `at` fetches.
    pub async fn tick(&self, at: DateTime<Utc>) -> Result<TickReport, TimetableError> {
        let key = format!("rates.ingest cron {}", at.timestamp());
        self.enqueue(at, IngestReason::Cron, &key).await
    }

    /// Enqueues the start-up backfill of a scheduler started at `now`.
    pub async fn startup(&self, now: DateTime<Utc>) -> Result<TickReport, TimetableError> {
        let bucket = now.timestamp().div_euclid(STARTUP_BUCKET_SECS);
        let key = format!("rates.ingest startup {bucket}");
        self.enqueue(now, IngestReason::Startup, &key).await
    }

    /// The dates to fetch at `at`: today in `RATES_TZ` (on weekdays) and the missing
    /// weekdays of the look-back window.
    pub async fn dates_at(&self, at: DateTime<Utc>) -> Result<Vec<NaiveDate>, TimetableError> {
        let today = self.config.date_at(at);
        let since = today
            .checked_sub_days(Days::new(u64::from(self.config.lookback_days)))
            .unwrap_or(NaiveDate::MIN);
        let covered = covered_dates(self.store.db(), since).await?;
        Ok(dates_to_fetch(today, self.config.lookback_days, &covered))
    }

    async fn enqueue(
        &self,
        at: DateTime<Utc>,
        reason: IngestReason,
        key: &str,
    ) -> Result<TickReport, TimetableError> {
        let mut report = TickReport::default();
        for date in self.dates_at(at).await? {
            let args = RatesArgs {
                date,
                reason,
                tick: Some(at),
            };
            let job = NewJob::of::<Ingest>(&args, self.max_attempts)?
                .idempotency_key(format!("{key} {date}"));
            match submit(&self.store, &self.queue, job).await? {
                Created::New(job) => report.created.push(job.id),
                // Another replica made it for the same tick and date.
                Created::Existing(job) | Created::Conflict(job) => report.existing.push(job.id),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_timetable_is_nine_on_weekdays() {
        let schedule = RatesConfig::default()
            .schedule()
            .expect("default parses")
            .expect("default is on");
        let after = Utc
            .with_ymd_and_hms(2026, 11, 20, 9, 0, 0)
            .single()
            .expect("valid instant");
        let next: Vec<String> = schedule
            .after(&after)
            .take(3)
            .map(|t| t.to_rfc3339())
            .collect();
        // Friday 09:00 is not after itself; then Monday and Tuesday.
        assert_eq!(
            next,
            [
                "2026-11-23T09:00:00+00:00",
                "2026-11-24T09:00:00+00:00",
                "2026-11-25T09:00:00+00:00"
            ]
        );
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let bad = RatesConfig {
            cron: "every day at nine".to_owned(),
            ..RatesConfig::default()
        };
        let err = bad.schedule().expect_err("not cron").to_string();
        assert!(err.contains("RATES_CRON"), "{err}");
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            rates: RatesConfig,
        }
        use clap::Parser;
        let err = Only::try_parse_from(["scheduler", "--rates-tz", "Mars/Olympus"])
            .err()
            .expect("an unknown time zone is refused");
        let text = err.to_string();
        assert!(
            text.contains("--rates-tz")
                && text.contains("'Mars/Olympus' is not an IANA time zone name"),
            "{text}"
        );
        let ok = Only::try_parse_from(["scheduler", "--rates-tz", "Europe/Berlin"]).expect("valid");
        assert_eq!(ok.rates.tz, chrono_tz::Tz::Europe__Berlin);
    }
}
