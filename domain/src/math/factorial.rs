//! Factorial by the prime-swing method.
//!
//! `n! = 2^(n - popcount(n)) * odd(n)` where the odd part satisfies
//! `odd(n) = odd(n/2)^2 * oddswing(n)`, and the odd part of the swing
//! factorial `n! / (n/2)!^2` is assembled from its prime factorisation by a
//! balanced product tree. The largest operations are therefore one squaring
//! and one (unbalanced) product per level, which the crate's NTT-based
//! multiplication handles in quasi-linear time.

use num_bigint::BigUint;
use num_traits::One;

use super::mul::{mul, product, square};

/// Below this, the odd part of `n!` is multiplied out directly.
const SMALL: u64 = 64;

/// Computes `n!` exactly; `0! = 1`.
///
/// The result has about `n log2 n` bits (see [`factorial_cost`]); callers
/// must bound `n` beforehand, since time and memory grow with the result.
pub fn factorial(n: u64) -> BigUint {
    if n < 2 {
        return BigUint::one();
    }
    let primes = odd_primes_up_to(n);
    let odd = odd_factorial(n, &primes);
    odd << (n - u64::from(n.count_ones()))
}

/// Estimated number of bits of `n!` (Stirling; exact to within a few bits,
/// never below 1, saturating at `u64::MAX`). Monotone in `n`.
pub fn factorial_cost(n: u64) -> u64 {
    if n < 2 {
        return 1;
    }
    let x = n as f64;
    let ln = x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln();
    let bits = ln / std::f64::consts::LN_2 + 1.0;
    if bits >= u64::MAX as f64 {
        u64::MAX
    } else {
        bits.ceil().max(1.0) as u64
    }
}

/// Odd part of `n!`.
fn odd_factorial(n: u64, primes: &[u64]) -> BigUint {
    if n < SMALL {
        let odd: Vec<u64> = (3..=n).map(|i| i >> i.trailing_zeros()).collect();
        return product(&odd);
    }
    let half = odd_factorial(n / 2, primes);
    mul(&square(&half), &odd_swing(n, primes))
}

/// Odd part of `n! / floor(n/2)!^2`, from its prime factorisation: the
/// exponent of `p` is the number of `k >= 1` with `floor(n / p^k)` odd.
fn odd_swing(n: u64, primes: &[u64]) -> BigUint {
    let primes = &primes[..primes.partition_point(|&p| p <= n)];
    let root = n.isqrt();
    let mut factors = Vec::new();
    let mut acc = 1u64;
    let mut push = |f: u64| match acc.checked_mul(f) {
        Some(v) => acc = v,
        None => {
            factors.push(acc);
            acc = f;
        }
    };
    for &p in primes {
        if p <= root {
            let (mut q, mut pe) = (n, 1u64);
            loop {
                q /= p;
                if q == 0 {
                    break;
                }
                if q & 1 == 1 {
                    pe *= p;
                }
            }
            if pe > 1 {
                push(pe);
            }
        } else if 3 * p <= n {
            if (n / p) & 1 == 1 {
                push(p);
            }
        } else if 2 * p > n {
            push(p);
        }
    }
    factors.push(acc);
    product(&factors)
}

/// Odd primes `<= n`, by a sieve over odd numbers.
fn odd_primes_up_to(n: u64) -> Vec<u64> {
    let n = usize::try_from(n).expect("factorial argument exceeds the address space");
    // Bit i stands for 2i + 1.
    let len = n / 2 + 1;
    let mut composite = vec![0u64; len.div_ceil(64)];
    let mut primes = Vec::new();
    let mut i = 1;
    while i < len {
        if composite[i / 64] >> (i % 64) & 1 == 0 {
            let p = 2 * i + 1;
            if p > n {
                break;
            }
            primes.push(p as u64);
            let mut j = p.saturating_mul(p) / 2;
            while j < len {
                composite[j / 64] |= 1 << (j % 64);
                j += p;
            }
        }
        i += 1;
    }
    primes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(n: u64) -> BigUint {
        let mut r = BigUint::one();
        for i in 2..=n {
            r *= i;
        }
        r
    }

    #[test]
    fn exact_values() {
        assert_eq!(factorial(0), BigUint::one());
        assert_eq!(factorial(1), BigUint::one());
        assert_eq!(factorial(5), BigUint::from(120u32));
        assert_eq!(factorial(20), BigUint::from(2_432_902_008_176_640_000u64));
        assert_eq!(factorial(25).to_string(), "15511210043330985984000000");
    }

    #[test]
    fn matches_naive_product() {
        let mut r = BigUint::one();
        for n in 0..=300u64 {
            if n >= 2 {
                r *= n;
            }
            assert_eq!(factorial(n), r, "{n}!");
        }
    }

    #[test]
    fn larger_values_match_naive() {
        for n in [1000u64, 4321, 12_345] {
            assert_eq!(factorial(n), naive(n), "{n}!");
        }
    }

    #[test]
    fn primes_are_correct() {
        assert_eq!(odd_primes_up_to(1), Vec::<u64>::new());
        assert_eq!(odd_primes_up_to(2), Vec::<u64>::new());
        assert_eq!(odd_primes_up_to(3), vec![3]);
        assert_eq!(odd_primes_up_to(30), vec![3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert_eq!(odd_primes_up_to(1_000_000).len(), 78_497);
    }

    #[test]
    fn cost_tracks_bits() {
        for n in [0u64, 1, 2, 10, 100, 1000, 10_000] {
            let bits = factorial(n).bits();
            let est = factorial_cost(n);
            assert!(est.abs_diff(bits) <= 2, "n={n} bits={bits} est={est}");
        }
        assert!(factorial_cost(u64::MAX) > factorial_cost(1 << 40));
        let mut prev = 0;
        for n in 0..2000u64 {
            let c = factorial_cost(n);
            assert!(c >= prev);
            prev = c;
        }
    }
}
