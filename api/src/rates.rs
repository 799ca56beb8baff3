//! `/rates`, `/rates/history`, `/rates/convert`, `POST /rates/refresh` and the old
//! `/get_currency` (SPEC §4): reads of the rates `rates.ingest` jobs stored, and a way
//! to ask for a fetch now.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use features::rates::provider::is_currency_code;
use features::rates::store::{self, Rates};
use features::rates::{BASE, Ingest, IngestReason, RatesArgs};
use poem::Request;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use sea_orm::DbErr;

use crate::auth::{CHALLENGE, Unauthorized, authorize};
use crate::enqueue::{EnqueueError, enqueue, idempotency_key};
use crate::error::{ErrorBody, quote};
use crate::jobs::Accepted;
use crate::state::AppState;

#[derive(Tags)]
enum RateTags {
    /// Currency rates against EUR, fetched on a timetable.
    Rates,
}

/// One day of rates.
#[derive(Debug, Clone, Object)]
pub struct RatesDay {
    /// Always `EUR`.
    pub base: String,
    /// The provider's date of these rates.
    pub date: NaiveDate,
    /// Units of each currency per one EUR.
    pub rates: BTreeMap<String, f64>,
}

/// A conversion through the base currency.
#[derive(Debug, Clone, Object)]
pub struct Conversion {
    /// Always `EUR`: both rates are against it.
    pub base: String,
    /// The date of the rates used.
    pub date: NaiveDate,
    /// Currency converted from.
    pub from: String,
    /// Currency converted to.
    pub to: String,
    /// Amount of `from`.
    pub amount: f64,
    /// Units of `to` per one `from`: rate(to) / rate(from).
    pub rate: f64,
    /// `amount × rate`.
    pub result: f64,
}

/// Answers of `GET /rates`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "day_bad_request")]
pub enum DayAnswer {
    /// The rates of the day.
    #[oai(status = 200)]
    Ok(Json<RatesDay>),
    /// A malformed date or currency code.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No rates stored (for that date), or a currency not quoted on it.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn day_bad_request(err: poem::Error) -> DayAnswer {
    DayAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// Answers of `GET /get_currency` (it takes no parameters, so it has no 400).
#[derive(ApiResponse)]
pub enum AllDaysAnswer {
    /// Every stored day, oldest first (empty when none).
    #[oai(status = 200)]
    Ok(Json<Vec<RatesDay>>),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

/// Answers of `GET /rates/history`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "history_bad_request")]
pub enum HistoryAnswer {
    /// The stored days in the range, oldest first (empty when none).
    #[oai(status = 200)]
    Ok(Json<Vec<RatesDay>>),
    /// A malformed date or currency code, or `from` after `to`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn history_bad_request(err: poem::Error) -> HistoryAnswer {
    HistoryAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// Answers of `GET /rates/convert`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "convert_bad_request")]
pub enum ConvertAnswer {
    /// The converted amount.
    #[oai(status = 200)]
    Ok(Json<Conversion>),
    /// A missing or malformed parameter, or an amount whose result overflows.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No rates stored (for that date), or a currency not quoted on it.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn convert_bad_request(err: poem::Error) -> ConvertAnswer {
    ConvertAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// Answers of `POST /rates/refresh`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "refresh_bad_request")]
pub enum RefreshAnswer {
    /// A `rates.ingest` job fetches the day.
    #[oai(status = 202)]
    Accepted(Json<Accepted>, #[oai(header = "Location")] String),
    /// A malformed or future date, or a bad `Idempotency-Key`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `ADMIN_TOKEN` is set and the request does not carry it as a bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The `Idempotency-Key` was used within its window with another request.
    #[oai(status = 422)]
    KeyReused(Json<ErrorBody>),
    /// The database or the queue is unavailable; nothing was enqueued.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn refresh_bad_request(err: poem::Error) -> RefreshAnswer {
    RefreshAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

fn bad(message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody::new("bad_request", message))
}

fn not_found(message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody::new("not_found", message))
}

fn unavailable(err: impl std::fmt::Display) -> Json<ErrorBody> {
    Json(ErrorBody::new(
        "unavailable",
        format!("database unavailable: {err}"),
    ))
}

/// A query parameter the route cannot take; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadParam(String);

impl From<BadParam> for String {
    fn from(bad: BadParam) -> String {
        bad.0
    }
}

/// `YYYY-MM-DD`, naming the parameter when it is not.
fn parse_date(name: &str, value: Option<&str>) -> Result<Option<NaiveDate>, BadParam> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                BadParam(format!(
                    "{name} '{}' is not a date (YYYY-MM-DD)",
                    quote(text)
                ))
            }),
    }
}

/// A currency code, upper-cased; the message names the parameter.
fn parse_code(name: &str, value: &str) -> Result<String, BadParam> {
    let code = value.trim().to_ascii_uppercase();
    if is_currency_code(&code) {
        Ok(code)
    } else {
        Err(BadParam(format!(
            "{name} '{}' is not a currency code (three letters, e.g. USD)",
            quote(value)
        )))
    }
}

