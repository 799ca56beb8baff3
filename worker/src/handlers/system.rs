//! `system.*` jobs.

use std::time::Duration;

use jobs::kind::NoopArgs;
use jobs::store::JobRecord;
use serde_json::json;

use super::{HandlerError, Output};

/// `system.noop`: sleeps `sleep_ms`, fails its first `fail_times` attempts, then
/// succeeds with `{"attempt": n}`. No effect beyond its job record.
pub async fn noop(record: &JobRecord) -> Result<Output, HandlerError> {
    let args: NoopArgs = serde_json::from_value(record.args.clone())?;
    if args.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(args.sleep_ms)).await;
    }
    let attempt = u32::try_from(record.attempts).unwrap_or(0);
    if attempt <= args.fail_times {
        return Err(HandlerError::Failed(format!(
            "failing on purpose: attempt {attempt} of the first {} fails",
            args.fail_times
        )));
    }
    Ok(Output::result(json!({ "attempt": attempt })))
}
