//! Fast multiplication of large [`BigUint`]s.
//!
//! num-bigint multiplies with schoolbook, Karatsuba and Toom-3, which is
//! `O(n^1.465)` at the top end. For large operands (chosen by a small cost
//! model) this module switches to a number-theoretic transform (NTT) over
//! three 62-bit primes, combined with the Chinese remainder theorem:
//! `O(n log n)`. Products with a fixed operand can reuse its transform
//! ([`Prepared`]), and products modulo `2^(64 n) - 1` need only a cyclic
//! convolution of length `n`.
//!
//! The transform uses Harvey's lazy butterflies with Shoup's precomputed
//! twiddle quotients, a forward decimation-in-frequency pass (natural order in,
//! bit-reversed order out) and a decimation-in-time pass with the *same*
//! twiddles for the inverse (bit-reversed in, natural out, indices negated),
//! so no bit-reversal permutation and no inverse twiddle table are needed.

use num_bigint::BigUint;
use num_traits::One;

/// Below this many 64-bit limbs in the smaller factor, num-bigint multiplies.
const MIN_NTT_LIMBS: usize = 256;

/// Transform sizes up to this many elements are processed entirely in cache
/// once the large butterfly passes have split the array into blocks.
const BLOCK: usize = 1 << 12;

/// Three NTT-friendly primes `k * 2^40 + 1` in `(2^61, 2^62)` and a primitive
/// root of each. Their product (about 2^186) bounds every convolution
/// coefficient `N * (2^64 - 1)^2` for all `N <= 2^40`.
const PRIMES: [(u64, u64); 3] = [
    (4_611_615_649_683_210_241, 11),
    (4_611_549_678_985_543_681, 19),
    (4_611_546_380_450_660_353, 5),
];

/// Largest supported transform length (log2).
const MAX_LOG: u32 = 40;

/// `a * b mod m` (setup only; uses a 128-bit division).
fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) % u128::from(m)) as u64
}

/// `a^e mod m` (setup only).
fn pow_mod(mut a: u64, mut e: u64, m: u64) -> u64 {
    let mut r = 1 % m;
    a %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, a, m);
        }
        a = mul_mod(a, a, m);
        e >>= 1;
    }
    r
}

/// `p^-1 mod 2^64` for odd `p` (Newton iteration).
fn inv_mod_2_64(p: u64) -> u64 {
    let mut x = p; // correct to 3 bits
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(p.wrapping_mul(x)));
    }
    x
}

/// Shoup companion `floor(w * 2^64 / p)` (setup only).
fn shoup_companion(w: u64, p: u64) -> u64 {
    ((u128::from(w) << 64) / u128::from(p)) as u64
}

/// `x mod 2p` for `x < 4p`: the lazy reduction between butterfly stages, where
/// values are kept below `2p` (`p2`).
#[inline]
fn reduce2(x: u64, p2: u64) -> u64 {
    if x >= p2 { x - p2 } else { x }
}

/// `x * w mod p` in `[0, 2p)` for any `x < 2^64`, `w < p`, `wp = floor(w 2^64 / p)`.
#[inline(always)]
fn shoup(x: u64, w: u64, wp: u64, p: u64) -> u64 {
    let q = ((u128::from(x) * u128::from(wp)) >> 64) as u64;
    x.wrapping_mul(w).wrapping_sub(q.wrapping_mul(p))
}

/// Montgomery product `a * b / 2^64 mod p` in `[0, p)` for `a, b < 2p`, `p < 2^62`.
#[inline(always)]
fn mont(a: u64, b: u64, p: u64, pinv: u64) -> u64 {
    let t = u128::from(a) * u128::from(b);
    let lo = t as u64;
    let hi = (t >> 64) as u64;
    let m = lo.wrapping_mul(pinv);
    let mp = ((u128::from(m) * u128::from(p)) >> 64) as u64;
    let (r, borrow) = hi.overflowing_sub(mp);
    if borrow { r.wrapping_add(p) } else { r }
}

/// Twiddle tables and constants for one prime, valid for every transform
/// length up to `2^log`.
struct PrimeTab {
    p: u64,
    /// `p^-1 mod 2^64`.
    pinv: u64,
    /// `floor(2^64 / p)`, to reduce input limbs.
    load_q: u64,
    /// `2^64 mod p`.
    r_mod: u64,
    /// Twiddles `(w, companion)`: entry `h + j` holds `w_{2h}^j` for `j < h`,
    /// where `w_{2h}` is a fixed primitive `2h`-th root of unity. The layout
    /// does not depend on the transform length.
    tw: Vec<[u64; 2]>,
}

