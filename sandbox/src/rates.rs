//! Stand-ins for the rate providers, in both shapes:
//! - `GET /fixer/{date}?access_key=…&base=EUR` → fixer's `{success, timestamp,
//!   historical, base, date, rates}`; no key: `success: false` with fixer's error 101.
//! - `GET /frankfurter/{date}?from=EUR` → frankfurter's `{amount, base, date, rates}`.
//!
//! Rates are a smooth deterministic function of the date, so a demo shows them move.
//! Weekends and the fixed TARGET holidays (1 Jan, 1 May, 25 and 26 Dec) answer with
//! the previous business day's date, as the real providers do.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use poem::web::{Json, Path, Query};
use poem::{IntoResponse, Response, handler, http::StatusCode};
use serde::Deserialize;
use serde_json::json;

/// Currencies quoted, with a typical rate against EUR.
const CURRENCIES: [(&str, f64); 12] = [
    ("AUD", 1.65),
    ("CAD", 1.50),
    ("CHF", 0.94),
    ("CNY", 7.80),
    ("GBP", 0.86),
    ("JPY", 160.0),
    ("NOK", 11.6),
    ("NZD", 1.80),
    ("PLN", 4.30),
    ("SEK", 11.4),
    ("TRY", 36.0),
    ("USD", 1.08),
];

fn is_business_day(date: NaiveDate) -> bool {
    let fixed_holiday = matches!((date.month(), date.day()), (1, 1) | (5, 1) | (12, 25 | 26));
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !fixed_holiday
}

/// The business day the providers answer for `date`: itself, or the one before it.
fn business_day(mut date: NaiveDate) -> NaiveDate {
    while !is_business_day(date) {
        match date.checked_sub_days(Days::new(1)) {
            Some(before) => date = before,
            None => break,
        }
    }
    date
}

/// The sandbox's rates of a business day.
fn rates_of(date: NaiveDate) -> BTreeMap<&'static str, f64> {
    let day = f64::from(date.num_days_from_ce());
    CURRENCIES
        .iter()
        .enumerate()
        .map(|(i, (code, typical))| {
            let wave = (day / 7.0 + i as f64).sin() * 0.02;
            let rate = typical * (1.0 + wave);
            // Four significant decimals, like the real feeds.
            (*code, (rate * 10_000.0).round() / 10_000.0)
        })
        .collect()
}

/// A path segment that is no date; its text is what the real providers answer.
struct NotADate(String);

/// The day asked for, no later than today.
fn asked(text: &str) -> Result<NaiveDate, NotADate> {
    let date: NaiveDate = text.parse().map_err(|_| {
        let shown: String = text.chars().take(40).collect();
        NotADate(format!("'{shown}' is not a date (YYYY-MM-DD)"))
    })?;
    Ok(date.min(Utc::now().date_naive()))
}

/// Query of `/fixer/{date}`.
#[derive(Debug, Deserialize)]
pub(crate) struct FixerQuery {
    access_key: Option<String>,
    base: Option<String>,
}

/// Handles `GET /fixer/{date}`.
#[handler]
pub(crate) fn fixer(Path(date): Path<String>, Query(query): Query<FixerQuery>) -> Response {
    let failure = |code: u16, kind: &str, info: String| {
        Json(json!({ "success": false, "error": { "code": code, "type": kind, "info": info } }))
            .into_response()
    };
    if query.access_key.as_deref().is_none_or(str::is_empty) {
        return failure(
            101,
            "missing_access_key",
            "You have not supplied an API Access Key.".to_owned(),
        );
    }
    if query.base.as_deref().is_some_and(|b| b != "EUR") {
        return failure(
            105,
            "base_currency_access_restricted",
            "EUR only".to_owned(),
        );
    }
    let date = match asked(&date) {
        Ok(date) => business_day(date),
        Err(NotADate(info)) => return failure(302, "invalid_date", info),
    };
    let mut rates = rates_of(date);
    rates.insert("EUR", 1.0);
    let timestamp = date
        .and_hms_opt(16, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp());
    Json(json!({
        "success": true,
        "timestamp": timestamp,
        "historical": true,
        "base": "EUR",
        "date": date.to_string(),
        "rates": rates,
    }))
    .into_response()
}

/// Query of `/frankfurter/{date}`.
#[derive(Debug, Deserialize)]
pub(crate) struct FrankfurterQuery {
    from: Option<String>,
}

/// Handles `GET /frankfurter/{date}`.
#[handler]
pub(crate) fn frankfurter(
    Path(date): Path<String>,
    Query(query): Query<FrankfurterQuery>,
) -> Response {
    if query.from.as_deref().is_some_and(|b| b != "EUR") {
        return Json(json!({ "message": "EUR only" }))
            .with_status(StatusCode::UNPROCESSABLE_ENTITY)
            .into_response();
    }
    match asked(&date) {
        Ok(date) => {
            let date = business_day(date);
            Json(json!({
                "amount": 1.0,
                "base": "EUR",
                "date": date.to_string(),
                "rates": rates_of(date),
            }))
            .into_response()
        }
        Err(NotADate(message)) => Json(json!({ "message": message }))
            .with_status(StatusCode::NOT_FOUND)
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("valid")
    }

    #[test]
    fn holidays_and_weekends_answer_the_previous_business_day() {
        assert_eq!(business_day(day("2026-11-23")), day("2026-11-23"));
        assert_eq!(business_day(day("2026-11-22")), day("2026-11-20"));
        // Christmas 2026 is a Friday, Boxing Day a Saturday.
        assert_eq!(business_day(day("2026-12-27")), day("2026-12-24"));
        assert_eq!(business_day(day("2027-01-01")), day("2026-12-31"));
    }

    #[test]
    fn rates_are_positive_and_move_with_the_date() {
        let a = rates_of(day("2026-11-20"));
        let b = rates_of(day("2026-11-23"));
        assert_eq!(a.len(), CURRENCIES.len());
        assert!(a.values().all(|r| *r > 0.0));
        assert_ne!(a, b);
    }
}
