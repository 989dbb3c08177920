//! Handling one event, top to bottom, as the Lambda and `remediator handle` both do:
//!
//! ```text
//! event ─parse─▶ incident ─claim─▶ diagnose (history ∥ describe) ─decide─▶ plan
//!       ─apply─▶ outcome ─▶ record ∥ notify
//! ```
//!
//! The claim comes first so that a duplicate delivery costs one call and acts on
//! nothing. "No policy matched", "attempts exhausted" and "duplicate" are outcomes;
//! errors are only what should make EventBridge deliver the event again (a malformed
//! event is an error too, but not a retryable one).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::apply::{
    apply, ChangeLocks, ExecutionInfo, Executions, FunctionSettings, ObjectVersions, Rules, Services, StepOutcome,
    StepResult, Timers, DEFERRED_RETRY,
};
use crate::decide::decide_applied;
use crate::diagnose::{diagnose, diagnose_alarm, Diagnosis};
use crate::error::AwsError;
use crate::event::{Event, EventError, Signal};
use crate::guard::{guard, AllowList, GuardState, GuardStore};
use crate::incident::{Incident, IncidentKey};
use crate::plan::plan;
use crate::policy::{NotifyWhen, Policy, PolicySet};
use crate::record::{Claim, ClaimRequest, Completion, IncidentLog, Status};
use crate::redact;
use crate::summary::{compose, Digests, Facts, Notifier, Summary};

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Retrying will not help; the event goes to the DLQ.
    #[error("malformed event: {0}")]
    BadEvent(#[from] EventError),
    /// AWS failed; EventBridge should deliver the event again.
    #[error("AWS call failed while handling incident {incident}: {source}")]
    Aws {
        incident: String,
        #[source]
        source: AwsError,
    },
    /// A remediation step failed; recorded and reported, and the event is retried.
    #[error("remediation failed for incident {incident}: {detail}")]
    Remediation { incident: String, detail: String, outcome: Box<Outcome> },
}

impl HandleError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, HandleError::BadEvent(_))
    }
}

/// What happened to one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// Not a failure and no policy wants it.
    Ignored,
    /// Handled before; nothing done this time.
    Duplicate,
    /// Another invocation is handling it right now.
    InProgress,
    NoPolicy,
    Remediated,
    /// A retry remediator made has succeeded: the incident it answered is closed.
    Healed,
    WouldRemediate,
    Notified,
    Refused,
    Failed,
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
    /// For duplicates: the outcome recorded by the delivery that handled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Value>,
}

impl Outcome {
    /// The outcome of an event before anything is known: ignored, no incident.
    pub fn for_event(event: &Event) -> Outcome {
        Outcome {
            event_id: event.id.clone(),
            source: event.source.clone(),
            incident: None,
            resolution: Resolution::Ignored,
            execution: None,
            diagnosis: None,
            policy: None,
            actions: Vec::new(),
            summary: None,
            note: None,
            recorded: None,
        }
    }
}

