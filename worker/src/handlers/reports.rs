//! `reports.record`: store the reports and update the aggregates, as the job's effect.

use jobs::reports::{ReportsArgs, record};
use jobs::store::JobRecord;
use serde_json::json;

use super::{HandlerError, Output};

/// Validates nothing new (the api did); the effect runs in the transaction that marks
/// the job succeeded, so a redelivered job never counts its reports twice.
pub async fn run(job: &JobRecord) -> Result<Output, HandlerError> {
    let args: ReportsArgs = serde_json::from_value(job.args.clone())?;
    let stored = args.reports.len();
    let job_id = job.id.clone();
    let effect: jobs::store::Effect<'static> =
        Box::new(move |tx| Box::pin(async move { record(tx, &job_id, &args.reports).await }));
    Ok(Output {
        result: json!({ "stored": stored }),
        effect: Some(effect),
    })
}
