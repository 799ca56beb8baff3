//! `/process_report`, `/process_reports`, `/process_statistics`, `/process_outliers`
//! (SPEC §1). Reports are validated here (parse, don't validate), stored by a
//! `reports.record` job, and read back from aggregates only.

use chrono::{DateTime, Utc};
use domain::stats::Summary;
use features::reports::{
    Gate, Record, ReportRecord, ReportsArgs, gate, gated_statistics, outliers, server_statistics,
};
use poem::Request;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::enqueue::{EnqueueError, enqueue, idempotency_key};
use crate::error::{UNSUPPORTED_MEDIA_TYPE, quote, wrong_media_type};
use crate::jobs::Accepted;
use crate::state::AppState;
use crate::text::Text;

#[derive(Tags)]
enum ReportTags {
    /// Server process reports: statistics and outliers.
    Reports,
}

/// What is wrong with a report, and in which field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// A server name: 1 to 100 characters, not only spaces, no NUL (which Postgres text
/// cannot hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerName(String);

impl ServerName {
    /// The longest accepted name, in characters.
    pub const MAX: usize = 100;

    /// Parses a server name, or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = |message: String| FieldError::new("server_name", message);
        if raw.trim().is_empty() {
            return Err(bad("server_name must not be empty".to_owned()));
        }
        if raw.contains('\0') {
            return Err(bad("server_name must not contain NUL characters".to_owned()));
        }
        if raw.chars().count() > Self::MAX {
            return Err(bad(format!(
                "server_name must be at most {} characters",
                Self::MAX
            )));
        }
        Ok(ServerName(raw.to_owned()))
    }
}

/// A process's start and end (RFC 3339), the end not before the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl ReportWindow {
    /// Parses both times, at most `max_secs` apart, or names the field that is wrong.
    pub fn parse(start: &str, end: &str, max_secs: i64) -> Result<Self, FieldError> {
        let time = |field: &'static str, raw: &str| {
            DateTime::parse_from_rfc3339(raw.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    FieldError::new(
                        field,
                        format!(
                            "{field} '{}' is not an RFC 3339 time ({e}), e.g. 2021-05-17T10:12:33Z",
                            quote(raw)
                        ),
                    )
                })
        };
        let start = time("start_time", start)?;
        let end = time("end_time", end)?;
        if end < start {
            return Err(FieldError::new("end_time", "end_time is before start_time"));
        }
        if (end - start).num_seconds() > max_secs {
            return Err(FieldError::new(
                "end_time",
                format!(
                    "end_time is more than {max_secs} s after start_time \
                     (REPORTS_MAX_DURATION_SECS)"
                ),
            ));
        }
        Ok(ReportWindow { start, end })
    }

    /// Whole seconds from start to end, truncated toward zero.
    pub fn duration_secs(&self) -> i64 {
        (self.end - self.start).num_seconds()
    }
}

/// One report as sent. Every field is required; they are optional in the schema only
/// so that a missing one is answered with its name rather than a generic parse error.
#[derive(Debug, Clone, Object)]
pub struct ReportIn {
    /// Required. The server that ran the process: 1 to 100 characters.
    pub server_name: Option<Text>,
    /// Required. Process start, RFC 3339 (`2021-05-17T10:12:33Z`; offsets and
    /// fractions allowed).
    pub start_time: Option<Text>,
    /// Required. Process end, RFC 3339, not before `start_time`, at most
    /// `REPORTS_MAX_DURATION_SECS` after it.
    pub end_time: Option<Text>,
}

fn required<'a>(field: &'static str, value: &'a Option<Text>) -> Result<&'a str, FieldError> {
    match value {
        None => Err(FieldError::new(field, format!("{field} is required"))),
        Some(text) => text
            .as_str(field)
            .map_err(|message| FieldError::new(field, message)),
    }
}

impl ReportIn {
    fn validate(&self, max_duration_secs: i64) -> Result<ReportRecord, FieldError> {
        let name = required("server_name", &self.server_name)?;
        let start = required("start_time", &self.start_time)?;
        let end = required("end_time", &self.end_time)?;
        let name = ServerName::parse(name)?;
        let window = ReportWindow::parse(start, end, max_duration_secs)?;
        Ok(ReportRecord {
            server_name: name.0,
            start_time: window.start,
            end_time: window.end,
            duration_secs: window.duration_secs(),
        })
    }
}

