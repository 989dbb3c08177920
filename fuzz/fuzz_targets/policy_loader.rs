//! Any text as a policy file: loaded, or every error positioned and named.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(errors) = remediator_policy::policy::PolicySet::from_sources(&[("f.yaml".into(), text.to_string())]) {
        for e in errors.0 {
            assert!(e.to_string().starts_with("f.yaml:"));
        }
    }
});
