//! The offline engine behind `explain` and `test`: what would remediator decide for an
//! event, without touching AWS.
//!
//! It runs the same parse → diagnose → decide → plan stages as the handler, with the
//! history (if any) supplied from a file instead of `GetExecutionHistory`.

use serde::Serialize;
use serde_json::Value;

use crate::decide::decide;
use crate::diagnose::{diagnose, HistoryEvent};
use crate::event::{Event, Signal};
use crate::guard::{guard, AllowList};
use crate::incident::Incident;
use crate::plan::{plan, Disposition};
use crate::policy::PolicySet;
use crate::triage::{triage, Identity, Triage};

/// One line of `remediator explain`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Explanation {
    pub matched: Vec<String>,
    pub policy: Option<String>,
    pub actions: Vec<PlannedAction>,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<serde_json::Map<String, Value>>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlannedAction {
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Explains one event document.
pub fn explain(
    policies: &PolicySet,
    allow: &AllowList,
    document: Value,
    history: Option<&[HistoryEvent]>,
    why: bool,
) -> Result<Explanation, String> {
    let event = Event::from_value(document).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    // The same triage as `handle`, with no identity (offline, any caller is a person).
    let triaged = triage(&event, policies, &Identity::default());
    match &triaged {
        Triage::Ignore(why) => notes.push(format!("the handler ignores it: {why}")),
        Triage::Verification { .. } => notes.push(
            "the end of a run or alarm remediator may watch: the handler closes the incident it answers, if it made that retry".into(),
        ),
        Triage::Internal(_) => notes.push("remediator's own timer event: the handler runs the work it carries".into()),
        Triage::Incident => {}
    }
    let diagnosis = match &event.signal {
        Signal::Execution(change) => {
            let mut d = match history {
                Some(h) => diagnose(&change.execution, h),
                None => {
                    notes.push("no history given: diagnosis from the event's error and cause only".into());
                    Default::default()
                }
            };
            d.error = d.error.or_else(|| change.error.clone());
            d.cause = d.cause.or_else(|| change.cause.clone());
            Some(d)
        }
        Signal::Alarm(alarm) => Some(crate::diagnose::diagnose_alarm(
            alarm,
            event.region.as_deref().unwrap_or_default(),
            event.account.as_deref().unwrap_or_default(),
        )),
        Signal::Other => None,
    };
    let is_ignored_status = triaged != Triage::Incident;
    let mut incident = Incident::new(event, diagnosis);
    let decision = decide(policies, incident.document());
    let document = &incident.event.document;
    let mut planned = if is_ignored_status { Default::default() } else { plan(&incident, &decision.applied, false) };
    // The allow-list applies offline too; pauses live in the state table and do not.
    guard(&mut planned, allow, &crate::guard::GuardState::default(), 0);
    let actions = planned
        .steps
        .iter()
        .map(|s| PlannedAction {
            action: s.action.name().to_string(),
            target: s.target.clone(),
            refused: match &s.disposition {
                Disposition::Act => None,
                Disposition::Refuse { reason, .. } => Some(reason.clone()),
            },
        })
        .collect();
    if decision.applied.is_empty() && matches!(incident.event.signal, Signal::Execution(ref c) if c.is_failure()) {
        notes.push("no policy matched: the failure is reported to a person".into());
    }
    let why = why.then(|| {
        policies
            .policies()
            .iter()
            .filter_map(|p| p.pattern.first_mismatch(document).map(|f| (p.name.clone(), Value::String(f))))
            .collect()
    });
    Ok(Explanation {
        matched: decision.matched.iter().map(|p| p.name.clone()).collect(),
        policy: if is_ignored_status { None } else { decision.policy().map(|p| p.name.clone()) },
        actions,
        notes,
        why,
    })
}
