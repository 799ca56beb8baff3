//! `/factorial`, `/fibonacci`, `/ackermann` and `POST /jobs/math` (SPEC §3).
//!
//! Inputs are parsed as Python's `int()` parses them. Cheap inputs are computed inline;
//! the rest run as `math.*` jobs that the route waits for up to `MATH_WAIT_MS`, then
//! answers 202. Values computed by jobs are cached, so a repeat is a read. Results are
//! exact JSON integers of any size: the digits are written into the body directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use domain::pyint::{PyIntError, parse_int};
use engine::{JobId, JobStatus};
use features::math::{Algo, MathArgs, MathConfig, cached, compute};
use num_bigint::Sign;
use num_traits::ToPrimitive;
use poem::{IntoResponse, Request, Response};
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use tokio::sync::OnceCell;

use crate::enqueue::{enqueue_job, idempotency_key};
use crate::error::ErrorBody;
use crate::jobs::{Accepted, EnqueueAnswer};
use crate::state::AppState;

#[derive(Tags)]
enum MathTags {
    /// Exact big-integer math.
    Math,
}

/// `{"algo": "...", "result": <exact integer>, "status": "success"}`, with the result
/// written as a JSON number of any size (never a float, an exponent or a string).
#[derive(Debug, Clone)]
pub struct MathSuccess {
    algo: Algo,
    digits: Arc<str>,
}

impl Payload for MathSuccess {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        content_type.starts_with("application/json")
    }

    fn schema_ref() -> MetaSchemaRef {
        let text = |description: &'static str| {
            MetaSchemaRef::Inline(Box::new(MetaSchema {
                description: Some(description),
                ..MetaSchema::new("string")
            }))
        };
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            rust_typename: Some("MathSuccess"),
            required: vec!["algo", "result", "status"],
            properties: vec![
                ("algo", text("`factorial`, `fibonacci` or `ackermann`")),
                (
                    "result",
                    MetaSchemaRef::Inline(Box::new(MetaSchema {
                        description: Some(
                            "The exact value: a JSON integer of any size (no fraction, no exponent).",
                        ),
                        ..MetaSchema::new("integer")
                    })),
                ),
                ("status", text("`success`")),
            ],
            ..MetaSchema::new("object")
        }))
    }

    fn register(_registry: &mut Registry) {}
}

impl IntoResponse for MathSuccess {
    fn into_response(self) -> Response {
        let algo = self.algo.as_str();
        let mut body = String::with_capacity(self.digits.len() + algo.len() + 40);
        body.push_str("{\"algo\":\"");
        body.push_str(algo);
        body.push_str("\",\"result\":");
        body.push_str(&self.digits);
        body.push_str(",\"status\":\"success\"}");
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(body)
    }
}

/// `{"algo": "...", "result": "<message>", "status": "failed"}`.
#[derive(Debug, Clone, Object)]
pub struct MathFailure {
    /// The function asked for.
    pub algo: String,
    /// What was wrong.
    pub result: String,
    /// `failed`.
    pub status: String,
}

fn failed(algo: &str, message: impl Into<String>) -> Json<MathFailure> {
    Json(MathFailure {
        algo: algo.to_owned(),
        result: message.into(),
        status: "failed".to_owned(),
    })
}

