//! Ad requests and impressions: the `ads.count` job's arguments, its counter upsert,
//! and the counters' reads.

use entity::ad_counter;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    Statement,
};
use serde::{Deserialize, Serialize};

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdEvent {
    /// A `GET /ad`.
    AdRequest,
    /// A `GET /impression`.
    Impression,
}

/// Arguments of `ads.count`: one event for a user and an SDK version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdCountArgs {
    /// What happened.
    pub event: AdEvent,
    /// Who.
    pub username: String,
    /// With which SDK.
    pub sdk_version: String,
}

/// Settings of the ad routes.
#[derive(Debug, Clone, clap::Args)]
pub struct AdsConfig {
    /// The upstream VAST server `GET /ad` fetches from.
    #[arg(
        long,
        env = "ADS_VAST_URL",
        default_value = "http://127.0.0.1:5001/vast"
    )]
    pub vast_url: String,
    /// How long `GET /ad` waits for the VAST server, in ms (then 504).
    #[arg(long, env = "ADS_TIMEOUT_MS", default_value_t = 2_000)]
    pub vast_timeout_ms: u64,
}

impl Default for AdsConfig {
    fn default() -> Self {
        AdsConfig {
            vast_url: "http://127.0.0.1:5001/vast".to_owned(),
            vast_timeout_ms: 2_000,
        }
    }
}

/// Adds one event to the user's and the SDK's counters with an atomic upsert
/// (`n = n + excluded.n`), inside the transaction that marks the job done.
pub async fn count(tx: &DatabaseTransaction, args: &AdCountArgs) -> Result<(), DbErr> {
    let (impressions, ad_requests) = match args.event {
        AdEvent::Impression => (1i64, 0i64),
        AdEvent::AdRequest => (0, 1),
    };
    let backend = tx.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "INSERT INTO ad_counters (scope, key, impressions, ad_requests) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope, key) DO UPDATE SET \
             impressions = ad_counters.impressions + excluded.impressions, \
             ad_requests = ad_counters.ad_requests + excluded.ad_requests"
        }
        _ => {
            "INSERT INTO ad_counters (scope, key, impressions, ad_requests) VALUES (?, ?, ?, ?) \
             ON CONFLICT (scope, key) DO UPDATE SET \
             impressions = ad_counters.impressions + excluded.impressions, \
             ad_requests = ad_counters.ad_requests + excluded.ad_requests"
        }
    };
    for (scope, key) in [("user", &args.username), ("sdk", &args.sdk_version)] {
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                scope.into(),
                key.clone().into(),
                impressions.into(),
                ad_requests.into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// The counters of a user (`scope` = `user`) or an SDK version (`sdk`), if any.
pub async fn counters(
    db: &DatabaseConnection,
    scope: &str,
    key: &str,
) -> Result<Option<ad_counter::Model>, DbErr> {
    ad_counter::Entity::find_by_id((scope.to_owned(), key.to_owned()))
        .one(db)
        .await
}
