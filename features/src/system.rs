//! `system.noop`: no effect but its job record. It proves the pipeline and drives
//! benchmarks and fault tests: it can sleep, and fail on request.
//!
//! It is also the smallest complete job kind, the one ARCHITECTURE.md walks through:
//! the arguments, the [`Job`] implementation, and one line in [`crate::registry`].

use std::time::Duration;

use engine::{Attempt, Done, Job, JobError, Kind};
use serde::{Deserialize, Serialize};

/// Arguments of `system.noop`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopArgs {
    /// Milliseconds to sleep before finishing (simulated work).
    #[serde(default)]
    pub sleep_ms: u64,
    /// Fail this many attempts before succeeding (exercises retries and `dead`).
    #[serde(default)]
    pub fail_times: u32,
}

/// What a `system.noop` job records as its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoopOutput {
    /// The attempt that succeeded.
    pub attempt: u32,
}

/// The `system.noop` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

impl Job for Noop {
    const KIND: Kind = Kind::io("system.noop", "default");
    type Args = NoopArgs;
    type Output = NoopOutput;
    type Effect = ();

    /// Sleeps `sleep_ms`, fails its first `fail_times` attempts, then succeeds with
    /// `{"attempt": n}`.
    async fn run(&self, attempt: Attempt<NoopArgs>) -> Result<Done<NoopOutput, ()>, JobError> {
        let args = attempt.args;
        if args.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.sleep_ms)).await;
        }
        if attempt.number <= args.fail_times {
            return Err(JobError::failed(format!(
                "failing on purpose: attempt {} of the first {} fails",
                attempt.number, args.fail_times
            )));
        }
        Ok(Done::output(NoopOutput {
            attempt: attempt.number,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noop_args_default_to_an_instant_success() {
        let args: NoopArgs = serde_json::from_str("{}").expect("empty object is valid");
        assert_eq!(args, NoopArgs::default());
        assert!(serde_json::from_str::<NoopArgs>(r#"{"sleep":1}"#).is_err());
    }

    #[tokio::test]
    async fn noop_fails_its_first_attempts_then_names_the_one_that_succeeded() {
        let args = NoopArgs {
            sleep_ms: 0,
            fail_times: 1,
        };
        let attempt = |number| Attempt {
            job_id: engine::JobId::generate(),
            number,
            args: args.clone(),
        };
        let first = Noop.run(attempt(1)).await.unwrap_err().to_string();
        assert!(first.contains("failing on purpose"), "{first}");
        let second = Noop.run(attempt(2)).await.expect("the second succeeds");
        assert_eq!(second.output, NoopOutput { attempt: 2 });
    }
}
