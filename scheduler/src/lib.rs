//! Conveyor's scheduler: puts work on the queues on a timetable and keeps the queues
//! tidy.
//!
//! # Layout
//! - [`rates`]: the rates timetable (apalis-cron), enqueued once per tick across
//!   replicas by per-tick idempotency keys.
//! - [`housekeeping`]: forgets acknowledged queue tasks; pushes again the tasks of
//!   jobs that waited far too long (a push lost to a crash between record and queue);
//!   deletes finished job records past their retention and throughput minutes past
//!   the history.
#![warn(missing_docs)]

pub mod housekeeping;
pub mod rates;

use std::future::Future;

use engine::config::HousekeepingConfig;
use engine::{JobStore, Queue};
use features::rates::RatesConfig;

pub use rates::{RatesTimetable, TimetableError};

/// Everything the scheduler role runs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// Job records.
    pub store: JobStore,
    /// The queues.
    pub queue: Queue,
    /// Every logical queue of the build's job kinds (vacuumed by housekeeping).
    pub queues: Vec<&'static str>,
    /// Housekeeping settings.
    pub housekeeping: HousekeepingConfig,
    /// The rates timetable's settings.
    pub rates: RatesConfig,
    /// Attempt budget of the jobs it enqueues.
    pub max_attempts: u32,
    /// How housekeeping bounds the stored math values.
    pub math_store: features::math::purge::StoreBounds,
}

impl Scheduler {
    /// Runs the timetables and housekeeping until `shutdown` completes. A bad
    /// `RATES_CRON` is an error at once (a bad `RATES_TZ` never gets this far).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), TimetableError> {
        let timetable = RatesTimetable::new(
            self.store.clone(),
            self.queue.clone(),
            self.rates.clone(),
            self.max_attempts,
        )?;
        if timetable.is_none() {
            tracing::info!("rates timetable off (RATES_CRON=off)");
        }
        let timetable = async move {
            match timetable {
                Some(timetable) => timetable.run().await,
                None => std::future::pending().await,
            }
        };
        let housekeeping = housekeeping::run(
            self.store,
            self.queue,
            self.queues,
            self.housekeeping,
            self.math_store,
            std::future::pending(),
        );
        tokio::select! {
            () = shutdown => Ok(()),
            () = housekeeping => Ok(()),
            result = timetable => result,
        }
    }
}