impl PrimeTab {
    fn new(p: u64, g: u64, log: u32) -> Self {
        let n = 1usize << log;
        let pinv = inv_mod_2_64(p);
        let load_q = ((1u128 << 64) / u128::from(p)) as u64;
        let r_mod = ((1u128 << 64) % u128::from(p)) as u64;
        let mut tw = vec![[0u64; 2]; n.max(2)];
        if n >= 2 {
            let half = n / 2;
            let w = pow_mod(g, (p - 1) >> log, p);
            let wc = shoup_companion(w, p);
            // `v` runs over w^j and `mv` over w^j * 2^64 mod p; the Shoup
            // companion floor(v 2^64 / p) = (v 2^64 - mv) / p is an exact
            // division, done as a multiplication by p^-1 mod 2^64.
            let mut v = 1u64;
            let mut mv = r_mod;
            for j in 0..half {
                tw[half + j] = [v, mv.wrapping_neg().wrapping_mul(pinv)];
                v = shoup(v, w, wc, p);
                if v >= p {
                    v -= p;
                }
                mv = shoup(mv, w, wc, p);
                if mv >= p {
                    mv -= p;
                }
            }
            let mut h = half / 2;
            while h >= 1 {
                for j in 0..h {
                    tw[h + j] = tw[2 * h + 2 * j];
                }
                h /= 2;
            }
        }
        Self {
            p,
            pinv,
            load_q,
            r_mod,
            tw,
        }
    }

    /// `2^64 / n mod p` and its companion: undoes the Montgomery factor of the
    /// pointwise products and the factor `n` of the unnormalised inverse.
    fn scale(&self, n: usize) -> [u64; 2] {
        let n_inv = pow_mod(n as u64 % self.p, self.p - 2, self.p);
        let s = mul_mod(self.r_mod, n_inv, self.p);
        [s, shoup_companion(s, self.p)]
    }

    /// Reduces limbs into `[0, 2p)` and zero-pads to `n`.
    fn load(&self, limbs: &[u64], n: usize) -> Vec<u64> {
        debug_assert!(limbs.len() <= n);
        let mut out = Vec::with_capacity(n);
        let (p, q) = (self.p, self.load_q);
        out.extend(limbs.iter().map(|&x| shoup(x, 1, q, p)));
        out.resize(n, 0);
        out
    }

    /// Forward transform (decimation in frequency) of a power-of-two length.
    /// Input and output in `[0, 2p)`; output in bit-reversed order.
    fn forward(&self, a: &mut [u64]) {
        let n = a.len();
        if n <= BLOCK {
            self.dif_stages(a, n / 2, 1);
        } else {
            self.dif_stages(a, n / 2, BLOCK);
            for blk in a.chunks_exact_mut(BLOCK) {
                self.dif_stages(blk, BLOCK / 2, 1);
            }
        }
    }

    /// Decimation-in-time pass with the forward twiddles: bit-reversed input
    /// in `[0, 4p)`, natural-order output in `[0, 4p)`. Applied to a forward
    /// transform it yields `n` times the input with indices negated mod `n`.
    fn backward(&self, a: &mut [u64]) {
        let n = a.len();
        if n <= BLOCK {
            self.dit_stages(a, 1, n / 2);
        } else {
            for blk in a.chunks_exact_mut(BLOCK) {
                self.dit_stages(blk, 1, BLOCK / 2);
            }
            self.dit_stages(a, BLOCK, n / 2);
        }
    }

    /// DIF stages with half-sizes `hs, hs/2, ..., he` on every block of `2 hs`.
    fn dif_stages(&self, a: &mut [u64], hs: usize, he: usize) {
        let mut h = hs;
        while h >= 2 * he && h >= 2 {
            self.dif4(a, h / 2);
            h /= 4;
        }
        if h >= he && h >= 1 {
            self.dif2(a, h);
        }
    }

    /// DIT stages with half-sizes `hs, 2 hs, ..., he`.
    fn dit_stages(&self, a: &mut [u64], hs: usize, he: usize) {
        let mut h = hs;
        while 2 * h <= he {
            self.dit4(a, h);
            h *= 4;
        }
        if h <= he && h >= 1 {
            self.dit2(a, h);
        }
    }

