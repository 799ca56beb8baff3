//! `/api/all`, `/api/first`, `/api/within-timeout`, `/api/smart` (SPEC §5): call the
//! unreliable upstream work server under a deadline. Latency-bound, so no queue: the
//! route drives a `domain::fanout` machine over reqwest calls and timers.

use std::num::IntErrorKind;
use std::time::Duration;

use domain::fanout::{Answer, Policy};
use features::fanout::{Busy, Fanouts};
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::error::quote;

#[derive(Tags)]
enum FanoutTags {
    /// Fan-out to the upstream work server with deadlines.
    Fanout,
}

/// A successful upstream answer: HTTP 200 with `{"time": <integer>}`.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct Work {
    /// What the work server reported.
    pub time: i64,
}

impl From<features::fanout::Work> for Work {
    fn from(work: features::fanout::Work) -> Self {
        Work { time: work.time }
    }
}

/// `{"error": "..."}`.
#[derive(Debug, Clone, Object)]
pub struct FanoutError {
    /// What went wrong.
    pub error: String,
}

fn error(message: impl Into<String>) -> Json<FanoutError> {
    Json(FanoutError {
        error: message.into(),
    })
}

/// Answers of `within-timeout`: never an upstream error.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "within_bad_request")]
pub enum WithinAnswer {
    /// The successful answers that arrived before the timeout, possibly none.
    #[oai(status = 200)]
    Ok(Json<Vec<Work>>),
    /// `timeout` missing, not an integer, or not positive.
    #[oai(status = 400)]
    BadRequest(Json<FanoutError>),
    /// Too many upstream requests in flight (`FANOUT_MAX_INFLIGHT`); try again.
    #[oai(status = 503)]
    Busy(Json<FanoutError>),
}

fn within_bad_request(err: poem::Error) -> WithinAnswer {
    WithinAnswer::BadRequest(error(err.to_string()))
}

/// Answers of `all`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "all_bad_request")]
pub enum AllAnswer {
    /// The successful answers, in arrival order.
    #[oai(status = 200)]
    Ok(Json<Vec<Work>>),
    /// `timeout` missing, not an integer, or not positive.
    #[oai(status = 400)]
    BadRequest(Json<FanoutError>),
    /// No request succeeded.
    #[oai(status = 502)]
    BadGateway(Json<FanoutError>),
    /// Too many upstream requests in flight (`FANOUT_MAX_INFLIGHT`); try again.
    #[oai(status = 503)]
    Busy(Json<FanoutError>),
    /// The timeout came before every request finished.
    #[oai(status = 504)]
    Timeout(Json<FanoutError>),
}

fn all_bad_request(err: poem::Error) -> AllAnswer {
    AllAnswer::BadRequest(error(err.to_string()))
}

/// Answers of `first` and `smart`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "one_bad_request")]
pub enum OneAnswer {
    /// The first successful answer.
    #[oai(status = 200)]
    Ok(Json<Work>),
    /// `timeout` missing (except for `smart`), not an integer, or not positive.
    #[oai(status = 400)]
    BadRequest(Json<FanoutError>),
    /// Every request fired failed.
    #[oai(status = 502)]
    BadGateway(Json<FanoutError>),
    /// Too many upstream requests in flight (`FANOUT_MAX_INFLIGHT`); try again.
    #[oai(status = 503)]
    Busy(Json<FanoutError>),
    /// The timeout came before a success.
    #[oai(status = 504)]
    Timeout(Json<FanoutError>),
}

fn one_bad_request(err: poem::Error) -> OneAnswer {
    OneAnswer::BadRequest(error(err.to_string()))
}

/// Why a fan-out could not run.
#[derive(Debug)]
enum Refusal {
    BadTimeout(String),
    Busy(Busy),
}

/// Parses `timeout`: a positive integer number of milliseconds. `None` is allowed only
/// where `optional`; every deadline is capped at `max_ms`.
fn deadline(raw: Option<&str>, optional: bool, max_ms: u64) -> Result<Duration, Refusal> {
    let max = Duration::from_millis(max_ms);
    let Some(raw) = raw else {
        return if optional {
            Ok(max)
        } else {
            Err(Refusal::BadTimeout(
                "timeout is required: a positive integer number of milliseconds".into(),
            ))
        };
    };
    // An integer too large for i128 is still a positive number of milliseconds.
    let parsed = match raw.trim().parse::<i128>() {
        Err(err) if *err.kind() == IntErrorKind::PosOverflow => Ok(i128::MAX),
        Err(err) if *err.kind() == IntErrorKind::NegOverflow => Ok(i128::MIN),
        parsed => parsed,
    };
    match parsed {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(
            u64::try_from(ms).unwrap_or(u64::MAX).min(max_ms),
        )),
        Ok(_) => Err(Refusal::BadTimeout(format!(
            "timeout must be a positive number of milliseconds, got '{}'",
            quote(raw)
        ))),
        Err(_) => Err(Refusal::BadTimeout(format!(
            "timeout must be an integer number of milliseconds, got '{}'",
            quote(raw)
        ))),
    }
}

/// The fan-out routes.
#[derive(Debug, Clone)]
pub struct FanoutApi {
    fanouts: Fanouts,
}

impl FanoutApi {
    /// The routes over `fanouts`.
    pub fn new(fanouts: Fanouts) -> Self {
        FanoutApi { fanouts }
    }

