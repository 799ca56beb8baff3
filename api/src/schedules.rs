//! `/schedules`: what the scheduler runs on a timetable, read from the settings and the
//! job records (nothing of its own): the rates timetable with its next tick and the
//! newest job it made, and housekeeping with its interval.

use chrono::{DateTime, Utc};
use engine::config::HousekeepingConfig;
use engine::store::{JobFilter, StoreError};
use engine::{Job, JobRecord};
use features::rates::{Ingest, IngestReason, RatesArgs};
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use serde_json::Value;

use crate::auth::{CHALLENGE, Unauthorized, authorize, authorize_read};
use crate::enqueue::enqueue;
use crate::error::{ErrorBody, quote};
use crate::jobs::Accepted;
use crate::state::AppState;

#[derive(Tags)]
enum ScheduleTags {
    /// The scheduler's timetables.
    Schedules,
}

/// Name of the housekeeping entry; it is no job kind, since housekeeping makes no jobs.
const HOUSEKEEPING: &str = "housekeeping";

/// One timetable of the scheduler: a cron timetable (`rates.ingest`) or an interval
/// one (`housekeeping`). Fields that do not apply to an entry are absent, never null.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ScheduleView {
    /// The job kind each tick enqueues (`rates.ingest`), or `housekeeping`: the queue
    /// vacuum, stuck-job sweep and retention, which enqueues no job of its own.
    pub name: String,
    /// Cron expression with a seconds field, as configured (`off` when disabled);
    /// absent for an interval timetable.
    pub cron: Option<String>,
    /// IANA time zone the expression is read in; absent for an interval timetable.
    pub timezone: Option<String>,
    /// Seconds between two runs of an interval timetable (`HOUSEKEEPING_INTERVAL_SECS`,
    /// at least 1), counted from the scheduler's start; absent for a cron timetable.
    pub interval_secs: Option<u64>,
    /// Housekeeping only: a job waiting this long past its due time, or running this
    /// long past the attempt timeout, has its task pushed again (`STUCK_AFTER_SECS`).
    pub stuck_after_secs: Option<u64>,
    /// Housekeeping only: seconds a `succeeded` job record is kept after it finished,
    /// then deleted (`JOB_RETENTION_SECS`); 0 keeps them for good.
    pub job_retention_secs: Option<u64>,
    /// Housekeeping only: the same for `dead` and `cancelled` records
    /// (`DEAD_JOB_RETENTION_SECS`); 0 keeps them for good.
    pub dead_job_retention_secs: Option<u64>,
    /// Whether the scheduler runs this timetable (housekeeping always runs).
    pub enabled: bool,
    /// The next tick after now; absent when disabled, when the expression is
    /// malformed, and for an interval timetable (its runs count from the scheduler
    /// process's start, which the api does not know).
    pub next_run: Option<DateTime<Utc>>,
    /// Why `next_run` is absent although a cron timetable is enabled.
    pub problem: Option<String>,
    /// The newest job of this kind (made by a tick, the start-up backfill or by hand);
    /// absent before the first, and always for housekeeping, whose runs are recorded
    /// only in the scheduler's log.
    pub last_run: Option<LastRun>,
}

impl From<&HousekeepingConfig> for ScheduleView {
    fn from(settings: &HousekeepingConfig) -> Self {
        let retention = settings.retention();
        ScheduleView {
            name: HOUSEKEEPING.to_owned(),
            cron: None,
            timezone: None,
            interval_secs: Some(settings.interval().as_secs()),
            stuck_after_secs: Some(settings.stuck_after().as_secs()),
            job_retention_secs: Some(secs_or_zero(retention.succeeded)),
            dead_job_retention_secs: Some(secs_or_zero(retention.dead)),
            enabled: true,
            next_run: None,
            problem: None,
            last_run: None,
        }
    }
}

/// A retention in seconds, 0 for "for good" (as `JOB_RETENTION_SECS` is written).
fn secs_or_zero(keep: Option<std::time::Duration>) -> u64 {
    keep.map_or(0, |d| d.as_secs())
}

/// The newest job a timetable's kind has.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LastRun {
    /// Id of the job; its record is at `/jobs/{job_id}`.
    pub job_id: String,
    /// When the job was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it finished (succeeded, dead or cancelled), if it has.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its status, e.g. `succeeded` or `dead`.
    pub status: String,
    /// Its last error.
    pub error: Option<String>,
    /// Who asked for it: `cron`, `startup` or `refresh` (`args.reason`).
    pub reason: Option<String>,
    /// The scheduled instant of the tick that made it (`args.tick`).
    pub tick: Option<DateTime<Utc>>,
}