    /// One radix-2 DIF stage of half-size `h`.
    fn dif2(&self, a: &mut [u64], h: usize) {
        let (p, p2) = (self.p, 2 * self.p);
        let t = &self.tw[h..2 * h];
        for pair in a.chunks_exact_mut(2 * h) {
            let (lo, hi) = pair.split_at_mut(h);
            for ((x, y), w) in lo.iter_mut().zip(hi.iter_mut()).zip(t) {
                let (a0, b0) = (*x, *y);
                *x = reduce2(a0 + b0, p2);
                *y = shoup(a0 + p2 - b0, w[0], w[1], p);
            }
        }
    }

    /// Two DIF stages (half-sizes `2q` and `q`) fused.
    fn dif4(&self, a: &mut [u64], q: usize) {
        let (p, p2) = (self.p, 2 * self.p);
        let t1 = &self.tw[2 * q..3 * q]; // w_{4q}^j
        let t3 = &self.tw[3 * q..4 * q]; // w_{4q}^(j+q)
        let t2 = &self.tw[q..2 * q]; // w_{2q}^j
        for quad in a.chunks_exact_mut(4 * q) {
            let (x01, x23) = quad.split_at_mut(2 * q);
            let (x0, x1) = x01.split_at_mut(q);
            let (x2, x3) = x23.split_at_mut(q);
            let x1 = &mut x1[..q];
            let x2 = &mut x2[..q];
            let x3 = &mut x3[..q];
            for j in 0..q {
                let (a0, a1, a2, a3) = (x0[j], x1[j], x2[j], x3[j]);
                let b0 = reduce2(a0 + a2, p2);
                let b2 = shoup(a0 + p2 - a2, t1[j][0], t1[j][1], p);
                let b1 = reduce2(a1 + a3, p2);
                let b3 = shoup(a1 + p2 - a3, t3[j][0], t3[j][1], p);
                let (w, wc) = (t2[j][0], t2[j][1]);
                x0[j] = reduce2(b0 + b1, p2);
                x1[j] = shoup(b0 + p2 - b1, w, wc, p);
                x2[j] = reduce2(b2 + b3, p2);
                x3[j] = shoup(b2 + p2 - b3, w, wc, p);
            }
        }
    }

    /// One radix-2 DIT stage of half-size `h`.
    fn dit2(&self, a: &mut [u64], h: usize) {
        let (p, p2) = (self.p, 2 * self.p);
        let t = &self.tw[h..2 * h];
        for pair in a.chunks_exact_mut(2 * h) {
            let (lo, hi) = pair.split_at_mut(h);
            for ((x, y), w) in lo.iter_mut().zip(hi.iter_mut()).zip(t) {
                let a0 = reduce2(*x, p2);
                let t0 = shoup(*y, w[0], w[1], p);
                *x = a0 + t0;
                *y = a0 + p2 - t0;
            }
        }
    }

    /// Two DIT stages (half-sizes `q` and `2q`) fused.
    fn dit4(&self, a: &mut [u64], q: usize) {
        let (p, p2) = (self.p, 2 * self.p);
        let t2 = &self.tw[q..2 * q]; // w_{2q}^j
        let t1 = &self.tw[2 * q..3 * q]; // w_{4q}^j
        let t3 = &self.tw[3 * q..4 * q]; // w_{4q}^(j+q)
        for quad in a.chunks_exact_mut(4 * q) {
            let (x01, x23) = quad.split_at_mut(2 * q);
            let (x0, x1) = x01.split_at_mut(q);
            let (x2, x3) = x23.split_at_mut(q);
            let x1 = &mut x1[..q];
            let x2 = &mut x2[..q];
            let x3 = &mut x3[..q];
            for j in 0..q {
                let (w, wc) = (t2[j][0], t2[j][1]);
                let a0 = reduce2(x0[j], p2);
                let u = shoup(x1[j], w, wc, p);
                let b0 = reduce2(a0 + u, p2);
                let b1 = reduce2(a0 + p2 - u, p2);
                let a2 = reduce2(x2[j], p2);
                let u = shoup(x3[j], w, wc, p);
                let b2 = a2 + u;
                let b3 = a2 + p2 - u;
                let u = shoup(b2, t1[j][0], t1[j][1], p);
                x0[j] = b0 + u;
                x2[j] = b0 + p2 - u;
                let u = shoup(b3, t3[j][0], t3[j][1], p);
                x1[j] = b1 + u;
                x3[j] = b1 + p2 - u;
            }
        }
    }

