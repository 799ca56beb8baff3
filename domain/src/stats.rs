//! Exact statistics over per-server aggregates of report durations.
//!
//! The numbers must agree to the unit with an older Python service that used
//! `round()` (half to even), so everything here is integer arithmetic on `i128`:
//! a float would disagree with it near the `.5` boundaries.
//!
//! An [`Aggregate`] only ever holds parts that some multiset of `i64` values could
//! have produced (see [`Aggregate::from_parts`]) and keeps `sum_sq` below
//! [`MAX_SUM_SQ`]; together these bound every intermediate of [`summarize`] and
//! [`is_outlier`] well inside `i128`, so neither can overflow or panic.

use std::cmp::Ordering;
use std::fmt;

/// Largest `sum_sq` an [`Aggregate`] accepts.
///
/// It leaves room for the `4·S` comparisons of the rounded square root. With durations
/// up to 10⁹ s it allows more than 10¹⁸ reports, so only a nonsensical single value
/// (above about 2⁶⁰ s) can reach it.
pub const MAX_SUM_SQ: i128 = 1 << 120;

/// Why an aggregate could not be built or extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateError {
    /// The result would exceed the bounds that keep the statistics exact (see [`MAX_SUM_SQ`]).
    Overflow,
    /// The parts cannot come from any multiset of values (e.g. `min > max`, or
    /// `sum_sq` too small for `sum`), so stored data is corrupt.
    Inconsistent,
}

impl fmt::Display for AggregateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overflow => f.write_str("aggregate exceeds the exact-arithmetic bounds"),
            Self::Inconsistent => f.write_str("aggregate parts are mutually inconsistent"),
        }
    }
}

impl std::error::Error for AggregateError {}

/// Running totals of one server's report durations, enough to summarize them exactly.
///
/// Fields are private so that every value satisfies the invariants the summary
/// arithmetic relies on; storage goes through the getters and [`Aggregate::from_parts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Aggregate {
    count: u64,
    sum: i128,
    sum_sq: i128,
    // Both 0 while `count == 0`, so equal multisets give equal aggregates.
    min: i64,
    max: i64,
}

impl Aggregate {
    /// Aggregate of the given values.
    ///
    /// # Panics
    /// Under the same conditions as [`Aggregate::add`].
    pub fn from_values<I: IntoIterator<Item = i64>>(values: I) -> Self {
        let mut agg = Self::default();
        for x in values {
            agg.add(x);
        }
        agg
    }

    /// Rebuilds an aggregate from stored parts, rejecting parts no multiset of values
    /// could produce, so corrupt rows surface here rather than as nonsense statistics.
    ///
    /// `min` and `max` are `None` exactly when `count` is 0 (as SQL `MIN`/`MAX` give).
    pub fn from_parts(
        count: u64,
        sum: i128,
        sum_sq: i128,
        min: Option<i64>,
        max: Option<i64>,
    ) -> Result<Self, AggregateError> {
        if count == 0 {
            return if sum == 0 && sum_sq == 0 && min.is_none() && max.is_none() {
                Ok(Self::default())
            } else {
                Err(AggregateError::Inconsistent)
            };
        }
        let (Some(min), Some(max)) = (min, max) else {
            return Err(AggregateError::Inconsistent);
        };
        if sum_sq > MAX_SUM_SQ {
            return Err(AggregateError::Overflow);
        }
        let n = i128::from(count);
        let (lo, hi) = (i128::from(min), i128::from(max));
        // Products fit: |n·lo| ≤ (2⁶⁴−1)·2⁶³ < 2¹²⁷ and lo², hi² ≤ 2¹²⁶.
        let widest_sq = (lo * lo).max(hi * hi);
        let consistent = min <= max
            && n * lo <= sum
            && sum <= n * hi
            && widest_sq <= sum_sq
            && n.checked_mul(widest_sq).is_none_or(|bound| sum_sq <= bound)
            && cauchy_schwarz_holds(count, sum, sum_sq);
        if consistent {
            Ok(Self {
                count,
                sum,
                sum_sq,
                min,
                max,
            })
        } else {
            Err(AggregateError::Inconsistent)
        }
    }

    /// Adds one value.
    ///
    /// # Panics
    /// If the result would exceed [`MAX_SUM_SQ`] (or `u64::MAX` reports); use
    /// [`Aggregate::try_add`] for values that come straight from clients.
    pub fn add(&mut self, x: i64) {
        if let Err(e) = self.try_add(x) {
            panic!("cannot add {x} to aggregate: {e}");
        }
    }