/// `{"error": "..."}`, naming the field (and for a batch, the item) at fault; `field`
/// and `index` are absent when they do not apply.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReportError {
    /// What is wrong.
    pub error: String,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// The index of the first bad item of a batch.
    pub index: Option<u64>,
}

fn report_error(error: impl Into<String>) -> Json<ReportError> {
    Json(ReportError {
        error: error.into(),
        field: None,
        index: None,
    })
}

/// Answers of the report routes.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "submit_bad_request")]
pub enum SubmitAnswer {
    /// Accepted: a `reports.record` job stores it.
    #[oai(status = 202)]
    Accepted(Json<Accepted>, #[oai(header = "Location")] String),
    /// Malformed JSON, a missing or bad field, or a bad batch item.
    #[oai(status = 400)]
    BadRequest(Json<ReportError>),
    /// The body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ReportError>),
    /// The `Idempotency-Key` was used within its window with another request.
    #[oai(status = 422)]
    KeyReused(Json<ReportError>),
    /// The database or the queue is unavailable; nothing was accepted.
    #[oai(status = 503)]
    Unavailable(Json<ReportError>),
}

fn submit_bad_request(err: poem::Error) -> SubmitAnswer {
    if wrong_media_type(&err) {
        return SubmitAnswer::UnsupportedMediaType(report_error(UNSUPPORTED_MEDIA_TYPE));
    }
    SubmitAnswer::BadRequest(report_error(format!("malformed request: {err}")))
}

impl From<EnqueueError> for SubmitAnswer {
    fn from(err: EnqueueError) -> Self {
        match err {
            EnqueueError::BadKey | EnqueueError::Encode(_) => {
                SubmitAnswer::BadRequest(report_error(err.to_string()))
            }
            EnqueueError::KeyReused(_) => SubmitAnswer::KeyReused(report_error(err.to_string())),
            EnqueueError::Unavailable(_) => {
                SubmitAnswer::Unavailable(report_error(err.to_string()))
            }
        }
    }
}

/// `{"mean": int, "stddev": int, "count": n}`.
#[derive(Debug, Clone, Object)]
pub struct Statistics {
    /// round_half_even(Σx / n).
    pub mean: i64,
    /// round_half_even(√(Σ(x − mean)² / (n − 1))), around the rounded mean; 0 when n = 1.
    pub stddev: i64,
    /// Reports counted.
    pub count: u64,
}

/// The readiness gate's refusal.
#[derive(Debug, Clone, Object)]
pub struct NotEnough {
    /// `Not enough reports received`.
    pub error: String,
    /// Reports received in all.
    pub total: u64,
    /// Reports needed in all (`MIN_TOTAL`).
    pub min_total: u64,
    /// Reports needed per server (`MIN_PER_SERVER`).
    pub min_per_server: u64,
    /// Servers that have fewer.
    pub servers_below_min: u64,
}

impl From<Summary> for Statistics {
    fn from(summary: Summary) -> Self {
        Statistics {
            mean: summary.mean,
            stddev: summary.stddev,
            count: summary.count,
        }
    }
}

/// Answers of `GET /process_statistics`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "stats_bad_request")]
pub enum StatisticsAnswer {
    /// The statistics.
    #[oai(status = 200)]
    Ok(Json<Statistics>),
    /// Bad query.
    #[oai(status = 400)]
    BadRequest(Json<ReportError>),
    /// No such server.
    #[oai(status = 404)]
    NotFound(Json<ReportError>),
    /// Not enough reports yet.
    #[oai(status = 409)]
    NotEnough(Json<NotEnough>),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ReportError>),
}

fn stats_bad_request(err: poem::Error) -> StatisticsAnswer {
    StatisticsAnswer::BadRequest(report_error(err.to_string()))
}

/// Answers of `GET /process_outliers`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "outliers_bad_request")]
pub enum OutliersAnswer {
    /// Outlier servers, ascending.
    #[oai(status = 200)]
    Ok(Json<Vec<String>>),
    /// Bad query.
    #[oai(status = 400)]
    BadRequest(Json<ReportError>),
    /// Not enough reports yet.
    #[oai(status = 409)]
    NotEnough(Json<NotEnough>),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ReportError>),
}

