//! Conveyor's HTTP API (poem + poem-openapi): validates, answers cheap things inline,
//! enqueues the rest, and reads results back. It never writes domain results itself.
//!
//! # Layout
//! - [`config`]: the api role's settings.
//! - [`state`]: what every route shares (job store, queue, metrics, settings).
//! - [`auth`]: `ADMIN_TOKEN`, the bearer token of the mutating operator routes.
//! - [`error`]: the JSON error body of the system and job routes.
//! - [`enqueue`]: create a job record and push its first task, honouring `Idempotency-Key`.
//! - [`system`]: `/`, `/ping`, `/health`, `/ready`, `/metrics`.
//! - [`jobs`]: `/jobs…` and `/queues…` (with the throughput history).
//! - [`ads`]: `/ad`, `/impression`, `/statistics`.
//! - [`reports`]: `/process_report(s)`, `/process_statistics`, `/process_outliers`.
//! - [`rates`]: `/rates`, `/rates/history`, `/rates/convert`, `POST /rates/refresh`,
//!   `/get_currency`.
//! - [`math`]: `/factorial`, `/fibonacci`, `/ackermann`, `POST /jobs/math`.
//! - [`fanout`]: `/api/all`, `/api/first`, `/api/within-timeout`, `/api/smart`.
//! - [`schedules`]: `/schedules`, the timetables with their next and last runs.
//! - [`text`]: a body's string field that takes JSON strings only.
//! - [`ui`]: `/ui`, the operator dashboard (embedded HTML, CSS and JS over the JSON routes).
//! - [`contract`]: what `/openapi.json` declares beyond the routes' types (required
//!   parameters, bounds, the bearer scheme).
//! - [`allow`]: the `Allow` header of a 405, from the OpenAPI document.
//! - [`app`]: the routes, `/docs` and `/openapi.json` assembled; [`serve`] runs them.
//! - [`server`]: the server loop under them, with header timeout and connection bound.
#![warn(missing_docs)]

pub mod ads;
pub mod allow;
pub mod app;
pub mod auth;
pub mod config;
pub mod contract;
pub mod enqueue;
pub mod error;
pub mod fanout;
pub mod jobs;
pub mod math;
pub mod rates;
pub mod reports;
pub mod schedules;
pub mod server;
pub mod state;
pub mod system;
pub mod text;
pub mod ui;

pub use app::{app, serve};
pub use config::ApiConfig;
pub use state::AppState;
