//! Conveyor's scheduler: puts work on the queues on a timetable and keeps the queues
//! tidy.
//!
//! # Layout
//! - [`config`]: the scheduler role's settings.
//! - [`housekeeping`]: forgets acknowledged queue tasks; pushes again the tasks of
//!   jobs that waited far too long (a push lost to a crash between record and queue).
#![warn(missing_docs)]

pub mod config;
pub mod housekeeping;

pub use config::SchedulerConfig;
pub use housekeeping::run;