    /// Pointwise Montgomery product `a[i] = a[i] * b[i] / 2^64`, in `[0, p)`.
    fn pointwise(&self, a: &mut [u64], b: &[u64]) {
        let (p, pinv) = (self.p, self.pinv);
        for (x, &y) in a.iter_mut().zip(b) {
            *x = mont(*x, y, p, pinv);
        }
    }

    /// Pointwise `a[i] = a[i] * b[i] * s / 2^64` with `s` the transform scale,
    /// so that the backward pass yields the convolution itself.
    fn pointwise_scaled(&self, a: &mut [u64], b: &[u64], s: [u64; 2]) {
        let (p, pinv) = (self.p, self.pinv);
        for (x, &y) in a.iter_mut().zip(b) {
            *x = mont(*x, shoup(y, s[0], s[1], p), p, pinv);
        }
    }

    /// Pointwise scaled square, as [`Self::pointwise_scaled`] with `b = a`.
    fn pointwise_square_scaled(&self, a: &mut [u64], s: [u64; 2]) {
        let (p, pinv) = (self.p, self.pinv);
        for x in a.iter_mut() {
            *x = mont(*x, shoup(*x, s[0], s[1], p), p, pinv);
        }
    }

    /// Multiplies every entry by the scale, reducing to `[0, 2p)`.
    fn apply_scale(&self, a: &mut [u64], s: [u64; 2]) {
        let p = self.p;
        for x in a.iter_mut() {
            *x = shoup(*x, s[0], s[1], p);
        }
    }
}

/// Constants for combining residues modulo the three primes (Garner).
struct Crt {
    p: [u64; 3],
    /// `p0^-1 mod p1` with companion.
    i01: [u64; 2],
    /// `p0 mod p2` with companion.
    p0_2: [u64; 2],
    /// `(p0 p1)^-1 mod p2` with companion.
    i012: [u64; 2],
    /// `p0 * p1` as a 128-bit number.
    p01: u128,
}

impl Crt {
    fn new() -> Self {
        let p = [PRIMES[0].0, PRIMES[1].0, PRIMES[2].0];
        let i01 = pow_mod(p[0] % p[1], p[1] - 2, p[1]);
        let p0_2 = p[0] % p[2];
        let p01_2 = mul_mod(p0_2, p[1] % p[2], p[2]);
        let i012 = pow_mod(p01_2, p[2] - 2, p[2]);
        Self {
            p,
            i01: [i01, shoup_companion(i01, p[1])],
            p0_2: [p0_2, shoup_companion(p0_2, p[2])],
            i012: [i012, shoup_companion(i012, p[2])],
            p01: u128::from(p[0]) * u128::from(p[1]),
        }
    }

    /// The unique `x < p0 p1 p2` with the given residues, as three 64-bit words.
    #[inline(always)]
    fn combine(&self, r0: u64, r1: u64, r2: u64) -> (u64, u64, u64) {
        let [p0, p1, p2] = self.p;
        // v1 = (r1 - r0) / p0 mod p1
        let r0_1 = if r0 >= p1 { r0 - p1 } else { r0 };
        let mut v1 = shoup(r1 + p1 - r0_1, self.i01[0], self.i01[1], p1);
        if v1 >= p1 {
            v1 -= p1;
        }
        // v2 = (r2 - (r0 + p0 v1)) / (p0 p1) mod p2
        let r0_2 = if r0 >= p2 { r0 - p2 } else { r0 };
        let mut t = shoup(v1, self.p0_2[0], self.p0_2[1], p2) + r0_2;
        if t >= p2 {
            t -= p2;
        }
        if t >= p2 {
            t -= p2;
        }
        let mut v2 = shoup(r2 + p2 - t, self.i012[0], self.i012[1], p2);
        if v2 >= p2 {
            v2 -= p2;
        }
        // x = r0 + p0 v1 + p0 p1 v2
        let s = u128::from(r0) + u128::from(p0) * u128::from(v1);
        let lo = u128::from(self.p01 as u64) * u128::from(v2);
        let hi = u128::from((self.p01 >> 64) as u64) * u128::from(v2);
        let (s, c) = s.overflowing_add(lo);
        let mid = (s >> 64) + (hi & u128::from(u64::MAX)) + (u128::from(c) << 64);
        (s as u64, mid as u64, ((mid >> 64) + (hi >> 64)) as u64)
    }
}

/// Converts 64-bit limbs (little endian) to a [`BigUint`].
pub(crate) fn from_limbs(limbs: &[u64]) -> BigUint {
    let mut v = Vec::with_capacity(limbs.len() * 2);
    for &l in limbs {
        v.push(l as u32);
        v.push((l >> 32) as u32);
    }
    BigUint::new(v)
}

