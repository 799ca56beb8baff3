//! `/schedules`: the rates timetable with its next tick in `RATES_TZ` and the newest
//! `rates.ingest` job as its last run, read from the settings and the job records;
//! then housekeeping with its interval and stuck-job threshold.

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc, Weekday};
use conveyor::Role;
use features::rates::{ProviderChoice, RatesConfig};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Stack, TestApp, spawn_with, test_config};
use crate::on_both_stacks;

const WITHIN: Duration = Duration::from_secs(30);

async fn app_with(stack: Stack, rates: RatesConfig, role: Role) -> TestApp {
    let (mut config, resources) = test_config(stack).await;
    config.features.rates = rates;
    spawn_with(config, resources, role).await
}

/// The fields the rates entry had before housekeeping was listed: it keeps exactly
/// these (a client written then sees nothing new in it).
const RATES_FIELDS: [&str; 7] = [
    "name", "cron", "timezone", "enabled", "next_run", "problem", "last_run",
];

/// The entries of `GET /schedules`: rates, then housekeeping.
async fn entries(app: &TestApp) -> (Value, Value) {
    let (status, body) = app.get("/schedules").await;
    assert_eq!(status, 200, "{body}");
    let list = body.as_array().expect("an array of timetables");
    let names: Vec<&Value> = list.iter().map(|entry| &entry["name"]).collect();
    assert_eq!(names, ["rates.ingest", "housekeeping"], "{body}");
    (list[0].clone(), list[1].clone())
}

/// The rates entry of `GET /schedules`, with no field it did not have before.
async fn rates_entry(app: &TestApp) -> Value {
    let (rates, _) = entries(app).await;
    let fields = rates.as_object().expect("an object");
    assert!(
        fields.keys().all(|k| RATES_FIELDS.contains(&k.as_str())),
        "{rates}"
    );
    rates
}

/// `POST /rates/refresh` for today; the new job's id.
async fn refresh(app: &TestApp) -> String {
    let response = app
        .client
        .post(app.url("/rates/refresh"))
        .send()
        .await
        .expect("POST /rates/refresh");
    assert_eq!(response.status(), 202, "refresh");
    let body: Value = response.json().await.expect("json");
    body["job_id"].as_str().expect("job_id").to_owned()
}

