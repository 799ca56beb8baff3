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

    /// Whether `given` is this secret, compared in time that depends only on the
    /// secret's length: not on where the two first differ, nor on whether their
    /// lengths do, so that a caller cannot find the secret, or its length, from
    /// response times.
    pub fn matches(&self, given: &str) -> bool {
        let secret = self.0.as_bytes();
        let given = given.as_bytes();
        // Every byte of the secret is compared with a byte of `given` (cycling through
        // it, or through a zero when it is empty), and the lengths are compared too,
        // all in constant time.
        let mut equal = secret.len().ct_eq(&given.len());
        for (i, byte) in secret.iter().enumerate() {
            let other = if given.is_empty() {
                0
            } else {
                given[i % given.len()]
            };
            equal &= byte.ct_eq(&other);
        }
        equal.into()
    }

    /// The secret in environment variable `name`, if set and valid UTF-8. Secrets are
    /// read from the environment only: a command-line argument would show in `ps`.
    pub fn from_env(name: &str) -> Option<Secret> {
        std::env::var(name).ok().map(Secret)
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
        // `given` is cycled through to compare every byte of the secret; a cycle that
        // spells the secret still differs in length.
        let doubled: Secret = "abab".parse().unwrap();
        assert!(!doubled.matches("ab"));
        assert!(doubled.matches("abab"));
    }

    #[test]
    fn debug_never_shows_it() {
        let secret: Secret = "s3cr3t-token".parse().unwrap();
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(secret)), "Some(***)");
    }
}
