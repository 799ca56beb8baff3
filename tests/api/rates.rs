//! Currency rates: providers against wiremock, the `rates.ingest` job (upsert,
//! retries, nothing partial), the start-up backfill, several schedulers ticking once,
//! and every route.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use conveyor::Role;
use domain::calendar::is_weekday;
use engine::store::JobFilter;
use features::rates::provider::{DayRates, ProviderError, from_config};
use features::rates::{ProviderChoice, RatesArgs, RatesConfig, Secret};
use sea_orm::TransactionTrait;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{Resources, Stack, TestApp, spawn_with, test_config};
use crate::on_both_stacks;

const WITHIN: Duration = Duration::from_secs(30);
const KEY: &str = "s3cr3t-fixer-key";

fn day(text: &str) -> NaiveDate {
    text.parse().expect("test dates are valid")
}

/// Rates the mock answers for a date: USD and GBP move with the day, JPY is fixed.
fn rates_for(date: NaiveDate, bump: f64) -> BTreeMap<String, f64> {
    let n = f64::from(date.day());
    BTreeMap::from([
        ("USD".to_owned(), 1.0 + n / 100.0 + bump),
        ("GBP".to_owned(), 0.8 + n / 1000.0),
        ("JPY".to_owned(), 160.0),
    ])
}

/// A frankfurter- or fixer-shaped provider that answers any `/{date}` with that date
/// (or, for the holidays listed, with the day before), and counts nothing.
struct Echo {
    fixer: bool,
    holidays: Vec<NaiveDate>,
    bump: f64,
}

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let asked: NaiveDate = match request.url.path().trim_start_matches('/').parse() {
            Ok(date) => date,
            Err(_) => return ResponseTemplate::new(404),
        };
        let date = if self.holidays.contains(&asked) {
            asked - Days::new(1)
        } else {
            asked
        };
        let mut rates = rates_for(date, self.bump);
        let body = if self.fixer {
            rates.insert("EUR".to_owned(), 1.0);
            json!({ "success": true, "timestamp": 0, "historical": true, "base": "EUR",
                    "date": date.to_string(), "rates": rates })
        } else {
            json!({ "amount": 1.0, "base": "EUR", "date": date.to_string(), "rates": rates })
        };
        ResponseTemplate::new(200).set_body_json(body)
    }
}

async fn echo_server(holidays: Vec<NaiveDate>, bump: f64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(Echo {
            fixer: false,
            holidays,
            bump,
        })
        .mount(&server)
        .await;
    server
}

fn frankfurter_at(server: &MockServer) -> RatesConfig {
    RatesConfig {
        provider: ProviderChoice::Frankfurter,
        frankfurter_url: server.uri(),
        cron: "off".to_owned(),
        timeout_ms: 500,
        ..RatesConfig::default()
    }
}

async fn app_for(stack: Stack, rates: RatesConfig, role: Role) -> TestApp {
    let (mut config, resources) = test_config(stack).await;
    config.features.rates = rates;
    spawn_with(config, resources, role).await
}

/// Enqueues a fetch of `date` and waits for the job to end `status`.
async fn refresh(app: &TestApp, date: &str, status: &str) -> Value {
    let response = app
        .client
        .post(app.url(&format!("/rates/refresh?date={date}")))
        .send()
        .await
        .expect("POST /rates/refresh");
    assert_eq!(response.status(), 202, "refresh {date}");
    let body: Value = response.json().await.expect("json");
    let id = body["job_id"].as_str().expect("job_id").to_owned();
    app.wait_for_status(&id, status, WITHIN).await
}

// ---------------------------------------------------------------- providers

async fn fetch(config: &RatesConfig, date: &str) -> Result<DayRates, ProviderError> {
    from_config(config).fetch(day(date)).await
}

