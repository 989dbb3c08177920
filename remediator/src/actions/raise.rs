//! `raise-timeout` and `raise-memory`: a Lambda function's timeout or memory, raised
//! from the value in force when the failure happened, capped, guarded by `RevisionId`,
//! and waited for until it is in force (the retry that follows must run under it).
//!
//! The before-image (the old value, the value set, the revision) is journaled before the
//! change; `undo` puts the old value back only while the function still has the value
//! remediator set.

use serde::Deserialize;
use serde_json::Value;

use crate::apply::{
    done, failed, refused, Done, FunctionConfig, FunctionSettings, Services, Setting, StepResult, Update,
};
use crate::error::AwsError;

use super::Undone;
use crate::event::parse_timestamp;
use crate::incident::Incident;
use crate::plan::{Refusal, Step};

/// What a raise may call.
pub const PERMISSIONS: &[&str] = &["lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"];

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Timeout,
    Memory,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Timeout => "timeout",
            Kind::Memory => "memory",
        }
    }
    pub fn unit(self) -> &'static str {
        match self {
            Kind::Timeout => "s",
            Kind::Memory => " MB",
        }
    }
    pub fn current(self, c: &FunctionConfig) -> u32 {
        match self {
            Kind::Timeout => c.timeout_seconds,
            Kind::Memory => c.memory_mb,
        }
    }
    pub fn setting(self, value: u32) -> Setting {
        match self {
            Kind::Timeout => Setting::Timeout(value),
            Kind::Memory => Setting::Memory(value),
        }
    }
}

/// How long a change lock keeps other incidents from the same change: a burst of
/// failures from one timeout arrives within minutes.
const CHANGE_HOLD: std::time::Duration = std::time::Duration::from_secs(3600);