/// Answers of the math routes.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "math_bad_request")]
pub enum MathAnswer {
    /// The exact value.
    #[oai(status = 200)]
    Ok(MathSuccess),
    /// Still computing after `MATH_WAIT_MS`; follow the job at `Location`.
    #[oai(status = 202)]
    Accepted(Json<Accepted>, #[oai(header = "Location")] String),
    /// Missing, malformed, negative or over-limit input.
    #[oai(status = 400)]
    BadRequest(Json<MathFailure>),
    /// The computation failed (its job is dead).
    #[oai(status = 500)]
    Failed(Json<MathFailure>),
    /// The database or the queue is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<MathFailure>),
}

fn math_bad_request(err: poem::Error) -> MathAnswer {
    MathAnswer::BadRequest(failed("unknown", err.to_string()))
}

/// A parameter the old service refused, with its message.
#[derive(Debug, thiserror::Error)]
enum BadParameter {
    #[error("Bad input")]
    Missing,
    #[error(transparent)]
    NotAnInteger(#[from] PyIntError),
    #[error("Negative Integer")]
    Negative,
}

/// Parses one parameter the way the old service did: missing → `Bad input`, else
/// Python's `int()` rules and message, then `Negative Integer`.
fn parameter(raw: Option<&str>) -> Result<u64, BadParameter> {
    let value = parse_int(raw.ok_or(BadParameter::Missing)?)?;
    if value.sign() == Sign::Minus {
        return Err(BadParameter::Negative);
    }
    // Beyond u64 is beyond every limit; saturate so that the limit check names it.
    Ok(value.to_u64().unwrap_or(u64::MAX))
}

/// Body of `POST /jobs/math`.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct MathRequest {
    /// Which function.
    pub algo: AlgoParam,
    /// `n`.
    pub n: u64,
    /// Ackermann's `m` (required for `ackermann`, refused otherwise).
    pub m: Option<u64>,
}

/// Which function.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum AlgoParam {
    /// n!
    Factorial,
    /// F(n)
    Fibonacci,
    /// A(m, n)
    Ackermann,
}

impl From<AlgoParam> for Algo {
    fn from(a: AlgoParam) -> Self {
        match a {
            AlgoParam::Factorial => Algo::Factorial,
            AlgoParam::Fibonacci => Algo::Fibonacci,
            AlgoParam::Ackermann => Algo::Ackermann,
        }
    }
}

/// The math routes.
#[derive(Debug, Clone)]
pub struct MathApi {
    state: AppState,
    in_flight: InFlight,
}

/// Most computations [`InFlight`] tracks; past it, it forgets them all (identical
/// requests may then make a second job, nothing worse).
const IN_FLIGHT_MAX: usize = 10_000;

/// The queued computations this api waits on, by cache key, so that identical requests
/// share one job and one computation instead of making one each. An entry is set once
/// its job is enqueued and removed when a request sees the job finished.
#[derive(Debug, Clone, Default)]
struct InFlight(Arc<Mutex<HashMap<String, Arc<OnceCell<JobId>>>>>);

impl InFlight {
    /// The slot of `key`: empty for the first request, which enqueues the job.
    fn slot(&self, key: &str) -> Arc<OnceCell<JobId>> {
        let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= IN_FLIGHT_MAX && !slots.contains_key(key) {
            slots.clear();
        }
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// Forgets `slot` of `key`, whose job finished.
    fn finished(&self, key: &str, slot: &Arc<OnceCell<JobId>>) {
        let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
    }
}

impl MathApi {
    /// The routes over `state`.
    pub fn new(state: AppState) -> Self {
        MathApi {
            state,
            in_flight: InFlight::default(),
        }
    }

    fn config(&self) -> &MathConfig {
        self.state.math()
    }

    /// The memory cache, else inline when cheap (computing is cheaper than a round
    /// trip to the database), else the database's cache, or queue-and-wait.
    async fn answer(&self, args: MathArgs) -> MathAnswer {
        let algo = args.algo.as_str();
        if let Err(over) = self.config().check(&args) {
            return MathAnswer::BadRequest(failed(algo, over.to_string()));
        }
        let key = args.cache_key();
        let memo = &self.state.features.math_memo;
        if let Some(digits) = memo.get(&key) {
            return MathAnswer::Ok(MathSuccess {
                algo: args.algo,
                digits,
            });
        }
        if self.config().is_cheap(&args) {
            return self.inline(args, &key).await;
        }
        match cached(self.state.store.db(), &key).await {
            Ok(Some(hit)) => {
                let digits: Arc<str> = hit.digits.into();
                memo.put(&key, digits.clone());
                return MathAnswer::Ok(MathSuccess {
                    algo: args.algo,
                    digits,
                });
            }
            Ok(None) => {}
            Err(err) => {
                return MathAnswer::Unavailable(failed(
                    algo,
                    format!("database unavailable: {err}"),
                ));
            }
        }
        let slot = self.in_flight.slot(&key);
        let job = match slot.get_or_try_init(|| self.enqueue(args, None)).await {
            Ok(job) => *job,
            Err(answer) => return answer,
        };
        let answer = self.wait_for(args, job).await;
        if !matches!(answer, MathAnswer::Accepted(..)) {
            self.in_flight.finished(&key, &slot);
        }
        answer
    }

