//! Rates storage: one upsert per day inside the `rates.ingest` job's success
//! transaction (all of a day or none of it), the fetch log, and the routes' reads.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, Utc};
use engine::JobId;
use entity::{rate, rate_fetch};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::BASE;
use super::provider::DayRates;

/// Rates by currency.
pub type Rates = BTreeMap<String, f64>;

/// Stores `day` (the answer to a request for `requested`) for `job_id`: every rate
/// upserted under the provider's date, and the request logged. Re-ingesting a day
/// leaves one row per (date, base, currency), holding the latest answer.
pub async fn store_day(
    tx: &DatabaseTransaction,
    requested: NaiveDate,
    day: &DayRates,
    job_id: JobId,
) -> Result<(), DbErr> {
    let rows = day.rates.iter().map(|(currency, value)| rate::ActiveModel {
        date: Set(day.date),
        base: Set(day.base.clone()),
        currency: Set(currency.clone()),
        rate: Set(*value),
        job_id: Set(job_id.to_string()),
    });
    rate::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                rate::Column::Date,
                rate::Column::Base,
                rate::Column::Currency,
            ])
            .update_columns([rate::Column::Rate, rate::Column::JobId])
            .to_owned(),
        )
        .exec_without_returning(tx)
        .await?;
    let fetch = rate_fetch::ActiveModel {
        requested_date: Set(requested),
        base: Set(day.base.clone()),
        answered_date: Set(day.date),
        currencies: Set(i32::try_from(day.rates.len()).unwrap_or(i32::MAX)),
        job_id: Set(job_id.to_string()),
        fetched_at: Set(Utc::now()),
    };
    rate_fetch::Entity::insert(fetch)
        .on_conflict(
            OnConflict::columns([rate_fetch::Column::RequestedDate, rate_fetch::Column::Base])
                .update_columns([
                    rate_fetch::Column::AnsweredDate,
                    rate_fetch::Column::Currencies,
                    rate_fetch::Column::JobId,
                    rate_fetch::Column::FetchedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(tx)
        .await?;
    Ok(())
}

/// The days from `since` on that need no fetching: rates are stored under them, or
/// the provider, asked after the day was over, answered an earlier date (a holiday).
/// A request answered on the day itself does not count: the day's rates may not have
/// been published yet.
pub async fn covered_dates(
    db: &DatabaseConnection,
    since: NaiveDate,
) -> Result<BTreeSet<NaiveDate>, DbErr> {
    let mut covered: BTreeSet<NaiveDate> = rate::Entity::find()
        .select_only()
        .column(rate::Column::Date)
        .distinct()
        .filter(rate::Column::Base.eq(BASE))
        .filter(rate::Column::Date.gte(since))
        .into_tuple::<NaiveDate>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let fetches = rate_fetch::Entity::find()
        .filter(rate_fetch::Column::Base.eq(BASE))
        .filter(rate_fetch::Column::RequestedDate.gte(since))
        .all(db)
        .await?;
    covered.extend(
        fetches
            .into_iter()
            .filter(|f| f.fetched_at.date_naive() > f.requested_date)
            .map(|f| f.requested_date),
    );
    Ok(covered)
}

/// The newest date with rates.
pub async fn latest_date(db: &DatabaseConnection) -> Result<Option<NaiveDate>, DbErr> {
    rate::Entity::find()
        .select_only()
        .column(rate::Column::Date)
        .filter(rate::Column::Base.eq(BASE))
        .order_by_desc(rate::Column::Date)
        .limit(1)
        .into_tuple::<NaiveDate>()
        .one(db)
        .await
}

/// Every stored day from `from` to `to` (both included, either open), oldest first.
pub async fn days(
    db: &DatabaseConnection,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<BTreeMap<NaiveDate, Rates>, DbErr> {
    let mut query = rate::Entity::find().filter(rate::Column::Base.eq(BASE));
    if let Some(from) = from {
        query = query.filter(rate::Column::Date.gte(from));
    }
    if let Some(to) = to {
        query = query.filter(rate::Column::Date.lte(to));
    }
    let rows = query
        .order_by_asc(rate::Column::Date)
        .order_by_asc(rate::Column::Currency)
        .all(db)
        .await?;
    let mut days: BTreeMap<NaiveDate, Rates> = BTreeMap::new();
    for row in rows {
        days.entry(row.date)
            .or_default()
            .insert(row.currency, row.rate);
    }
    Ok(days)
}

/// The rates of one day, if stored.
pub async fn day(db: &DatabaseConnection, date: NaiveDate) -> Result<Option<Rates>, DbErr> {
    Ok(days(db, Some(date), Some(date)).await?.remove(&date))
}