fn outliers_bad_request(err: poem::Error) -> OutliersAnswer {
    OutliersAnswer::BadRequest(report_error(err.to_string()))
}

/// The report routes.
#[derive(Debug, Clone)]
pub struct ReportsApi {
    state: AppState,
}

impl ReportsApi {
    /// The routes over `state`.
    pub fn new(state: AppState) -> Self {
        ReportsApi { state }
    }

    async fn submit(
        &self,
        reports: Vec<ReportRecord>,
        key: Option<&str>,
        scope: &str,
    ) -> SubmitAnswer {
        match enqueue::<Record>(&self.state, &ReportsArgs { reports }, key, scope).await {
            Ok(job) => {
                let location = format!("/jobs/{}", job.id);
                let job_id = job.id.to_string();
                SubmitAnswer::Accepted(Json(Accepted { job_id }), location)
            }
            Err(err) => err.into(),
        }
    }

    fn not_enough(&self, gate: Gate) -> Json<NotEnough> {
        Json(NotEnough {
            error: "Not enough reports received".to_owned(),
            total: gate.total,
            min_total: self.state.reports().min_total,
            min_per_server: self.state.reports().min_per_server,
            servers_below_min: gate.servers_below,
        })
    }
}

fn unavailable(err: impl std::fmt::Display) -> Json<ReportError> {
    report_error(format!("database unavailable: {err}"))
}

#[OpenApi(tag = "ReportTags::Reports")]
impl ReportsApi {
    /// Accepts one report: 202 with the job that stores it.
    #[oai(path = "/process_report", method = "post")]
    async fn process_report(
        &self,
        req: &Request,
        body: Json<ReportIn>,
        /// The same key within `IDEMPOTENCY_WINDOW_SECS` returns the first job; 1 to
        /// 200 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        _key: Header<Option<String>>,
    ) -> SubmitAnswer {
        let key = match idempotency_key(req) {
            Ok(key) => key,
            Err(err) => return err.into(),
        };
        match body.validate(self.state.reports().max_duration_secs) {
            Ok(record) => self.submit(vec![record], key, "POST /process_report").await,
            Err(fault) => SubmitAnswer::BadRequest(Json(ReportError {
                error: fault.message,
                field: Some(fault.field.to_owned()),
                index: None,
            })),
        }
    }

    /// Accepts up to `REPORTS_BATCH_MAX` reports as one job, all or nothing; a bad
    /// item is named by its index.
    #[oai(path = "/process_reports", method = "post")]
    async fn process_reports(
        &self,
        req: &Request,
        body: Json<Vec<ReportIn>>,
        /// The same key within `IDEMPOTENCY_WINDOW_SECS` returns the first job; 1 to
        /// 200 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        _key: Header<Option<String>>,
    ) -> SubmitAnswer {
        let key = match idempotency_key(req) {
            Ok(key) => key,
            Err(err) => return err.into(),
        };
        let max = self.state.reports().batch_max;
        if body.is_empty() || body.len() > max {
            return SubmitAnswer::BadRequest(report_error(format!(
                "a batch holds 1 to {max} reports, got {}",
                body.len()
            )));
        }
        let mut records = Vec::with_capacity(body.len());
        for (index, report) in body.iter().enumerate() {
            match report.validate(self.state.reports().max_duration_secs) {
                Ok(record) => records.push(record),
                Err(fault) => {
                    return SubmitAnswer::BadRequest(Json(ReportError {
                        error: format!("item {index}: {}", fault.message),
                        field: Some(fault.field.to_owned()),
                        index: Some(index as u64),
                    }));
                }
            }
        }
        self.submit(records, key, "POST /process_reports").await
    }

