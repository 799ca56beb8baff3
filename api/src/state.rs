//! What every route shares.

use jobs::config::DeliveryConfig;
use jobs::metrics::Metrics;
use jobs::{JobStore, Queue};

use crate::config::ApiConfig;
use crate::fanout::FanoutState;

/// Shared state of the api, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Job records.
    pub store: JobStore,
    /// The queues.
    pub queue: Queue,
    /// Process metrics.
    pub metrics: Metrics,
    /// Api settings.
    pub config: ApiConfig,
    /// Delivery settings (attempt budget of new jobs).
    pub delivery: DeliveryConfig,
    /// The fan-out routes' client and in-flight bound.
    pub fanout: FanoutState,
    /// Limits and routing of the math routes.
    pub math: jobs::math::MathConfig,
    /// Thresholds of the report statistics.
    pub reports: jobs::reports::ReportsConfig,
    /// The VAST upstream of `/ad`.
    pub ads: jobs::ads::AdsConfig,
    /// Time zone and look-back of the rates routes.
    pub rates: jobs::rates::RatesConfig,
    /// The scheduler's housekeeping settings, shown by `/schedules`.
    pub housekeeping: crate::schedules::HousekeepingSettings,
}