/// `USD,GBP` → the codes; absent or empty → none (all currencies).
fn parse_symbols(value: Option<&str>) -> Result<Vec<String>, BadParam> {
    match value.map(str::trim) {
        None | Some("") => Ok(Vec::new()),
        Some(list) => list.split(',').map(|s| parse_code("symbol", s)).collect(),
    }
}

/// The rate of `code` against the base on a day (the base itself is 1).
fn rate_of(rates: &Rates, code: &str) -> Option<f64> {
    if code == BASE {
        Some(1.0)
    } else {
        rates.get(code).copied()
    }
}

/// A currency the day asked for does not quote.
#[derive(Debug)]
struct NotQuoted(String);

/// Keeps only `symbols` (all when empty); the first symbol not quoted is the error.
fn select(rates: Rates, symbols: &[String]) -> Result<Rates, NotQuoted> {
    if symbols.is_empty() {
        return Ok(rates);
    }
    symbols
        .iter()
        .map(|code| {
            rate_of(&rates, code)
                .map(|rate| (code.clone(), rate))
                .ok_or_else(|| NotQuoted(code.clone()))
        })
        .collect()
}

fn day_of(date: NaiveDate, rates: Rates) -> RatesDay {
    RatesDay {
        base: BASE.to_owned(),
        date,
        rates,
    }
}

/// The rates routes.
#[derive(Debug, Clone)]
pub struct RatesApi {
    state: AppState,
}

/// The day asked for (or the latest stored) and its rates.
enum Found {
    Day(NaiveDate, Rates),
    Missing(String),
}

impl RatesApi {
    /// The routes over `state`.
    pub fn new(state: AppState) -> Self {
        RatesApi { state }
    }

    async fn find_day(&self, date: Option<NaiveDate>) -> Result<Found, DbErr> {
        let db = self.state.store.db();
        let date = match date {
            Some(date) => date,
            None => match store::latest_date(db).await? {
                Some(date) => date,
                None => return Ok(Found::Missing("no rates stored yet".to_owned())),
            },
        };
        Ok(match store::day(db, date).await? {
            Some(rates) => Found::Day(date, rates),
            None => Found::Missing(format!(
                "no rates stored for {date} (rates exist for business days only)"
            )),
        })
    }

    async fn history(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        symbols: &[String],
    ) -> Result<Vec<RatesDay>, DbErr> {
        let days = store::days(self.state.store.db(), from, to).await?;
        let list = days
            .into_iter()
            .map(|(date, rates)| {
                // A currency missing on some day is left out of that day only.
                let rates = if symbols.is_empty() {
                    rates
                } else {
                    symbols
                        .iter()
                        .filter_map(|c| rate_of(&rates, c).map(|r| (c.clone(), r)))
                        .collect()
                };
                day_of(date, rates)
            })
            .collect();
        Ok(list)
    }
}

#[OpenApi(tag = "RateTags::Rates")]
impl RatesApi {
    /// The rates of a day against EUR: `date` (default: the latest stored), only
    /// `symbols` (comma-separated, default: all).
    #[oai(path = "/rates", method = "get")]
    async fn rates(
        &self,
        date: Query<Option<String>>,
        symbols: Query<Option<String>>,
    ) -> DayAnswer {
        let (date, symbols) = match (
            parse_date("date", date.0.as_deref()),
            parse_symbols(symbols.0.as_deref()),
        ) {
            (Ok(date), Ok(symbols)) => (date, symbols),
            (Err(e), _) | (_, Err(e)) => return DayAnswer::BadRequest(bad(e)),
        };
        match self.find_day(date).await {
            Ok(Found::Day(date, rates)) => match select(rates, &symbols) {
                Ok(rates) => DayAnswer::Ok(Json(day_of(date, rates))),
                Err(NotQuoted(code)) => {
                    DayAnswer::NotFound(not_found(format!("no rate for {code} on {date}")))
                }
            },
            Ok(Found::Missing(message)) => DayAnswer::NotFound(not_found(message)),
            Err(err) => DayAnswer::Unavailable(unavailable(err)),
        }
    }