    /// Computes a cheap value in the api (on this thread when it takes microseconds,
    /// else on a blocking thread) and keeps it in the memory cache under `key`: a
    /// lookup there costs far less than even a trivial computation and its rendering.
    async fn inline(&self, args: MathArgs, key: &str) -> MathAnswer {
        let algo = args.algo.as_str();
        let computed = if self.config().is_trivial(&args) {
            compute(self.config(), &args)
        } else {
            let config = self.config().clone();
            match tokio::task::spawn_blocking(move || compute(&config, &args)).await {
                Ok(computed) => computed,
                Err(err) => {
                    return MathAnswer::Failed(failed(algo, format!("computation aborted: {err}")));
                }
            }
        };
        match computed {
            Ok(computed) => {
                self.state
                    .features
                    .math_metrics
                    .observe(args.algo, computed.elapsed);
                let digits: Arc<str> = computed.digits.into();
                self.state.features.math_memo.put(key, digits.clone());
                MathAnswer::Ok(MathSuccess {
                    algo: args.algo,
                    digits,
                })
            }
            Err(over) => MathAnswer::BadRequest(failed(algo, over.to_string())),
        }
    }

    async fn enqueue(&self, args: MathArgs, key: Option<&str>) -> Result<JobId, MathAnswer> {
        let algo = args.algo.as_str();
        let job = args
            .new_job(self.state.delivery.max_attempts)
            .map_err(|e| MathAnswer::Failed(failed(algo, format!("encoding arguments: {e}"))))?;
        match enqueue_job(&self.state, job, key, "math").await {
            Ok(job) => Ok(job.id),
            Err(err) => Err(MathAnswer::Unavailable(failed(algo, err.to_string()))),
        }
    }