/// Adds `add` into `acc` starting at limb `offset`, propagating the carry.
fn add_into(acc: &mut Vec<u64>, add: &[u64], offset: usize) {
    if acc.len() < offset + add.len() {
        acc.resize(offset + add.len(), 0);
    }
    let mut carry = false;
    for (a, &b) in acc[offset..].iter_mut().zip(add) {
        let (s1, c1) = a.overflowing_add(b);
        let (s2, c2) = s1.overflowing_add(u64::from(carry));
        *a = s2;
        carry = c1 || c2;
    }
    let mut i = offset + add.len();
    while carry {
        if i == acc.len() {
            acc.push(1);
            break;
        }
        let (s, c) = acc[i].overflowing_add(1);
        acc[i] = s;
        carry = c;
        i += 1;
    }
}

/// `ceil(log2(len))`, at least 0.
pub(crate) fn log2_ceil(len: usize) -> u32 {
    len.max(1).next_power_of_two().trailing_zeros()
}

/// Twiddle tables for the three primes, for transforms up to `2^log` points.
pub(crate) struct Tables {
    log: u32,
    primes: [PrimeTab; 3],
    crt: Crt,
}

/// The forward transforms of a fixed operand, for repeated products with it.
pub(crate) struct Prepared {
    /// Transform length.
    n: usize,
    /// Number of limbs of the fixed operand.
    len: usize,
    /// Forward transform modulo each prime.
    fwd: [Vec<u64>; 3],
}

impl Prepared {
    /// Transform length.
    pub(crate) fn n(&self) -> usize {
        self.n
    }
}

impl Tables {
    /// Tables for transforms of up to `2^log` points.
    pub(crate) fn new(log: u32) -> Self {
        assert!(log <= MAX_LOG, "operands too large for the NTT");
        let primes = PRIMES.map(|(p, g)| PrimeTab::new(p, g, log));
        Self {
            log,
            primes,
            crt: Crt::new(),
        }
    }

    /// Transform of `fixed` at length `n` (a power of two `<= 2^log`), with
    /// the transform scale folded in.
    pub(crate) fn prepare(&self, fixed: &[u64], n: usize) -> Prepared {
        assert!(n <= 1 << self.log && n.is_power_of_two() && fixed.len() <= n);
        let fwd = [0, 1, 2].map(|k| {
            let pt = &self.primes[k];
            let mut f = pt.load(fixed, n);
            pt.forward(&mut f);
            pt.apply_scale(&mut f, pt.scale(n));
            f
        });
        Prepared {
            n,
            len: fixed.len(),
            fwd,
        }
    }

    /// Cyclic convolution of `other` with a prepared operand: the three
    /// backward outputs.
    fn convolve(&self, prep: &Prepared, other: &[u64]) -> [Vec<u64>; 3] {
        [0, 1, 2].map(|k| {
            let pt = &self.primes[k];
            let mut f = pt.load(other, prep.n);
            pt.forward(&mut f);
            pt.pointwise(&mut f, &prep.fwd[k]);
            pt.backward(&mut f);
            f
        })
    }

    /// Carries the first `count` convolution coefficients (scaled backward
    /// outputs, indices negated) into `out`; returns the two-word carry.
    fn carry_out(&self, ys: &[Vec<u64>; 3], count: usize, out: &mut Vec<u64>) -> (u64, u64) {
        let [y0, y1, y2] = ys;
        let n = y0.len();
        assert!(y1.len() == n && y2.len() == n && count <= n && n > 0);
        let [p0, p1, p2] = self.crt.p;
        let red = |v: u64, p: u64| {
            let v = if v >= 2 * p { v - 2 * p } else { v };
            if v >= p { v - p } else { v }
        };
        // Coefficient m sits at index (n - m) mod n.
        let first = std::iter::once((y0[0], y1[0], y2[0]));
        let rest = y0[1..]
            .iter()
            .rev()
            .zip(y1[1..].iter().rev())
            .zip(y2[1..].iter().rev())
            .map(|((&a, &b), &c)| (a, b, c));
        let (mut c0, mut c1) = (0u64, 0u64);
        for (a, b, c) in first.chain(rest).take(count) {
            let (w0, w1, w2) = self.crt.combine(red(a, p0), red(b, p1), red(c, p2));
            let (s0, k0) = w0.overflowing_add(c0);
            let (s1, k1a) = w1.overflowing_add(c1);
            let (s1, k1b) = s1.overflowing_add(u64::from(k0));
            out.push(s0);
            c0 = s1;
            c1 = w2 + u64::from(k1a) + u64::from(k1b);
        }
        (c0, c1)
    }

