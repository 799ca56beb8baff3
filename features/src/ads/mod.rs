//! Ad requests and impressions (SPEC §2): the `ads.count` job, the settings of the ad
//! routes, and the counters' reads.
//!
//! # Layout
//! - here: [`AdsConfig`] and the reads.
//! - [`count`]: the `ads.count` job and its counter upsert.

pub mod count;

use entity::ad_counter;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};

pub use count::{AdCountArgs, AdEvent, Count};

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
        engine::config::defaults()
    }
}

/// Whose counters: a user's or an SDK version's. The two never share a key space (a
/// user named "1.0" is not SDK 1.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Per username.
    User,
    /// Per SDK version.
    Sdk,
}

impl Scope {
    /// The stored name: `user` or `sdk`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Sdk => "sdk",
        }
    }
}

/// The counters of a user or an SDK version, if any.
pub async fn counters(
    db: &DatabaseConnection,
    scope: Scope,
    key: &str,
) -> Result<Option<ad_counter::Model>, DbErr> {
    ad_counter::Entity::find_by_id((scope.as_str().to_owned(), key.to_owned()))
        .one(db)
        .await
}