#[tokio::test]
async fn fixer_parses_its_shape_and_names_every_failure_without_the_key() {
    let server = MockServer::start().await;
    let ok = json!({ "success": true, "timestamp": 1, "historical": true, "base": "EUR",
                     "date": "2026-11-20", "rates": { "EUR": 1.0, "USD": 1.05, "GBP": 0.87 } });
    let mounts = [
        ("/2026-11-20", ResponseTemplate::new(200).set_body_json(ok)),
        (
            "/2026-11-19",
            ResponseTemplate::new(200).set_body_json(json!({ "success": false, "error":
                { "code": 101, "type": "invalid_access_key", "info": "You have not supplied a valid API Access Key." } })),
        ),
        ("/2026-11-18", ResponseTemplate::new(500)),
        (
            "/2026-11-17",
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(2))
                .set_body_json(json!({})),
        ),
        ("/2026-11-16", ResponseTemplate::new(200).set_body_string("<html>oops</html>")),
        (
            "/2026-11-13",
            ResponseTemplate::new(200).set_body_json(json!({ "success": true, "base": "EUR",
                "date": "2026-11-13", "rates": { "USD": 1.05, "GBP": -1.0 } })),
        ),
        (
            "/2026-11-12",
            ResponseTemplate::new(200).set_body_json(json!({ "success": true, "base": "EUR",
                "date": "2026-11-14", "rates": { "USD": 1.05 } })),
        ),
        (
            "/2026-11-11",
            ResponseTemplate::new(200).set_body_json(json!({ "success": false, "error":
                { "code": 104, "type": "usage_limit_reached",
                  "info": format!("for GET /2026-11-11?access_key={KEY}&base=EUR {}", "x".repeat(5_000)) } })),
        ),
    ];
    for (at, response) in mounts {
        Mock::given(method("GET"))
            .and(path(at))
            .and(query_param("access_key", KEY))
            .and(query_param("base", "EUR"))
            .respond_with(response)
            .mount(&server)
            .await;
    }
    let config = RatesConfig {
        provider: ProviderChoice::Fixer,
        fixer_url: server.uri(),
        fixer_key: Some(KEY.parse::<Secret>().expect("infallible")),
        timeout_ms: 300,
        ..RatesConfig::default()
    };
    assert!(!format!("{config:?}").contains(KEY), "Debug shows the key");

    let day_rates = fetch(&config, "2026-11-20").await.expect("success");
    assert_eq!(day_rates.date, day("2026-11-20"));
    assert_eq!(day_rates.base, "EUR");
    // The base against itself is not stored.
    assert_eq!(
        day_rates.rates,
        BTreeMap::from([("GBP".to_owned(), 0.87), ("USD".to_owned(), 1.05)])
    );

    let cases = [
        (
            "2026-11-19",
            "fixer refused: error 101 invalid_access_key: You have not supplied a valid API Access Key.",
        ),
        ("2026-11-18", "fixer answered HTTP 500"),
        ("2026-11-17", "fixer did not answer within 300 ms"),
        (
            "2026-11-16",
            "fixer answered a malformed body: expected value at line 1 column 1",
        ),
        (
            "2026-11-13",
            "fixer answered a malformed body: rate GBP: -1",
        ),
        (
            "2026-11-12",
            "fixer answered a malformed body: asked for 2026-11-12, answered 2026-11-14",
        ),
    ];
    for (date, expected) in cases {
        let err = fetch(&config, date).await.expect_err(date);
        assert_eq!(err.to_string(), expected, "{date}");
    }
    // A provider echoing the request it was sent: its text is kept without the key,
    // and cut short.
    let echoed = fetch(&config, "2026-11-11")
        .await
        .expect_err("refused")
        .to_string();
    assert!(!echoed.contains(KEY), "{echoed}");
    assert!(echoed.contains("access_key=***&base=EUR"), "{echoed}");
    assert!(
        echoed.chars().count() < 300 && echoed.ends_with('…'),
        "{echoed}"
    );

    // Unreachable: the transport error is reported without the URL (and the key).
    let closed = RatesConfig {
        fixer_url: "http://127.0.0.1:9".to_owned(),
        ..config.clone()
    };
    let err = fetch(&closed, "2026-11-20").await.expect_err("closed port");
    let text = err.to_string();
    assert!(text.starts_with("fixer unreachable: "), "{text}");
    assert!(
        !text.contains(KEY) && !text.contains("access_key"),
        "{text}"
    );

    // fixer chosen without a key: a clear configuration error, no request.
    let keyless = RatesConfig {
        fixer_key: None,
        ..config
    };
    let err = fetch(&keyless, "2026-11-20").await.expect_err("no key");
    assert_eq!(err.to_string(), "RATES_PROVIDER=fixer needs FIXER_KEY");
}

