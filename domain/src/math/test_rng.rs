//! A deterministic SplitMix64 generator for the math tests' random values.

use num_bigint::BigUint;

use super::mul::from_limbs;

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn limbs(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.next()).collect()
    }

    /// A uniformly random value of at most `bits` bits.
    pub(crate) fn biguint(&mut self, bits: u64) -> BigUint {
        let limbs = self.limbs(bits.div_ceil(64) as usize);
        let x = from_limbs(&limbs);
        x >> (limbs.len() as u64 * 64 - bits)
    }
}
