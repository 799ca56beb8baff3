//! What every route shares.

use engine::config::{DeliveryConfig, HousekeepingConfig};
use engine::metrics::Metrics;
use engine::{JobStore, Queue};
use features::Features;
use features::ads::AdsConfig;
use features::math::MathConfig;
use features::rates::RatesConfig;
use features::reports::ReportsConfig;

use crate::config::ApiConfig;

/// Shared state of the api, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Job records.
    pub store: JobStore,
    /// The queues.
    pub queue: Queue,
    /// Every logical queue of the build's job kinds, for `/queues` and `/metrics`.
    pub queues: Vec<&'static str>,
    /// Every job kind of the build, sorted by name (the registry's order), for the
    /// `kind` filter of `GET /jobs` and each queue's kinds in `/queues`.
    pub kinds: Vec<engine::Kind>,
    /// Process metrics.
    pub metrics: Metrics,
    /// Api settings.
    pub config: ApiConfig,
    /// Delivery settings (attempt budget of new jobs).
    pub delivery: DeliveryConfig,
    /// The scheduler's housekeeping settings, shown by `/schedules`.
    pub housekeeping: HousekeepingConfig,
    /// The features' settings and clients.
    pub features: Features,
}

impl AppState {
    /// Limits and routing of the math routes.
    pub fn math(&self) -> &MathConfig {
        &self.features.config.math
    }

    /// Thresholds of the report statistics.
    pub fn reports(&self) -> &ReportsConfig {
        &self.features.config.reports
    }

    /// The VAST upstream of `/ad`.
    pub fn ads(&self) -> &AdsConfig {
        &self.features.config.ads
    }

    /// Time zone and look-back of the rates routes.
    pub fn rates(&self) -> &RatesConfig {
        &self.features.config.rates
    }
}