#[tokio::test]
async fn frankfurter_parses_its_shape_and_names_every_failure() {
    let server = MockServer::start().await;
    let mounts = [
        (
            "/2026-11-20",
            ResponseTemplate::new(200).set_body_json(json!({ "amount": 1.0, "base": "EUR",
                "date": "2026-11-20", "rates": { "USD": 1.05, "GBP": 0.87 } })),
        ),
        ("/2026-11-18", ResponseTemplate::new(500)),
        (
            "/2026-11-17",
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(2))
                .set_body_json(json!({})),
        ),
        (
            "/2026-11-16",
            ResponseTemplate::new(200).set_body_json(json!({ "amount": 1.0, "base": "USD",
                "date": "2026-11-16", "rates": { "EUR": 0.95 } })),
        ),
        (
            "/2026-11-13",
            ResponseTemplate::new(200).set_body_json(json!({ "amount": 1.0, "base": "EUR",
                "date": "2026-11-13", "rates": {} })),
        ),
    ];
    for (at, response) in mounts {
        Mock::given(method("GET"))
            .and(path(at))
            .and(query_param("from", "EUR"))
            .respond_with(response)
            .mount(&server)
            .await;
    }
    let config = RatesConfig {
        timeout_ms: 300,
        ..frankfurter_at(&server)
    };
    // `auto` without a fixer key is frankfurter.
    let auto = RatesConfig {
        provider: ProviderChoice::Auto,
        ..config.clone()
    };
    assert_eq!(from_config(&auto).name(), "frankfurter");

    let day_rates = fetch(&auto, "2026-11-20").await.expect("success");
    assert_eq!(day_rates.rates.len(), 2);
    assert_eq!(day_rates.rates["USD"], 1.05);
    let cases = [
        ("2026-11-18", "frankfurter answered HTTP 500"),
        ("2026-11-17", "frankfurter did not answer within 300 ms"),
        (
            "2026-11-16",
            "frankfurter answered a malformed body: asked for base EUR, answered USD",
        ),
        (
            "2026-11-13",
            "frankfurter answered a malformed body: no rates",
        ),
        // No mock for this date: wiremock answers 404.
        ("2026-11-12", "frankfurter answered HTTP 404"),
    ];
    for (date, expected) in cases {
        let err = fetch(&config, date).await.expect_err(date);
        assert_eq!(err.to_string(), expected, "{date}");
    }
}

// ---------------------------------------------------------------- the job

async fn reingesting_a_day_changes_nothing_but_the_latest_values(stack: Stack) {
    let server = echo_server(Vec::new(), 0.0).await;
    let app = app_for(stack, frankfurter_at(&server), Role::All).await;
    let first = refresh(&app, "2026-11-20", "succeeded").await;
    assert_eq!(first["result"]["currencies"], 3);
    assert_eq!(first["result"]["date"], "2026-11-20");
    let (status, before) = app.get("/rates?date=2026-11-20").await;
    assert_eq!(status, 200, "{before}");
    refresh(&app, "2026-11-20", "succeeded").await;
    let (_, after) = app.get("/rates?date=2026-11-20").await;
    assert_eq!(before, after);
    let (_, all) = app.get("/get_currency").await;
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all[0]["rates"].as_object().map(|r| r.len()), Some(3));

    // The provider revises a rate: the row is updated in place, not duplicated.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(Echo {
            fixer: false,
            holidays: Vec::new(),
            bump: 0.5,
        })
        .mount(&server)
        .await;
    refresh(&app, "2026-11-20", "succeeded").await;
    let (_, revised) = app.get("/rates?date=2026-11-20").await;
    assert_eq!(revised["rates"]["USD"], json!(1.0 + 20.0 / 100.0 + 0.5));
    assert_eq!(revised["rates"]["GBP"], before["rates"]["GBP"]);
    let (_, all) = app.get("/get_currency").await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(all[0]["rates"].as_object().map(|r| r.len()), Some(3));
}
on_both_stacks!(reingesting_a_day_changes_nothing_but_the_latest_values);