    /// Mean and deviation of every report's duration, or of one server's
    /// (`server_name`), exactly as the old service computed them. Over every server the
    /// old service's gate applies (`MIN_TOTAL` in all and `MIN_PER_SERVER` each); for
    /// one server, only that server needs `MIN_PER_SERVER` reports, so that a new
    /// server elsewhere does not turn its figures off.
    #[oai(path = "/process_statistics", method = "get")]
    async fn process_statistics(&self, server_name: Query<Option<String>>) -> StatisticsAnswer {
        let db = self.state.store.db();
        let Some(name) = server_name.0 else {
            return match gated_statistics(db, self.state.reports()).await {
                Ok(Ok(summary)) => StatisticsAnswer::Ok(Json(summary.into())),
                Ok(Err(gate)) => StatisticsAnswer::NotEnough(self.not_enough(gate)),
                Err(err) => StatisticsAnswer::Unavailable(unavailable(err)),
            };
        };
        // A name with NUL is never stored (and Postgres would refuse the query).
        let found = if name.contains('\0') {
            Ok(None)
        } else {
            server_statistics(db, &name).await
        };
        match found {
            Ok(Some(summary)) if summary.count < self.state.reports().min_per_server => {
                StatisticsAnswer::NotEnough(self.not_enough(Gate {
                    total: summary.count,
                    servers_below: 1,
                    open: false,
                }))
            }
            Ok(Some(summary)) => StatisticsAnswer::Ok(Json(summary.into())),
            Ok(None) => StatisticsAnswer::NotFound(report_error(format!(
                "no reports for server '{}'",
                quote(&name)
            ))),
            Err(err) => StatisticsAnswer::Unavailable(unavailable(err)),
        }
    }

    /// Servers with any duration strictly outside their own mean ± K·sd
    /// (`OUTLIER_SIGMAS`), ascending.
    #[oai(path = "/process_outliers", method = "get")]
    async fn process_outliers(&self) -> OutliersAnswer {
        let db = self.state.store.db();
        match gate(db, self.state.reports()).await {
            Ok(g) if g.open => {}
            Ok(g) => return OutliersAnswer::NotEnough(self.not_enough(g)),
            Err(err) => return OutliersAnswer::Unavailable(unavailable(err)),
        }
        match outliers(db, self.state.reports().outlier_sigmas).await {
            Ok(names) => OutliersAnswer::Ok(Json(names)),
            Err(err) => OutliersAnswer::Unavailable(unavailable(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default bound, 366 days.
    const YEAR: i64 = 366 * 24 * 3600;

    fn window(start: &str, end: &str) -> Result<ReportWindow, FieldError> {
        ReportWindow::parse(start, end, YEAR)
    }

    #[test]
    fn the_readmes_example_lasts_660_seconds() {
        let w = window("2021-05-17T10:12:33Z", "2021-05-17T10:23:33Z").expect("valid");
        assert_eq!(w.duration_secs(), 660);
    }

    #[test]
    fn durations_truncate_toward_zero_and_offsets_count() {
        let w = window("2021-05-17T10:00:00.900Z", "2021-05-17T10:00:02.100Z").expect("valid");
        assert_eq!(w.duration_secs(), 1);
        let w = window("2021-05-17T12:00:00+02:00", "2021-05-17T10:00:05Z").expect("valid");
        assert_eq!(w.duration_secs(), 5);
    }

    #[test]
    fn bad_windows_name_their_field() {
        assert_eq!(
            window("yesterday", "2021-05-17T10:00:00Z")
                .unwrap_err()
                .field,
            "start_time"
        );
        assert_eq!(
            window("2021-05-17T10:00:00Z", "").unwrap_err().field,
            "end_time"
        );
        let fault = window("2021-05-17T10:00:01Z", "2021-05-17T10:00:00Z").unwrap_err();
        assert_eq!(fault.field, "end_time");
        assert!(fault.message.contains("before"));
    }

    #[test]
    fn a_window_longer_than_the_bound_is_refused_naming_end_time() {
        let at_most = ReportWindow::parse("2021-05-17T10:00:00Z", "2021-05-17T10:01:00Z", 60);
        assert_eq!(at_most.expect("60 s is within 60 s").duration_secs(), 60);
        let fault =
            ReportWindow::parse("2021-05-17T10:00:00Z", "2021-05-17T10:01:01Z", 60).unwrap_err();
        assert_eq!(fault.field, "end_time");
        assert!(
            fault.message.contains("REPORTS_MAX_DURATION_SECS"),
            "{fault}"
        );
    }

    #[test]
    fn server_names_are_one_to_a_hundred_characters() {
        assert!(ServerName::parse("").is_err());
        assert!(ServerName::parse("   ").is_err());
        assert!(ServerName::parse(&"é".repeat(100)).is_ok());
        assert!(ServerName::parse(&"x".repeat(101)).is_err());
    }
}
