//! What travels on a queue.

use serde::{Deserialize, Serialize};

use crate::kind::JobKind;
use crate::store::JobRecord;

/// One delivery of a job: the queue carries this, the job record holds the rest.
///
/// `task_id` is a fresh ULID per push. The job record names the task entitled to run
/// it, so a task superseded by a manual retry is recognised and skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The job record's id.
    pub job_id: String,
    /// This delivery's id.
    pub task_id: String,
    /// The job kind's wire name.
    pub kind: String,
}

impl Envelope {
    /// The task a record currently expects: its id, task id and kind.
    pub fn of(record: &JobRecord) -> Self {
        Envelope {
            job_id: record.id.clone(),
            task_id: record.task_id.clone(),
            kind: record.kind.clone(),
        }
    }

    /// The logical queue of the task: its kind's. A kind this build does not know
    /// goes to `default`, where a worker records it as failed rather than losing it.
    pub fn queue(&self) -> &'static str {
        self.kind
            .parse::<JobKind>()
            .map_or("default", JobKind::queue)
    }
}
