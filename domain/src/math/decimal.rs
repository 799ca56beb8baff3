//! Sub-quadratic conversion of big integers to decimal strings.
//!
//! Divide and conquer over the powers `P_k = 10^(D 2^k)` (`P_k = P_(k-1)^2`):
//! `x = hi * P_k + lo`, where `lo` is printed with exactly `D 2^k` digits
//! (leading zeros kept) and `hi` recursively. Leaves (`< 10^D`) use
//! num-bigint's `to_string`. Small divisors use num-bigint's division; large
//! ones use Barrett division with a reciprocal computed by Newton iteration,
//! where both products run through the NTT multiplication with the transforms
//! of the fixed operands (the reciprocal and `P_k`) computed once per level.
//! The remainder is computed modulo `2^(64 n) - 1` (a cyclic convolution of
//! half the length), which is exact because it is known to be below `3 P_k`.
//!
//! The leaf size `D` is chosen so that every level's transforms are almost
//! exactly a power of two long.

use num_bigint::{BigInt, BigUint};
use num_integer::Integer;
use num_traits::{One, Signed, Zero};

use super::mul::{
    Prepared, Tables, from_limbs, log2_ceil, mul, normalize_wrapped, square, wrap_add,
};

/// `log2(10)`.
const LOG2_10: f64 = std::f64::consts::LOG2_10;

/// Bits available to the leaf power `10^D` (`D = (2^LEAF_LOG - 16) / log2 10`).
const LEAF_LOG: u32 = 11;

/// Levels whose power has at least this many bits use Barrett division.
const BARRETT_MIN_BITS: u64 = 64 * 1_000;

/// Divisors up to this many bits get their reciprocal by a plain division.
const RECIP_BASE_BITS: u64 = 64 * 64;

/// Renders `x` in decimal, like `x.to_string()` but in sub-quadratic time.
pub fn to_decimal(x: &BigUint) -> String {
    let leaf = leaf_digits();
    let bits = x.bits();
    // An upper bound for the number of digits of x.
    let digits = (bits as f64 / LOG2_10).floor() as u64 + 1;
    if digits <= 2 * leaf {
        return x.to_string();
    }
    let conv = Converter::new(leaf, digits);
    let mut out = Vec::with_capacity(digits as usize);
    conv.write_top(x.clone(), &mut out);
    String::from_utf8(out).expect("decimal digits are ASCII")
}

/// Leaf size `D` in digits, so that `10^(D 2^k)` has at most
/// `2^(LEAF_LOG + k) - 16` bits.
fn leaf_digits() -> u64 {
    (f64::from((1u32 << LEAF_LOG) - 16) / LOG2_10).floor() as u64 - 1
}

/// Precomputed data for Barrett division by one power of ten.
struct Barrett {
    /// Transform of `floor(4^b / P)` for full products.
    mu: Prepared,
    /// Transform of `P` for products modulo `2^(64 n) - 1`.
    pow_wrapped: Prepared,
}

/// One level of the conversion tree.
struct Level {
    /// `D 2^k`.
    digits: u64,
    /// `10^(D 2^k)`.
    pow: BigUint,
    /// Bit length of `pow`.
    bits: u64,
    /// Present for large levels.
    barrett: Option<Barrett>,
}

/// The precomputed levels and NTT tables for one conversion.
struct Converter {
    levels: Vec<Level>,
    tables: Option<Tables>,
}

