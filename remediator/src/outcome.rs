//! The outcome of one event: what `remediator handle` prints, the Lambda returns, the
//! state table stores and the metrics count. Plain types, shared by the driver, the
//! record and the metrics, so that none of them reads another's strings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::apply::StepOutcome;
use crate::diagnose::Diagnosis;
use crate::event::Event;

/// What happened to one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// Not a failure and no policy wants it.
    Ignored,
    /// Handled before; nothing done this time.
    Duplicate,
    /// Another invocation is handling it right now (a retryable error, not an outcome
    /// that acknowledges the event).
    InProgress,
    NoPolicy,
    Remediated,
    /// A retry remediator made has succeeded: the incident it answered is closed.
    Healed,
    WouldRemediate,
    Notified,
    Refused,
    Failed,
    /// A policy asks a person to approve the plan first: recorded, nothing changed yet.
    AwaitingApproval,
    /// A person rejected the plan: nothing done.
    Rejected,
    /// No one approved the plan in time: nothing done.
    Expired,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Ignored => "ignored",
            Resolution::Duplicate => "duplicate",
            Resolution::InProgress => "in-progress",
            Resolution::NoPolicy => "no-policy",
            Resolution::Remediated => "remediated",
            Resolution::Healed => "healed",
            Resolution::WouldRemediate => "would-remediate",
            Resolution::Notified => "notified",
            Resolution::Refused => "refused",
            Resolution::Failed => "failed",
            Resolution::AwaitingApproval => "awaiting-approval",
            Resolution::Rejected => "rejected",
            Resolution::Expired => "expired",
        }
    }
}

/// The outcome printed by `remediator handle` and returned by the Lambda.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub event_id: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    pub resolution: Resolution,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<StepOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<SentSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The circuit (target) this incident's failure opened, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_opened: Option<String>,
    /// An earlier handling of this incident was interrupted and this one took it over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_over_from: Option<String>,
    /// For duplicates: the outcome recorded by the delivery that handled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Value>,
}

impl Outcome {
    /// The outcome of an event before anything is known: ignored, no incident.
    pub fn for_event(event: &Event) -> Outcome {
        Outcome::new(event.id.clone(), event.source.clone())
    }

    /// An outcome with nothing known yet but what it is about: ignored, no incident.
    pub fn new(event_id: String, source: String) -> Outcome {
        Outcome {
            event_id,
            source,
            incident: None,
            resolution: Resolution::Ignored,
            execution: None,
            diagnosis: None,
            policy: None,
            actions: Vec::new(),
            summary: None,
            note: None,
            circuit_opened: None,
            took_over_from: None,
            recorded: None,
        }
    }
}

/// A summary that was published (or folded, or owed).
#[derive(Clone, Debug, Serialize)]
pub struct SentSummary {
    pub subject: String,
    /// Folded into the digest of its policy, target and outcome instead of sent alone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub folded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