    /// The integer product as `len` limbs, when it has at most `len` limbs and
    /// no wrap-around occurred.
    fn recombine(&self, ys: &[Vec<u64>; 3], len: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(len);
        let (mut c0, mut c1) = self.carry_out(ys, len.min(ys[0].len()), &mut out);
        while out.len() < len {
            out.push(c0);
            c0 = c1;
            c1 = 0;
        }
        out
    }

    /// Full product of `other` with a prepared operand. The transform length
    /// must cover the product: `other.len() + prep.len - 1 <= prep.n`.
    pub(crate) fn mul_prepared(&self, prep: &Prepared, other: &[u64]) -> Vec<u64> {
        if other.is_empty() || prep.len == 0 {
            return Vec::new();
        }
        assert!(other.len() + prep.len - 1 <= prep.n, "transform too short");
        let ys = self.convolve(prep, other);
        let mut out = self.recombine(&ys, other.len() + prep.len);
        trim(&mut out);
        out
    }

    /// `other * fixed mod (2^(64 n) - 1)` as `n` limbs, for `other` of at most
    /// `n` limbs. The result is fully reduced (never `2^(64 n) - 1`).
    pub(crate) fn mul_prepared_wrapped(&self, prep: &Prepared, other: &[u64]) -> Vec<u64> {
        let n = prep.n;
        assert!(
            other.len() <= n && prep.len <= n,
            "operand longer than transform"
        );
        let ys = self.convolve(prep, other);
        let mut out = Vec::with_capacity(n);
        let (c0, c1) = self.carry_out(&ys, n, &mut out);
        // End-around carry: 2^(64 n) = 1 mod (2^(64 n) - 1).
        wrap_add(&mut out, &[c0, c1]);
        normalize_wrapped(&mut out);
        out
    }

    /// Product of two limb slices whose product fits the tables.
    fn mul_balanced(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        let len = a.len() + b.len();
        let n = 1usize << log2_ceil(len - 1);
        let square = std::ptr::eq(a, b);
        let ys = [0, 1, 2].map(|k| {
            let pt = &self.primes[k];
            let scale = pt.scale(n);
            let mut fa = pt.load(a, n);
            pt.forward(&mut fa);
            if square {
                pt.pointwise_square_scaled(&mut fa, scale);
            } else {
                let mut fb = pt.load(b, n);
                pt.forward(&mut fb);
                pt.pointwise_scaled(&mut fa, &fb, scale);
            }
            pt.backward(&mut fa);
            fa
        });
        let mut out = self.recombine(&ys, len);
        trim(&mut out);
        out
    }

    /// Product of a short and a much longer slice: the long one is cut into
    /// pieces and the transform of the short one is reused.
    fn mul_unbalanced(&self, short: &[u64], long: &[u64]) -> Vec<u64> {
        let n = 1usize << log2_ceil(2 * short.len());
        let prep = self.prepare(short, n);
        let chunk = n - short.len() + 1;
        let mut acc = Vec::with_capacity(short.len() + long.len());
        for (i, piece) in long.chunks(chunk).enumerate() {
            let ys = self.convolve(&prep, piece);
            let prod = self.recombine(&ys, piece.len() + short.len());
            add_into(&mut acc, &prod, i * chunk);
        }
        trim(&mut acc);
        acc
    }
}

/// Removes high zero limbs.
pub(crate) fn trim(v: &mut Vec<u64>) {
    while v.last() == Some(&0) {
        v.pop();
    }
}

/// Adds `add` to `acc` modulo `2^(64 len) - 1` (limb `i` of `add` lands at
/// position `i mod len`; carries wrap around).
pub(crate) fn wrap_add(acc: &mut [u64], add: &[u64]) {
    let len = acc.len();
    if len == 0 {
        return;
    }
    for (i, &b) in add.iter().enumerate() {
        let mut pos = i % len;
        let mut c = b;
        while c != 0 {
            let (s, o) = acc[pos].overflowing_add(c);
            acc[pos] = s;
            c = u64::from(o);
            pos = (pos + 1) % len;
        }
    }
}

