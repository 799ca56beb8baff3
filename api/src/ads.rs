//! `/ad`, `/impression`, `/statistics` (SPEC §2): count ad requests and impressions
//! through `ads.count` jobs, pass the upstream VAST document through, and read the
//! counters per user or per SDK version.

use std::time::Duration;

use features::ads::{AdCountArgs, AdEvent, AdsConfig, Count, Scope, counters};
use poem::{IntoResponse, Request, Response};
use poem_openapi::param::Query;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use serde_json::{Value, json};

use crate::enqueue::{EnqueueError, enqueue};
use crate::error::quote;
use crate::state::AppState;

#[derive(Tags)]
enum AdTags {
    /// Ad requests, impressions and fill rate.
    Ads,
}

/// The five parameters of `/ad` and `/impression`, in the order the old service
/// listed them when missing.
const REQUIRED: [&str; 5] = [
    "sdk_version",
    "session_id",
    "platform",
    "username",
    "country_code",
];

/// Longest username or SDK version counted: the counters' key column holds 255
/// characters (a longer key would fail every attempt of its job on Postgres).
pub(crate) const MAX_KEY_CHARS: usize = 255;

/// `{"success": ..., "message": ...}`.
#[derive(Debug, Clone, Object)]
pub struct AdMessage {
    /// Whether the request succeeded.
    pub success: bool,
    /// What happened.
    pub message: String,
}

fn message(success: bool, text: impl Into<String>) -> Json<AdMessage> {
    Json(AdMessage {
        success,
        message: text.into(),
    })
}

/// `following params are required ['a', 'b']`, Python-list style.
fn missing_message(names: &[&str]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("following params are required [{}]", list.join(", "))
}

/// The upstream VAST document, passed through verbatim as `application/xml`.
#[derive(Debug, Clone)]
pub struct VastXml(String);

impl Payload for VastXml {
    const CONTENT_TYPE: &'static str = "application/xml";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("The VAST document from ADS_VAST_URL, verbatim."),
            ..MetaSchema::new("string")
        }))
    }

    fn register(_registry: &mut Registry) {}
}

impl IntoResponse for VastXml {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

/// Answers of `GET /ad`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "ad_bad_request")]
pub enum AdAnswer {
    /// The VAST document.
    #[oai(status = 200)]
    Ok(VastXml),
    /// Missing parameters, one with a NUL character, or a username or SDK version
    /// over 255 characters.
    #[oai(status = 400)]
    BadRequest(Json<AdMessage>),
    /// The VAST server answered, but not 200.
    #[oai(status = 502)]
    BadGateway(Json<AdMessage>),
    /// The queue is unavailable; nothing was counted.
    #[oai(status = 503)]
    Unavailable(Json<AdMessage>),
    /// The VAST server is unreachable or slower than `ADS_TIMEOUT_MS`.
    #[oai(status = 504)]
    Timeout(Json<AdMessage>),
}

fn ad_bad_request(err: poem::Error) -> AdAnswer {
    AdAnswer::BadRequest(message(false, err.to_string()))
}

/// Answers of `GET /impression`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "impression_bad_request")]
pub enum ImpressionAnswer {
    /// Counted.
    #[oai(status = 200)]
    Ok(Json<AdMessage>),
    /// Missing parameters, one with a NUL character, or a username or SDK version
    /// over 255 characters.
    #[oai(status = 400)]
    BadRequest(Json<AdMessage>),
    /// The queue is unavailable; nothing was counted.
    #[oai(status = 503)]
    Unavailable(Json<AdMessage>),
}

fn impression_bad_request(err: poem::Error) -> ImpressionAnswer {
    ImpressionAnswer::BadRequest(message(false, err.to_string()))
}

/// Answers of `GET /statistics`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "statistics_bad_request")]
pub enum AdStatisticsAnswer {
    /// `{"success": true, "<name>": {"impressions", "ad_requests", "fill_rate"}}`.
    #[oai(status = 200)]
    Ok(Json<Value>),
    /// Neither `username` nor `sdk`.
    #[oai(status = 400)]
    BadRequest(Json<AdMessage>),
    /// No counts for that user or SDK version.
    #[oai(status = 404)]
    NotFound(Json<AdMessage>),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<AdMessage>),
}

fn statistics_bad_request(err: poem::Error) -> AdStatisticsAnswer {
    AdStatisticsAnswer::BadRequest(message(false, err.to_string()))
}

/// The ad routes.
#[derive(Debug, Clone)]
pub struct AdsApi {
    state: AppState,
    client: reqwest::Client,
}

/// The five parameters as received.
struct AdParams<'a>([&'a Option<String>; 5]);

impl AdParams<'_> {
    /// The username and SDK version, or the old service's message naming what is
    /// missing (empty counts as missing), or a message naming what is unusable.
    fn validate(&self) -> Result<(String, String), BadParams> {
        let missing: Vec<&str> = REQUIRED
            .iter()
            .zip(self.0.iter())
            .filter(|(_, v)| v.as_deref().is_none_or(str::is_empty))
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            return Err(BadParams(missing_message(&missing)));
        }
        // Postgres text cannot hold NUL; refused on every backend alike.
        if let Some((name, _)) = REQUIRED
            .iter()
            .zip(self.0.iter())
            .find(|(_, v)| v.as_deref().is_some_and(|v| v.contains('\0')))
        {
            return Err(BadParams(format!("{name} must not contain NUL characters")));
        }
        let value = |i: usize| self.0[i].clone().unwrap_or_default();
        let (username, sdk_version) = (value(3), value(0));
        for (name, key) in [("username", &username), ("sdk_version", &sdk_version)] {
            if key.chars().count() > MAX_KEY_CHARS {
                return Err(BadParams(format!(
                    "{name} must be at most {MAX_KEY_CHARS} characters"
                )));
            }
        }
        Ok((username, sdk_version))
    }
}

