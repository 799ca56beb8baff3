//! Secrets from the environment (`FIXER_KEY`, `ADMIN_TOKEN`): usable where they are
//! sent or checked, never printed.

use std::fmt;
use std::str::FromStr;

use subtle::ConstantTimeEq;

/// A secret from the environment: usable, never printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, compared in time that does not depend on where
    /// the two first differ (only on their lengths), so that a caller cannot find the
    /// secret byte by byte from response times.
    pub fn matches(&self, given: &str) -> bool {
        self.0.as_bytes().ct_eq(given.as_bytes()).into()
    }

    /// Whether the secret is empty (an empty variable means "not set").
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_bytes() {
        let secret: Secret = "s3cr3t-token".parse().unwrap();
        assert!(secret.matches("s3cr3t-token"));
        assert!(!secret.matches("s3cr3t-tokeN"));
        assert!(!secret.matches("s3cr3t-toke"));
        assert!(!secret.matches("s3cr3t-token "));
        assert!(!secret.matches(""));
    }

    #[test]
    fn debug_never_shows_it() {
        let secret: Secret = "s3cr3t-token".parse().unwrap();
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(secret)), "Some(***)");
    }
}
