//! The incident: one failure, keyed so that every delivery of it is recognised.
//!
//! EventBridge delivers at least once and a redriven execution keeps its ARN, so an
//! execution failure is keyed by execution ARN plus `redriveCount`; any other event by
//! its EventBridge id (which a redelivery keeps). The incident document, the event plus
//! remediator's `diagnosis`, is what policies match on.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diagnose::Diagnosis;
use crate::event::{Event, Signal};

/// The identity of an incident in the state table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IncidentKey(String);

impl IncidentKey {
    pub fn for_event(event: &Event) -> IncidentKey {
        match &event.signal {
            Signal::Execution(change) => IncidentKey(format!("{}#{}", change.execution, change.redrive_count)),
            Signal::Alarm(_) | Signal::Other => IncidentKey(format!("event:{}:{}", event.source, event.id)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a key read back from the state table.
    pub fn from_stored(key: impl Into<String>) -> IncidentKey {
        IncidentKey(key.into())
    }

    /// A short stable digest, for client tokens and execution names.
    pub fn digest(&self, len: usize) -> String {
        let hash = Sha256::digest(self.0.as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        hex[..len.min(hex.len())].to_string()
    }
}

impl fmt::Display for IncidentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event that may need remediation, with what diagnosis found.
#[derive(Clone, Debug)]
pub struct Incident {
    pub key: IncidentKey,
    pub event: Event,
    pub diagnosis: Option<Diagnosis>,
}

impl Incident {
    pub fn new(event: Event, diagnosis: Option<Diagnosis>) -> Incident {
        Incident { key: IncidentKey::for_event(&event), event, diagnosis }
    }

    /// The document policies match: the event as received plus `diagnosis`. The
    /// diagnosis is written into the event's own document (no copy of the event).
    pub fn document(&mut self) -> &Value {
        if let (Some(obj), Some(d)) = (self.event.document.as_object_mut(), &self.diagnosis) {
            obj.insert("diagnosis".into(), serde_json::to_value(d).unwrap_or(Value::Null));
        }
        &self.event.document
    }
}
