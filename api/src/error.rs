//! The JSON error body of the system and job routes: a stable machine tag that clients
//! match on, and a message for people. (Feature routes keep their old services' shapes.)

use poem_openapi::Object;
use poem_openapi::error::ContentTypeError;

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

/// What a body of another type than JSON is told.
pub const UNSUPPORTED_MEDIA_TYPE: &str =
    "the body must be JSON, sent with Content-Type: application/json";

/// Whether a request was refused for a body of another type than JSON: 415. A request
/// with no `Content-Type` at all (usually no body either) stays a 400, as the older
/// services answered it.
pub fn wrong_media_type(err: &poem::Error) -> bool {
    matches!(
        err.downcast_ref::<ContentTypeError>(),
        Some(ContentTypeError::NotSupported { .. })
    )
}

/// Most characters of an offending value an error message quotes.
const QUOTED_MAX: usize = 40;

/// `value` as an error message quotes it: its first 40 characters, and `…` when it
/// is longer, so that a huge value is not echoed back whole.
pub fn quote(value: &str) -> String {
    let mut chars = value.chars();
    let mut quoted: String = chars.by_ref().take(QUOTED_MAX).collect();
    if chars.next().is_some() {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn long_values_are_quoted_by_a_short_prefix() {
        assert_eq!(quote("Jack"), "Jack");
        let long = "é".repeat(3_000_000);
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), 41);
        assert!(quoted.ends_with('…'));
    }
}
