//! What travels on a queue.

use serde::{Deserialize, Serialize};

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