/// A summary that was published.
#[derive(Clone, Debug, Serialize)]
pub struct SentSummary {
    pub subject: String,
    /// Folded into the digest of its policy and target instead of sent on its own.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub folded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything handling needs, built once (at Lambda init or CLI start).
pub struct Handler {
    pub policies: PolicySet,
    pub dry_run: bool,
    pub lease: Duration,
    pub allow: AllowList,
    pub executions: Arc<dyn Executions>,
    pub functions: Arc<dyn FunctionSettings>,
    pub rules: Arc<dyn Rules>,
    pub objects: Arc<dyn ObjectVersions>,
    pub locks: Arc<dyn ChangeLocks>,
    /// Storm digests, and their window (zero: every summary on its own).
    pub digests: Option<Arc<dyn Digests>>,
    pub digest_window: Duration,
    /// Durable timers for retries due later than an invocation should wait.
    pub timers: Option<Arc<dyn Timers>>,
    /// remediator's own role session name (its Lambda function's name), to ignore the
    /// CloudTrail events of its own calls.
    pub own_session: Option<String>,
    pub guards: Arc<dyn GuardStore>,
    pub log: Arc<dyn IncidentLog>,
    pub notifier: Arc<dyn Notifier>,
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Handler {
    /// Handles one event. `owner` identifies this invocation in the claim.
    #[tracing::instrument(skip_all, fields(event = tracing::field::Empty, incident = tracing::field::Empty))]
    pub async fn handle(&self, document: Value, owner: &str) -> Result<Outcome, HandleError> {
        let event = Event::from_value(document)?;
        tracing::Span::current().record("event", event.id.as_str());
        if event.source == "remediator" && event.detail_type == DEFERRED_RETRY {
            return self.run_deferred(event, owner).await;
        }
        if event.source == "remediator" && event.detail_type == crate::summary::DIGEST_DUE {
            let sent =
                self.flush_digests().await.map_err(|source| HandleError::Aws { incident: event.id.clone(), source })?;
            return Ok(Outcome { note: Some(format!("{sent} digest(s) sent")), ..Outcome::for_event(&event) });
        }
        let mut outcome = Outcome::for_event(&event);
        match &event.signal {
            Signal::Execution(change) => {
                outcome.execution = Some(change.execution.to_string());
                if change.status == "SUCCEEDED" && is_retry(change) {
                    let run = IncidentKey::for_event(&event).to_string();
                    return self.verify_success(event, outcome, owner, &run).await;
                }
                if !change.is_failure() {
                    outcome.note = Some(format!("execution status {}: nothing to heal", change.status));
                    return Ok(outcome);
                }
            }
            Signal::Alarm(alarm) => {
                if alarm.state == "OK" && alarm.previous_state.as_deref() == Some("ALARM") {
                    let follow = format!("alarm:{}", alarm.name);
                    return self.verify_success(event, outcome, owner, &follow).await;
                }
                if !alarm.is_failure() {
                    outcome.note = Some(format!(
                        "alarm {} is {}: only transitions into ALARM are acted on",
                        alarm.name, alarm.state
                    ));
                    return Ok(outcome);
                }
            }
            Signal::Other => {
                // The loop breaker: a CloudTrail call made by remediator itself (its
                // Lambda's role session is named after the function) is never a failure
                // to remediate.
                if let Some(own) = self.own_session.as_deref() {
                    let caller =
                        event.document.pointer("/detail/userIdentity/arn").and_then(Value::as_str).unwrap_or_default();
                    if caller.ends_with(&format!("/{own}")) && caller.contains(":assumed-role/") {
                        outcome.note = Some(format!("caused by remediator itself ({caller}): ignored"));
                        return Ok(outcome);
                    }
                }
                // Only events some policy wants become incidents.
                if decide_applied(&self.policies, &event.document).is_empty() {
                    outcome.note = Some("no policy matches this event".into());
                    return Ok(outcome);
                }
            }
        }
        let mut incident = Incident::new(event, None);
        let key = incident.key.clone();
        tracing::Span::current().record("incident", key.as_str());
        outcome.incident = Some(key.to_string());
        let aws = |source: AwsError| HandleError::Aws { incident: key.to_string(), source };

        let request = self.claim_request(&incident, owner);
        match self.log.claim(&request).await.map_err(aws)? {
            Claim::Claimed => {}
            Claim::Done { outcome: recorded, unsent_summary, input_hash: stored_hash } => {
                let differs = stored_hash.is_some_and(|h| h != request.input_hash);
                outcome.resolution = Resolution::Duplicate;
                outcome.recorded = recorded;
                if let Some((subject, body)) = unsent_summary {
                    // The first delivery acted but could not notify: finish its job.
                    let summary = Summary { subject, body, attributes: Default::default() };
                    let id = self.notifier.publish(&summary).await.map_err(aws)?;
                    self.log.mark_summary(&key, true).await.map_err(aws)?;
                    outcome.summary = Some(SentSummary {
                        subject: summary.subject,
                        folded: false,
                        message_id: Some(id),
                        error: None,
                    });
                    outcome.note = Some("already handled; its summary had not been delivered and now is".into());
                } else if differs {
                    outcome.note = Some(
                        "already handled by an earlier delivery of the same incident, whose event differed: nothing done".into(),
                    );
                } else {
                    outcome.note = Some("already handled by an earlier delivery: nothing done".into());
                }
                info!(incident = %key, outcome = "duplicate", "duplicate delivery absorbed");
                return Ok(outcome);
            }
            Claim::InProgress { owner } => {
                outcome.resolution = Resolution::InProgress;
                outcome.note = Some(format!("being handled by {owner}: nothing done"));
                return Ok(outcome);
            }
        }

        // Diagnose, and read the guards' state, at once. A failure of either releases the
        // claim and asks for a retry: a pause that cannot be read must not be ignored.
        let now = now();
        let incident_run = run_key(&incident);
        let (diagnosed, pauses, previous) =
            tokio::join!(self.diagnose(&mut incident), self.guards.load(now), self.retry_of(&incident_run));
        let (info, guards) = match (diagnosed, pauses) {
            (Ok(info), Ok(guards)) => (info, guards),
            (Err(e), _) | (_, Err(e)) => {
                self.release(&incident, owner, &outcome, &e).await;
                return Err(aws(e));
            }
        };
        outcome.diagnosis = incident.diagnosis.clone().map(redacted);
        // This run was remediator's retry of an earlier incident, and it failed again.
        if let Ok(Some(previous)) = previous {
            if let Err(e) =
                self.log.verify(&previous, "still-failing", incident_run.as_deref().unwrap_or_default()).await
            {
                warn!(incident = %previous, error = %e, "could not record the verification");
            }
            outcome.note = Some(format!("this run was the retry of incident {previous}, which is still failing"));
        }

        let document = incident.document();
        let applied = decide_applied(&self.policies, document);
        let deciding: Option<&Policy> = applied.first().copied();
        outcome.policy = deciding.map(|p| p.name.clone());
        let mut plan = plan(&incident, &applied, self.dry_run);
        guard(&mut plan, &self.allow, &guards, now);
        outcome.actions = apply(&plan, &incident, info.as_ref(), &self.services()).await;
        outcome.resolution = resolve(deciding, &outcome.actions);
        let dry_run = self.dry_run || deciding.is_some_and(|p| p.dry_run);
        if let Err(e) = self.record_guards(&incident, &plan, &guards, &mut outcome, now).await {
            // The remediation happened; the guards' bookkeeping failed. Say so, and let
            // the retry (which finds the incident done) not act again.
            warn!(incident = %key, error = %e, "could not record attempts or circuit state");
            outcome.note = Some(format!("guard state not recorded: {}", redact::text(&e.to_string())));
        }

        let mut summary = should_notify(deciding, outcome.resolution, &outcome.actions).then(|| {
            compose(&Facts {
                incident: &incident,
                policy: deciding,
                steps: &outcome.actions,
                resolution: outcome.resolution.as_str(),
                dry_run,
                note: outcome.note.as_deref(),
            })
        });
        let status = if outcome.resolution == Resolution::Failed { Status::Failed } else { Status::Completed };
        // In a storm, later summaries of one policy and target fold into a digest. A
        // failed remediation always goes out at once.
        let mut folded = None;
        if let (Some(s), Some(digests)) = (&summary, &self.digests) {
            if outcome.resolution != Resolution::Failed && !self.digest_window.is_zero() {
                let line = format!("{} ({})", s.subject, incident.key);
                let digest_key = crate::summary::digest_key(s);
                match digests.open_or_fold(&digest_key, self.digest_window.as_secs() as i64, &line, now).await {
                    Ok(crate::summary::Fold::Opened) => {}
                    Ok(crate::summary::Fold::Folded { closes_at }) => {
                        folded = summary.take();
                        // Wake up when the window closes (one timer per window); without
                        // timers the scheduled sweep sends it.
                        if let Some(timers) = &self.timers {
                            let name = format!(
                                "remediator-digest-{}",
                                IncidentKey::from_stored(format!("{digest_key}@{closes_at}")).digest(24)
                            );
                            let payload = serde_json::json!({
                                "version": "0", "id": name, "source": "remediator",
                                "detail-type": crate::summary::DIGEST_DUE, "detail": {"digest": digest_key},
                            });
                            if let Err(e) = timers.schedule(&name, closes_at + 1, &payload).await {
                                warn!(incident = %key, error = %e, "could not schedule the digest; the sweep will send it");
                            }
                        }
                    }
                    Err(e) => {
                        warn!(incident = %key, error = %e, "digest state unavailable: sending the summary on its own")
                    }
                }
            }
        }

        // Record ∥ notify: the completion (with the retries to verify, in one
        // transaction) and the summary go out together. The record assumes delivery; if
        // the summary fails, it is marked owed and the event is returned for a retry,
        // whose duplicate path sends it.
        let follow_ups: Vec<String> = outcome.actions.iter().filter_map(|a| a.follow_up.clone()).collect();
        outcome.summary = summary.as_ref().or(folded.as_ref()).map(|s| SentSummary {
            subject: s.subject.clone(),
            folded: folded.is_some(),
            message_id: None,
            error: None,
        });
        let mut completion = completion(&incident, owner, status, &outcome, summary.as_ref(), summary.is_some());
        completion.follow_ups = follow_ups;
        let publish = async {
            match &summary {
                Some(s) => Some(self.notifier.publish(s).await),
                None => None,
            }
        };
        // An alarm's incident closes when the alarm returns to OK. Every incident of one
        // alarm points at the latest, so this is a plain write (last one wins), outside the
        // completion's transaction, where concurrent incidents would conflict on it.
        let alarm_pointer = async {
            if let Signal::Alarm(alarm) = &incident.event.signal {
                if let Err(e) = self.log.follow(&format!("alarm:{}", alarm.name), &key).await {
                    warn!(incident = %key, error = %e, "could not record the alarm to watch");
                }
            }
        };
        let (recorded, published, ()) = tokio::join!(self.log.complete(&completion), publish, alarm_pointer);
        if let Some(sent) = outcome.summary.as_mut() {
            sent.message_id = published.as_ref().and_then(|p| p.as_ref().ok().cloned());
            sent.error = published.as_ref().and_then(|p| p.as_ref().err().map(|e| e.to_string()));
        }
        if matches!(published, Some(Err(_))) {
            if let Err(e) = self.log.mark_summary(&key, false).await {
                warn!(incident = %key, error = %e, "could not mark the summary as owed");
            }
        }
        if let Err(e) = recorded {
            // The record did not land: release the claim so the retry EventBridge makes
            // takes the incident over at once (its actions are idempotent: a restart is
            // confirmed by name and input, not run twice).
            self.release(&incident, owner, &outcome, &e).await;
            return Err(aws(e));
        }
        info!(
            incident = %key,
            policy = outcome.policy.as_deref().unwrap_or("-"),
            outcome = outcome.resolution.as_str(),
            actions = outcome.actions.len(),
            "incident handled"
        );
        if let Some(Err(e)) = published {
            return Err(aws(e));
        }
        if status == Status::Failed {
            let detail = outcome
                .actions
                .iter()
                .filter(|a| a.result == StepResult::Failed)
                .map(|a| format!("{}: {}", a.action, a.detail))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(HandleError::Remediation { incident: key.to_string(), detail, outcome: Box::new(outcome) });
        }
        Ok(outcome)
    }

    /// The claim of an incident by this invocation.
    fn claim_request(&self, incident: &Incident, owner: &str) -> ClaimRequest {
        ClaimRequest {
            key: incident.key.clone(),
            owner: owner.to_string(),
            lease: self.lease,
            event_id: incident.event.id.clone(),
            source: incident.event.source.clone(),
            input_hash: input_hash(&incident.event.document),
        }
    }

    /// The AWS capabilities `apply` is lent.
    fn services(&self) -> Services<'_> {
        Services {
            executions: self.executions.as_ref(),
            functions: self.functions.as_ref(),
            rules: self.rules.as_ref(),
            objects: self.objects.as_ref(),
            locks: self.locks.as_ref(),
            timers: self.timers.as_deref(),
        }
    }