async fn a_failing_provider_retries_then_the_job_is_dead_and_nothing_is_stored(stack: Stack) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2026-11-19"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    // One bad rate among good ones: the whole day is refused, none of it stored.
    Mock::given(method("GET"))
        .and(path("/2026-11-18"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "amount": 1.0, "base": "EUR", "date": "2026-11-18",
            "rates": { "USD": 1.05, "GBP": "0.87" } })))
        .mount(&server)
        .await;
    let app = app_for(stack, frankfurter_at(&server), Role::All).await;
    let dead = refresh(&app, "2026-11-19", "dead").await;
    assert_eq!(dead["attempts"], 3, "{dead}");
    assert_eq!(dead["error"], "frankfurter answered HTTP 500");
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(3));
    let dead = refresh(&app, "2026-11-18", "dead").await;
    let error = dead["error"].as_str().expect("error");
    assert!(
        error.starts_with("frankfurter answered a malformed body"),
        "{error}"
    );
    for date in ["2026-11-19", "2026-11-18"] {
        let (status, body) = app.get(&format!("/rates?date={date}")).await;
        assert_eq!(status, 404, "{body}");
    }
    let (_, all) = app.get("/get_currency").await;
    assert_eq!(all, json!([]));
}
on_both_stacks!(a_failing_provider_retries_then_the_job_is_dead_and_nothing_is_stored);

// ---------------------------------------------------------------- routes

