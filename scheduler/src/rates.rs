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

use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use domain::calendar::dates_to_fetch;
use futures::StreamExt;
use jobs::JobKind;
use jobs::rates::store::covered_dates;
use jobs::rates::{IngestReason, RatesArgs, RatesConfig};
use jobs::store::{Created, NewJob};
use jobs::submit::submit;
use jobs::{JobStore, Queue};

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
    pub created: Vec<String>,
    /// Jobs another replica had already created for the same tick and date.
    pub existing: Vec<String>,
}

impl RatesTimetable {
    /// A timetable over these backends; a bad `RATES_CRON` is an error that names the
    /// variable.
    pub fn new(
        store: JobStore,
        queue: Queue,
        config: RatesConfig,
        max_attempts: u32,
    ) -> Result<Self, String> {
        let schedule = parse_cron(&config.cron)?;
        Ok(RatesTimetable {
            store,
            queue,
            config,
            schedule,
            max_attempts,
        })
    }

    /// Runs the start-up backfill, then every tick, until dropped.
    pub async fn run(self) -> Result<(), String> {
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
        Err("the rates timetable has no further ticks".to_owned())
    }

    /// Enqueues what the tick scheduled at `at` fetches.
    pub async fn tick(&self, at: DateTime<Utc>) -> Result<TickReport, String> {
        let key = format!("rates.ingest cron {}", at.timestamp());
        self.enqueue(at, IngestReason::Cron, &key).await
    }

    /// Enqueues the start-up backfill of a scheduler started at `now`.
    pub async fn startup(&self, now: DateTime<Utc>) -> Result<TickReport, String> {
        let bucket = now.timestamp().div_euclid(STARTUP_BUCKET_SECS);
        let key = format!("rates.ingest startup {bucket}");
        self.enqueue(now, IngestReason::Startup, &key).await
    }

    /// The dates to fetch at `at`: today in `RATES_TZ` (on weekdays) and the missing
    /// weekdays of the look-back window.
    pub async fn dates_at(&self, at: DateTime<Utc>) -> Result<Vec<NaiveDate>, String> {
        let today = self.config.date_at(at);
        let since = today
            .checked_sub_days(Days::new(u64::from(self.config.lookback_days)))
            .unwrap_or(NaiveDate::MIN);
        let covered = covered_dates(self.store.db(), since)
            .await
            .map_err(|e| format!("database unavailable: {e}"))?;
        Ok(dates_to_fetch(today, self.config.lookback_days, &covered))
    }

    async fn enqueue(
        &self,
        at: DateTime<Utc>,
        reason: IngestReason,
        key: &str,
    ) -> Result<TickReport, String> {
        let mut report = TickReport::default();
        for date in self.dates_at(at).await? {
            let args = RatesArgs {
                date,
                reason,
                tick: Some(at),
            };
            let job = NewJob {
                kind: JobKind::RatesIngest,
                args: serde_json::to_value(&args).map_err(|e| e.to_string())?,
                max_attempts: self.max_attempts,
                idempotency_key: Some(format!("{key} {date}")),
            };
            match submit(&self.store, &self.queue, job)
                .await
                .map_err(|e| e.to_string())?
            {
                Created::New(job) => report.created.push(job.id),
                Created::Existing(job) => report.existing.push(job.id),
            }
        }
        Ok(report)
    }
}

/// Parses a cron expression with a seconds field, naming `RATES_CRON` when it fails.
pub fn parse_cron(expression: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(expression).map_err(|e| {
        format!(
            "RATES_CRON '{expression}' is not a cron expression with a seconds field \
             (sec min hour day-of-month month day-of-week): {e}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_timetable_is_nine_on_weekdays() {
        let schedule = parse_cron(&RatesConfig::default().cron).expect("default parses");
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
        let err = parse_cron("every day at nine").expect_err("not cron");
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