    /// The incident this run retries, if remediator started or redrove it.
    async fn retry_of(&self, run: &Option<String>) -> Result<Option<IncidentKey>, AwsError> {
        match run {
            Some(run) => self.log.followed(run).await,
            None => Ok(None),
        }
    }

    /// A retry remediator made succeeded: close its incident as healed, once.
    /// Sends the digests whose window has closed (run by the scheduled sweep and by
    /// `remediator digests`). Returns how many were sent.
    pub async fn flush_digests(&self) -> Result<usize, AwsError> {
        let Some(digests) = &self.digests else { return Ok(0) };
        let mut sent = 0;
        for (key, lines) in digests.take_due(now()).await? {
            if lines.is_empty() {
                continue;
            }
            self.notifier.publish(&crate::summary::digest(&key, &lines)).await?;
            sent += 1;
        }
        Ok(sent)
    }

    /// A retry a timer deferred is due: claim it once, check the guards again (a person
    /// may have paused remediator since), and run the retry of the original incident.
    async fn run_deferred(&self, timer_event: Event, owner: &str) -> Result<Outcome, HandleError> {
        let detail = timer_event.document.get("detail").cloned().unwrap_or_default();
        let original = detail.get("event").cloned().ok_or(EventError::MissingDetail("event"))?;
        let policy_name = detail.get("policy").and_then(Value::as_str).unwrap_or_default().to_string();
        let timer = Incident::new(timer_event, None);
        let key = timer.key.clone();
        let aws = |source: AwsError| HandleError::Aws { incident: key.to_string(), source };
        let mut incident = Incident::new(Event::from_value(original)?, None);
        let mut outcome = Outcome {
            incident: Some(key.to_string()),
            policy: Some(policy_name.clone()),
            note: Some(format!("scheduled retry of incident {}", incident.key)),
            ..Outcome::for_event(&timer.event)
        };
        let request = self.claim_request(&timer, owner);
        if !matches!(self.log.claim(&request).await.map_err(aws)?, Claim::Claimed) {
            outcome.resolution = Resolution::Duplicate;
            return Ok(outcome);
        }
        let now = now();
        let (diagnosed, guards) = tokio::join!(self.diagnose(&mut incident), self.guards.load(now));
        let (info, guards) = match (diagnosed, guards) {
            (Ok(info), Ok(guards)) => (info, guards),
            (Err(e), _) | (_, Err(e)) => {
                self.release(&timer, owner, &outcome, &e).await;
                return Err(aws(e));
            }
        };
        let Some(policy) = self.policies.get(&policy_name) else {
            outcome.resolution = Resolution::Refused;
            outcome.note = Some(format!("policy {policy_name} no longer exists: the scheduled retry is dropped"));
            let completion = completion(&timer, owner, Status::Completed, &outcome, None, false);
            self.log.complete(&completion).await.map_err(aws)?;
            return Ok(outcome);
        };
        // The retry itself, now, with the policy's limits and the guards in force now.
        let mut now_policy = policy.clone();
        now_policy.actions = vec![crate::policy::Action::Redrive { delay: Duration::ZERO }];
        let mut plan = plan(&incident, &[&now_policy], self.dry_run);
        guard(&mut plan, &self.allow, &guards, now);
        outcome.actions = apply(&plan, &incident, info.as_ref(), &self.services()).await;
        outcome.resolution = resolve(Some(policy), &outcome.actions);
        outcome.execution = match &incident.event.signal {
            Signal::Execution(c) => Some(c.execution.to_string()),
            _ => None,
        };
        // The retry answers the original incident: its end closes that one.
        for follow_up in outcome.actions.iter().filter_map(|a| a.follow_up.as_deref()) {
            if let Err(e) = self.log.follow(follow_up, &incident.key).await {
                warn!(incident = %key, error = %e, "could not record the retry to verify");
            }
        }
        let summary = compose(&Facts {
            incident: &incident,
            policy: Some(policy),
            steps: &outcome.actions,
            resolution: outcome.resolution.as_str(),
            dry_run: self.dry_run,
            note: outcome.note.as_deref(),
        });
        let status = if outcome.resolution == Resolution::Failed { Status::Failed } else { Status::Completed };
        self.notify_and_complete(&timer, owner, status, outcome, &summary).await
    }

