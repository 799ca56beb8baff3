//! `ads.count`: one ad request or impression for a user and an SDK version, counted by
//! an atomic upsert per counter in the transaction that marks the job done (so a
//! redelivered job counts nothing).

use engine::{Attempt, Done, Effect, EffectError, Job, JobError, Kind};
use entity::ad_counter;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{DatabaseTransaction, EntityTrait, Set};
use serde::{Deserialize, Serialize};

use super::Scope;

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

/// What an `ads.count` job records as its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counted {
    /// Always 1: the event it counted.
    pub counted: u32,
}

/// The `ads.count` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count;

impl Job for Count {
    const KIND: Kind = Kind {
        name: "ads.count",
        queue: "ads",
    };
    type Args = AdCountArgs;
    type Output = Counted;
    type Effect = AdCountArgs;

    async fn run(
        &self,
        attempt: Attempt<AdCountArgs>,
    ) -> Result<Done<Counted, AdCountArgs>, JobError> {
        Ok(Done {
            output: Counted { counted: 1 },
            effect: attempt.args,
        })
    }
}

impl Effect for AdCountArgs {
    /// Adds each event to its user's and its SDK's counters with an atomic upsert
    /// (`n = n + excluded.n`).
    async fn apply(tx: &DatabaseTransaction, events: &[&Self]) -> Result<(), EffectError> {
        for event in events {
            let (impressions, ad_requests) = match event.event {
                AdEvent::Impression => (1, 0),
                AdEvent::AdRequest => (0, 1),
            };
            for (scope, key) in [
                (Scope::User, &event.username),
                (Scope::Sdk, &event.sdk_version),
            ] {
                add(tx, scope, key, impressions, ad_requests).await?;
            }
        }
        Ok(())
    }
}

/// `n = n + excluded.n` for both counts of one (scope, key).
async fn add(
    tx: &DatabaseTransaction,
    scope: Scope,
    key: &str,
    impressions: i64,
    ad_requests: i64,
) -> Result<(), EffectError> {
    let sum = |column: ad_counter::Column| {
        Expr::col((ad_counter::Entity, column)).add(Expr::col((Alias::new("excluded"), column)))
    };
    ad_counter::Entity::insert(ad_counter::ActiveModel {
        scope: Set(scope.as_str().to_owned()),
        key: Set(key.to_owned()),
        impressions: Set(impressions),
        ad_requests: Set(ad_requests),
    })
    .on_conflict(
        OnConflict::columns([ad_counter::Column::Scope, ad_counter::Column::Key])
            .value(
                ad_counter::Column::Impressions,
                sum(ad_counter::Column::Impressions),
            )
            .value(
                ad_counter::Column::AdRequests,
                sum(ad_counter::Column::AdRequests),
            )
            .to_owned(),
    )
    .exec_without_returning(tx)
    .await?;
    Ok(())
}
