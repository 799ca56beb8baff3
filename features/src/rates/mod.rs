//! Currency rates (SPEC §4): the `rates.ingest` job, the providers it fetches from,
//! the storage it writes, and the reads of the routes.
//!
//! # Layout
//! - here: [`RatesConfig`] and [`RatesArgs`].
//! - [`ingest`]: the `rates.ingest` job: one day fetched, stored whole as its effect.
//! - [`provider`]: the [`provider::RatesProvider`] trait, `fixer` and `frankfurter`.
//! - [`store`]: one upsert per day in the job's success transaction; reads.

pub mod ingest;
pub mod provider;
pub mod store;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use engine::secret::Secret;
pub use ingest::Ingest;

/// The base currency of every stored rate.
pub const BASE: &str = "EUR";

/// Arguments of `rates.ingest`: fetch one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatesArgs {
    /// The day asked for; the provider's answer may carry an earlier date (holidays).
    pub date: NaiveDate,
    /// Who asked.
    pub reason: IngestReason,
    /// The timetable's tick this job was made for (cron and start-up jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<DateTime<Utc>>,
}

/// Who asked for a `rates.ingest` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestReason {
    /// A tick of `RATES_CRON`.
    Cron,
    /// The backfill when a scheduler starts.
    Startup,
    /// `POST /rates/refresh`.
    Refresh,
    /// `POST /schedules/rates.ingest/run`: an operator ran the timetable now.
    RunNow,
}

/// Which provider `rates.ingest` fetches from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderChoice {
    /// `fixer` when `FIXER_KEY` is set, else `frankfurter`.
    Auto,
    /// fixer.io (needs `FIXER_KEY`).
    Fixer,
    /// frankfurter (ECB rates, no key).
    Frankfurter,
}

/// Settings of the rates feature, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct RatesConfig {
    /// Rate provider: `auto` (fixer when FIXER_KEY is set, else frankfurter), `fixer`,
    /// `frankfurter`.
    #[arg(
        long = "rates-provider",
        env = "RATES_PROVIDER",
        value_enum,
        default_value = "auto"
    )]
    pub provider: ProviderChoice,
    /// fixer.io's API root; `GET {FIXER_URL}/{YYYY-MM-DD}?access_key=…&base=EUR`.
    #[arg(long, env = "FIXER_URL", default_value = "https://data.fixer.io/api")]
    pub fixer_url: String,
    /// fixer.io access key, from the environment only (a command-line value would show
    /// in `ps`). Never logged, never in errors.
    #[arg(skip = Secret::from_env("FIXER_KEY"))]
    pub fixer_key: Option<Secret>,
    /// frankfurter's API root; `GET {FRANKFURTER_URL}/{YYYY-MM-DD}?from=EUR`.
    #[arg(
        long,
        env = "FRANKFURTER_URL",
        default_value = "https://api.frankfurter.app"
    )]
    pub frankfurter_url: String,
    /// How long one provider request may take, in ms.
    #[arg(
        id = "rates_timeout_ms",
        long = "rates-timeout-ms",
        env = "RATES_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub timeout_ms: u64,
    /// When the scheduler fetches rates: a cron expression with a seconds field
    /// (`sec min hour day-of-month month day-of-week`), or `off` for no timetable
    /// (and no start-up backfill).
    #[arg(
        long = "rates-cron",
        env = "RATES_CRON",
        default_value = "0 0 9 * * Mon-Fri"
    )]
    pub cron: String,
    /// Time zone of `RATES_CRON` and of "today" (an IANA name, e.g. `Europe/Berlin`).
    /// Parsed with the rest of the configuration, so that a bad name stops every role
    /// at start instead of failing requests later.
    #[arg(long = "rates-tz", env = "RATES_TZ", default_value = "UTC", value_parser = parse_tz)]
    pub tz: chrono_tz::Tz,
    /// How many days back every tick makes sure weekdays have rates.
    #[arg(
        long = "rates-lookback-days",
        env = "RATES_LOOKBACK_DAYS",
        default_value_t = 31
    )]
    pub lookback_days: u32,
}

impl Default for RatesConfig {
    fn default() -> Self {
        engine::config::defaults()
    }
}

/// `RATES_CRON` is neither `off` nor a cron expression with a seconds field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "RATES_CRON '{expression}' is not a cron expression with a seconds field \
     (sec min hour day-of-month month day-of-week): {reason}"
)]
pub struct BadCron {
    /// The expression as configured (its first 100 characters).
    pub expression: String,
    /// What the parser said.
    pub reason: String,
}

impl RatesConfig {
    /// Whether the scheduler runs the rates timetable (`RATES_CRON` is not `off`).
    pub fn timetable_enabled(&self) -> bool {
        !self.cron.trim().eq_ignore_ascii_case("off")
    }

    /// The timetable `RATES_CRON` describes; `None` when it is `off`.
    pub fn schedule(&self) -> Result<Option<cron::Schedule>, BadCron> {
        if !self.timetable_enabled() {
            return Ok(None);
        }
        self.cron
            .parse::<cron::Schedule>()
            .map(Some)
            .map_err(|e| BadCron {
                expression: self.cron.chars().take(100).collect(),
                reason: e.to_string(),
            })
    }

    /// The next tick after `now`, read in `RATES_TZ` as the scheduler reads it; `None`
    /// when the timetable is off.
    pub fn next_tick(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, BadCron> {
        Ok(self.schedule()?.and_then(|schedule| {
            schedule
                .after(&now.with_timezone(&self.tz))
                .next()
                .map(|at| at.with_timezone(&Utc))
        }))
    }

    /// The date at `instant` in `RATES_TZ`.
    pub fn date_at(&self, instant: DateTime<Utc>) -> NaiveDate {
        instant.with_timezone(&self.tz).date_naive()
    }

    /// Timeout of one provider request.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// `RATES_TZ` names no time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an IANA time zone name, e.g. Europe/Berlin")]
pub struct BadTimeZone(String);

/// An IANA time zone name, e.g. `Europe/Berlin`.
fn parse_tz(name: &str) -> Result<chrono_tz::Tz, BadTimeZone> {
    name.parse()
        .map_err(|_| BadTimeZone(name.chars().take(60).collect()))
}
