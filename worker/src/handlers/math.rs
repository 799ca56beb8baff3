//! `math.*` jobs: compute on a blocking thread, cache the digits with the success.

use chrono::Utc;
use entity::math_result;
use jobs::JobKind;
use jobs::math::{MathArgs, compute};
use jobs::store::JobRecord;
use sea_orm::EntityTrait;
use sea_orm::sea_query::OnConflict;
use serde_json::json;

use super::{Context, HandlerError, Output};

/// Computes the job's value and stores it in `math_results` in the same transaction
/// that marks the job succeeded; the job's result names the cache key.
pub async fn run(
    kind: JobKind,
    record: &JobRecord,
    context: &Context,
) -> Result<Output, HandlerError> {
    let args: MathArgs = serde_json::from_value(record.args.clone())?;
    if args.algo.kind() != kind {
        return Err(HandlerError::Failed(format!(
            "{kind} cannot compute {}",
            args.algo.as_str()
        )));
    }
    let config = context.math.clone();
    // CPU-bound for up to seconds: off the async workers. A timed-out attempt leaves
    // its thread to finish; its result is then simply not recorded.
    let computed = tokio::task::spawn_blocking(move || compute(&config, &args))
        .await
        .map_err(|e| HandlerError::Failed(format!("computation aborted: {e}")))?
        .map_err(HandlerError::Failed)?;
    context.metrics.math(args.algo.as_str(), computed.elapsed);
    let key = args.cache_key();
    let digit_count = i64::try_from(computed.digits.len()).unwrap_or(i64::MAX);
    let elapsed_ms = i64::try_from(computed.elapsed.as_millis()).unwrap_or(i64::MAX);
    let row = math_result::ActiveModel {
        key: sea_orm::Set(key.clone()),
        algo: sea_orm::Set(args.algo.as_str().to_owned()),
        digits: sea_orm::Set(computed.digits),
        digit_count: sea_orm::Set(digit_count),
        elapsed_ms: sea_orm::Set(elapsed_ms),
        job_id: sea_orm::Set(record.id.clone()),
        created_at: sea_orm::Set(Utc::now()),
    };
    let effect: jobs::store::Effect<'static> = Box::new(move |tx| {
        Box::pin(async move {
            // Another job may have cached the same value first: keep the first.
            math_result::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(math_result::Column::Key)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(tx)
                .await
                .map(|_| ())
        })
    });
    Ok(Output {
        result: json!({ "key": key, "digits": digit_count, "elapsed_ms": elapsed_ms }),
        effect: Some(effect),
    })
}
