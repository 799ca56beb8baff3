//! The `math.factorial`, `math.fibonacci` and `math.ackermann` kinds: compute on a
//! blocking thread, and cache the digits as the job's effect (in the transaction that
//! marks it succeeded); the job's result names the cache key.

use std::marker::PhantomData;
use std::time::Duration;

use chrono::Utc;
use engine::metrics::Metrics;
use engine::{Attempt, Done, Effect, EffectError, Job, JobError, Kind};
use entity::math_result;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseConnection, DatabaseTransaction, EntityTrait, QuerySelect, Set};
use serde::Serialize;

use super::{Algo, MathArgs, MathConfig, compute};

/// One of the three functions, as a type: which kind computes it.
pub trait Function: Send + Sync + 'static {
    /// The function.
    const ALGO: Algo;
    /// Its kind.
    const KIND: Kind;
}

/// n!
#[derive(Debug)]
pub struct Factorial;

/// F(n).
#[derive(Debug)]
pub struct Fibonacci;

/// A(m, n).
#[derive(Debug)]
pub struct Ackermann;

impl Function for Factorial {
    const ALGO: Algo = Algo::Factorial;
    const KIND: Kind = Kind::cpu("math.factorial", MATH_QUEUE);
}

impl Function for Fibonacci {
    const ALGO: Algo = Algo::Fibonacci;
    const KIND: Kind = Kind::cpu("math.fibonacci", MATH_QUEUE);
}

impl Function for Ackermann {
    const ALGO: Algo = Algo::Ackermann;
    const KIND: Kind = Kind::cpu("math.ackermann", MATH_QUEUE);
}

/// Heavy CPU work gets its own queue, so that it cannot starve the rest.
const MATH_QUEUE: &str = "math";

/// Time to compute and render one value, by algo, inline or in a job.
#[derive(Debug, Clone)]
pub struct MathMetrics {
    seconds: Family<AlgoLabels, Histogram>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlgoLabels {
    algo: &'static str,
}

impl MathMetrics {
    /// Registers `math_duration_seconds` with the process's metrics (once per process).
    pub fn register(metrics: &Metrics) -> Self {
        let seconds = Family::<AlgoLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_01, 4.0, 12))) as fn() -> Histogram,
        );
        metrics.register(
            "math_duration_seconds",
            "Time to compute and render one math value, inline or in a job, by algo",
            seconds.clone(),
        );
        MathMetrics { seconds }
    }

    /// Records one computation.
    pub fn observe(&self, algo: Algo, elapsed: Duration) {
        self.seconds
            .get_or_create(&AlgoLabels {
                algo: algo.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// A `math.*` kind: computes `F` within the configured limits, unless its value is
/// cached already.
#[derive(Debug)]
pub struct Compute<F> {
    config: MathConfig,
    metrics: MathMetrics,
    db: DatabaseConnection,
    function: PhantomData<F>,
}

impl<F> Compute<F> {
    /// The kind under these limits, recording its computations in `metrics`, its
    /// values cached in `db`.
    pub fn new(config: &MathConfig, metrics: &MathMetrics, db: &DatabaseConnection) -> Self {
        Compute {
            config: config.clone(),
            metrics: metrics.clone(),
            db: db.clone(),
            function: PhantomData,
        }
    }
}

/// What a `math.*` job records as its result: where its value is cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cached {
    /// The cache key, e.g. `factorial(100000)`.
    pub key: String,
    /// Decimal digits of the value.
    pub digits: i64,
    /// Time to compute and render it (by the job that did).
    pub elapsed_ms: i64,
    /// The value was cached already (by an earlier job): nothing was computed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
}

/// The effect of a `math.*` job: its value, to cache; none when it was cached already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MathValue(Option<math_result::Model>);

impl<F: Function> Job for Compute<F> {
    const KIND: Kind = F::KIND;
    type Args = MathArgs;
    type Output = Cached;
    type Effect = MathValue;

    async fn run(&self, attempt: Attempt<MathArgs>) -> Result<Done<Cached, MathValue>, JobError> {
        let args = attempt.args;
        if args.algo != F::ALGO {
            return Err(JobError::failed(format!(
                "{} cannot compute {}",
                F::KIND.name,
                args.algo.as_str()
            )));
        }
        let key = args.cache_key();
        let hit = cached_digits(&self.db, &key)
            .await
            .map_err(|e| JobError::failed(format!("reading the cache: {e}")))?;
        if let Some((digits, elapsed_ms)) = hit {
            // Computed already (by an earlier request, or a twin of this one): what a
            // repeated request costs is this read.
            return Ok(Done {
                output: Cached {
                    key,
                    digits,
                    elapsed_ms,
                    reused: true,
                },
                effect: MathValue(None),
            });
        }
        let config = self.config.clone();
        // CPU-bound for up to seconds: off the async workers. A timed-out attempt leaves
        // its thread to finish; its result is then simply not recorded.
        let computed = tokio::task::spawn_blocking(move || compute(&config, &args))
            .await
            .map_err(|e| JobError::failed(format!("computation aborted: {e}")))?
            .map_err(JobError::failed)?;
        self.metrics.observe(args.algo, computed.elapsed);
        tracing::info!(
            %key,
            digits = computed.digits.len(),
            elapsed_ms = computed.elapsed.as_millis() as u64,
            "computed"
        );
        let digits = i64::try_from(computed.digits.len()).unwrap_or(i64::MAX);
        let elapsed_ms = i64::try_from(computed.elapsed.as_millis()).unwrap_or(i64::MAX);
        let value = math_result::Model {
            key: key.clone(),
            algo: args.algo.as_str().to_owned(),
            digits: computed.digits,
            digit_count: digits,
            elapsed_ms,
            job_id: attempt.job_id.to_string(),
            created_at: Utc::now(),
        };
        Ok(Done {
            output: Cached {
                key,
                digits,
                elapsed_ms,
                reused: false,
            },
            effect: MathValue(Some(value)),
        })
    }
}

impl Effect for MathValue {
    /// Caches each value; another job may have cached the same value first: the first
    /// is kept.
    async fn apply(tx: &DatabaseTransaction, values: &[&Self]) -> Result<(), EffectError> {
        for value in values.iter().filter_map(|v| v.0.as_ref()) {
            let row = math_result::ActiveModel {
                key: Set(value.key.clone()),
                algo: Set(value.algo.clone()),
                digits: Set(value.digits.clone()),
                digit_count: Set(value.digit_count),
                elapsed_ms: Set(value.elapsed_ms),
                job_id: Set(value.job_id.clone()),
                created_at: Set(value.created_at),
            };
            math_result::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(math_result::Column::Key)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(tx)
                .await?;
        }
        Ok(())
    }
}

/// The digit count and computation time of a cached value, without its digits.
async fn cached_digits(
    db: &DatabaseConnection,
    key: &str,
) -> Result<Option<(i64, i64)>, sea_orm::DbErr> {
    math_result::Entity::find_by_id(key.to_owned())
        .select_only()
        .column(math_result::Column::DigitCount)
        .column(math_result::Column::ElapsedMs)
        .into_tuple()
        .one(db)
        .await
}
