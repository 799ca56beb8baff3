//! `ads.count`: one ad request or impression for a user and an SDK version, counted by
//! an atomic upsert in the transaction that marks the job done (so a redelivered job
//! counts nothing). The jobs recorded together are counted together: one upsert per
//! counter with their summed counts, instead of one per job on the same hot rows.

use std::collections::BTreeMap;

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
    const KIND: Kind = Kind::io("ads.count", "ads");
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
    /// Adds the events to their users' and SDKs' counters: the counts summed per
    /// counter, then one atomic upsert (`n = n + excluded.n`) per counter, in key
    /// order so that concurrent batches lock shared counters in the same order.
    async fn apply(tx: &DatabaseTransaction, events: &[&Self]) -> Result<(), EffectError> {
        let mut sums: BTreeMap<Counter<'_>, Counts> = BTreeMap::new();
        for event in events {
            for counter in [
                (Scope::User, event.username.as_str()),
                (Scope::Sdk, event.sdk_version.as_str()),
            ] {
                let sum = sums.entry(counter).or_default();
                match event.event {
                    AdEvent::Impression => sum.impressions += 1,
                    AdEvent::AdRequest => sum.ad_requests += 1,
                }
            }
        }
        let rows: Vec<_> = sums.into_iter().collect();
        for chunk in rows.chunks(UPSERT_CHUNK) {
            add(tx, chunk).await?;
        }
        Ok(())
    }
}

/// A counter: whose (a user's or an SDK's) and which one.
type Counter<'a> = (Scope, &'a str);

/// What to add to a counter.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    impressions: i64,
    ad_requests: i64,
}

/// Counters per upsert statement: a statement of bounded size and parameter count,
/// however many counters a batch touches.
const UPSERT_CHUNK: usize = 64;

/// `n = n + excluded.n` for both counts of each counter in `sums`.
async fn add(tx: &DatabaseTransaction, sums: &[(Counter<'_>, Counts)]) -> Result<(), EffectError> {
    let sum = |column: ad_counter::Column| {
        Expr::col((ad_counter::Entity, column)).add(Expr::col((Alias::new("excluded"), column)))
    };
    let rows = sums
        .iter()
        .map(|((scope, key), counts)| ad_counter::ActiveModel {
            scope: Set(scope.as_str().to_owned()),
            key: Set((*key).to_owned()),
            impressions: Set(counts.impressions),
            ad_requests: Set(counts.ad_requests),
        });
    ad_counter::Entity::insert_many(rows)
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
