//! The Ackermann–Péter function with closed forms and an up-front size check.
//!
//! `A(0, n) = n + 1`, `A(m, 0) = A(m - 1, 1)`, `A(m, n) = A(m - 1, A(m, n - 1))`.
//! Closed forms: `A(1, n) = n + 2`, `A(2, n) = 2n + 3`, `A(3, n) = 2^(n+3) - 3`,
//! `A(4, n) = 2↑↑(n+3) - 3` (a tower of `n + 3` twos). The bit length of the
//! result is known before any work is done, so oversized requests are refused
//! in constant time and nothing is ever evaluated by deep recursion.

use std::fmt;

use num_bigint::BigUint;
use num_traits::One;

/// Error returned by [`ackermann`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckermannError {
    /// The result would need more bits than the caller allows.
    TooLarge {
        /// First argument.
        m: u64,
        /// Second argument.
        n: u64,
        /// Bit length of `A(m, n)`, or `None` if it is `2^64` or more.
        bits_needed: Option<u64>,
        /// The caller's limit in bits.
        limit: u64,
    },
}

impl fmt::Display for AckermannError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge {
                m,
                n,
                bits_needed: Some(bits),
                limit,
            } => write!(
                f,
                "A({m}, {n}) is too large: it has {bits} bits, the limit is {limit} bits"
            ),
            Self::TooLarge {
                m,
                n,
                bits_needed: None,
                limit,
            } => write!(
                f,
                "A({m}, {n}) is too large: it has at least 2^64 bits, the limit is {limit} bits"
            ),
        }
    }
}

impl std::error::Error for AckermannError {}

/// Bit length of `A(m, n)`, or `None` when it is `2^64` or more.
///
/// Constant time for all inputs. Only `m <= 3`, `A(4, n)` for `n <= 2` and
/// `A(5, 0)` have a bit length below `2^64`.
pub fn ackermann_bits(m: u64, n: u64) -> Option<u64> {
    let bits128 = |v: u128| u64::from(128 - v.leading_zeros());
    let n128 = u128::from(n);
    match m {
        0 => Some(bits128(n128 + 1)),
        1 => Some(bits128(n128 + 2)),
        2 => Some(bits128(2 * n128 + 3)),
        // 2^(n+3) - 3 has exactly n + 3 bits.
        3 => n.checked_add(3),
        // 2↑↑(n+3) - 3 has 2↑↑(n+2) bits: 4, 16, 65536, then 2^65536.
        4 => match n {
            0 => Some(4),
            1 => Some(16),
            2 => Some(65_536),
            _ => None,
        },
        // A(5, 0) = A(4, 1) = 65533; everything else is at least A(4, 65533).
        5 if n == 0 => Some(16),
        _ => None,
    }
}

/// Cost estimate for routing: the bit length of `A(m, n)`, saturating at
/// `u64::MAX` when it does not fit. Constant time.
pub fn ackermann_cost(m: u64, n: u64) -> u64 {
    ackermann_bits(m, n).unwrap_or(u64::MAX)
}

