//! Compute and decimal-render times of the heavy math, best of a few runs.
//!
//! ```sh
//! cargo bench -p domain --bench math            # the four reference inputs
//! cargo bench -p domain --bench math -- quick   # smaller inputs, for a smoke run
//! ```
//! `bench/math_vs_gmp.sh` runs this beside GMP (gmpy2) and prints the ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use domain::math::{factorial, fibonacci, to_decimal};

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let value = black_box(f());
        best = best.min(started.elapsed());
        last = Some(value);
    }
    (best, last.expect("at least one run"))
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let cases: Vec<(&str, u64)> = if quick {
        vec![("factorial", 10_000), ("fibonacci", 100_000)]
    } else {
        vec![
            ("factorial", 100_000),
            ("factorial", 1_000_000),
            ("fibonacci", 1_000_000),
            ("fibonacci", 10_000_000),
        ]
    };
    println!(
        "{:<10} {:>10} {:>10} {:>12} {:>12} {:>12}",
        "algo", "n", "digits", "compute_s", "render_s", "total_s"
    );
    for (algo, n) in cases {
        let runs = if n >= 1_000_000 { 3 } else { 5 };
        let (compute, value) = best_of(runs, || match algo {
            "factorial" => factorial(n),
            _ => fibonacci(n),
        });
        let (render, digits) = best_of(runs, || to_decimal(&value));
        println!(
            "{algo:<10} {n:>10} {:>10} {:>12.3} {:>12.3} {:>12.3}",
            digits.len(),
            compute.as_secs_f64(),
            render.as_secs_f64(),
            (compute + render).as_secs_f64()
        );
    }
}
