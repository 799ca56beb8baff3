//! Fibonacci numbers by fast doubling with squarings.

use num_bigint::BigUint;
use num_traits::{One, Zero};

use super::mul::{mul, square};

/// `log2` of the golden ratio.
const LOG2_PHI: f64 = 0.694_241_913_630_617_3;

/// Computes the Fibonacci number `F(n)` exactly (`F(0) = 0`, `F(1) = 1`).
///
/// Uses the doubling formulas `F(2k+1) = 4F(k)^2 - F(k-1)^2 + 2(-1)^k`,
/// `F(2k-1) = F(k)^2 + F(k-1)^2`, `F(2k) = F(2k+1) - F(2k-1)` (two squarings
/// per bit) and a single product for the last step. The result has about
/// `0.694 n` bits (see [`fibonacci_cost`]).
pub fn fibonacci(n: u64) -> BigUint {
    if n < 2 {
        return BigUint::from(n);
    }
    let k = n / 2;
    let (f, g) = pair(k);
    if n.is_multiple_of(2) {
        // F(2k) = F(k) (F(k) + 2 F(k-1))
        let t = &f + (&g << 1);
        mul(&f, &t)
    } else {
        // F(2k+1) = (2F(k) + F(k-1)) (2F(k) - F(k-1)) + 2(-1)^k
        let f2 = &f << 1;
        let p = mul(&(&f2 + &g), &(&f2 - &g));
        if k.is_multiple_of(2) {
            p + 2u32
        } else {
            p - 2u32
        }
    }
}

/// `(F(k), F(k-1))` for `k >= 1`.
fn pair(k: u64) -> (BigUint, BigUint) {
    let (mut f, mut g) = (BigUint::one(), BigUint::zero());
    let mut odd = true; // parity of the index reached so far (1)
    let top = 63 - k.leading_zeros();
    for i in (0..top).rev() {
        let f2 = square(&f);
        let g2 = square(&g);
        let f_next = (&f2 << 2) - &g2;
        let f_next = if odd { f_next - 2u32 } else { f_next + 2u32 };
        let f_prev = f2 + g2;
        let f_mid = &f_next - &f_prev;
        if (k >> i) & 1 == 1 {
            (f, g) = (f_next, f_mid);
            odd = true;
        } else {
            (f, g) = (f_mid, f_prev);
            odd = false;
        }
    }
    (f, g)
}

/// Estimated number of bits of `F(n)` (exact to within one bit, saturating).
/// Monotone in `n`.
pub fn fibonacci_cost(n: u64) -> u64 {
    if n < 2 {
        return 1;
    }
    // F(n) ~ phi^n / sqrt(5).
    let bits = n as f64 * LOG2_PHI - 0.5 * 5f64.log2() + 1.0;
    if bits >= u64::MAX as f64 {
        u64::MAX
    } else {
        bits.ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_values() {
        assert_eq!(fibonacci(0), BigUint::zero());
        assert_eq!(fibonacci(1), BigUint::one());
        assert_eq!(fibonacci(2), BigUint::one());
        assert_eq!(fibonacci(3), BigUint::from(2u32));
        assert_eq!(fibonacci(10), BigUint::from(55u32));
        assert_eq!(fibonacci(93), BigUint::from(12_200_160_415_121_876_738u64));
        assert_eq!(fibonacci(100).to_string(), "354224848179261915075");
    }

    #[test]
    fn matches_iteration() {
        let (mut a, mut b) = (BigUint::zero(), BigUint::one());
        for n in 0..=2000u64 {
            assert_eq!(fibonacci(n), a, "F({n})");
            let c = &a + &b;
            a = b;
            b = c;
        }
    }

    #[test]
    fn large_identity() {
        // Cassini-like check on a size that uses the NTT: F(2n) = F(n) L(n)
        // with L(n) = F(n-1) + F(n+1).
        let n = 400_000u64;
        let f = fibonacci(n);
        let l = fibonacci(n - 1) + fibonacci(n + 1);
        assert_eq!(fibonacci(2 * n), &f * &l);
    }

    #[test]
    fn cost_tracks_bits() {
        for n in [0u64, 1, 2, 3, 10, 100, 1000, 12_345] {
            let bits = fibonacci(n).bits().max(1);
            let est = fibonacci_cost(n);
            assert!(est.abs_diff(bits) <= 1, "n={n} bits={bits} est={est}");
        }
        assert!(fibonacci_cost(u64::MAX) > 12_000_000_000_000_000_000);
    }
}