impl Converter {
    /// Levels up to the largest `k` with `2 D 2^k <= digits`.
    fn new(leaf: u64, digits: u64) -> Self {
        let mut pows = vec![BigUint::from(10u32).pow(leaf as u32)];
        let mut d = leaf;
        while 4 * d <= digits {
            let next = square(pows.last().expect("non-empty"));
            pows.push(next);
            d *= 2;
        }
        let max_bits = pows.last().expect("non-empty").bits();
        let tables =
            (max_bits >= BARRETT_MIN_BITS).then(|| Tables::new(log2_ceil(full_len(max_bits))));
        let mut levels = Vec::with_capacity(pows.len());
        // floor(4^b / P) of the previous level, seeding the next one.
        let mut prev_mu: Option<(BigUint, u64)> = None;
        for (k, pow) in pows.into_iter().enumerate() {
            let bits = pow.bits();
            let barrett = match &tables {
                Some(t) if bits >= BARRETT_MIN_BITS => {
                    let pow_wrapped = t.prepare(&pow.to_u64_digits(), wrapped_len(bits));
                    let mu = match &prev_mu {
                        Some((mu_prev, bits_prev)) => {
                            reciprocal_of_square(t, &pow, &pow_wrapped, mu_prev, *bits_prev)
                        }
                        None => reciprocal(&pow),
                    };
                    let prepared = t.prepare(&mu.to_u64_digits(), full_len(bits));
                    prev_mu = Some((mu, bits));
                    Some(Barrett {
                        mu: prepared,
                        pow_wrapped,
                    })
                }
                _ => None,
            };
            levels.push(Level {
                digits: leaf << k,
                pow,
                bits,
                barrett,
            });
        }
        Self { levels, tables }
    }

    /// Appends the digits of `x` without leading zeros.
    fn write_top(&self, x: BigUint, out: &mut Vec<u8>) {
        let Some(k) = self.levels.iter().rposition(|l| l.pow <= x) else {
            out.extend_from_slice(x.to_string().as_bytes());
            return;
        };
        let level = &self.levels[k];
        let (q, r) = if k + 1 < self.levels.len() || x.bits() + 2 <= 2 * level.bits {
            // x < P_(k+1) = P_k^2
            self.divrem(&x, level)
        } else {
            self.long_div(&x, level)
        };
        drop(x);
        self.write_top(q, out);
        self.write_padded(r, k, out);
    }

    /// Appends exactly `D 2^k` digits of `x < P_k`.
    fn write_padded(&self, x: BigUint, k: usize, out: &mut Vec<u8>) {
        if k == 0 {
            let s = if x.is_zero() {
                String::new()
            } else {
                x.to_string()
            };
            let width = self.levels[0].digits as usize;
            debug_assert!(s.len() <= width);
            out.resize(out.len() + width - s.len(), b'0');
            out.extend_from_slice(s.as_bytes());
            return;
        }
        let (q, r) = self.divrem(&x, &self.levels[k - 1]);
        drop(x);
        self.write_padded(q, k - 1, out);
        self.write_padded(r, k - 1, out);
    }

    /// `x / P` and `x % P` for a dividend of any size, by long division in
    /// windows of `bits(P) - 1` bits (each window step has a dividend below
    /// `P^2`).
    fn long_div(&self, x: &BigUint, level: &Level) -> (BigUint, BigUint) {
        let w = level.bits - 1;
        let chunks = x.bits().div_ceil(w);
        let mask = (BigUint::one() << w) - 1u32;
        let mut q = BigUint::zero();
        let mut rem = BigUint::zero();
        for j in (0..chunks).rev() {
            let cur = (rem << w) | ((x >> (j * w)) & &mask);
            let (qj, r) = if cur < level.pow {
                (BigUint::zero(), cur)
            } else {
                self.divrem(&cur, level)
            };
            q = (q << w) | qj;
            rem = r;
        }
        (q, rem)
    }

    /// `x / P` and `x % P` for `x < P^2`.
    fn divrem(&self, x: &BigUint, level: &Level) -> (BigUint, BigUint) {
        debug_assert!(x.bits() <= 2 * level.bits);
        match (&level.barrett, &self.tables) {
            (Some(bar), Some(tables)) if *x >= level.pow => barrett(tables, bar, x, level),
            _ => x.div_rem(&level.pow),
        }
    }
}

