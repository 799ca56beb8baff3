//! Job kinds: each names its queue and its argument type, defined once here and used
//! by producers and consumers alike.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Every kind of job Conveyor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// `system.noop`: no effect but its job record; proves the pipeline and drives
    /// benchmarks and fault tests (it can sleep and fail on request, see [`NoopArgs`]).
    SystemNoop,
    /// `math.factorial`: n! (arguments: [`crate::math::MathArgs`]).
    MathFactorial,
    /// `math.fibonacci`: F(n).
    MathFibonacci,
    /// `math.ackermann`: A(m, n).
    MathAckermann,
    /// `reports.record`: store reports and fold them into the aggregates
    /// (arguments: [`crate::reports::ReportsArgs`]).
    ReportsRecord,
    /// `ads.count`: one ad request or impression for a user and an SDK version
    /// (arguments: [`crate::ads::AdCountArgs`]).
    AdsCount,
    /// `rates.ingest`: fetch one day of currency rates and store it
    /// (arguments: [`crate::rates::RatesArgs`]).
    RatesIngest,
}

impl JobKind {
    /// Every kind.
    pub const ALL: [JobKind; 7] = [
        JobKind::SystemNoop,
        JobKind::MathFactorial,
        JobKind::MathFibonacci,
        JobKind::MathAckermann,
        JobKind::ReportsRecord,
        JobKind::AdsCount,
        JobKind::RatesIngest,
    ];

    /// The wire name, e.g. `system.noop`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::SystemNoop => "system.noop",
            JobKind::MathFactorial => "math.factorial",
            JobKind::MathFibonacci => "math.fibonacci",
            JobKind::MathAckermann => "math.ackermann",
            JobKind::ReportsRecord => "reports.record",
            JobKind::AdsCount => "ads.count",
            JobKind::RatesIngest => "rates.ingest",
        }
    }

    /// The logical queue the kind's tasks go to (before the deployment's prefix).
    pub fn queue(self) -> &'static str {
        match self {
            JobKind::SystemNoop => "default",
            // Heavy CPU work gets its own queue, so that it cannot starve the rest.
            JobKind::MathFactorial | JobKind::MathFibonacci | JobKind::MathAckermann => "math",
            JobKind::ReportsRecord => "reports",
            JobKind::AdsCount => "ads",
            // Waits on a slow upstream must not hold up counting.
            JobKind::RatesIngest => "rates",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text names no job kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job kind '{0}'")]
pub struct UnknownKind(pub String);

impl FromStr for JobKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// Every logical queue, for workers that consume all of them.
pub fn all_queues() -> Vec<&'static str> {
    let mut queues: Vec<_> = JobKind::ALL.into_iter().map(JobKind::queue).collect();
    queues.sort_unstable();
    queues.dedup();
    queues
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_wire_name() {
        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>(), Ok(kind));
        }
        assert!("system.nope".parse::<JobKind>().is_err());
    }

    #[test]
    fn noop_args_default_to_an_instant_success() {
        let args: NoopArgs = serde_json::from_str("{}").expect("empty object is valid");
        assert_eq!(args, NoopArgs::default());
        assert!(serde_json::from_str::<NoopArgs>(r#"{"sleep":1}"#).is_err());
    }
}
