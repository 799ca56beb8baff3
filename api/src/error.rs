//! The JSON error body of the system and job routes: a stable machine tag that clients
//! match on, and a message for people. (Feature routes keep their old services' shapes.)

use poem_openapi::Object;

/// An error answer.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable machine tag: `bad_request`, `not_found`, `conflict`, `unavailable`, …
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorBody {
    /// An error with this tag and message.
    pub fn new(error: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            error: error.to_owned(),
            message: message.into(),
        }
    }

    /// A request that could not be parsed (bad JSON, bad parameter).
    pub fn bad_request(err: &poem::Error) -> Self {
        Self::new("bad_request", err.to_string())
    }
}