/// Transform length for `x_hi * mu`, both below `2^(b+1)`.
fn full_len(bits: u64) -> usize {
    let limbs = (bits + 1).div_ceil(64) as usize;
    1 << log2_ceil(2 * limbs - 1)
}

/// Transform length `n` for products modulo `M = 2^(64 n) - 1` with
/// `M > 2^(b + 63)`: remainders below `2^62 P` (in absolute value) are
/// recovered exactly.
fn wrapped_len(bits: u64) -> usize {
    let limbs = (bits + 64).div_ceil(64) as usize;
    1 << log2_ceil(limbs)
}

/// Barrett division of `x < P^2` by `P` (HAC 14.42 in base 2): with
/// `mu = floor(4^b / P)`, `q = floor(floor(x / 2^(b-1)) mu / 2^(b+1))` is at
/// most 2 below the true quotient.
fn barrett(tables: &Tables, bar: &Barrett, x: &BigUint, level: &Level) -> (BigUint, BigUint) {
    let b = level.bits;
    let x_hi = (x >> (b - 1)).to_u64_digits();
    let mut q = from_limbs(&tables.mul_prepared(&bar.mu, &x_hi)) >> (b + 1);
    // r = x - q P modulo 2^(64 n) - 1; exact since 0 <= r < 3P < 2^(64 n) - 1.
    let n = bar.pow_wrapped.n();
    let qp = tables.mul_prepared_wrapped(&bar.pow_wrapped, &q.to_u64_digits());
    let mut r = vec![0u64; n];
    wrap_add(&mut r, &x.to_u64_digits());
    let neg: Vec<u64> = qp.iter().map(|&v| !v).collect();
    wrap_add(&mut r, &neg);
    normalize_wrapped(&mut r);
    let mut r = from_limbs(&r);
    while r >= level.pow {
        r -= &level.pow;
        q += 1u32;
    }
    (q, r)
}

/// `floor(4^b / d)` where `b = bits(d)`, by Newton iteration on the top half.
fn reciprocal(d: &BigUint) -> BigUint {
    let b = d.bits();
    assert!(b > 0, "reciprocal of zero");
    if b <= RECIP_BASE_BITS {
        return (BigUint::one() << (2 * b)) / d;
    }
    // Top h bits of d; their reciprocal gives about h correct bits.
    let h = b / 2 + 33;
    let s = b - h;
    let mh = reciprocal(&(d >> s));
    // y0 = mh 2^s; e = 4^b - d y0 (signed, |e| < 2^(2b + 3 - h)).
    let t = BigInt::from(mul(d, &mh) << s);
    let e = (BigInt::one() << (2 * b)) - t;
    // One Newton step y1 = y0 + y0 e / 4^b, with e truncated to its top bits.
    let sigma = 2 * s - 5;
    let e_t = &e >> sigma;
    let c = signed_mul(&BigInt::from(mh.clone()), &e_t) >> (2 * b + 5 - 3 * s);
    let mut y = BigInt::from(mh << s) + &c;
    // Exact correction from the remainder r = 4^b - d y = e - d c.
    let d_signed = BigInt::from(d.clone());
    let mut r = e - signed_mul(&d_signed, &c);
    while r.is_negative() {
        r += &d_signed;
        y -= 1;
    }
    while r >= d_signed {
        r -= &d_signed;
        y += 1;
    }
    y.into_parts().1
}