    /// The end of what remediator watches (a retry that succeeded, an alarm back to
    /// `OK`) closes the incident it answered, once, with a final summary.
    async fn verify_success(
        &self,
        event: Event,
        mut outcome: Outcome,
        owner: &str,
        run: &str,
    ) -> Result<Outcome, HandleError> {
        let incident = Incident::new(event, None);
        let key = incident.key.clone();
        let aws = |source: AwsError| HandleError::Aws { incident: key.to_string(), source };
        let run = run.to_string();
        let Some(previous) = self.log.followed(&run).await.map_err(aws)? else {
            outcome.note = Some("not the end of anything remediator watches: nothing to close".into());
            return Ok(outcome);
        };
        outcome.incident = Some(key.to_string());
        let request = self.claim_request(&incident, owner);
        if !matches!(self.log.claim(&request).await.map_err(aws)?, Claim::Claimed) {
            outcome.resolution = Resolution::Duplicate;
            outcome.note = Some("verification already recorded".into());
            return Ok(outcome);
        }
        self.log.verify(&previous, "healed", &run).await.map_err(aws)?;
        outcome.resolution = Resolution::Healed;
        outcome.note = Some(format!("closes incident {previous}"));
        let summary = crate::summary::healed(&incident, &previous);
        self.notify_and_complete(&incident, owner, Status::Completed, outcome, &summary).await
    }