    /// Waits up to `MATH_WAIT_MS` for the job, then answers with its value or 202.
    async fn wait_for(&self, args: MathArgs, job_id: JobId) -> MathAnswer {
        let algo = args.algo.as_str();
        let deadline = Instant::now() + self.config().wait();
        let mut pause = Duration::from_millis(5);
        loop {
            match self.state.store.get(job_id).await {
                Ok(Some(job)) if job.status == JobStatus::Succeeded => {
                    let key = args.cache_key();
                    return match cached(self.state.store.db(), &key).await {
                        Ok(Some(hit)) => {
                            let digits: Arc<str> = hit.digits.into();
                            self.state.features.math_memo.put(&key, digits.clone());
                            MathAnswer::Ok(MathSuccess {
                                algo: args.algo,
                                digits,
                            })
                        }
                        Ok(None) => MathAnswer::Failed(failed(
                            algo,
                            "the job succeeded but its value is not cached",
                        )),
                        Err(err) => MathAnswer::Unavailable(failed(
                            algo,
                            format!("database unavailable: {err}"),
                        )),
                    };
                }
                Ok(Some(job)) if job.status == JobStatus::Cancelled => {
                    return MathAnswer::Failed(failed(algo, "the computation was cancelled"));
                }
                Ok(Some(job)) if job.status == JobStatus::Dead => {
                    let error = job.error.unwrap_or_default();
                    return MathAnswer::Failed(failed(
                        algo,
                        format!("computation failed: {error}"),
                    ));
                }
                Ok(_) => {}
                Err(err) => {
                    return MathAnswer::Unavailable(failed(
                        algo,
                        format!("database unavailable: {err}"),
                    ));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return MathAnswer::Accepted(
                    Json(Accepted {
                        job_id: job_id.to_string(),
                    }),
                    format!("/jobs/{job_id}"),
                );
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

#[OpenApi(tag = "MathTags::Math")]
impl MathApi {
    /// n! exactly. `n` is parsed like Python's `int()`; at most `FACTORIAL_MAX_N`.
    #[oai(path = "/factorial", method = "get")]
    async fn factorial(&self, n: Query<Option<String>>) -> MathAnswer {
        match parameter(n.0.as_deref()) {
            Ok(n) => {
                self.answer(MathArgs {
                    algo: Algo::Factorial,
                    m: None,
                    n,
                })
                .await
            }
            Err(bad) => MathAnswer::BadRequest(failed("factorial", bad.to_string())),
        }
    }

    /// F(n) exactly (F(0) = 0, F(1) = 1); at most `FIBONACCI_MAX_N`.
    #[oai(path = "/fibonacci", method = "get")]
    async fn fibonacci(&self, n: Query<Option<String>>) -> MathAnswer {
        match parameter(n.0.as_deref()) {
            Ok(n) => {
                self.answer(MathArgs {
                    algo: Algo::Fibonacci,
                    m: None,
                    n,
                })
                .await
            }
            Err(bad) => MathAnswer::BadRequest(failed("fibonacci", bad.to_string())),
        }
    }

    /// Ackermann–Péter A(m, n) exactly, for values of at most `ACKERMANN_MAX_BITS`
    /// bits (A(4, 2) = 2^65536 − 3 is answered; A(4, 3) is refused).
    #[oai(path = "/ackermann", method = "get")]
    async fn ackermann(&self, m: Query<Option<String>>, n: Query<Option<String>>) -> MathAnswer {
        let parsed = parameter(m.0.as_deref()).and_then(|m| Ok((m, parameter(n.0.as_deref())?)));
        match parsed {
            Ok((m, n)) => {
                self.answer(MathArgs {
                    algo: Algo::Ackermann,
                    m: Some(m),
                    n,
                })
                .await
            }
            Err(bad) => MathAnswer::BadRequest(failed("ackermann", bad.to_string())),
        }
    }

    /// Always enqueues a `math.*` job (no inline path, no cache read): 202.
    #[oai(path = "/jobs/math", method = "post")]
    async fn enqueue_math(
        &self,
        req: &Request,
        body: Json<MathRequest>,
        /// The same key within `IDEMPOTENCY_WINDOW_SECS` returns the first job; 1 to
        /// 200 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        _key: Header<Option<String>>,
    ) -> EnqueueAnswer {
        let key = match idempotency_key(req) {
            Ok(key) => key,
            Err(err) => return err.into(),
        };
        let algo: Algo = body.algo.into();
        let m = match (algo, body.m) {
            (Algo::Ackermann, None) => {
                return EnqueueAnswer::BadRequest(Json(ErrorBody::new(
                    "bad_request",
                    "ackermann needs m",
                )));
            }
            (Algo::Ackermann, m) => m,
            (_, Some(_)) => {
                return EnqueueAnswer::BadRequest(Json(ErrorBody::new(
                    "bad_request",
                    format!("{} takes no m", algo.as_str()),
                )));
            }
            (_, None) => None,
        };
        let args = MathArgs { algo, m, n: body.n };
        if let Err(over) = self.config().check(&args) {
            return EnqueueAnswer::BadRequest(Json(ErrorBody::new(
                "bad_request",
                over.to_string(),
            )));
        }
        let job = match args.new_job(self.state.delivery.max_attempts) {
            Ok(job) => job,
            Err(err) => {
                return EnqueueAnswer::BadRequest(Json(ErrorBody::new(
                    "bad_request",
                    err.to_string(),
                )));
            }
        };
        enqueue_job(&self.state, job, key, "POST /jobs/math")
            .await
            .into()
    }
}
