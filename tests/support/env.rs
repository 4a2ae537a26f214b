//! The environment knobs of the long-running checks: a seed that can be fixed to repeat a run, and
//! counts that can only be raised.
#![allow(dead_code)]

/// A seed for a test run: the value of the environment variable `name` if it is set and parses,
/// otherwise one derived from the current time. Tests print it on failure so a run can be repeated
/// (as far as thread scheduling allows).
pub fn seed_from_env(name: &str) -> u64 {
    if let Some(seed) = std::env::var(name).ok().and_then(|s| s.parse().ok()) {
        return seed;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() ^ u64::from(now.subsec_nanos()).rotate_left(32)
}

/// A count from the environment variable `name`, or `default` if it is unset or does not parse. Never
/// below `default`: the variable can only raise the work a test does.
pub fn count_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(default, |n: u64| n.max(default))
}
