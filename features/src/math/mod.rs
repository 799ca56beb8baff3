//! Heavy math (SPEC §3): the arguments of the `math.*` jobs, their limits, and the
//! computation shared by the api (cheap inputs, inline) and the workers (the rest).
//!
//! # Layout
//! - here: [`MathArgs`], [`MathConfig`], [`compute`] and the cache read.
//! - [`job`]: the three `math.*` kinds, which cache the value as their effect.

pub mod job;
pub mod memo;
pub mod purge;

use std::time::{Duration, Instant};

use domain::math;
use engine::NewJob;
use serde::{Deserialize, Serialize};

pub use job::{Ackermann, Compute, Factorial, Fibonacci, MathMetrics};
pub use memo::Memo;

/// Which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// n!
    Factorial,
    /// F(n), F(0) = 0, F(1) = 1.
    Fibonacci,
    /// Ackermann–Péter A(m, n).
    Ackermann,
}

impl Algo {
    /// The wire name: `factorial`, `fibonacci`, `ackermann`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algo::Factorial => "factorial",
            Algo::Fibonacci => "fibonacci",
            Algo::Ackermann => "ackermann",
        }
    }
}

/// Arguments of a `math.*` job. `m` is Ackermann's first argument only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MathArgs {
    /// Which function.
    pub algo: Algo,
    /// Ackermann's `m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<u64>,
    /// `n`.
    pub n: u64,
}

impl MathArgs {
    /// The cache key: `factorial(100000)`, `ackermann(4,2)`.
    pub fn cache_key(&self) -> String {
        match self.algo {
            Algo::Ackermann => format!("ackermann({},{})", self.m.unwrap_or(0), self.n),
            algo => format!("{}({})", algo.as_str(), self.n),
        }
    }

    /// A job of the kind that computes these arguments, allowed `max_attempts`.
    pub fn new_job(&self, max_attempts: u32) -> Result<NewJob, serde_json::Error> {
        match self.algo {
            Algo::Factorial => NewJob::of::<Compute<Factorial>>(self, max_attempts),
            Algo::Fibonacci => NewJob::of::<Compute<Fibonacci>>(self, max_attempts),
            Algo::Ackermann => NewJob::of::<Compute<Ackermann>>(self, max_attempts),
        }
    }
}

/// Arguments over a configured limit; the message names the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OverLimit(String);

/// The limits and the inline/queued routing threshold.
#[derive(Debug, Clone, clap::Args)]
pub struct MathConfig {
    /// Largest n of `factorial`.
    #[arg(long, env = "FACTORIAL_MAX_N", default_value_t = 1_000_000)]
    pub factorial_max_n: u64,
    /// Largest n of `fibonacci`.
    #[arg(long, env = "FIBONACCI_MAX_N", default_value_t = 10_000_000)]
    pub fibonacci_max_n: u64,
    /// Largest result of `ackermann`, in bits (A(4,2) needs 65 536, A(4,3) far more).
    #[arg(long, env = "ACKERMANN_MAX_BITS", default_value_t = 10_000_000)]
    pub ackermann_max_bits: u64,
    /// Results up to this many bits are computed inline by the api; larger ones run
    /// as jobs on the `math` queue.
    #[arg(long, env = "MATH_INLINE_MAX_BITS", default_value_t = 100_000)]
    pub inline_max_bits: u64,
    /// Inline results up to this many bits (microseconds of work) are computed on the
    /// request's own thread; larger inline ones on a blocking thread, off the async
    /// workers.
    #[arg(long, env = "MATH_DIRECT_MAX_BITS", default_value_t = 20_000)]
    pub direct_max_bits: u64,
    /// Bytes of digits of queued results the api keeps in memory, in front of the
    /// database's cache (least recently used first out; 0: none).
    #[arg(long, env = "MATH_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub cache_bytes: usize,
    /// How long a math route waits for a queued computation before answering 202.
    #[arg(long, env = "MATH_WAIT_MS", default_value_t = 5_000)]
    pub wait_ms: u64,
    /// How long the database keeps a computed value, in seconds (0: for good).
    #[arg(long, env = "MATH_STORE_RETENTION_SECS", default_value_t = 2_592_000)]
    pub store_retention_secs: u64,
    /// Digits of computed values the database keeps in all, the newest first
    /// (0: no bound). A factorial of a million has 5.5 million.
    #[arg(long, env = "MATH_STORE_MAX_DIGITS", default_value_t = 200_000_000)]
    pub store_max_digits: u64,
}

impl Default for MathConfig {
    fn default() -> Self {
        engine::config::defaults()
    }
}

impl MathConfig {
    /// How the database cache of computed values is bounded.
    pub fn store_bounds(&self) -> purge::StoreBounds {
        purge::StoreBounds {
            retention: (self.store_retention_secs > 0)
                .then(|| Duration::from_secs(self.store_retention_secs)),
            max_digits: (self.store_max_digits > 0).then_some(self.store_max_digits),
        }
    }

    /// How long a route waits for a queued computation.
    pub fn wait(&self) -> Duration {
        Duration::from_millis(self.wait_ms)
    }

