//! End-to-end tests: the whole system on port 0, on the embedded backends and on
//! Postgres + Redis.

mod aborts;
mod ads;
mod batching;
mod delivery;
mod fanout;
mod first_tasks;
mod helpers;
mod jobs_lifecycle;
mod math;
mod rates;
mod reports;
mod schedules;
mod security;
mod servers;
mod system;
mod throughput;
mod ui;
