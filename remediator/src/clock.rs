//! Wall-clock time, in one place.
//!
//! The pure stages (triage, decide, plan, guard, the choice of outcome) take `now` as an
//! argument so that tests can fix it; only the driver and the adapters read the clock,
//! through this module, which depends on nothing else in the crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Now, in Unix nanoseconds (unique-enough suffixes for sort keys).
pub fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}
