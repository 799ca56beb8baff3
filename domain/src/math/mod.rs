//! Exact big-integer functions: factorial, Fibonacci, Ackermann–Péter, and
//! fast decimal rendering, with cost estimates for routing.

pub mod ackermann;
pub mod decimal;
pub mod factorial;
pub mod fibonacci;
pub(crate) mod mul;
#[cfg(test)]
mod test_rng;

pub use ackermann::{AckermannError, ackermann, ackermann_bits, ackermann_cost};
pub use decimal::to_decimal;
pub use factorial::{factorial, factorial_cost};
pub use fibonacci::{fibonacci, fibonacci_cost};