/// `floor(4^b / d)` for `d = d'^2` with `b = bits(d)`, given
/// `mu' = floor(4^b' / d')` (`b' = bits(d')`) and the transform of `d` for
/// products modulo `M = 2^(64 n) - 1`.
///
/// `mu'^2` approximates `4^(2b') / d` to about `b'` bits; one Newton step
/// doubles that. Products with `d` whose result is known to be close to a
/// known value are computed modulo `M` only (half the transform length).
fn reciprocal_of_square(
    tables: &Tables,
    d: &BigUint,
    d_wrapped: &Prepared,
    mu_prev: &BigUint,
    bits_prev: u64,
) -> BigUint {
    let b = d.bits();
    let n = d_wrapped.n();
    let h = b / 2 + 33;
    let s = b - h;
    debug_assert!(b <= 2 * bits_prev && 64 * n as u64 >= b + 64);
    // Seed with h significant bits: y0 = mh 2^s.
    let mh = square(mu_prev) >> (4 * bits_prev - 2 * b + s);
    // d mh = 2^(2b - s) + delta with |delta| < 2^(b + 40) < M / 2.
    let t = tables.mul_prepared_wrapped(d_wrapped, &mh.to_u64_digits());
    let base = wrapped_pow2(2 * b - s, n);
    let delta = symmetric(&wrapped_sub(&t, &base));
    // e = 4^b - d y0 = -delta 2^s.
    let e = -(delta << s);
    let sigma = 2 * s - 5;
    let c = signed_mul(&BigInt::from(mh.clone()), &(&e >> sigma)) >> (2 * b + 5 - 3 * s);
    let mut y = BigInt::from(mh << s) + &c;
    // r = 4^b - d y = e - d c, small: computed modulo M.
    let dc = tables.mul_prepared_wrapped(d_wrapped, &c.magnitude().to_u64_digits());
    let e_w = to_wrapped(&e, n);
    let r_w = if c.is_negative() {
        let mut v = e_w;
        wrap_add(&mut v, &dc);
        normalize_wrapped(&mut v);
        v
    } else {
        wrapped_sub(&e_w, &dc)
    };
    let d_signed = BigInt::from(d.clone());
    let mut r = symmetric(&r_w);
    while r.is_negative() {
        r += &d_signed;
        y -= 1;
    }
    while r >= d_signed {
        r -= &d_signed;
        y += 1;
    }
    y.into_parts().1
}

/// `2^e mod (2^(64 n) - 1)` as `n` limbs.
fn wrapped_pow2(e: u64, n: usize) -> Vec<u64> {
    let e = e % (64 * n as u64);
    let mut v = vec![0u64; n];
    v[(e / 64) as usize] = 1 << (e % 64);
    v
}

/// `a - b mod (2^(64 n) - 1)` for reduced `n`-limb operands.
fn wrapped_sub(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut v = a.to_vec();
    let neg: Vec<u64> = b.iter().map(|&x| !x).collect();
    wrap_add(&mut v, &neg);
    normalize_wrapped(&mut v);
    v
}

/// `x mod (2^(64 n) - 1)` as `n` reduced limbs.
fn to_wrapped(x: &BigInt, n: usize) -> Vec<u64> {
    let mut v = vec![0u64; n];
    wrap_add(&mut v, &x.magnitude().to_u64_digits());
    normalize_wrapped(&mut v);
    if x.is_negative() {
        v = wrapped_sub(&vec![0u64; n], &v);
    }
    v
}

/// The representative of a residue modulo `2^(64 n) - 1` in `(-M/2, M/2]`.
fn symmetric(v: &[u64]) -> BigInt {
    let top = v.last().copied().unwrap_or(0);
    if top >> 63 == 0 {
        BigInt::from(from_limbs(v))
    } else {
        let neg: Vec<u64> = v.iter().map(|&x| !x).collect();
        -BigInt::from(from_limbs(&neg))
    }
}