    /// Publishes a summary, then records the outcome with whether it was delivered.
    async fn notify_and_complete(
        &self,
        incident: &Incident,
        owner: &str,
        status: Status,
        mut outcome: Outcome,
        summary: &Summary,
    ) -> Result<Outcome, HandleError> {
        let aws = |source: AwsError| HandleError::Aws { incident: incident.key.to_string(), source };
        let published = self.notifier.publish(summary).await;
        outcome.summary = Some(SentSummary {
            subject: summary.subject.clone(),
            folded: false,
            message_id: published.as_ref().ok().cloned(),
            error: published.as_ref().err().map(|e| e.to_string()),
        });
        let completion = completion(incident, owner, status, &outcome, Some(summary), published.is_ok());
        self.log.complete(&completion).await.map_err(aws)?;
        published.map_err(aws)?;
        Ok(outcome)
    }

    /// Records changes made (attempt limits, cooldowns) and failed or successful
    /// remediations (circuit breakers). Notes in the outcome a circuit this opened.
    async fn record_guards(
        &self,
        incident: &Incident,
        plan: &crate::plan::Plan,
        guards: &GuardState,
        outcome: &mut Outcome,
        now: i64,
    ) -> Result<(), AwsError> {
        for (step, done) in plan.steps.iter().zip(&outcome.actions) {
            let Some(target) = &done.target else { continue };
            if !step.action.is_mutating() || step.dry_run {
                continue;
            }
            let circuit = crate::guard::circuit_key(target);
            match done.result {
                StepResult::Done if done.before.is_some() => {
                    if step.attempt.is_none() {
                        let keep = step.limits.window.as_secs().max(step.limits.cooldown.as_secs()) as i64;
                        self.guards.record_attempt(&step.policy, target, now, keep).await?;
                    }
                    if guards.circuits.get(&circuit).is_some_and(|c| c.failures > 0) {
                        self.guards.record_success(&circuit).await?;
                    }
                }
                StepResult::Failed => {
                    let state = self.guards.record_failure(&circuit, incident.key.as_str()).await?;
                    if state.open && !guards.circuits.get(&circuit).is_some_and(|c| c.open) {
                        outcome.note = Some(format!(
                            "circuit opened for {circuit} after {} failed remediations: no more actions on it until `remediator reset {circuit}`",
                            state.failures
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads the execution's history and description (in parallel) for a failure.
    async fn diagnose(&self, incident: &mut Incident) -> Result<Option<ExecutionInfo>, AwsError> {
        let change = match &incident.event.signal {
            Signal::Execution(change) => change,
            Signal::Alarm(alarm) => {
                let event = &incident.event;
                let d = diagnose_alarm(
                    alarm,
                    event.region.as_deref().unwrap_or_default(),
                    event.account.as_deref().unwrap_or_default(),
                );
                incident.diagnosis = Some(d);
                return Ok(None);
            }
            Signal::Other => return Ok(None),
        };
        let (history, info) =
            tokio::try_join!(self.executions.history(&change.execution), self.executions.describe(&change.execution))?;
        let mut d = diagnose(&change.execution, &history);
        // The current event shape carries error and cause; use them if history had none.
        if d.error.is_none() {
            d.error = change.error.clone();
        }
        if d.cause.is_none() {
            d.cause = change.cause.clone();
        }
        incident.diagnosis = Some(d);
        Ok(Some(info))
    }

    async fn release(&self, incident: &Incident, owner: &str, outcome: &Outcome, error: &AwsError) {
        let mut failed = outcome.clone();
        failed.resolution = Resolution::Failed;
        failed.note = Some(redact::text(&error.to_string()));
        let completion = completion(incident, owner, Status::Failed, &failed, None, false);
        if let Err(e) = self.log.complete(&completion).await {
            warn!(incident = %incident.key, error = %e, "could not release the claim; it expires with its lease");
        }
    }
}

/// A digest of an event's content (the decision's input).
fn input_hash(document: &Value) -> String {
    crate::incident::IncidentKey::from_stored(document.to_string()).digest(16)
}

/// Whether a run is one remediator may have made: a redrive or a named restart.
fn is_retry(change: &crate::event::ExecutionChange) -> bool {
    change.redrive_count > 0 || crate::plan::restart_generation(change.execution.name()) > 0
}

/// The run (execution ARN#redriveCount) of an execution incident.
fn run_key(incident: &Incident) -> Option<String> {
    match &incident.event.signal {
        Signal::Execution(change) if is_retry(change) => Some(incident.key.to_string()),
        _ => None,
    }
}

fn redacted(mut d: Diagnosis) -> Diagnosis {
    d.cause = d.cause.map(|c| redact::truncate(&redact::text(&c), 1000));
    d
}

fn resolve(policy: Option<&Policy>, steps: &[StepOutcome]) -> Resolution {
    if policy.is_none() {
        return Resolution::NoPolicy;
    }
    let any = |r: StepResult| steps.iter().any(|s| s.result == r);
    let mutating = |s: &&StepOutcome| s.action != "notify";
    if any(StepResult::Failed) {
        Resolution::Failed
    } else if steps.iter().filter(mutating).any(|s| s.result == StepResult::Refused) {
        Resolution::Refused
    } else if any(StepResult::WouldHave) {
        Resolution::WouldRemediate
    } else if steps.iter().filter(mutating).any(|s| s.result == StepResult::Done) {
        Resolution::Remediated
    } else {
        Resolution::Notified
    }
}

fn should_notify(policy: Option<&Policy>, resolution: Resolution, steps: &[StepOutcome]) -> bool {
    let Some(policy) = policy else {
        // A failure no policy covers is never hidden.
        return true;
    };
    let has_notify_action = policy.actions.iter().any(|a| a.name() == "notify");
    match policy.notify {
        NotifyWhen::Never => false,
        NotifyWhen::Always => true,
        // Nothing was done (someone else already retried it): nothing to say.
        NotifyWhen::OnAction => !steps.iter().all(|s| s.result == StepResult::Skipped),
        NotifyWhen::OnFailure => has_notify_action || matches!(resolution, Resolution::Failed | Resolution::Refused),
    }
}

fn completion(
    incident: &Incident,
    owner: &str,
    status: Status,
    outcome: &Outcome,
    summary: Option<&Summary>,
    summary_sent: bool,
) -> Completion {
    let (execution, state_machine) = match &incident.event.signal {
        Signal::Execution(c) => (Some(c.execution.to_string()), Some(c.state_machine_arn.clone())),
        Signal::Alarm(_) | Signal::Other => (None, None),
    };
    Completion {
        key: incident.key.clone(),
        owner: owner.to_string(),
        status,
        resolution: outcome.resolution.as_str().to_string(),
        policy: outcome.policy.clone(),
        execution,
        state_machine,
        state: outcome.diagnosis.as_ref().and_then(|d| d.state.clone()),
        error: outcome.diagnosis.as_ref().and_then(|d| d.error.clone()),
        outcome: serde_json::to_value(outcome).unwrap_or(Value::Null),
        summary: summary.map(|s| (s.subject.clone(), s.body.clone())),
        summary_sent,
        follow_ups: Vec::new(),
    }
}
