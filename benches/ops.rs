//! Criterion benchmarks (filled in with the lab).
fn main() {}