    /// Adds one value, or leaves `self` unchanged if the result would exceed [`MAX_SUM_SQ`].
    pub fn try_add(&mut self, x: i64) -> Result<(), AggregateError> {
        let wide = i128::from(x);
        self.try_merge(&Self {
            count: 1,
            sum: wide,
            // |x| ≤ 2⁶³ so x² ≤ 2¹²⁶ cannot overflow.
            sum_sq: wide * wide,
            min: x,
            max: x,
        })
    }

    /// Folds another aggregate into this one, as if all its values had been added.
    ///
    /// # Panics
    /// If the result would exceed [`MAX_SUM_SQ`] (or `u64::MAX` reports).
    pub fn merge(&mut self, other: &Aggregate) {
        if let Err(e) = self.try_merge(other) {
            panic!("cannot merge aggregates: {e}");
        }
    }

    /// Folds another aggregate into this one, or leaves `self` unchanged if the result
    /// would exceed [`MAX_SUM_SQ`].
    pub fn try_merge(&mut self, other: &Aggregate) -> Result<(), AggregateError> {
        if other.count == 0 {
            return Ok(());
        }
        if self.count == 0 {
            // `try_add` passes an unchecked single value, so the bound is tested here too.
            if other.sum_sq > MAX_SUM_SQ {
                return Err(AggregateError::Overflow);
            }
            *self = *other;
            return Ok(());
        }
        // Both sides are valid, so sum ≤ √(count·sum_sq) < 2⁹³ and these additions
        // cannot overflow i128; only the u64 count and the sum_sq bound can be exceeded.
        let count = self
            .count
            .checked_add(other.count)
            .ok_or(AggregateError::Overflow)?;
        let sum_sq = self.sum_sq + other.sum_sq;
        if sum_sq > MAX_SUM_SQ {
            return Err(AggregateError::Overflow);
        }
        // The invariants (bounds, Cauchy–Schwarz) are closed under merging, so no
        // re-validation is needed.
        *self = Self {
            count,
            sum: self.sum + other.sum,
            sum_sq,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        };
        Ok(())
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the values.
    pub fn sum(&self) -> i128 {
        self.sum
    }

    /// Sum of the squares of the values.
    pub fn sum_sq(&self) -> i128 {
        self.sum_sq
    }

    /// Smallest value, `None` when empty.
    pub fn min(&self) -> Option<i64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value, `None` when empty.
    pub fn max(&self) -> Option<i64> {
        (self.count > 0).then_some(self.max)
    }
}

/// `count·sum_sq ≥ sum²` — true of any real multiset — decided without the 184-bit product.
fn cauchy_schwarz_holds(count: u64, sum: i128, sum_sq: i128) -> bool {
    // Write sum = q·n + r with 0 ≤ r < n; then sum²/n = q²·n + 2·q·r + r²/n, so the
    // inequality becomes n·(sum_sq − q²·n − 2·q·r) ≥ r².
    let n = i128::from(count);
    let q = sum.div_euclid(n);
    let r = sum.rem_euclid(n);
    let t = q
        .checked_mul(q)
        .and_then(|qq| qq.checked_mul(n))
        .and_then(|qqn| qqn.checked_add(2 * q * r))
        .and_then(|sub| sum_sq.checked_sub(sub));
    let Some(t) = t.and_then(|t| u128::try_from(t).ok()) else {
        // Overflow means q²·n alone dwarfs any admissible sum_sq; negative t fails outright.
        return false;
    };
    let (n, r) = (u128::from(count), r.unsigned_abs());
    // r < n ≤ 2⁶⁴, so r² fits; if t ≥ n then n·t ≥ n² > r² and we need not multiply.
    t >= n || n * t >= r * r
}

/// Rounded mean and sample standard deviation of one server's report durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// `sum / count` rounded half to even.
    pub mean: i64,
    /// `√(Σ(x − mean)² / (count − 1))` around the *rounded* mean, rounded half to even;
    /// 0 for a single report.
    pub stddev: i64,
    /// Number of reports.
    pub count: u64,
}

