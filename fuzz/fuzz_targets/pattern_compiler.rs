//! Any JSON as an event pattern: compiled or rejected; a compiled pattern matches the
//! pattern's own JSON and a fixed event without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(p) = remediator_policy::pattern::Pattern::from_json(&value) {
        let _ = p.matches(&value);
        let event =
            serde_json::json!({"source": "aws.states", "detail": {"status": "FAILED", "n": 3, "ip": "10.0.0.1"}});
        let _ = p.matches(&event);
        let _ = p.first_mismatch(&event);
    }
});