fn instant(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is no timestamp"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

async fn the_rates_timetable_shows_its_next_tick_in_its_time_zone_and_its_newest_job(stack: Stack) {
    // Tokyo has no daylight saving: 09:00 there is always 00:00 UTC the same day.
    let rates = RatesConfig {
        cron: "0 0 9 * * Mon-Fri".to_owned(),
        tz: "Asia/Tokyo".parse().expect("valid zone"),
        lookback_days: 7,
        ..RatesConfig::default()
    };
    // The api alone: nothing ticks or runs, so the records are the test's own.
    let app = app_with(stack, rates.clone(), Role::Api).await;
    let before = Utc::now();
    let entry = rates_entry(&app).await;
    assert_eq!(entry["cron"], "0 0 9 * * Mon-Fri");
    assert_eq!(entry["timezone"], "Asia/Tokyo");
    assert_eq!(entry["enabled"], true);
    assert!(entry["problem"].is_null(), "{entry}");
    assert!(entry["last_run"].is_null(), "no job yet: {entry}");
    let next = instant(&entry["next_run"]);
    assert!(next > before, "{next} is not after {before}");
    assert!(
        next - before <= chrono::Duration::days(3),
        "{next} is further than a weekend away"
    );
    assert_eq!(
        (next.hour(), next.minute(), next.second()),
        (0, 0, 0),
        "{next}"
    );
    assert!(
        !matches!(next.weekday(), Weekday::Sat | Weekday::Sun),
        "{next} is on a weekend"
    );

    // A refresh by hand is the newest job: its outcome so far, no tick.
    let refresh_id = refresh(&app).await;
    let last = rates_entry(&app).await["last_run"].clone();
    assert_eq!(last["job_id"], refresh_id.as_str(), "{last}");
    assert_eq!(last["status"], "queued");
    assert_eq!(last["reason"], "refresh");
    assert!(last["tick"].is_null() && last["error"].is_null(), "{last}");
    let created = instant(&last["created_at"]);
    assert!(created >= before - chrono::Duration::seconds(1), "{last}");

    // A tick of the timetable: the newest job is one of its jobs, naming the tick.
    let at = Utc
        .timestamp_opt(Utc::now().timestamp(), 0)
        .single()
        .expect("a whole second");
    let timetable = scheduler::RatesTimetable::new(
        app.backends.store.clone(),
        app.backends.queue.clone(),
        rates,
        3,
    )
    .expect("the timetable parses")
    .expect("the timetable is on");
    let report = timetable.tick(at).await.expect("tick enqueues");
    assert!(!report.created.is_empty(), "a week back has weekdays");
    let last = rates_entry(&app).await["last_run"].clone();
    let id = last["job_id"].as_str().expect("job_id");
    assert!(report.created.iter().any(|c| c.to_string() == id), "{last}");
    assert_eq!(last["reason"], "cron");
    assert_eq!(instant(&last["tick"]), at);
}
on_both_stacks!(the_rates_timetable_shows_its_next_tick_in_its_time_zone_and_its_newest_job);

async fn an_off_timetable_has_no_next_run_and_its_last_run_keeps_the_error(stack: Stack) {
    let provider = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&provider)
        .await;
    let rates = RatesConfig {
        provider: ProviderChoice::Frankfurter,
        frankfurter_url: provider.uri(),
        cron: "off".to_owned(),
        timeout_ms: 500,
        ..RatesConfig::default()
    };
    let app = app_with(stack, rates, Role::All).await;
    let entry = rates_entry(&app).await;
    assert_eq!(entry["cron"], "off");
    assert_eq!(entry["enabled"], false);
    assert!(entry["next_run"].is_null(), "{entry}");
    assert!(entry["problem"].is_null(), "off is not a problem: {entry}");

    let id = refresh(&app).await;
    let dead = app.wait_for_status(&id, "dead", WITHIN).await;
    let last = rates_entry(&app).await["last_run"].clone();
    assert_eq!(last["job_id"], id.as_str());
    assert_eq!(last["status"], "dead");
    assert_eq!(last["error"], "frankfurter answered HTTP 500");
    assert_eq!(last["error"], dead["error"]);
    assert_eq!(instant(&last["finished_at"]), instant(&dead["finished_at"]));
}
on_both_stacks!(an_off_timetable_has_no_next_run_and_its_last_run_keeps_the_error);

async fn a_malformed_expression_is_reported_instead_of_a_next_run(stack: Stack) {
    let rates = RatesConfig {
        cron: "every day at nine".to_owned(),
        ..RatesConfig::default()
    };
    // The scheduler refuses this at start; the api alone still answers.
    let app = app_with(stack, rates, Role::Api).await;
    let entry = rates_entry(&app).await;
    assert_eq!(entry["enabled"], true);
    assert!(entry["next_run"].is_null(), "{entry}");
    let problem = entry["problem"].as_str().expect("a problem");
    assert!(
        problem.contains("RATES_CRON 'every day at nine'"),
        "{problem}"
    );
}
on_both_stacks!(a_malformed_expression_is_reported_instead_of_a_next_run);

async fn schedules_answer_503_when_the_database_is_unavailable(stack: Stack) {
    let app = app_with(stack, RatesConfig::default(), Role::Api).await;
    rates_entry(&app).await;
    app.backends
        .store
        .db()
        .close_by_ref()
        .await
        .expect("the pool closes");
    let (status, body) = app.get("/schedules").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "unavailable");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("database unavailable")),
        "{body}"
    );
}
on_both_stacks!(schedules_answer_503_when_the_database_is_unavailable);