    /// Every stored day from `from` to `to` (both included; either may be left out),
    /// oldest first, with only `symbols` when given.
    #[oai(path = "/rates/history", method = "get")]
    async fn rates_history(
        &self,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        symbols: Query<Option<String>>,
    ) -> HistoryAnswer {
        let parsed = (
            parse_date("from", from.0.as_deref()),
            parse_date("to", to.0.as_deref()),
            parse_symbols(symbols.0.as_deref()),
        );
        let (from, to, symbols) = match parsed {
            (Ok(from), Ok(to), Ok(symbols)) => (from, to, symbols),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                return HistoryAnswer::BadRequest(bad(e));
            }
        };
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return HistoryAnswer::BadRequest(bad(format!("from {from} is after to {to}")));
        }
        match self.history(from, to, &symbols).await {
            Ok(days) => HistoryAnswer::Ok(Json(days)),
            Err(err) => HistoryAnswer::Unavailable(unavailable(err)),
        }
    }

    /// Converts `amount` (default 1) of `from` into `to` with the rates of `date`
    /// (default: the latest stored), through EUR: amount × rate(to) / rate(from).
    #[oai(path = "/rates/convert", method = "get")]
    async fn rates_convert(
        &self,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        amount: Query<Option<String>>,
        date: Query<Option<String>>,
    ) -> ConvertAnswer {
        let (Some(from), Some(to)) = (from.0, to.0) else {
            return ConvertAnswer::BadRequest(bad(
                "from and to are required, e.g. from=USD&to=GBP",
            ));
        };
        let amount = match amount.0.as_deref().map(str::trim) {
            None | Some("") => 1.0,
            Some(text) => match text.parse::<f64>() {
                Ok(value) if value.is_finite() => value,
                _ => {
                    return ConvertAnswer::BadRequest(bad(format!(
                        "amount '{}' is not a finite number",
                        quote(text)
                    )));
                }
            },
        };
        let parsed = (
            parse_code("from", &from),
            parse_code("to", &to),
            parse_date("date", date.0.as_deref()),
        );
        let (from, to, date) = match parsed {
            (Ok(from), Ok(to), Ok(date)) => (from, to, date),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                return ConvertAnswer::BadRequest(bad(e));
            }
        };
        let (date, rates) = match self.find_day(date).await {
            Ok(Found::Day(date, rates)) => (date, rates),
            Ok(Found::Missing(message)) => return ConvertAnswer::NotFound(not_found(message)),
            Err(err) => return ConvertAnswer::Unavailable(unavailable(err)),
        };
        let (rate_from, rate_to) = match (rate_of(&rates, &from), rate_of(&rates, &to)) {
            (Some(f), Some(t)) => (f, t),
            (None, _) => {
                return ConvertAnswer::NotFound(not_found(format!("no rate for {from} on {date}")));
            }
            (_, None) => {
                return ConvertAnswer::NotFound(not_found(format!("no rate for {to} on {date}")));
            }
        };
        let rate = rate_to / rate_from;
        let result = amount * rate;
        // A finite amount can still overflow (1e308 of a weak currency): JSON has no
        // infinity, and a non-finite `result` would be left out of the body.
        if !result.is_finite() {
            return ConvertAnswer::BadRequest(bad(format!(
                "amount {amount} of {from} is too large to convert into {to}"
            )));
        }
        ConvertAnswer::Ok(Json(Conversion {
            base: BASE.to_owned(),
            date,
            from,
            to,
            amount,
            rate,
            result,
        }))
    }

    /// Enqueues a `rates.ingest` job for `date` (default: today in `RATES_TZ`); the
    /// job's record tells when the rates are stored. Needs
    /// `Authorization: Bearer <ADMIN_TOKEN>` when `ADMIN_TOKEN` is set.
    #[oai(path = "/rates/refresh", method = "post")]
    async fn rates_refresh(
        &self,
        req: &Request,
        date: Query<Option<String>>,
        /// The same key within `IDEMPOTENCY_WINDOW_SECS` returns the first job; 1 to
        /// 200 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        _key: Header<Option<String>>,
    ) -> RefreshAnswer {
        if let Err(Unauthorized(body)) = authorize(&self.state.config, req) {
            return RefreshAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        let today = self.state.rates().date_at(Utc::now());
        let date = match parse_date("date", date.0.as_deref()) {
            Ok(date) => date.unwrap_or(today),
            Err(e) => return RefreshAnswer::BadRequest(bad(e)),
        };
        if date > today {
            return RefreshAnswer::BadRequest(bad(format!(
                "date {date} is in the future (today is {today} in {})",
                self.state.rates().tz
            )));
        }
        let args = RatesArgs {
            date,
            reason: IngestReason::Refresh,
            tick: None,
        };
        let key = match idempotency_key(req) {
            Ok(key) => key,
            Err(err) => return RefreshAnswer::BadRequest(bad(err.to_string())),
        };
        match enqueue::<Ingest>(&self.state, &args, key, "POST /rates/refresh").await {
            Ok(job) => {
                let location = format!("/jobs/{}", job.id);
                let job_id = job.id.to_string();
                RefreshAnswer::Accepted(Json(Accepted { job_id }), location)
            }
            Err(err @ (EnqueueError::BadKey | EnqueueError::Encode(_))) => {
                RefreshAnswer::BadRequest(bad(err.to_string()))
            }
            Err(err @ EnqueueError::KeyReused(_)) => {
                RefreshAnswer::KeyReused(Json(ErrorBody::new("key_reused", err.to_string())))
            }
            Err(err) => {
                RefreshAnswer::Unavailable(Json(ErrorBody::new("unavailable", err.to_string())))
            }
        }
    }

    /// The old service's route: every stored day, oldest first.
    #[oai(path = "/get_currency", method = "get")]
    async fn get_currency(&self) -> AllDaysAnswer {
        match self.history(None, None, &[]).await {
            Ok(days) => AllDaysAnswer::Ok(Json(days)),
            Err(err) => AllDaysAnswer::Unavailable(unavailable(err)),
        }
    }
}