/// Summarizes an aggregate exactly as the old Python service did; `None` when empty.
pub fn summarize(agg: &Aggregate) -> Option<Summary> {
    if agg.count == 0 {
        return None;
    }
    let n = i128::from(agg.count);
    let mean = round_half_even_div(agg.sum, n);
    let stddev = if agg.count == 1 {
        0
    } else {
        // Σ(x − M)² = sum_sq − 2·M·sum + n·M², factored so no intermediate exceeds
        // about sum_sq in magnitude.
        let spread = agg.sum_sq - mean * (2 * agg.sum - n * mean);
        let spread = u128::try_from(spread).expect("a valid aggregate has Σ(x − M)² ≥ 0");
        rounded_sqrt_of_ratio(spread, u128::from(agg.count - 1))
    };
    Some(Summary {
        mean: i64::try_from(mean).expect("the mean of i64 values fits in i64"),
        stddev: i64::try_from(stddev).expect("bounded by √MAX_SUM_SQ"),
        count: agg.count,
    })
}

/// `num / den` rounded to the nearest integer, ties to even (`den > 0`).
fn round_half_even_div(num: i128, den: i128) -> i128 {
    let quotient = num.div_euclid(den);
    let remainder = num.rem_euclid(den);
    match (2 * remainder).cmp(&den) {
        Ordering::Less => quotient,
        Ordering::Greater => quotient + 1,
        Ordering::Equal if quotient.rem_euclid(2) == 0 => quotient,
        Ordering::Equal => quotient + 1,
    }
}

/// `√(s / d)` rounded to the nearest integer, ties to even (`d > 0`).
fn rounded_sqrt_of_ratio(s: u128, d: u128) -> u128 {
    // u = ⌊2·√(s/d)⌋, because ⌊√⌊y⌋⌋ = ⌊√y⌋. If u = 2k then k ≤ √(s/d) < k + ½ and k
    // is nearest; if u = 2k + 1 then k + ½ ≤ √(s/d) < k + 1, and the only tie is
    // √(s/d) = k + ½ exactly, i.e. 4s = d·u².
    let u = (4 * s / d).isqrt();
    let k = u / 2;
    let below_half = u.is_multiple_of(2);
    let tie_rounds_down = 4 * s == d * u * u && k.is_multiple_of(2);
    if below_half || tie_rounds_down {
        k
    } else {
        k + 1
    }
}

/// A non-negative rational, used for the outlier band width `K` in standard deviations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    num: u64,
    den: u64,
}

