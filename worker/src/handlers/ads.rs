//! `ads.count`: one atomic upsert per counter, as the job's effect.

use jobs::ads::{AdCountArgs, count};
use jobs::store::JobRecord;
use serde_json::json;

use super::{HandlerError, Output};

/// Counts the event in the transaction that marks the job done: a redelivered job
/// finds the job finished and counts nothing.
pub async fn run(job: &JobRecord) -> Result<Output, HandlerError> {
    let args: AdCountArgs = serde_json::from_value(job.args.clone())?;
    let effect: jobs::store::Effect<'static> =
        Box::new(move |tx| Box::pin(async move { count(tx, &args).await }));
    Ok(Output {
        result: json!({ "counted": 1 }),
        effect: Some(effect),
    })
}