async fn every_route_answers_as_specified(stack: Stack) {
    let server = echo_server(Vec::new(), 0.0).await;
    let app = app_for(stack, frankfurter_at(&server), Role::All).await;

    // Nothing stored yet.
    let (status, body) = app.get("/rates").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert_eq!(body["message"], "no rates stored yet");
    assert_eq!(app.get("/get_currency").await, (200, json!([])));
    let (status, _) = app.get("/rates/convert?from=USD&to=GBP").await;
    assert_eq!(status, 404);

    refresh(&app, "2026-11-19", "succeeded").await;
    refresh(&app, "2026-11-20", "succeeded").await;
    let r19 = rates_for(day("2026-11-19"), 0.0);
    let r20 = rates_for(day("2026-11-20"), 0.0);

    // Latest by default, every currency.
    let (status, body) = app.get("/rates").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "base": "EUR", "date": "2026-11-20", "rates": r20 })
    );
    // A date and symbols (any case; the base itself is 1).
    let (status, body) = app.get("/rates?date=2026-11-19&symbols=usd,GBP,EUR").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "base": "EUR", "date": "2026-11-19",
                "rates": { "USD": r19["USD"], "GBP": r19["GBP"], "EUR": 1.0 } })
    );
    for (query, code, message) in [
        (
            "/rates?symbols=USD,XYZ",
            404,
            "no rate for XYZ on 2026-11-20",
        ),
        (
            "/rates?date=2026-11-21",
            404,
            "no rates stored for 2026-11-21 (rates exist for business days only)",
        ),
        (
            "/rates?date=20-11-2026",
            400,
            "date '20-11-2026' is not a date (YYYY-MM-DD)",
        ),
        (
            "/rates?date=2026-02-30",
            400,
            "date '2026-02-30' is not a date (YYYY-MM-DD)",
        ),
        (
            "/rates?symbols=US",
            400,
            "symbol 'US' is not a currency code (three letters, e.g. USD)",
        ),
        (
            "/rates?symbols=USD,,GBP",
            400,
            "symbol '' is not a currency code (three letters, e.g. USD)",
        ),
        (
            "/rates/history?from=2026-11-20&to=2026-11-19",
            400,
            "from 2026-11-20 is after to 2026-11-19",
        ),
        (
            "/rates/history?to=yesterday",
            400,
            "to 'yesterday' is not a date (YYYY-MM-DD)",
        ),
        (
            "/rates/convert?to=GBP",
            400,
            "from and to are required, e.g. from=USD&to=GBP",
        ),
        (
            "/rates/convert?from=USD&to=GBP&amount=ten",
            400,
            "amount 'ten' is not a finite number",
        ),
        (
            "/rates/convert?from=USD&to=GBP&amount=inf",
            400,
            "amount 'inf' is not a finite number",
        ),
        (
            "/rates/convert?from=USD&to=G1P",
            400,
            "to 'G1P' is not a currency code (three letters, e.g. USD)",
        ),
        (
            "/rates/convert?from=USD&to=XYZ",
            404,
            "no rate for XYZ on 2026-11-20",
        ),
        (
            "/rates/convert?from=XYZ&to=USD&date=2026-11-19",
            404,
            "no rate for XYZ on 2026-11-19",
        ),
        (
            "/rates/convert?from=USD&to=GBP&date=2026-11-22",
            404,
            "no rates stored for 2026-11-22 (rates exist for business days only)",
        ),
    ] {
        let (status, body) = app.get(query).await;
        assert_eq!(status, code, "{query}: {body}");
        assert_eq!(body["message"], message, "{query}");
    }

    // History: oldest first, filtered; an empty range is an empty list.
    let (status, body) = app
        .get("/rates/history?from=2026-11-19&to=2026-11-20&symbols=JPY")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([
            { "base": "EUR", "date": "2026-11-19", "rates": { "JPY": 160.0 } },
            { "base": "EUR", "date": "2026-11-20", "rates": { "JPY": 160.0 } },
        ])
    );
    let (_, body) = app.get("/rates/history?from=2026-11-20").await;
    assert_eq!(body.as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get("/rates/history?from=2030-01-01").await,
        (200, json!([]))
    );

    // Conversion across two non-base currencies goes through EUR.
    let (status, body) = app
        .get("/rates/convert?from=USD&to=GBP&amount=10&date=2026-11-19")
        .await;
    assert_eq!(status, 200, "{body}");
    let rate = r19["GBP"] / r19["USD"];
    assert_eq!(body["base"], "EUR");
    assert_eq!(body["date"], "2026-11-19");
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str()),
        (Some("USD"), Some("GBP"))
    );
    assert_eq!(body["amount"], 10.0);
    assert_eq!(body["rate"], json!(rate));
    assert_eq!(body["result"], json!(10.0 * rate));
    // From the base: the rate itself; amount defaults to 1; latest date by default.
    let (_, body) = app.get("/rates/convert?from=EUR&to=JPY").await;
    assert_eq!(
        (body["rate"].as_f64(), body["result"].as_f64()),
        (Some(160.0), Some(160.0))
    );
    assert_eq!(body["date"], "2026-11-20");

    // The old route: every stored day, oldest first.
    let (status, body) = app.get("/get_currency").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([
            { "base": "EUR", "date": "2026-11-19", "rates": r19 },
            { "base": "EUR", "date": "2026-11-20", "rates": r20 },
        ])
    );

    // Refresh: 202 with a job; a future date or a bad one is refused.
    let (status, body) = app.post("/rates/refresh?date=2999-01-01", &json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("date 2999-01-01 is in the future"))
    );
    let (status, _) = app.post("/rates/refresh?date=tomorrow", &json!({})).await;
    assert_eq!(status, 400);
    // The same Idempotency-Key gives the same job.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = app
            .client
            .post(app.url("/rates/refresh"))
            .header("Idempotency-Key", "refresh-once")
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"].to_str().map(str::to_owned);
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            location.ok(),
            Some(format!("/jobs/{}", body["job_id"].as_str().unwrap_or("")))
        );
        ids.push(body["job_id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    let job = app.job(ids[0].as_str().expect("id")).await;
    assert_eq!(job["kind"], "rates.ingest");
    assert_eq!(job["args"]["reason"], "refresh");
    assert_eq!(job["args"]["date"], Utc::now().date_naive().to_string());
}
on_both_stacks!(every_route_answers_as_specified);

/// A finite amount whose result overflows was answered 200 without `result` (JSON has
/// no infinity, so the field was dropped): now 400.
#[tokio::test]
async fn a_conversion_too_large_to_represent_is_refused() {
    let server = echo_server(Vec::new(), 0.0).await;
    let app = app_for(Stack::Embedded, frankfurter_at(&server), Role::All).await;
    refresh(&app, "2026-11-20", "succeeded").await;
    // 1 GBP is 160 / 0.82 JPY, so 1e308 GBP is beyond f64.
    for amount in ["1e308", "-1e308"] {
        let query = format!("/rates/convert?from=GBP&to=JPY&amount={amount}");
        let (status, body) = app.get(&query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "bad_request");
        assert_eq!(
            body["message"],
            format!(
                "amount {} of GBP is too large to convert into JPY",
                amount.parse::<f64>().unwrap_or_default()
            ),
            "{query}"
        );
    }
    let (status, body) = app.get("/rates/convert?from=GBP&to=JPY&amount=1e300").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["result"].is_f64(), "{body}");
}