impl Ratio {
    /// `num / den` in lowest terms; `None` when `den` is 0.
    pub fn new(num: u64, den: u64) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den);
        Some(Self {
            num: num / g,
            den: den / g,
        })
    }

    /// The whole number `k`.
    pub const fn integer(k: u64) -> Self {
        Self { num: k, den: 1 }
    }

    /// Numerator, in lowest terms.
    pub fn num(&self) -> u64 {
        self.num
    }

    /// Denominator, in lowest terms; never 0.
    pub fn den(&self) -> u64 {
        self.den
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Whether a server's fastest or slowest report lies strictly outside
/// `mean ± k·stddev` of its own [`Summary`]; values exactly on the band edge are
/// not outliers, and an empty aggregate never is.
pub fn is_outlier(agg: &Aggregate, k: Ratio) -> bool {
    let Some(summary) = summarize(agg) else {
        return false;
    };
    // Scale everything by den to stay in integers: den·x vs den·mean ± num·sd.
    // |mean|, sd ≤ 2⁶¹ and num, den < 2⁶⁴, so each side stays below 2¹²⁷.
    let num = i128::from(k.num);
    let den = i128::from(k.den);
    let centre = den * i128::from(summary.mean);
    let half_width = num * i128::from(summary.stddev);
    den * i128::from(agg.min) < centre - half_width
        || den * i128::from(agg.max) > centre + half_width
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn summary_of(values: &[i64]) -> Summary {
        summarize(&Aggregate::from_values(values.iter().copied())).expect("non-empty")
    }

    fn s(mean: i64, stddev: i64, count: u64) -> Summary {
        Summary {
            mean,
            stddev,
            count,
        }
    }

    #[test]
    fn empty_aggregate_has_no_summary_and_is_no_outlier() {
        let agg = Aggregate::default();
        assert_eq!(summarize(&agg), None);
        assert!(!is_outlier(&agg, Ratio::integer(0)));
        assert_eq!((agg.min(), agg.max()), (None, None));
    }

    #[test]
    fn single_report_has_zero_deviation_and_is_no_outlier() {
        assert_eq!(summary_of(&[42]), s(42, 0, 1));
        let agg = Aggregate::from_values([42]);
        assert!(!is_outlier(&agg, Ratio::integer(0)));
        assert!(!is_outlier(&agg, Ratio::integer(3)));
    }

    #[test]
    fn mean_ties_round_half_to_even() {
        // 1.5 → 2 and 2.5 → 2, as Python's round() does.
        assert_eq!(summary_of(&[1, 2]).mean, 2);
        assert_eq!(summary_of(&[2, 3]).mean, 2);
        assert_eq!(summary_of(&[0, 1]).mean, 0);
        assert_eq!(summary_of(&[3, 4]).mean, 4);
        // Not ties: 4/3 → 1 and 5/3 → 2.
        assert_eq!(summary_of(&[0, 1, 3]).mean, 1);
        assert_eq!(summary_of(&[0, 2, 3]).mean, 2);
    }

    #[test]
    fn stddev_uses_the_rounded_mean() {
        // [1, 2]: M = 2, Σ(x − M)² = 1, /1 → √1 = 1.
        assert_eq!(summary_of(&[1, 2]), s(2, 1, 2));
        // [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, Σ = 32, /7 → √4.571… = 2.138… → 2.
        assert_eq!(summary_of(&[2, 4, 4, 4, 5, 5, 7, 9]), s(5, 2, 8));
        // [0, 10]: M = 5, Σ = 50, /1 → √50 = 7.07… → 7.
        assert_eq!(summary_of(&[0, 10]), s(5, 7, 2));
        // [0, 0, 1]: M = 0 (1/3), Σ = 1, /2 → √0.5 = 0.707… → 1.
        assert_eq!(summary_of(&[0, 0, 1]), s(0, 1, 3));
        // [0, 0, 0, 5]: M = 1 (1.25), Σ = 3 + 16 = 19, /3 → √6.33… = 2.52 → 3, whereas
        // around the exact mean it would be √6.25 = 2.5 → 2.
        assert_eq!(summary_of(&[0, 0, 0, 5]), s(1, 3, 4));
    }

    #[test]
    fn stddev_ties_round_half_to_even() {
        // Each set has n = 5, so d = 4 and √(S/4) = √S / 2 is a half-integer when S is
        // an odd square; found by exhaustive search over small sets.
        // [0, 0, 0, 0, 1]: M = 0 (0.2), S = 1 → 0.5 → 0.
        assert_eq!(summary_of(&[0, 0, 0, 0, 1]), s(0, 0, 5));
        // [0, 1, 2, 2, 4]: M = 2 (1.8), S = 4 + 1 + 0 + 0 + 4 = 9 → 1.5 → 2.
        assert_eq!(summary_of(&[0, 1, 2, 2, 4]), s(2, 2, 5));
        // [0, 0, 0, 4, 5]: M = 2 (1.8), S = 4 + 4 + 4 + 4 + 9 = 25 → 2.5 → 2.
        assert_eq!(summary_of(&[0, 0, 0, 4, 5]), s(2, 2, 5));
        // [0, 0, 6, 6, 7]: M = 4 (3.8), S = 16 + 16 + 4 + 4 + 9 = 49 → 3.5 → 4.
        assert_eq!(summary_of(&[0, 0, 6, 6, 7]), s(4, 4, 5));
        // Near misses: [0, 0, 0, 1, 2]: M = 1, S = 4 → exactly 1.
        assert_eq!(summary_of(&[0, 0, 0, 1, 2]), s(1, 1, 5));
        // [0 ×8, 3]: M = 0, S = 9, d = 8 → √1.125 ≈ 1.06 → 1.
        assert_eq!(summary_of(&[0, 0, 0, 0, 0, 0, 0, 0, 3]), s(0, 1, 9));
    }

    #[test]
    fn large_values_and_counts_do_not_overflow() {
        const BIG: i64 = 1_000_000_000;
        const N: u64 = 10_000_000;
        let n = i128::from(N);
        let b = i128::from(BIG);
        // Ten million identical 10⁹ s reports.
        let same = Aggregate::from_parts(N, n * b, n * b * b, Some(BIG), Some(BIG)).unwrap();
        assert_eq!(summarize(&same), Some(s(BIG, 0, N)));
        // Half 0 s, half 10⁹ s: M = 5·10⁸, Σ(x − M)² = N·(5·10⁸)² = 2.5·10²⁴,
        // /(N − 1) = 250000025000002.50000025… → √ ≈ 500000025.0000… → 500000025.
        let half = Aggregate::from_parts(N, n / 2 * b, n / 2 * b * b, Some(0), Some(BIG)).unwrap();
        assert_eq!(summarize(&half), Some(s(500_000_000, 500_000_025, N)));
        assert!(!is_outlier(&half, Ratio::integer(1)));
        assert!(is_outlier(&half, Ratio::new(99, 100).unwrap()));
        // The same through add/merge, exercising the incremental path at scale.
        let mut built = Aggregate::default();
        let mut zeros = Aggregate::default();
        for _ in 0..N / 2 {
            built.add(BIG);
        }
        for _ in 0..N / 2 {
            zeros.add(0);
        }
        built.merge(&zeros);
        assert_eq!(built, half);
    }

    #[test]
    fn outliers_are_strictly_outside_the_band() {
        // [10, 10, 10, 10, 20]: M = 12, Σ = 4·4 + 64 = 80, /4 → √20 ≈ 4.47 → sd 4.
        let agg = Aggregate::from_values([10, 10, 10, 10, 20]);
        assert_eq!(summarize(&agg), Some(s(12, 4, 5)));
        // max 20 = 12 + 2·4 exactly on the band: not an outlier.
        assert!(!is_outlier(&agg, Ratio::integer(2)));
        // Band 12 ± 7.96: max 20 is strictly above.
        assert!(is_outlier(&agg, Ratio::new(199, 100).unwrap()));
        // min 10 = 12 − ½·4 exactly on the lower edge, max 20 far above.
        assert!(is_outlier(&agg, Ratio::new(1, 2).unwrap()));

        // [0, 10, 10, 10, 10]: M = 8, Σ = 64 + 16 = 80 → sd 4; min 0 = 8 − 2·4 on the band.
        let low = Aggregate::from_values([0, 10, 10, 10, 10]);
        assert_eq!(summarize(&low), Some(s(8, 4, 5)));
        assert!(!is_outlier(&low, Ratio::integer(2)));
        assert!(is_outlier(&low, Ratio::new(5, 3).unwrap()));
        // Fractional K 5/2: band 8 ± 10, nothing outside.
        assert!(!is_outlier(&low, Ratio::new(5, 2).unwrap()));
    }

    #[test]
    fn outlier_band_of_zero_width() {
        let flat = Aggregate::from_values([7, 7, 7]);
        assert!(!is_outlier(&flat, Ratio::integer(0)));
        let spread = Aggregate::from_values([7, 8]);
        assert!(is_outlier(&spread, Ratio::integer(0)));
    }

    #[test]
    fn ratio_is_reduced_and_rejects_zero_denominator() {
        assert_eq!(Ratio::new(6, 2), Some(Ratio::integer(3)));
        assert_eq!(Ratio::new(5, 0), None);
        let r = Ratio::new(10, 4).unwrap();
        assert_eq!((r.num(), r.den()), (5, 2));
        assert_eq!(Ratio::new(0, 7), Some(Ratio::integer(0)));
    }

    #[test]
    fn from_parts_rejects_impossible_parts() {
        use AggregateError::*;
        assert_eq!(
            Aggregate::from_parts(0, 0, 0, None, None),
            Ok(Aggregate::default())
        );
        assert_eq!(
            Aggregate::from_parts(0, 1, 1, None, None),
            Err(Inconsistent)
        );
        assert_eq!(
            Aggregate::from_parts(0, 0, 0, Some(0), Some(0)),
            Err(Inconsistent)
        );
        assert_eq!(
            Aggregate::from_parts(1, 5, 25, None, Some(5)),
            Err(Inconsistent)
        );
        // min > max.
        assert_eq!(
            Aggregate::from_parts(2, 10, 50, Some(6), Some(4)),
            Err(Inconsistent)
        );
        // Sum outside [n·min, n·max].
        assert_eq!(
            Aggregate::from_parts(2, 30, 500, Some(0), Some(10)),
            Err(Inconsistent)
        );
        // sum_sq below sum²/n: two values summing to 10 have Σx² ≥ 50.
        assert_eq!(
            Aggregate::from_parts(2, 10, 49, Some(5), Some(5)),
            Err(Inconsistent)
        );
        // sum_sq above n·max²: [0, 10] cannot have Σx² = 201.
        assert_eq!(
            Aggregate::from_parts(2, 10, 201, Some(0), Some(10)),
            Err(Inconsistent)
        );
        // sum_sq below max².
        assert_eq!(
            Aggregate::from_parts(3, 12, 90, Some(2), Some(10)),
            Err(Inconsistent)
        );
        assert_eq!(
            Aggregate::from_parts(1, 0, MAX_SUM_SQ + 1, Some(0), Some(0)),
            Err(Overflow)
        );
        assert_eq!(
            Aggregate::from_parts(2, 10, 50, Some(5), Some(5)),
            Ok(Aggregate::from_values([5, 5]))
        );
    }

    #[test]
    fn try_add_refuses_values_beyond_the_exact_range() {
        let mut agg = Aggregate::from_values([1, 2]);
        let before = agg;
        assert_eq!(agg.try_add(i64::MAX), Err(AggregateError::Overflow));
        assert_eq!(agg, before);
        // 2⁶⁰ itself is the largest admissible single value.
        assert_eq!(Aggregate::default().try_add(1 << 60), Ok(()));
        assert_eq!(Aggregate::default().try_add(-(1 << 60)), Ok(()));
        assert_eq!(
            Aggregate::default().try_add((1 << 60) + 1),
            Err(AggregateError::Overflow)
        );
    }

    #[test]
    fn extreme_admissible_values_summarize() {
        let top = 1_i64 << 60;
        let agg = Aggregate::from_values([-top, 0]);
        // mean −2⁵⁹ exactly; Σ(x − M)² = 2·2¹¹⁸ → √ = 2⁵⁹·√2.
        let summary = summarize(&agg).unwrap();
        assert_eq!(summary.mean, -(1 << 59));
        assert_eq!(summary.stddev, reference_summary(&[-top, 0]).stddev);
        // With two values each sits sd/√2 from the mean, so the band excludes them
        // exactly when K < 1/√2 ≈ 0.7071.
        assert!(is_outlier(&agg, Ratio::new(7, 10).unwrap()));
        assert!(!is_outlier(&agg, Ratio::new(71, 100).unwrap()));
        // Denominators near u64::MAX stay exact too.
        assert!(!is_outlier(
            &agg,
            Ratio::new(u64::MAX - 1, u64::MAX).unwrap()
        ));
    }

    #[test]
    #[should_panic(expected = "cannot add")]
    fn add_panics_beyond_the_exact_range() {
        Aggregate::default().add(i64::MAX);
    }

    /// Straight from the definitions, sharing no helper with the implementation.
    fn reference_summary(values: &[i64]) -> Summary {
        let n = values.len() as i128;
        let sum: i128 = values.iter().map(|&x| i128::from(x)).sum();
        // Nearest integer to sum/n: compare distances 2·|sum − n·c| over the two candidates.
        let floor = sum.div_euclid(n);
        let dist = |c: i128| (2 * (sum - n * c)).abs();
        let mean = match dist(floor).cmp(&dist(floor + 1)) {
            Ordering::Less => floor,
            Ordering::Greater => floor + 1,
            Ordering::Equal => {
                if floor % 2 == 0 {
                    floor
                } else {
                    floor + 1
                }
            }
        };
        let stddev = if n == 1 {
            0
        } else {
            let spread: i128 = values.iter().map(|&x| (i128::from(x) - mean).pow(2)).sum();
            let d = n - 1;
            // a = ⌊√(spread/d)⌋ by binary search: the largest a with d·a² ≤ spread.
            let (mut lo, mut hi) = (0_i128, 1_i128 << 62);
            while lo < hi {
                let mid = (lo + hi + 1) / 2;
                if d.checked_mul(mid * mid).is_some_and(|v| v <= spread) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            let a = lo;
            // Nearest of a and a + 1: √(spread/d) against the midpoint a + ½.
            match (4 * spread).cmp(&(d * (2 * a + 1) * (2 * a + 1))) {
                Ordering::Less => a,
                Ordering::Greater => a + 1,
                Ordering::Equal => {
                    if a % 2 == 0 {
                        a
                    } else {
                        a + 1
                    }
                }
            }
        };
        Summary {
            mean: mean as i64,
            stddev: stddev as i64,
            count: values.len() as u64,
        }
    }

    #[test]
    fn reference_agrees_on_hand_computed_sets() {
        for values in [
            &[1, 2][..],
            &[2, 3],
            &[0, 0, 0, 0, 1],
            &[0, 1, 2, 2, 4],
            &[0, 0, 0, 4, 5],
            &[10, 10, 10, 10, 20],
            &[2, 4, 4, 4, 5, 5, 7, 9],
        ] {
            assert_eq!(summary_of(values), reference_summary(values), "{values:?}");
        }
    }

    proptest! {
        #[test]
        fn summarize_matches_direct_definition(
            values in prop::collection::vec(0_i64..=1_000_000_000, 1..60)
        ) {
            prop_assert_eq!(summary_of(&values), reference_summary(&values));
        }

        #[test]
        fn summarize_matches_on_small_values_where_ties_are_common(
            values in prop::collection::vec(0_i64..6, 1..12)
        ) {
            prop_assert_eq!(summary_of(&values), reference_summary(&values));
        }

        #[test]
        fn summarize_matches_on_signed_values(
            values in prop::collection::vec(-(1_i64 << 40)..(1_i64 << 40), 1..30)
        ) {
            prop_assert_eq!(summary_of(&values), reference_summary(&values));
        }

        #[test]
        fn merge_equals_adding_everything(
            left in prop::collection::vec(0_i64..=1_000_000_000, 0..30),
            right in prop::collection::vec(0_i64..=1_000_000_000, 0..30),
        ) {
            let mut merged = Aggregate::from_values(left.iter().copied());
            merged.merge(&Aggregate::from_values(right.iter().copied()));
            let whole = Aggregate::from_values(left.iter().chain(&right).copied());
            prop_assert_eq!(merged, whole);
        }

        #[test]
        fn parts_round_trip(values in prop::collection::vec(-1_000_000_i64..=1_000_000, 0..30)) {
            let agg = Aggregate::from_values(values);
            let rebuilt =
                Aggregate::from_parts(agg.count(), agg.sum(), agg.sum_sq(), agg.min(), agg.max());
            prop_assert_eq!(rebuilt, Ok(agg));
        }

        #[test]
        fn arbitrary_parts_are_rejected_or_summarize_without_panicking(
            count in any::<u64>(),
            sum in any::<i128>(),
            sum_sq in 0..=MAX_SUM_SQ,
            min in any::<i64>(),
            max in any::<i64>(),
        ) {
            if let Ok(agg) = Aggregate::from_parts(count, sum, sum_sq, Some(min), Some(max)) {
                prop_assert!(summarize(&agg).is_some_and(|s| s.stddev >= 0));
                is_outlier(&agg, Ratio::new(u64::MAX, 1).unwrap());
                is_outlier(&agg, Ratio::new(1, u64::MAX).unwrap());
            }
        }

        #[test]
        fn nearly_valid_extreme_parts_never_panic(
            // Up to 4 values of ±2⁵⁹ keep sum_sq within MAX_SUM_SQ = 2¹²⁰.
            values in prop::collection::vec(-(1_i64 << 59)..=(1_i64 << 59), 1..5),
            extra in prop_oneof![Just(0_u64), 0_u64..3],
            sum_delta in prop_oneof![Just(0_i128), -3_i128..=3],
            sq_delta in prop_oneof![Just(0_i128), -3_i128..=3],
        ) {
            let base = Aggregate::from_values(values);
            let parts = Aggregate::from_parts(
                base.count() + extra,
                base.sum() + sum_delta,
                base.sum_sq() + sq_delta,
                base.min(),
                base.max(),
            );
            if let Ok(agg) = parts {
                prop_assert!(summarize(&agg).is_some_and(|s| s.stddev >= 0));
                is_outlier(&agg, Ratio::new(u64::MAX, 1).unwrap());
                is_outlier(&agg, Ratio::new(u64::MAX - 1, u64::MAX).unwrap());
            }
        }

        #[test]
        fn outlier_matches_definition(
            values in prop::collection::vec(0_i64..100, 1..20),
            num in 0_u64..10,
            den in 1_u64..5,
        ) {
            let agg = Aggregate::from_values(values.iter().copied());
            let r = reference_summary(&values);
            // In rationals: min < mean − (num/den)·sd  ⇔  den·min < den·mean − num·sd.
            let (lo, hi) = (*values.iter().min().unwrap(), *values.iter().max().unwrap());
            let below = (den as i64) * lo < (den as i64) * r.mean - (num as i64) * r.stddev;
            let above = (den as i64) * hi > (den as i64) * r.mean + (num as i64) * r.stddev;
            prop_assert_eq!(is_outlier(&agg, Ratio::new(num, den).unwrap()), below || above);
        }
    }
}