/// Maps the all-ones representation of zero modulo `2^(64 len) - 1` to zero.
pub(crate) fn normalize_wrapped(v: &mut [u64]) {
    if v.iter().all(|&x| x == u64::MAX) {
        v.fill(0);
    }
}

/// How to multiply two operands of given sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// num-bigint (schoolbook, Karatsuba, Toom-3).
    Classic,
    /// One NTT over the whole product.
    Balanced,
    /// NTTs over pieces of the long operand.
    Unbalanced,
}

/// Picks the cheapest method by a simple cost model (nanoseconds measured on
/// a 2-core x86-64 VM): num-bigint costs about `5.2 (l/s) s^1.58`, an NTT
/// product about `12 N log2 N` for a transform of `N` points.
fn choose(short: usize, long: usize, square: bool) -> Method {
    if short < MIN_NTT_LIMBS {
        return Method::Classic;
    }
    let (s, l) = (short as f64, long as f64);
    let classic = 5.2 * (l / s) * s.powf(1.58);
    let nlogn = |log: u32| f64::from(log) * (1u64 << log) as f64;
    let log_b = log2_ceil(short + long - 1);
    let balanced = 12.0 * nlogn(log_b) * if square { 0.7 } else { 1.0 };
    let mut best = if balanced < classic {
        (balanced, Method::Balanced)
    } else {
        (classic, Method::Classic)
    };
    if !square && long >= 2 * short {
        let log_u = log2_ceil(2 * short);
        let chunk = (1usize << log_u) - short + 1;
        let pieces = long.div_ceil(chunk) as f64;
        let unbalanced = 12.0 * nlogn(log_u) * (1.0 + 2.0 * pieces) / 3.0 * 1.1;
        if unbalanced < best.0 {
            best = (unbalanced, Method::Unbalanced);
        }
    }
    best.1
}

/// `a * b`, using the NTT for large operands.
pub(crate) fn mul(a: &BigUint, b: &BigUint) -> BigUint {
    let (la, lb) = (a.iter_u64_digits().len(), b.iter_u64_digits().len());
    let (short, long) = (la.min(lb), la.max(lb));
    match choose(short, long, false) {
        Method::Classic => a * b,
        method => {
            let (da, db) = (a.to_u64_digits(), b.to_u64_digits());
            let (ds, dl) = if la <= lb { (&da, &db) } else { (&db, &da) };
            let limbs = if method == Method::Unbalanced {
                Tables::new(log2_ceil(2 * short)).mul_unbalanced(ds, dl)
            } else {
                Tables::new(log2_ceil(la + lb - 1)).mul_balanced(&da, &db)
            };
            from_limbs(&limbs)
        }
    }
}

/// `a * a`, with a single forward transform per prime for large operands.
pub(crate) fn square(a: &BigUint) -> BigUint {
    let la = a.iter_u64_digits().len();
    if choose(la, la, true) == Method::Classic {
        return a * a;
    }
    let da = a.to_u64_digits();
    let tables = Tables::new(log2_ceil(2 * la - 1));
    from_limbs(&tables.mul_balanced(&da, &da))
}

