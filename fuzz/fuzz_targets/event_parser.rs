//! Any bytes as an event: parsed or rejected with a reason, never a panic; a parsed
//! event goes through the offline engine with the shipped policies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remediator_policy::guard::AllowList;
use remediator_policy::policy::PolicySet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match remediator_policy::event::Event::parse(text) {
        Ok(_) => {
            let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"));
            let policies = PolicySet::load(dir).expect("the shipped policies load");
            let doc: serde_json::Value = serde_json::from_str(text).expect("parsed once already");
            let _ = remediator_policy::explain::explain(&policies, &AllowList::default_list(), doc, None, true);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
