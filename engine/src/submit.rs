//! Submitting a job: a `queued` job record, then its first task on the queue. Shared
//! by every producer (the api's routes, the scheduler's timetables).

use std::time::Duration;

use crate::job::NewJob;
use crate::queue::{Queue, QueueError};
use crate::store::{Created, JobStore, StoreError};

/// Why a job could not be submitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The database did not answer.
    #[error("database unavailable: {0}")]
    Database(#[from] StoreError),
    /// The queue did not take the task.
    #[error("queue unavailable: {0}")]
    Queue(#[from] QueueError),
    /// The task submitting the job ended without an answer (it panicked).
    #[error("submitting the job failed: {0}")]
    Lost(String),
}

/// Creates the job and pushes its first task; an idempotency key seen within its
/// window returns the first job instead (and pushes nothing).
///
/// If the push fails the record is removed again, so that no job claims to be queued
/// when it is not, and its idempotency key is free for the next try.
///
/// The two steps run on a task of their own that the caller only waits for: a caller
/// dropped half-way (a client that hangs up drops its request's handler) would
/// otherwise leave a record written and its task never pushed.
pub async fn submit(store: &JobStore, queue: &Queue, job: NewJob) -> Result<Created, SubmitError> {
    let (store, queue) = (store.clone(), queue.clone());
    tokio::spawn(async move { create_then_push(&store, &queue, job).await })
        .await
        .map_err(|err| SubmitError::Lost(err.to_string()))?
}

async fn create_then_push(
    store: &JobStore,
    queue: &Queue,
    job: NewJob,
) -> Result<Created, SubmitError> {
    let created = store.create(job).await?;
    let Created::New(record) = &created else {
        return Ok(created);
    };
    if let Err(err) = queue.push(&store.first_task(record), Duration::ZERO).await {
        if let Err(discard) = store.discard(record).await {
            tracing::error!(job = %record.id, %discard, "could not discard a job whose push failed");
        }
        return Err(err.into());
    }
    Ok(created)
}