/// Signed product through the fast multiplication.
fn signed_mul(a: &BigInt, b: &BigInt) -> BigInt {
    let sign = a.sign() * b.sign();
    BigInt::from_biguint(sign, mul(a.magnitude(), b.magnitude()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::math::test_rng::Rng;

    fn check(x: &BigUint) {
        assert_eq!(to_decimal(x), x.to_string(), "bits {}", x.bits());
    }

    #[test]
    fn small_values() {
        for v in [0u64, 1, 9, 10, 11, 99, 100, 101, 12_345, u64::MAX] {
            check(&BigUint::from(v));
        }
    }

    #[test]
    fn powers_of_ten_and_neighbours() {
        let d = leaf_digits() as u32;
        let mut exps = vec![1u32, 19, 20, 100, 20_000, 60_000];
        // Around every split point D 2^k and its square (the levels' edges).
        for k in 0..6 {
            for m in [d << k, 2 * (d << k)] {
                exps.extend([m - 1, m, m + 1]);
            }
        }
        for k in exps {
            let p = BigUint::from(10u32).pow(k);
            check(&p);
            check(&(&p - 1u32));
            check(&(&p + 1u32));
            check(&(&p * 7u32));
        }
    }

    #[test]
    fn top_level_edges() {
        // x just below and at P_K^2 and P_K^4 for a level that uses Barrett
        // division, so both the direct split and the long division run.
        let d = leaf_digits() as u32;
        let ten = BigUint::from(10u32);
        let m = d << 5;
        for e in [2 * m, 3 * m, 4 * m] {
            let p = ten.pow(e);
            check(&(&p - 1u32));
            check(&p);
            check(&(&p + 12_345u32));
        }
    }

    #[test]
    fn long_zero_and_nine_runs() {
        let ten = BigUint::from(10u32);
        for (hi, gap) in [(1u32, 5_000u32), (123, 30_000), (9, 59_000)] {
            let x = BigUint::from(hi) * ten.pow(gap) + 17u32;
            check(&x);
            let y = BigUint::from(hi) * ten.pow(gap) - 1u32;
            check(&y);
        }
        // 10^a * (10^b - 1): a run of nines followed by a run of zeros.
        let x = (ten.pow(40_000) - 1u32) * ten.pow(25_000);
        check(&x);
    }

    #[test]
    fn random_sizes() {
        let mut rng = Rng(42);
        let mut bits = 1u64;
        while bits <= 200_000 {
            check(&rng.biguint(bits));
            bits = bits * 3 / 2 + 1;
        }
        for _ in 0..6 {
            let bits = rng.next() % 200_000 + 1;
            check(&rng.biguint(bits));
        }
    }

    #[test]
    fn seeded_reciprocal_is_exact() {
        let t = Tables::new(12);
        let mut p = BigUint::from(10u32).pow(3000);
        let mut mu = reciprocal(&p);
        for _ in 0..3 {
            let bits_prev = p.bits();
            p = &p * &p;
            let prep = t.prepare(&p.to_u64_digits(), wrapped_len(p.bits()));
            mu = reciprocal_of_square(&t, &p, &prep, &mu, bits_prev);
            let expect = (BigUint::one() << (2 * p.bits())) / &p;
            assert_eq!(mu, expect, "bits {}", p.bits());
        }
    }

    #[test]
    fn large_barrett_levels() {
        // Exercises several Barrett levels and the long division at the top.
        let mut rng = Rng(7);
        for bits in [700_000u64, 1_300_000] {
            check(&rng.biguint(bits));
        }
    }

    #[test]
    fn reciprocal_is_exact() {
        let mut rng = Rng(9);
        for bits in [1u64, 2, 63, 64, 65, 4096, 4097, 10_000, 70_000, 150_000] {
            let mut d = rng.biguint(bits);
            d.set_bit(bits - 1, true);
            let expect = (BigUint::one() << (2 * bits)) / &d;
            assert_eq!(reciprocal(&d), expect, "bits {bits}");
            let p = BigUint::one() << (bits - 1);
            let expect = (BigUint::one() << (2 * bits)) / &p;
            assert_eq!(reciprocal(&p), expect, "power of two {bits}");
            let m = (BigUint::one() << bits) - 1u32;
            assert_eq!(
                reciprocal(&m),
                (BigUint::one() << (2 * bits)) / &m,
                "ones {bits}"
            );
        }
    }
}