    /// Validates `timeout` and runs `policy` under it for the client of `req`.
    async fn answer(
        &self,
        req: &Request,
        policy: Policy,
        timeout: Option<&str>,
        optional: bool,
    ) -> Result<Answer<Work>, Refusal> {
        let limit = deadline(timeout, optional, self.fanouts.config().max_ms)?;
        let client = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let answer = self
            .fanouts
            .run(policy, limit, client)
            .await
            .map_err(Refusal::Busy)?;
        Ok(answer.map(Work::from))
    }

    async fn one(
        &self,
        req: &Request,
        policy: Policy,
        timeout: Option<&str>,
        optional: bool,
    ) -> OneAnswer {
        match self.answer(req, policy, timeout, optional).await {
            Ok(Answer::Single(work)) => OneAnswer::Ok(Json(work)),
            Ok(Answer::Ok(mut works)) if !works.is_empty() => OneAnswer::Ok(Json(works.remove(0))),
            Ok(Answer::Ok(_) | Answer::AllFailed) => {
                OneAnswer::BadGateway(error("every upstream request failed"))
            }
            Ok(Answer::DeadlineExceeded) => {
                OneAnswer::Timeout(error("the timeout passed before any request succeeded"))
            }
            Err(Refusal::BadTimeout(message)) => OneAnswer::BadRequest(error(message)),
            Err(Refusal::Busy(busy)) => OneAnswer::Busy(error(busy.to_string())),
        }
    }
}

#[OpenApi(tag = "FanoutTags::Fanout")]
impl FanoutApi {
    /// Fires 3 requests at once; when all 3 have finished, answers the successful ones
    /// (502 if none succeeded); 504 if `timeout` (ms) comes first.
    #[oai(path = "/api/all", method = "get")]
    async fn all(&self, req: &Request, timeout: Query<Option<String>>) -> AllAnswer {
        match self
            .answer(req, Policy::All, timeout.0.as_deref(), false)
            .await
        {
            Ok(Answer::Ok(works)) => AllAnswer::Ok(Json(works)),
            Ok(Answer::Single(work)) => AllAnswer::Ok(Json(vec![work])),
            Ok(Answer::AllFailed) => AllAnswer::BadGateway(error("every upstream request failed")),
            Ok(Answer::DeadlineExceeded) => {
                AllAnswer::Timeout(error("the timeout passed before every request finished"))
            }
            Err(Refusal::BadTimeout(message)) => AllAnswer::BadRequest(error(message)),
            Err(Refusal::Busy(busy)) => AllAnswer::Busy(error(busy.to_string())),
        }
    }

    /// Fires 3 requests at once; answers the first success, 502 as soon as all 3
    /// failed, 504 if `timeout` (ms) comes first.
    #[oai(path = "/api/first", method = "get")]
    async fn first(&self, req: &Request, timeout: Query<Option<String>>) -> OneAnswer {
        self.one(req, Policy::First, timeout.0.as_deref(), false)
            .await
    }

    /// Fires 3 requests at once; answers the successes that arrived before `timeout`
    /// (ms), possibly none. Never an error for upstream failures.
    #[oai(path = "/api/within-timeout", method = "get")]
    async fn within_timeout(&self, req: &Request, timeout: Query<Option<String>>) -> WithinAnswer {
        match self
            .answer(req, Policy::WithinTimeout, timeout.0.as_deref(), false)
            .await
        {
            Ok(Answer::Ok(works)) => WithinAnswer::Ok(Json(works)),
            Ok(Answer::Single(work)) => WithinAnswer::Ok(Json(vec![work])),
            // This policy answers only with its list; no upstream outcome is an error.
            Ok(Answer::AllFailed | Answer::DeadlineExceeded) => WithinAnswer::Ok(Json(Vec::new())),
            Err(Refusal::BadTimeout(message)) => WithinAnswer::BadRequest(error(message)),
            Err(Refusal::Busy(busy)) => WithinAnswer::Busy(error(busy.to_string())),
        }
    }

    /// Fires 1 request; a success within 300 ms is the answer. After 300 ms, or a
    /// sooner failure, fires 2 more; the first success of the 3 wins; 502 when all 3
    /// failed; 504 when `timeout` (ms; optional, capped by `FANOUT_MAX_MS`) comes first.
    #[oai(path = "/api/smart", method = "get")]
    async fn smart(&self, req: &Request, timeout: Query<Option<String>>) -> OneAnswer {
        let policy = Policy::Smart {
            hedge_after: Duration::from_millis(self.fanouts.config().hedge_ms),
        };
        self.one(req, policy, timeout.0.as_deref(), true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> String {
        match deadline(Some(raw), false, 1_000) {
            Err(Refusal::BadTimeout(message)) => message,
            other => panic!("{raw:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn every_positive_integer_is_a_timeout_capped_at_the_maximum() {
        let ok = |raw| deadline(Some(raw), false, 1_000).map_err(|_| raw);
        assert_eq!(ok("250").unwrap(), Duration::from_millis(250));
        assert_eq!(ok("5000").unwrap(), Duration::from_millis(1_000));
        // Beyond i128, as the document's unbounded integer allows.
        assert_eq!(ok(&"9".repeat(60)).unwrap(), Duration::from_millis(1_000));
        assert!(refused("0").contains("positive"));
        assert!(refused(&format!("-{}", "9".repeat(60))).contains("positive"));
        assert!(refused("1.5").contains("integer"));
        assert!(deadline(None, false, 1_000).is_err());
        assert_eq!(
            deadline(None, true, 1_000).unwrap(),
            Duration::from_millis(1_000)
        );
    }
}