// ---------------------------------------------------------------- the scheduler

/// The last weekday at least `back` days before today that has a weekday before it.
fn past_midweek_day(back: u64) -> NaiveDate {
    let mut date = Utc::now().date_naive() - Days::new(back);
    while !is_weekday(date) || date.weekday() == Weekday::Mon {
        date = date - Days::new(1);
    }
    date
}

/// The dates of `rates.ingest` jobs by reason and tick, read from the job records.
async fn ingest_jobs(app: &TestApp) -> Vec<RatesArgs> {
    let filter = JobFilter {
        kind: Some("rates.ingest".to_owned()),
        limit: 10_000,
        ..JobFilter::default()
    };
    let jobs = app.backends.store.list(&filter).await.expect("list jobs");
    jobs.into_iter()
        .map(|job| serde_json::from_value(job.record.args).expect("rates args"))
        .collect()
}

async fn a_holiday_is_stored_under_the_previous_day_and_the_backfill_fetches_only_what_is_missing(
    stack: Stack,
) {
    let holiday = past_midweek_day(5);
    let server = echo_server(vec![holiday], 0.0).await;
    let lookback = 12;
    let rates = RatesConfig {
        lookback_days: lookback,
        ..frankfurter_at(&server)
    };
    let app = app_for(stack, rates.clone(), Role::All).await;

    // The holiday is answered with the day before: stored there, not under itself.
    let job = refresh(&app, &holiday.to_string(), "succeeded").await;
    let before = holiday - Days::new(1);
    assert_eq!(job["result"]["date"], before.to_string());
    assert_eq!(app.get(&format!("/rates?date={before}")).await.0, 200);
    assert_eq!(app.get(&format!("/rates?date={holiday}")).await.0, 404);

    // Rates for every other weekday of the window, stored directly.
    let today = Utc::now().date_naive();
    let window: Vec<NaiveDate> = (1..=u64::from(lookback))
        .map(|back| today - Days::new(back))
        .filter(|d| is_weekday(*d))
        .collect();
    let stored: BTreeSet<NaiveDate> = window.iter().copied().step_by(2).collect();
    let db = app.backends.store.db();
    let tx = db.begin().await.expect("begin");
    for date in &stored {
        let day_rates = DayRates {
            date: *date,
            base: "EUR".to_owned(),
            rates: rates_for(*date, 0.0),
        };
        features::rates::store::store_day(&tx, *date, &day_rates, engine::JobId::generate())
            .await
            .expect("store a day");
    }
    tx.commit().await.expect("commit");

    let timetable = scheduler::RatesTimetable::new(
        app.backends.store.clone(),
        app.backends.queue.clone(),
        // The app's own timetable is off; this one is only called by hand.
        RatesConfig {
            cron: "0 0 9 * * Mon-Fri".to_owned(),
            ..rates
        },
        3,
    )
    .expect("timetable")
    .expect("a timetable that is on");
    let now = Utc::now();
    let report = timetable.startup(now).await.expect("backfill");
    let mut expected: BTreeSet<NaiveDate> = window
        .iter()
        .copied()
        .filter(|d| !stored.contains(d) && *d != holiday && *d != before)
        .collect();
    if is_weekday(today) {
        expected.insert(today);
    }
    let enqueued: Vec<NaiveDate> = ingest_jobs(&app)
        .await
        .into_iter()
        .filter(|args| args.reason == features::rates::IngestReason::Startup)
        .map(|args| args.date)
        .collect();
    let unique: BTreeSet<NaiveDate> = enqueued.iter().copied().collect();
    assert_eq!(
        enqueued.len(),
        unique.len(),
        "a date enqueued twice: {enqueued:?}"
    );
    assert_eq!(unique, expected);
    assert_eq!(report.created.len(), expected.len());
    // A second scheduler starting in the same ten minutes shares the backfill: it
    // creates nothing and gets back the first one's jobs (fewer of them as the
    // workers store days meanwhile).
    let again = timetable.startup(now).await.expect("backfill");
    assert!(again.created.is_empty(), "{again:?}");
    assert!(
        again.existing.iter().all(|id| report.created.contains(id)),
        "{again:?} vs {report:?}"
    );
}
on_both_stacks!(
    a_holiday_is_stored_under_the_previous_day_and_the_backfill_fetches_only_what_is_missing
);

