//! Job handlers, one module per feature. A handler turns a job record's arguments into
//! a result and, optionally, an effect the executor applies with the success record.

pub mod ads;
pub mod math;
pub mod rates;
pub mod reports;
pub mod system;

use std::sync::Arc;

use jobs::JobKind;
use jobs::math::MathConfig;
use jobs::metrics::Metrics;
use jobs::rates::provider::RatesProvider;
use jobs::store::{Effect, JobRecord};
use serde_json::Value;

/// What a successful attempt produced.
pub struct Output {
    /// Stored in the job record.
    pub result: Value,
    /// Database writes applied in the transaction that marks the job succeeded.
    pub effect: Option<Effect<'static>>,
}

impl Output {
    /// A result with no database effect.
    pub fn result(result: Value) -> Self {
        Output {
            result,
            effect: None,
        }
    }
}

/// Why an attempt failed; the message lands in the job record.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The arguments do not fit the kind; retrying cannot help, but the attempt
    /// budget still bounds it.
    #[error("invalid arguments: {0}")]
    InvalidArgs(#[from] serde_json::Error),
    /// The work failed.
    #[error("{0}")]
    Failed(String),
}

/// What handlers may need besides the job record.
#[derive(Debug, Clone)]
pub struct Context {
    /// Limits of the math jobs.
    pub math: MathConfig,
    /// Process metrics.
    pub metrics: Metrics,
    /// Where `rates.ingest` fetches from.
    pub rates: Arc<dyn RatesProvider>,
}

impl Default for Context {
    /// Default limits and the default provider (frankfurter), for tests and tools.
    fn default() -> Self {
        Context {
            math: MathConfig::default(),
            metrics: Metrics::default(),
            rates: jobs::rates::provider::from_config(&jobs::rates::RatesConfig::default()),
        }
    }
}

/// Runs the handler of `kind` for one attempt of `record`.
pub async fn run(
    kind: JobKind,
    record: &JobRecord,
    context: &Context,
) -> Result<Output, HandlerError> {
    match kind {
        JobKind::SystemNoop => system::noop(record).await,
        JobKind::MathFactorial | JobKind::MathFibonacci | JobKind::MathAckermann => {
            math::run(kind, record, context).await
        }
        JobKind::ReportsRecord => reports::run(record).await,
        JobKind::AdsCount => ads::run(record).await,
        JobKind::RatesIngest => rates::run(record, context).await,
    }
}
