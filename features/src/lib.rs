//! Conveyor's product features, each with the routes and wire format of the Python
//! service it replaces: per feature its job kinds (arguments, run, effect), settings,
//! reads and upstream clients. None names a queue backend or apalis: jobs reach the
//! engine through its [`engine::Job`] trait and the [`registry`].
//!
//! # Layout
//! - [`system`]: `system.noop`, the smallest job kind.
//! - [`math`]: factorial, Fibonacci, Ackermann: limits, computation, `math.*` jobs.
//! - [`reports`]: server process reports: `reports.record`, statistics, outliers.
//! - [`ads`]: ad requests and impressions: `ads.count`, the counters' reads.
//! - [`rates`]: currency rates: `rates.ingest`, its providers, storage and reads.
//! - [`fanout`]: the upstream fan-out with deadlines (no queue).
//! - here: [`FeaturesConfig`], [`Features`] (what they share at run time) and
//!   [`registry`], every job kind of this build.
#![warn(missing_docs)]

pub mod ads;
pub mod fanout;
pub mod math;
pub mod rates;
pub mod reports;
pub mod system;

use std::sync::Arc;

use engine::Registry;
use engine::metrics::Metrics;
use sea_orm::DatabaseConnection;

use crate::ads::AdsConfig;
use crate::fanout::{FanoutConfig, Fanouts};
use crate::math::{MathConfig, MathMetrics, Memo};
use crate::rates::RatesConfig;
use crate::rates::provider::RatesProvider;
use crate::reports::ReportsConfig;

/// Settings of every feature, from the environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FeaturesConfig {
    /// Heavy math: limits and inline/queued routing.
    #[command(flatten)]
    pub math: MathConfig,
    /// Report statistics: readiness gate and outlier band.
    #[command(flatten)]
    pub reports: ReportsConfig,
    /// The ad routes' upstream.
    #[command(flatten)]
    pub ads: AdsConfig,
    /// Currency rates: provider, timetable, look-back.
    #[command(flatten)]
    pub rates: RatesConfig,
    /// The fan-out routes.
    #[command(flatten)]
    pub fanout: FanoutConfig,
}

/// What the features of one process share at run time: their settings, their metrics
/// and their upstream clients. Make one per process (it registers metrics).
#[derive(Debug, Clone)]
pub struct Features {
    /// The settings.
    pub config: FeaturesConfig,
    /// Math computation times.
    pub math_metrics: MathMetrics,
    /// Queued math results kept in memory.
    pub math_memo: Memo,
    /// Where `rates.ingest` fetches from.
    pub rates: Arc<dyn RatesProvider>,
    /// The fan-out routes' client and in-flight bound.
    pub fanouts: Fanouts,
}

impl Features {
    /// The features under `config`, their metrics registered with `metrics`.
    pub fn new(config: FeaturesConfig, metrics: &Metrics) -> Self {
        Features {
            math_metrics: MathMetrics::register(metrics),
            math_memo: Memo::new(config.math.cache_bytes),
            rates: rates::provider::from_config(&config.rates),
            fanouts: Fanouts::new(config.fanout.clone(), metrics),
            config,
        }
    }
}

/// Every job kind of this build, over `db`. A new kind is its file and one line here.
pub fn registry(features: &Features, db: &DatabaseConnection) -> Registry {
    let (limits, timings) = (&features.config.math, &features.math_metrics);
    Registry::new()
        .register(system::Noop)
        .register(math::Compute::<math::Factorial>::new(limits, timings, db))
        .register(math::Compute::<math::Fibonacci>::new(limits, timings, db))
        .register(math::Compute::<math::Ackermann>::new(limits, timings, db))
        .register(reports::Record)
        .register(ads::Count)
        .register(rates::Ingest::new(features.rates.clone()))
}