async fn three_schedulers_enqueue_each_tick_once_and_keep_ticking_when_two_stop(stack: Stack) {
    let server = echo_server(Vec::new(), 0.0).await;
    let (mut config, resources) = test_config(stack).await;
    config.features.rates = RatesConfig {
        cron: "* * * * * *".to_owned(),
        lookback_days: 3,
        ..frankfurter_at(&server)
    };
    // The reader: an api only, so that every job stays as enqueued.
    let reader = spawn_with(config.clone(), resources, Role::Api).await;
    let started = Utc::now();
    let mut schedulers = Vec::new();
    for _ in 0..3 {
        schedulers.push(spawn_with(config.clone(), Resources::none(), Role::Scheduler).await);
    }
    let all_started = Utc::now();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    // Two of the three stop; the last keeps the timetable going alone.
    for scheduler in schedulers.drain(..2) {
        scheduler.stop().await.expect("scheduler stops cleanly");
    }
    let stopped = Utc::now();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let last = schedulers.pop().expect("one left");
    last.stop().await.expect("scheduler stops cleanly");

    let jobs = ingest_jobs(&reader).await;
    let mut by_tick: BTreeMap<i64, Vec<NaiveDate>> = BTreeMap::new();
    let mut startup: Vec<NaiveDate> = Vec::new();
    for args in &jobs {
        match args.reason {
            features::rates::IngestReason::Cron => by_tick
                .entry(args.tick.expect("cron jobs carry their tick").timestamp())
                .or_default()
                .push(args.date),
            features::rates::IngestReason::Startup => startup.push(args.date),
            features::rates::IngestReason::Refresh | features::rates::IngestReason::RunNow => {
                panic!("nobody asked for a refresh or a run: {args:?}")
            }
        }
    }
    // Every tick: each date once, and exactly the dates the calendar asks for.
    for (tick, dates) in &by_tick {
        let at = chrono::DateTime::from_timestamp(*tick, 0).expect("tick");
        let today = at.date_naive();
        let expected = domain::calendar::dates_to_fetch(today, 3, &BTreeSet::new());
        let mut sorted = dates.clone();
        sorted.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(sorted, want, "tick {at}: {dates:?}");
    }
    let before_stop = by_tick.keys().filter(|t| **t < stopped.timestamp()).count();
    let after_stop = by_tick.keys().filter(|t| **t > stopped.timestamp()).count();
    assert!(before_stop >= 2, "ticks before the stop: {by_tick:?}");
    assert!(
        after_stop >= 2,
        "ticks after two schedulers stopped: {by_tick:?}"
    );
    // Start-up: schedulers started within one ten-minute bucket share one backfill.
    let buckets = |t: chrono::DateTime<Utc>| t.timestamp().div_euclid(600);
    let copies = if buckets(started) == buckets(all_started) {
        1
    } else {
        2
    };
    let mut per_date: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    for date in startup {
        *per_date.entry(date).or_default() += 1;
    }
    assert!(!per_date.is_empty(), "no start-up backfill");
    assert!(per_date.values().all(|n| *n <= copies), "{per_date:?}");
}
on_both_stacks!(three_schedulers_enqueue_each_tick_once_and_keep_ticking_when_two_stop);

#[tokio::test]
async fn a_bad_timetable_stops_the_scheduler_with_the_variable_named() {
    let (mut config, resources) = test_config(Stack::Embedded).await;
    config.features.rates.cron = "at nine".to_owned();
    let app = spawn_with(config, resources, Role::Scheduler).await;
    let err = app.stop().await.expect_err("a bad RATES_CRON fails");
    assert!(err.to_string().contains("RATES_CRON 'at nine'"), "{err}");
}
