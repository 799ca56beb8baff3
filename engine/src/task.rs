//! What travels on a queue.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{JobId, TaskId};
use crate::record::JobRecord;

/// One delivery of a job: the queue carries this, the job record holds the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The job record's id.
    pub job_id: JobId,
    /// This delivery's id.
    pub task_id: TaskId,
    /// The job kind's wire name.
    pub kind: String,
    /// The job's arguments, on its first task when they are small
    /// (`TASK_INLINE_ARGS_MAX_BYTES`): the worker then runs the first attempt without
    /// reading the record, presuming it as submitted, and the outcome's conditional
    /// write tells whether it was (see `JobStore::presume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
}

/// A task to push: its envelope and the logical queue it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Logical queue (before the deployment's prefix).
    pub queue: String,
    /// What the queue carries.
    pub envelope: Envelope,
}

impl Task {
    /// The task a record currently expects, on the record's queue. Its worker reads
    /// the record before it runs the job.
    pub fn of(record: &JobRecord) -> Self {
        Task {
            queue: record.queue.clone(),
            envelope: Envelope {
                job_id: record.id,
                task_id: record.task_id,
                kind: record.kind.clone(),
                args: None,
            },
        }
    }
}