/// Parameters the old service would refuse; the message is its 400 body's.
#[derive(Debug)]
struct BadParams(String);

impl From<BadParams> for String {
    fn from(bad: BadParams) -> String {
        bad.0
    }
}

impl AdsApi {
    /// The routes over `state`; one pooled client for the VAST server.
    pub fn new(state: AppState) -> Self {
        let client = engine::http::client(Duration::from_millis(state.ads().vast_timeout_ms));
        AdsApi { state, client }
    }

    fn config(&self) -> &AdsConfig {
        self.state.ads()
    }

    async fn count(
        &self,
        event: AdEvent,
        username: String,
        sdk_version: String,
    ) -> Result<(), EnqueueError> {
        let args = AdCountArgs {
            event,
            username,
            sdk_version,
        };
        enqueue::<Count>(&self.state, &args, None, "ads").await?;
        Ok(())
    }
}

#[OpenApi(tag = "AdTags::Ads")]
impl AdsApi {
    /// Counts an ad request, then answers the upstream VAST document verbatim
    /// (`application/xml`). Upstream non-200: 502; unreachable or slow: 504. The request
    /// is counted either way.
    #[oai(path = "/ad", method = "get")]
    async fn ad(
        &self,
        sdk_version: Query<Option<String>>,
        session_id: Query<Option<String>>,
        platform: Query<Option<String>>,
        username: Query<Option<String>>,
        country_code: Query<Option<String>>,
    ) -> AdAnswer {
        let params = AdParams([
            &sdk_version.0,
            &session_id.0,
            &platform.0,
            &username.0,
            &country_code.0,
        ]);
        let (username, sdk) = match params.validate() {
            Ok(v) => v,
            Err(text) => return AdAnswer::BadRequest(message(false, text)),
        };
        if let Err(err) = self.count(AdEvent::AdRequest, username, sdk).await {
            return AdAnswer::Unavailable(message(false, err.to_string()));
        }
        match self.client.get(&self.config().vast_url).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::OK => {
                match response.text().await {
                    Ok(body) => AdAnswer::Ok(VastXml(body)),
                    Err(err) => {
                        AdAnswer::Timeout(message(false, format!("ad server body failed: {err}")))
                    }
                }
            }
            Ok(response) => AdAnswer::BadGateway(message(
                false,
                format!("ad server answered {}", response.status()),
            )),
            Err(err) if err.is_timeout() => AdAnswer::Timeout(message(
                false,
                format!(
                    "ad server did not answer within {} ms",
                    self.config().vast_timeout_ms
                ),
            )),
            Err(_) => AdAnswer::Timeout(message(false, "ad server unreachable")),
        }
    }

    /// Counts an impression.
    #[oai(path = "/impression", method = "get")]
    async fn impression(
        &self,
        sdk_version: Query<Option<String>>,
        session_id: Query<Option<String>>,
        platform: Query<Option<String>>,
        username: Query<Option<String>>,
        country_code: Query<Option<String>>,
    ) -> ImpressionAnswer {
        let params = AdParams([
            &sdk_version.0,
            &session_id.0,
            &platform.0,
            &username.0,
            &country_code.0,
        ]);
        let (username, sdk) = match params.validate() {
            Ok(v) => v,
            Err(text) => return ImpressionAnswer::BadRequest(message(false, text)),
        };
        match self.count(AdEvent::Impression, username, sdk).await {
            Ok(()) => ImpressionAnswer::Ok(message(true, "Successfully fetched")),
            Err(err) => ImpressionAnswer::Unavailable(message(false, err.to_string())),
        }
    }

    /// Impressions, ad requests and fill rate of a user (`username`) or an SDK version
    /// (`sdk`); when both are given, the first in the query string wins.
    #[oai(path = "/statistics", method = "get")]
    async fn statistics(
        &self,
        request: &Request,
        #[oai(name = "username")] _username: Query<Option<String>>,
        #[oai(name = "sdk")] _sdk: Query<Option<String>>,
    ) -> AdStatisticsAnswer {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(request.uri().query().unwrap_or("")).unwrap_or_default();
        let chosen = pairs
            .into_iter()
            .find(|(name, value)| (name == "username" || name == "sdk") && !value.is_empty());
        let Some((name, key)) = chosen else {
            return AdStatisticsAnswer::BadRequest(message(
                false,
                missing_message(&["username", "sdk"]),
            ));
        };
        let scope = if name == "username" {
            Scope::User
        } else {
            Scope::Sdk
        };
        // `/ad` and `/impression` refuse NUL, so no such key is counted (and Postgres
        // would refuse the query).
        if key.contains('\0') {
            return AdStatisticsAnswer::NotFound(message(
                false,
                format!("{} not found", quote(&key)),
            ));
        }
        match counters(self.state.store.db(), scope, &key).await {
            Ok(Some(row)) => {
                let fill_rate = if row.ad_requests == 0 {
                    0.0
                } else {
                    row.impressions as f64 / row.ad_requests as f64
                };
                let mut body = serde_json::Map::new();
                body.insert("success".into(), json!(true));
                body.insert(
                    key,
                    json!({
                        "impressions": row.impressions,
                        "ad_requests": row.ad_requests,
                        "fill_rate": fill_rate,
                    }),
                );
                AdStatisticsAnswer::Ok(Json(Value::Object(body)))
            }
            Ok(None) => {
                AdStatisticsAnswer::NotFound(message(false, format!("{} not found", quote(&key))))
            }
            Err(err) => AdStatisticsAnswer::Unavailable(message(
                false,
                format!("database unavailable: {err}"),
            )),
        }
    }
}