/// Computes `A(m, n)` exactly if its bit length is at most `max_bits`.
///
/// The size is checked before any work ([`ackermann_bits`]), so every input,
/// including `(u64::MAX, u64::MAX)`, returns promptly; the work for an
/// accepted input is linear in `max_bits`.
pub fn ackermann(m: u64, n: u64, max_bits: u64) -> Result<BigUint, AckermannError> {
    let bits = ackermann_bits(m, n);
    match bits {
        Some(b) if b <= max_bits => {}
        _ => {
            return Err(AckermannError::TooLarge {
                m,
                n,
                bits_needed: bits,
                limit: max_bits,
            });
        }
    }
    Ok(match m {
        0 => BigUint::from(u128::from(n) + 1),
        1 => BigUint::from(u128::from(n) + 2),
        2 => BigUint::from(2 * u128::from(n) + 3),
        3 => (BigUint::one() << (n + 3)) - 3u32,
        // m >= 4: the size check admits only a few arguments; unfold the
        // recurrence onto the closed forms of the level below.
        _ if n == 0 => ackermann(m - 1, 1, max_bits)?,
        _ => {
            let inner = ackermann(m, n - 1, max_bits)?;
            let inner = u64::try_from(&inner).map_err(|_| AckermannError::TooLarge {
                m,
                n,
                bits_needed: None,
                limit: max_bits,
            })?;
            ackermann(m - 1, inner, max_bits)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const LIMIT: u64 = 10_000_000;

    /// Ackermann by its definition, with an explicit stack of pending `m`s.
    fn naive(m: u64, n: u64) -> u64 {
        let mut stack = vec![m];
        let mut n = n;
        while let Some(m) = stack.pop() {
            if m == 0 {
                n += 1;
            } else if n == 0 {
                stack.push(m - 1);
                n = 1;
            } else {
                stack.push(m - 1);
                stack.push(m);
                n -= 1;
            }
        }
        n
    }

    fn a(m: u64, n: u64) -> BigUint {
        ackermann(m, n, LIMIT).expect("within limit")
    }

    #[test]
    fn exact_values() {
        assert_eq!(a(0, 0), BigUint::from(1u32));
        assert_eq!(a(1, 1), BigUint::from(3u32));
        assert_eq!(a(2, 2), BigUint::from(7u32));
        assert_eq!(a(3, 3), BigUint::from(61u32));
        assert_eq!(a(3, 10), BigUint::from(8189u32));
        assert_eq!(a(4, 0), BigUint::from(13u32));
        assert_eq!(a(4, 1), BigUint::from(65_533u32));
        assert_eq!(a(5, 0), BigUint::from(65_533u32));
    }

    #[test]
    fn a_4_2() {
        let v = a(4, 2);
        let expect = BigUint::from(2u32).pow(65_536) - 3u32;
        assert_eq!(v, expect);
        let s = crate::math::to_decimal(&v);
        assert_eq!(s.len(), 19_729);
        assert!(s.ends_with("156733"), "{}", &s[s.len() - 10..]);
        assert_eq!(s, expect.to_string());
        assert_eq!(ackermann_bits(4, 2), Some(65_536));
    }

    #[test]
    fn closed_forms_match_naive() {
        for m in 0..=3u64 {
            for n in 0..=10u64 {
                assert_eq!(a(m, n), BigUint::from(naive(m, n)), "A({m}, {n})");
            }
        }
        assert_eq!(a(4, 0), BigUint::from(naive(4, 0)));
    }

    #[test]
    fn bits_match_values() {
        for m in 0..=3u64 {
            for n in [0u64, 1, 2, 5, 63, 64, 100, 1000] {
                assert_eq!(ackermann_bits(m, n), Some(a(m, n).bits()), "A({m}, {n})");
            }
        }
        for (m, n) in [(4, 0), (4, 1), (4, 2), (5, 0)] {
            assert_eq!(ackermann_bits(m, n), Some(a(m, n).bits()), "A({m}, {n})");
        }
    }

    #[test]
    fn u64_edges_do_not_overflow() {
        assert_eq!(a(0, u64::MAX), BigUint::from(u128::from(u64::MAX) + 1));
        assert_eq!(a(1, u64::MAX), BigUint::from(u128::from(u64::MAX) + 2));
        assert_eq!(a(2, u64::MAX), BigUint::from(2 * u128::from(u64::MAX) + 3));
        assert_eq!(ackermann_bits(3, u64::MAX), None);
        assert_eq!(ackermann_bits(3, u64::MAX - 3), Some(u64::MAX));
        assert_eq!(ackermann_cost(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn limits_are_enforced() {
        let start = Instant::now();
        for (m, n) in [
            (4, 3),
            (4, u64::MAX),
            (5, 1),
            (6, 0),
            (u64::MAX, 0),
            (u64::MAX, u64::MAX),
            (3, LIMIT),
            (3, u64::MAX),
        ] {
            let err = ackermann(m, n, LIMIT).unwrap_err();
            let AckermannError::TooLarge { limit, .. } = err.clone();
            assert_eq!(limit, LIMIT);
            assert!(err.to_string().contains("too large"), "{err}");
        }
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(ackermann(4, 2, LIMIT).is_ok());
        assert!(ackermann(3, LIMIT - 3, LIMIT).is_ok());
        assert!(ackermann(0, 0, 0).is_err());
        assert_eq!(
            ackermann(4, 3, LIMIT),
            Err(AckermannError::TooLarge {
                m: 4,
                n: 3,
                bits_needed: None,
                limit: LIMIT
            })
        );
        assert_eq!(
            ackermann(3, LIMIT, LIMIT).unwrap_err().to_string(),
            "A(3, 10000000) is too large: it has 10000003 bits, the limit is 10000000 bits"
        );
    }
}