/// How long to wait for `LastUpdateStatus` to leave `InProgress`.
const UPDATE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Raises a function's timeout or memory from the value in force when the failure
/// happened: if the function changed after the failure (an earlier incident of the same
/// burst raised it, or a person did), it is not raised again.
pub(crate) async fn raise(
    step: &Step,
    incident: &Incident,
    services: &Services<'_>,
    function: &str,
    kind: Kind,
    factor: f64,
    cap: u32,
) -> Done {
    let config = match services.functions.get(function).await {
        Ok(c) => c,
        Err(e) => return failed("GetFunctionConfiguration", &e),
    };
    let current = kind.current(&config);
    let unit = kind.unit();
    let before = Some(serde_json::json!({ kind.name(): current, "revision_id": config.revision_id }));
    // Changed at or after the failure (by a person: LastModified; by remediator for an
    // earlier incident of the same burst: its change record)? Then the failure happened
    // under the old value and the new one deserves its chance: no second raise.
    let failed_at = failure_time(incident);
    let ours = match services.locks.last_change(function, kind.name()).await {
        Ok(t) => t,
        Err(e) => return failed("reading earlier changes", &e),
    };
    if let Some(failed_at) = failed_at {
        if config.last_modified.into_iter().chain(ours).any(|changed| changed >= failed_at) {
            return done(
                StepResult::Done,
                format!("{} is {current}{unit}, changed since this failure: not raised again", kind.name()),
            );
        }
    }
    // Only the function's own timeout is helped by raising it (failure-modes.md row 1).
    if let (Kind::Timeout, Some(why)) =
        (kind, incident.diagnosis.as_ref().and_then(|d| d.refuse_timeout_raise(current)))
    {
        return refused(Refusal::NotApplicable, format!("timeout not raised: {why}"));
    }
    if current >= cap {
        return refused(
            Refusal::NotApplicable,
            format!("{} is already at the cap of {cap}{unit}: a person must look", kind.name()),
        );
    }
    let target = ((f64::from(current) * factor).ceil() as u32).min(cap).max(current + 1);
    // The value remediator sets, so that `undo` can tell whether someone changed it since.
    let before = before.map(|mut b| {
        b["set_to"] = serde_json::json!(target);
        b
    });
    let short = format!("{} {current}{unit}→{target}{unit}", kind.name());
    if step.dry_run {
        return Done {
            before,
            short: Some(short.clone()),
            ..done(StepResult::WouldHave, format!("would raise {short}"))
        };
    }
    if let Some(stop) = services.preflight(step, function, before.as_ref()).await {
        return stop;
    }
    let from = current.to_string();
    match services.locks.claim_change(function, kind.name(), &from, incident.key.as_str(), CHANGE_HOLD).await {
        Ok(true) => {}
        Ok(false) => {
            return done(
                StepResult::Done,
                format!("another incident is raising the {} from {current}{unit}: not raised twice", kind.name()),
            )
        }
        Err(e) => return failed("claiming the change", &e),
    }
    match services.functions.update(function, kind.setting(target), config.revision_id.as_deref()).await {
        Ok(Update::Updated) => {}
        Ok(Update::Conflict) => {
            return done(
                StepResult::Done,
                "the function changed while remediator read it (RevisionId): left as the other change set it",
            )
        }
        Err(e) => return failed("UpdateFunctionConfiguration", &e),
    }
    // Wait until the update is in force before the next step (a redrive) uses it.
    let started = std::time::Instant::now();
    loop {
        match services.functions.get(function).await {
            Ok(c) if c.last_update_status.as_deref() == Some("Failed") => {
                return Done {
                    before,
                    ..done(StepResult::Failed, format!("the update to {target}{unit} failed (LastUpdateStatus Failed)"))
                }
            }
            Ok(c) if c.last_update_status.as_deref() != Some("InProgress") && kind.current(&c) == target => break,
            Ok(_) if started.elapsed() > UPDATE_WAIT => {
                return Done {
                    before,
                    ..done(
                        StepResult::Failed,
                        format!("the update to {target}{unit} did not finish within {}s", UPDATE_WAIT.as_secs()),
                    )
                }
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            Err(e) => return failed("GetFunctionConfiguration", &e),
        }
    }
    if let Err(e) = services.locks.applied_change(function, kind.name(), &from, &target.to_string()).await {
        tracing::warn!(function, error = %e, "the raise is in force but could not be recorded as applied");
    }
    Done { before, short: Some(short.clone()), ..done(StepResult::Done, format!("raised {short}")) }
}

/// When the failure happened: the event's time (EventBridge stamps it at the change).
pub fn failure_time(incident: &Incident) -> Option<i64> {
    incident.event.time.as_deref().and_then(parse_timestamp)
}

/// A raise's before-image: the value replaced, the value set, the revision read.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Before {
    pub timeout: Option<u32>,
    pub memory: Option<u32>,
    pub set_to: Option<u32>,
}

impl Before {
    pub fn parse(before: &Value) -> Option<Before> {
        serde_json::from_value(before.clone()).ok()
    }

    fn old(&self, kind: Kind) -> Option<u32> {
        match kind {
            Kind::Timeout => self.timeout,
            Kind::Memory => self.memory,
        }
    }
}

/// Puts the old value back, only while the function has the value remediator set.
pub async fn undo(
    kind: Kind,
    function: &str,
    before: &Before,
    functions: &dyn FunctionSettings,
    dry_run: bool,
) -> Result<Undone, AwsError> {
    let Some(old) = before.old(kind) else {
        return Ok(Undone::Refused(format!("no {} in the before-image", kind.name())));
    };
    let unit = kind.unit();
    let config = functions.get(function).await?;
    let current = kind.current(&config);
    if current == old {
        return Ok(Undone::Already(format!("the {} is {old}{unit} already", kind.name())));
    }
    if let Some(set) = before.set_to.filter(|set| *set != current) {
        return Ok(Undone::Refused(format!(
            "the {} is {current}{unit}, not the {set}{unit} remediator set: someone changed it since; left alone",
            kind.name()
        )));
    }
    let description = format!("set the {} back to {old}{unit}", kind.name());
    if dry_run {
        return Ok(Undone::WouldHave(description));
    }
    match functions.update(function, kind.setting(old), config.revision_id.as_deref()).await? {
        Update::Updated => Ok(Undone::Done(description)),
        Update::Conflict => {
            Ok(Undone::Refused("the function changed while it was read (RevisionId): left alone".into()))
        }
    }
}