/// `args.reason` and `args.tick` of a `rates.ingest` job, each when present and
/// well-formed (records outlive argument changes, so nothing here is assumed).
fn reason_and_tick(args: &Value) -> (Option<String>, Option<DateTime<Utc>>) {
    let reason = args
        .get("reason")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tick = args
        .get("tick")
        .and_then(Value::as_str)
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|at| at.with_timezone(&Utc));
    (reason, tick)
}

impl From<JobRecord> for LastRun {
    fn from(job: JobRecord) -> Self {
        let (reason, tick) = reason_and_tick(&job.args);
        LastRun {
            job_id: job.id.to_string(),
            created_at: job.created_at,
            finished_at: job.finished_at,
            status: job.status.as_str().to_owned(),
            error: job.error,
            reason,
            tick,
        }
    }
}

/// Answers of `GET /schedules` (it takes no parameters, so it has no 400).
#[derive(ApiResponse)]
pub enum SchedulesAnswer {
    /// Every timetable.
    #[oai(status = 200)]
    Ok(Json<Vec<ScheduleView>>),
    /// `ADMIN_TOKEN` is set and the request carries neither it nor `READ_TOKEN` as a
    /// bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

/// Answers of `POST /schedules/{name}/run`.
#[derive(ApiResponse)]
pub enum RunNowAnswer {
    /// The job this run is; its record tells how it went.
    #[oai(status = 202)]
    Accepted(Json<Accepted>, #[oai(header = "Location")] String),
    /// `ADMIN_TOKEN` is set and the request does not carry it as a bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No timetable of that name.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// `housekeeping` runs inside the scheduler, not as a job: it cannot be run from
    /// the api.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The database or the queue is unavailable; nothing was enqueued.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

/// The schedule routes.
#[derive(Debug, Clone)]
pub struct SchedulesApi {
    state: AppState,
}

impl SchedulesApi {
    /// The routes over `state`.
    pub fn new(state: AppState) -> Self {
        SchedulesApi { state }
    }

    async fn rates(&self, now: DateTime<Utc>) -> Result<ScheduleView, StoreError> {
        let rates = self.state.rates();
        let kind = Ingest::KIND.name;
        let newest = self
            .state
            .store
            .list(&JobFilter {
                kind: Some(kind.to_owned()),
                limit: 1,
                ..JobFilter::default()
            })
            .await?;
        let (next_run, problem) = match rates.next_tick(now) {
            Ok(next) => (next, None),
            Err(problem) => (None, Some(problem.to_string())),
        };
        Ok(ScheduleView {
            name: kind.to_owned(),
            cron: Some(rates.cron.clone()),
            timezone: Some(rates.tz.name().to_owned()),
            interval_secs: None,
            stuck_after_secs: None,
            job_retention_secs: None,
            dead_job_retention_secs: None,
            enabled: rates.timetable_enabled(),
            next_run,
            problem,
            last_run: newest
                .into_iter()
                .next()
                .map(|listed| LastRun::from(listed.record)),
        })
    }
}

#[OpenApi(tag = "ScheduleTags::Schedules")]
impl SchedulesApi {
    /// Every timetable: `rates.ingest` with its cron expression and time zone, the
    /// next tick and the newest job of its kind with its outcome; then `housekeeping`
    /// with its interval and stuck-job threshold (no next or last run: the api cannot
    /// know them).
    #[oai(path = "/schedules", method = "get")]
    async fn schedules(&self, req: &Request) -> SchedulesAnswer {
        if let Err(Unauthorized(body)) = authorize_read(&self.state.config, req) {
            return SchedulesAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        match self.rates(Utc::now()).await {
            Ok(rates) => SchedulesAnswer::Ok(Json(vec![
                rates,
                ScheduleView::from(&self.state.housekeeping),
            ])),
            Err(err) => SchedulesAnswer::Unavailable(Json(ErrorBody::new(
                "unavailable",
                format!("database unavailable: {err}"),
            ))),
        }
    }

    /// Runs a timetable now, outside its cron: `rates.ingest` enqueues the job a tick
    /// would (today's date in `RATES_TZ`, reason `run_now`). Needs
    /// `Authorization: Bearer <ADMIN_TOKEN>` when `ADMIN_TOKEN` is set.
    #[oai(path = "/schedules/:name/run", method = "post")]
    async fn run_now(&self, req: &Request, name: Path<String>) -> RunNowAnswer {
        if let Err(Unauthorized(body)) = authorize(&self.state.config, req) {
            return RunNowAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        if name.0 == HOUSEKEEPING {
            return RunNowAnswer::Conflict(Json(ErrorBody::new(
                "conflict",
                "housekeeping runs inside the scheduler every HOUSEKEEPING_INTERVAL_SECS, \
                 not as a job; it cannot be run from the api",
            )));
        }
        if name.0 != Ingest::KIND.name {
            return RunNowAnswer::NotFound(Json(ErrorBody::new(
                "not_found",
                format!(
                    "no timetable '{}'; the timetables are {} and {HOUSEKEEPING}",
                    quote(&name.0),
                    Ingest::KIND.name
                ),
            )));
        }
        let args = RatesArgs {
            date: self.state.rates().date_at(Utc::now()),
            reason: IngestReason::RunNow,
            tick: None,
        };
        match enqueue::<Ingest>(&self.state, &args, None, "POST /schedules/{name}/run").await {
            Ok(job) => RunNowAnswer::Accepted(
                Json(Accepted {
                    job_id: job.id.to_string(),
                }),
                format!("/jobs/{}", job.id),
            ),
            Err(err) => {
                RunNowAnswer::Unavailable(Json(ErrorBody::new("unavailable", err.to_string())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use features::rates::{IngestReason, RatesArgs, RatesConfig};

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("test instants are valid")
    }

    #[test]
    fn the_next_tick_is_read_in_the_configured_time_zone() {
        let rates = RatesConfig {
            tz: "Europe/Berlin".parse().expect("valid zone"),
            ..RatesConfig::default()
        };
        // Friday 08:30 UTC is 09:30 in Berlin: 09:00 Berlin has passed; next Monday's
        // 09:00 CET is 08:00 UTC.
        let next = rates.next_tick(at("2026-11-20T08:30:00Z")).expect("parses");
        assert_eq!(next, Some(at("2026-11-23T08:00:00Z")));
        let utc = RatesConfig::default().next_tick(at("2026-11-20T08:30:00Z"));
        assert_eq!(utc, Ok(Some(at("2026-11-20T09:00:00Z"))));
    }

    #[test]
    fn off_has_no_next_tick_and_a_bad_expression_says_why() {
        let off = RatesConfig {
            cron: "off".to_owned(),
            ..RatesConfig::default()
        };
        assert_eq!(off.next_tick(Utc::now()), Ok(None));
        let bad = RatesConfig {
            cron: "every day at nine".to_owned(),
            ..RatesConfig::default()
        };
        let err = bad.next_tick(Utc::now()).expect_err("not cron").to_string();
        assert!(err.contains("RATES_CRON 'every day at nine'"), "{err}");
    }

    #[test]
    fn housekeeping_shows_its_settings_and_no_cron_fields_or_runs() {
        let view = ScheduleView::from(&HousekeepingConfig {
            housekeeping_interval_secs: 45,
            stuck_after_secs: 600,
            job_retention_secs: 3_600,
            dead_job_retention_secs: 0,
            throughput_history_minutes: 180,
        });
        let json = poem_openapi::types::ToJSON::to_json(&view).expect("an object");
        assert_eq!(
            json,
            serde_json::json!({
                "name": "housekeeping",
                "interval_secs": 45,
                "stuck_after_secs": 600,
                "job_retention_secs": 3_600,
                "dead_job_retention_secs": 0,
                "enabled": true,
            })
        );
    }

    #[test]
    fn reason_and_tick_are_read_from_the_arguments_when_well_formed() {
        let tick = Utc
            .with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
            .single()
            .expect("valid instant");
        let args = serde_json::to_value(RatesArgs {
            date: tick.date_naive(),
            reason: IngestReason::Cron,
            tick: Some(tick),
        })
        .expect("serialisable");
        assert_eq!(
            reason_and_tick(&args),
            (Some("cron".to_owned()), Some(tick))
        );
        let refresh = serde_json::json!({ "date": "2026-11-23", "reason": "refresh" });
        assert_eq!(
            reason_and_tick(&refresh),
            (Some("refresh".to_owned()), None)
        );
        let odd = serde_json::json!({ "reason": 7, "tick": "yesterday" });
        assert_eq!(reason_and_tick(&odd), (None, None));
    }
}
