//! Typed ids: a job's and a task's (one delivery of a job). Both are ULIDs, so that
//! ordering by id orders by creation time; on the wire and in the database they are
//! their 26-character text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// Characters in an id's text.
pub const ID_CHARS: usize = 26;

/// The beginning of an id as a person types it, 1 to [`ID_CHARS`] characters of
/// Crockford base 32 in either case, upper-cased as ids are written; `None` for any
/// other text.
pub fn id_prefix(text: &str) -> Option<String> {
    const DIGITS: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let upper = text.to_ascii_uppercase();
    let valid = (1..=ID_CHARS).contains(&upper.len()) && upper.chars().all(|c| DIGITS.contains(c));
    valid.then_some(upper)
}

/// The text is not a ULID, so it names no job or task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a ULID (26 characters of Crockford base 32)")]
pub struct InvalidId(String);

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Ulid);

        impl $name {
            /// A fresh id, ordered after every id made before it in this process.
            pub fn generate() -> Self {
                $name(Ulid::generate())
            }

            /// When the id was made, in ms since the Unix epoch.
            pub fn created_ms(&self) -> u64 {
                self.0.timestamp_ms()
            }

            /// The smallest id made at `millis` since the Unix epoch: every id made
            /// before that instant is smaller.
            pub fn floor_at(millis: u64) -> Self {
                $name(Ulid::from_parts(millis, 0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ulid::from_string(s)
                    .map($name)
                    .map_err(|_| InvalidId(s.chars().take(40).collect()))
            }
        }
    };
}

ulid_id!(
    /// A job's id: its record's primary key.
    JobId
);

ulid_id!(
    /// One delivery of a job. The record names the task entitled to run it, so a task
    /// superseded by a manual retry is recognised and skipped.
    TaskId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_prefix_is_crockford_base_32_up_to_an_ids_length() {
        let id = JobId::generate().to_string();
        assert_eq!(id_prefix(&id).as_deref(), Some(id.as_str()));
        assert_eq!(id_prefix("01j9").as_deref(), Some("01J9"));
        for refused in [
            "",
            "01I",
            "01L",
            "01O",
            "01U",
            "01-",
            "01 ",
            &format!("{id}0"),
        ] {
            assert_eq!(id_prefix(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn ids_round_trip_through_their_text() {
        let id = JobId::generate();
        assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            format!("\"{id}\""),
            "the wire form is the bare text"
        );
    }

    #[test]
    fn text_that_is_no_ulid_is_refused_with_a_short_quote() {
        for bad in [
            "",
            "job-1",
            "01ARZ3NDEKTSV4RRFFQ69G5FA\0",
            &"x".repeat(1_000),
        ] {
            let err = bad.parse::<TaskId>().unwrap_err().to_string();
            assert!(err.len() < 120, "{err}");
        }
    }

    #[test]
    fn the_floor_of_an_instant_is_below_every_later_id() {
        let floor = JobId::floor_at(1);
        assert!(floor < JobId::generate());
    }
}