async fn housekeeping_shows_its_interval_and_threshold_and_no_runs_it_cannot_know(stack: Stack) {
    let (mut config, resources) = test_config(stack).await;
    config.housekeeping = engine::config::HousekeepingConfig {
        housekeeping_interval_secs: 7,
        stuck_after_secs: 120,
        job_retention_secs: 3_600,
        dead_job_retention_secs: 0,
        throughput_history_minutes: 180,
    };
    // The api alone: the settings come from its own configuration.
    let app = spawn_with(config, resources, Role::Api).await;
    let (_, housekeeping) = entries(&app).await;
    assert_eq!(
        housekeeping,
        serde_json::json!({
            "name": "housekeeping",
            "interval_secs": 7,
            "stuck_after_secs": 120,
            "job_retention_secs": 3_600,
            "dead_job_retention_secs": 0,
            "enabled": true,
        }),
        "no cron, time zone, next or last run, not even as null"
    );
}
on_both_stacks!(housekeeping_shows_its_interval_and_threshold_and_no_runs_it_cannot_know);

async fn housekeeping_reports_the_interval_the_scheduler_runs_and_no_last_run(stack: Stack) {
    let (mut config, resources) = test_config(stack).await;
    // 0 runs every second (the scheduler's floor); that is what is reported.
    let settings = engine::config::HousekeepingConfig {
        housekeeping_interval_secs: 0,
        stuck_after_secs: 900,
        ..engine::config::HousekeepingConfig::default()
    };
    config.housekeeping = settings.clone();
    let app = spawn_with(config, resources, Role::Api).await;
    // A round of housekeeping records nothing the api could read: still no last run.
    let queues = app.backends.registry.queues();
    scheduler::housekeeping::once(&app.backends.store, &app.backends.queue, &queues, &settings)
        .await;
    let (_, housekeeping) = entries(&app).await;
    assert_eq!(housekeeping["interval_secs"], 1, "{housekeeping}");
    assert_eq!(housekeeping["stuck_after_secs"], 900, "{housekeeping}");
    let fields = housekeeping.as_object().expect("an object");
    for absent in ["last_run", "next_run", "cron", "timezone", "problem"] {
        assert!(!fields.contains_key(absent), "{absent}: {housekeeping}");
    }
}
on_both_stacks!(housekeeping_reports_the_interval_the_scheduler_runs_and_no_last_run);

async fn the_openapi_document_lists_schedules_with_its_answers(stack: Stack) {
    let app = app_with(stack, RatesConfig::default(), Role::Api).await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let responses = doc["paths"]["/schedules"]["get"]["responses"]
        .as_object()
        .expect("GET /schedules is documented");
    let codes: Vec<&str> = responses.keys().map(String::as_str).collect();
    assert_eq!(codes, ["200", "401", "503"]);
    // Only what every entry has is required; the rest is optional, and absent when
    // it does not apply.
    let view = &doc["components"]["schemas"]["ScheduleView"];
    assert_eq!(
        view["required"],
        serde_json::json!(["name", "enabled"]),
        "{view}"
    );
    for field in [
        "cron",
        "timezone",
        "interval_secs",
        "stuck_after_secs",
        "job_retention_secs",
        "dead_job_retention_secs",
    ] {
        assert!(view["properties"].get(field).is_some(), "{field}: {view}");
    }
}
on_both_stacks!(the_openapi_document_lists_schedules_with_its_answers);

async fn a_timetable_runs_now_on_request(stack: Stack) {
    // The api alone: the job stays queued, so its record shows what was enqueued.
    let app = app_with(stack, RatesConfig::default(), Role::Api).await;
    let (status, body) = app.post("/schedules/rates.ingest/run", &Value::Null).await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().expect("job_id").to_owned();
    let job = app.job(&id).await;
    assert_eq!(job["kind"], "rates.ingest");
    assert_eq!(job["args"]["reason"], "run_now", "{job}");
    let today = RatesConfig::default().date_at(Utc::now()).to_string();
    assert_eq!(job["args"]["date"], today.as_str(), "{job}");
    let last = rates_entry(&app).await["last_run"].clone();
    assert_eq!(
        (&last["job_id"], &last["reason"]),
        (&json!(id), &json!("run_now"))
    );

    let (status, body) = app.post("/schedules/housekeeping/run", &Value::Null).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = app.post("/schedules/nonesuch/run", &Value::Null).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("rates.ingest"),
        "{body}"
    );
}
on_both_stacks!(a_timetable_runs_now_on_request);