/// Product of a list of factors by a balanced product tree.
pub(crate) fn product(factors: &[u64]) -> BigUint {
    match factors.len() {
        0 => BigUint::one(),
        1..=16 => {
            let mut r = BigUint::from(factors[0]);
            for &f in &factors[1..] {
                r *= f;
            }
            r
        }
        n => {
            let (l, r) = factors.split_at(n / 2);
            mul(&product(l), &product(r))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_traits::Zero;

    use crate::math::test_rng::Rng;

    fn full(a: &[u64], b: &[u64]) -> Vec<u64> {
        Tables::new(log2_ceil(a.len() + b.len())).mul_balanced(a, b)
    }

    fn unbalanced(a: &[u64], b: &[u64]) -> Vec<u64> {
        Tables::new(log2_ceil(2 * a.len())).mul_unbalanced(a, b)
    }

    #[test]
    fn primes_and_roots() {
        for &(p, g) in &PRIMES {
            assert_eq!((p - 1) % (1 << MAX_LOG), 0);
            assert!(p > 1 << 61 && p < 1 << 62);
            // g^((p-1)/2^40) has order exactly 2^40.
            let w = pow_mod(g, (p - 1) >> MAX_LOG, p);
            assert_eq!(pow_mod(w, 1 << (MAX_LOG - 1), p), p - 1);
            // Fermat check in a few bases (the primes were found with
            // Miller-Rabin; this guards against typos).
            for base in [2u64, 3, 5, 7, 11, 13] {
                assert_eq!(pow_mod(base, p - 1, p), 1);
            }
            assert_eq!(inv_mod_2_64(p).wrapping_mul(p), 1);
        }
    }

    #[test]
    fn ntt_matches_schoolbook_small() {
        let mut rng = Rng(1);
        for (la, lb) in [
            (1, 1),
            (1, 5),
            (3, 7),
            (17, 33),
            (64, 64),
            (100, 3),
            (257, 300),
        ] {
            let a = rng.limbs(la);
            let b = rng.limbs(lb);
            let expect = from_limbs(&a) * from_limbs(&b);
            assert_eq!(from_limbs(&full(&a, &b)), expect, "{la}x{lb}");
            assert_eq!(from_limbs(&unbalanced(&a, &b)), expect, "u {la}x{lb}");
        }
    }

    #[test]
    fn ntt_extreme_limbs() {
        for n in [1usize, 2, 5, 64, 2000, 4500] {
            let a = vec![u64::MAX; n];
            let expect = from_limbs(&a) * from_limbs(&a);
            assert_eq!(from_limbs(&full(&a, &a)), expect, "{n}");
            let b = vec![u64::MAX; 3 * n + 1];
            let expect = from_limbs(&a) * from_limbs(&b);
            assert_eq!(from_limbs(&unbalanced(&a, &b)), expect, "{n}");
        }
    }

    #[test]
    fn prepared_and_wrapped_products() {
        let mut rng = Rng(3);
        for (la, lb, log) in [
            (10usize, 20usize, 5u32),
            (100, 100, 8),
            (300, 200, 9),
            (1000, 1000, 11),
        ] {
            let a = rng.limbs(la);
            let b = rng.limbs(lb);
            let t = Tables::new(log + 1);
            let n = 1usize << log;
            let prep = t.prepare(&a, n);
            let expect = from_limbs(&a) * from_limbs(&b);
            assert_eq!(from_limbs(&t.mul_prepared(&prep, &b)), expect);
            // wrapped: modulo 2^(64 n) - 1
            let small = t.prepare(&a[..la.min(n / 2)], n / 2);
            let bb = &b[..lb.min(n / 2)];
            let m = (BigUint::one() << (64 * (n / 2))) - 1u32;
            let expect = (from_limbs(&a[..la.min(n / 2)]) * from_limbs(bb)) % &m;
            assert_eq!(from_limbs(&t.mul_prepared_wrapped(&small, bb)), expect);
        }
        // all-ones operands exercise the end-around carry and normalization
        let t = Tables::new(6);
        let a = vec![u64::MAX; 16];
        let prep = t.prepare(&a, 16);
        assert!(from_limbs(&t.mul_prepared_wrapped(&prep, &[3])).is_zero());
    }

    #[test]
    fn mul_and_square_match_num_bigint() {
        let mut rng = Rng(7);
        for (la, lb) in [
            (1500, 1500),
            (1600, 5000),
            (2000, 2100),
            (9000, 1700),
            (5000, 5000),
        ] {
            let a = from_limbs(&rng.limbs(la));
            let b = from_limbs(&rng.limbs(lb));
            assert_eq!(mul(&a, &b), &a * &b, "{la}x{lb}");
            assert_eq!(square(&a), &a * &a, "{la}");
        }
    }

    #[test]
    fn random_sizes_match_num_bigint() {
        let mut rng = Rng(11);
        for _ in 0..12 {
            let la = (rng.next() % 6000) as usize + 1;
            let lb = (rng.next() % 6000) as usize + 1;
            let a = from_limbs(&rng.limbs(la));
            let b = from_limbs(&rng.limbs(lb));
            assert_eq!(mul(&a, &b), &a * &b, "{la}x{lb}");
            assert_eq!(square(&b), &b * &b, "{lb}");
        }
        // Cost model sanity: tiny operands stay classic, large ones use the NTT.
        assert_eq!(choose(10, 10, false), Method::Classic);
        assert_eq!(choose(100_000, 100_000, false), Method::Balanced);
        assert_eq!(choose(10_000, 1_000_000, false), Method::Unbalanced);
    }

    #[test]
    fn product_matches_loop() {
        let f: Vec<u64> = (1..=500).collect();
        let mut r = BigUint::one();
        for &x in &f {
            r *= x;
        }
        assert_eq!(product(&f), r);
        assert_eq!(product(&[]), BigUint::one());
        assert!(product(&[0, 5]).is_zero());
    }
}
