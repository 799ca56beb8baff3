//! Paused queues: an operator's pause is a row, so that every worker process sees it
//! and it outlasts restarts. Workers read the set every `QUEUE_PAUSE_POLL_MS`.

use std::collections::BTreeSet;

use chrono::Utc;
use entity::queue_pause;
use sea_orm::{EntityTrait, Set};

use super::{JobStore, StoreError};

impl JobStore {
    /// The paused queues.
    pub async fn paused_queues(&self) -> Result<BTreeSet<String>, StoreError> {
        let rows = queue_pause::Entity::find().all(self.db()).await?;
        Ok(rows.into_iter().map(|row| row.queue).collect())
    }

    /// Pauses `queue`; pausing a paused queue changes nothing.
    pub async fn pause_queue(&self, queue: &str) -> Result<(), StoreError> {
        let row = queue_pause::ActiveModel {
            queue: Set(queue.to_owned()),
            paused_at: Set(Utc::now()),
        };
        queue_pause::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Resumes `queue`; resuming a running queue changes nothing.
    pub async fn resume_queue(&self, queue: &str) -> Result<(), StoreError> {
        queue_pause::Entity::delete_by_id(queue.to_owned())
            .exec(self.db())
            .await?;
        Ok(())
    }
}
