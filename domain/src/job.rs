//! The job lifecycle shared by the api, the workers and the scheduler.

use std::fmt;
use std::str::FromStr;

/// Where a job is in its life.
///
/// `queued → running → succeeded`, or `running → failed` (a retry is scheduled)
/// `→ running …`, until `max_attempts` is spent and the job is `dead`.
/// A job that has not started can be `cancelled`, and so can a `running` one, by an
/// abort (its worker abandons the attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting on its queue.
    Queued,
    /// A worker holds it.
    Running,
    /// Finished with a result.
    Succeeded,
    /// The last attempt failed; another attempt is scheduled.
    Failed,
    /// Every attempt failed; kept with its last error until retried by hand.
    Dead,
    /// Cancelled by an operator: before it started, or aborted while it ran.
    Cancelled,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    /// The wire name (`queued`, `running`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// True once nothing more will happen to the job without an operator.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Dead | JobStatus::Cancelled
        )
    }

    /// A job may be cancelled while no worker holds it and it has not finished.
    ///
    /// `failed` counts as not started: it is waiting for its next attempt.
    pub fn can_cancel(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::Failed)
    }

    /// A job may be aborted (cancelled even while a worker holds it) until it has
    /// finished: the worker running it abandons the attempt.
    pub fn can_abort(self) -> bool {
        !self.is_terminal()
    }

    /// A job may be re-enqueued by hand once it has failed or died.
    pub fn can_retry(self) -> bool {
        matches!(self, JobStatus::Failed | JobStatus::Dead)
    }

    /// May a delivered task start an attempt of a job in this status?
    ///
    /// `running` is allowed on purpose: it is what a job looks like after the worker
    /// that held it was killed, and its redelivered task must run it again.
    pub fn can_start(self) -> bool {
        self.waits() || self == JobStatus::Running
    }

    /// Is a job in this status waiting for its task to start an attempt (no attempt
    /// under way, none finished it)?
    pub fn waits(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::Failed)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the six statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown status '{}': expected one of queued, running, succeeded, failed, dead, cancelled",
            self.0
        )
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_wire_name() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
        }
        assert!("QUEUED".parse::<JobStatus>().is_err());
        assert!("".parse::<JobStatus>().is_err());
    }

    #[test]
    fn only_jobs_that_have_not_started_can_be_cancelled() {
        let cancellable: Vec<_> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.can_cancel())
            .collect();
        assert_eq!(cancellable, [JobStatus::Queued, JobStatus::Failed]);
    }

    #[test]
    fn every_unfinished_job_can_be_aborted_and_no_finished_one() {
        let abortable: Vec<_> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.can_abort())
            .collect();
        assert_eq!(
            abortable,
            [JobStatus::Queued, JobStatus::Running, JobStatus::Failed]
        );
        for status in JobStatus::ALL {
            assert!(!status.can_cancel() || status.can_abort(), "{status}");
        }
    }

    #[test]
    fn only_failed_and_dead_jobs_can_be_retried_by_hand() {
        let retriable: Vec<_> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.can_retry())
            .collect();
        assert_eq!(retriable, [JobStatus::Failed, JobStatus::Dead]);
    }

    #[test]
    fn a_redelivered_task_of_a_finished_job_does_not_start() {
        for status in JobStatus::ALL {
            assert_eq!(status.can_start(), !status.is_terminal(), "{status}");
        }
    }

    #[test]
    fn only_queued_and_failed_jobs_wait_for_an_attempt() {
        let waiting: Vec<_> = JobStatus::ALL.into_iter().filter(|s| s.waits()).collect();
        assert_eq!(waiting, [JobStatus::Queued, JobStatus::Failed]);
    }
}
