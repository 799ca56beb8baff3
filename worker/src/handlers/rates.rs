//! `rates.ingest`: fetch one day from the configured provider and store all of it in
//! the transaction that marks the job done.

use jobs::rates::RatesArgs;
use jobs::rates::store::store_day;
use jobs::store::JobRecord;
use serde_json::json;

use super::{Context, HandlerError, Output};

/// A provider failure fails the attempt (the executor retries with backoff, then the
/// job is dead with the provider's message); nothing is written for a failed day.
pub async fn run(job: &JobRecord, context: &Context) -> Result<Output, HandlerError> {
    let args: RatesArgs = serde_json::from_value(job.args.clone())?;
    let provider = context.rates.name();
    let day = context
        .rates
        .fetch(args.date)
        .await
        .map_err(|e| HandlerError::Failed(e.to_string()))?;
    let result = json!({
        "provider": provider,
        "requested": args.date,
        "date": day.date,
        "base": day.base,
        "currencies": day.rates.len(),
    });
    let job_id = job.id.clone();
    let effect: jobs::store::Effect<'static> =
        Box::new(move |tx| Box::pin(async move { store_day(tx, args.date, &day, &job_id).await }));
    Ok(Output {
        result,
        effect: Some(effect),
    })
}