    /// Refuses arguments over the configured limits, with a message naming the limit.
    pub fn check(&self, args: &MathArgs) -> Result<(), OverLimit> {
        match args.algo {
            Algo::Factorial if args.n > self.factorial_max_n => Err(OverLimit(format!(
                "n must be at most {} (FACTORIAL_MAX_N)",
                self.factorial_max_n
            ))),
            Algo::Fibonacci if args.n > self.fibonacci_max_n => Err(OverLimit(format!(
                "n must be at most {} (FIBONACCI_MAX_N)",
                self.fibonacci_max_n
            ))),
            Algo::Ackermann => {
                let m = args.m.unwrap_or(0);
                match math::ackermann_bits(m, args.n) {
                    Some(bits) if bits <= self.ackermann_max_bits => Ok(()),
                    _ => Err(OverLimit(format!(
                        "A({m}, {}) has more than {} bits (ACKERMANN_MAX_BITS)",
                        args.n, self.ackermann_max_bits
                    ))),
                }
            }
            _ => Ok(()),
        }
    }

    /// True when the result is small enough to compute inline.
    pub fn is_cheap(&self, args: &MathArgs) -> bool {
        cost_bits(args) <= self.inline_max_bits
    }

    /// True when the result is so small that computing it takes microseconds.
    pub fn is_trivial(&self, args: &MathArgs) -> bool {
        cost_bits(args) <= self.direct_max_bits.min(self.inline_max_bits)
    }
}

/// Estimated size of the result in bits: the routing cost.
pub fn cost_bits(args: &MathArgs) -> u64 {
    match args.algo {
        Algo::Factorial => math::factorial_cost(args.n),
        Algo::Fibonacci => math::fibonacci_cost(args.n),
        Algo::Ackermann => math::ackermann_cost(args.m.unwrap_or(0), args.n),
    }
}

/// A computed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    /// Decimal digits (with a sign for negatives, which these functions never give).
    pub digits: String,
    /// Time to compute and render.
    pub elapsed: Duration,
}

/// Computes `args` after checking `config`'s limits. CPU-bound: call it from a
/// blocking thread, unless [`MathConfig::is_trivial`] says it takes microseconds.
pub fn compute(config: &MathConfig, args: &MathArgs) -> Result<Computed, OverLimit> {
    config.check(args)?;
    let started = Instant::now();
    let value = match args.algo {
        Algo::Factorial => math::factorial(args.n),
        Algo::Fibonacci => math::fibonacci(args.n),
        Algo::Ackermann => math::ackermann(args.m.unwrap_or(0), args.n, config.ackermann_max_bits)
            .map_err(|e| OverLimit(e.to_string()))?,
    };
    let digits = math::to_decimal(&value);
    let elapsed = started.elapsed();
    tracing::debug!(
        key = %args.cache_key(),
        digits = digits.len(),
        elapsed_ms = elapsed.as_millis() as u64,
        "computed"
    );
    Ok(Computed { digits, elapsed })
}

/// The cached value of `key`, if a job computed it.
pub async fn cached(
    db: &sea_orm::DatabaseConnection,
    key: &str,
) -> Result<Option<entity::math_result::Model>, sea_orm::DbErr> {
    use sea_orm::EntityTrait;
    entity::math_result::Entity::find_by_id(key.to_owned())
        .one(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(algo: Algo, m: Option<u64>, n: u64) -> MathArgs {
        MathArgs { algo, m, n }
    }

    #[test]
    fn limits_name_themselves() {
        let config = MathConfig::default();
        let err = config
            .check(&args(Algo::Factorial, None, 1_000_001))
            .unwrap_err()
            .to_string();
        assert!(err.contains("1000000"), "{err}");
        assert!(
            config
                .check(&args(Algo::Factorial, None, 1_000_000))
                .is_ok()
        );
        assert!(
            config
                .check(&args(Algo::Fibonacci, None, 10_000_001))
                .is_err()
        );
        assert!(config.check(&args(Algo::Ackermann, Some(4), 2)).is_ok());
        let err = config
            .check(&args(Algo::Ackermann, Some(4), 3))
            .unwrap_err()
            .to_string();
        assert!(err.contains("10000000"), "{err}");
    }

    #[test]
    fn small_inputs_are_cheap_and_big_ones_are_not() {
        let config = MathConfig::default();
        assert!(config.is_cheap(&args(Algo::Factorial, None, 100)));
        assert!(!config.is_cheap(&args(Algo::Factorial, None, 100_000)));
        assert!(config.is_cheap(&args(Algo::Ackermann, Some(4), 2)));
        assert!(!config.is_cheap(&args(Algo::Fibonacci, None, 1_000_000)));
    }

    #[test]
    fn compute_renders_exact_digits() {
        let config = MathConfig::default();
        let got = compute(&config, &args(Algo::Factorial, None, 25)).expect("25!");
        assert_eq!(got.digits, "15511210043330985984000000");
        let got = compute(&config, &args(Algo::Ackermann, Some(3), 3)).expect("A(3,3)");
        assert_eq!(got.digits, "61");
    }

    #[test]
    fn cache_keys_name_the_arguments() {
        assert_eq!(args(Algo::Factorial, None, 7).cache_key(), "factorial(7)");
        assert_eq!(
            args(Algo::Ackermann, Some(4), 2).cache_key(),
            "ackermann(4,2)"
        );
    }
}
