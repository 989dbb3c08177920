//! The driver: one event, top to bottom, as the Lambda, `remediator handle` and the
//! sweep all run it.
//!
//! ```text
//! event ─triage (pure)─▶ incident ─claim─▶ diagnose ─decide, plan─▶ guards of its targets ─guard (pure)─▶
//!       apply (preflight before every change) ─▶ finish: guards' bookkeeping, outcome,
//!       summary (or digest), record ∥ notify, error mapping
//! ```
//!
//! Every path (an incident, a deferred retry, a verification) ends in the same
//! [`Handler::finish`]. Errors are only what should make the event come back: an AWS
//! error whose kind is retryable, a claim another invocation holds ("in progress" is a
//! retryable error, so a redelivery that arrives while a dead handling's lease runs is
//! not acknowledged and lost), a remediation that failed in a way a retry may fix. A
//! denied, missing or invalid call is recorded and reported once, and the event is
//! acknowledged: redelivering it would fail the same way.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tracing::{info, warn};

use crate::accounts::{reach, Members, Reach};
use crate::actions::apply;
use crate::apply::{
    ChangeLocks, Clients, ExecutionInfo, Go, MemberAccess, Preflight, Services, StepOutcome, StepResult, Timers,
};
use crate::approval::{
    agrees, answered_summary, digest_of, granted_event, Answer, ApprovalRequest, ApprovalState, Decision, Links, Via,
};
use crate::clock;
use crate::decide::decide_applied;
use crate::deployment::{diagnose_stack, StackChange};
use crate::diagnose::{diagnose, diagnose_alarm, Diagnosis};
use crate::error::{AwsError, ErrorKind};
use crate::event::{Event, EventError, Signal};
use crate::guard::{guard, guard_keys, pause_refusal_in, AllowList, GuardState, GuardStore};
use crate::incident::{Incident, IncidentKey};
pub use crate::outcome::{Outcome, Resolution, SentSummary};
use crate::plan::{plan, Disposition, Plan, Refusal, Step};
use crate::policy::{Action, NotifyWhen, Policy, PolicySet};
use crate::record::{
    Claim, ClaimRequest, Completion, IncidentLog, JournalEntry, OwedSummary, ReportRow, Status, SummaryState, Takeover,
    Verdict,
};
use crate::redact;
use crate::summary::{compose, may_fold, Digests, Facts, Fold, Notifier, Summary};
use crate::triage::{alarm_watch_key, is_retry, triage, Identity, Internal, Triage};

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Retrying will not help; the event goes to the DLQ.
    #[error("malformed event: {0}")]
    BadEvent(#[from] EventError),
    /// AWS failed; whether a redelivery may succeed is the error's kind.
    #[error("AWS call failed while handling incident {incident}: {source}")]
    Aws {
        incident: String,
        #[source]
        source: AwsError,
    },
    /// Another invocation holds the incident: deliver it again later (the holder may be
    /// dead, and its lease ends at `lease_until`).
    #[error("incident {incident} is being handled by {owner} (lease until {lease_until}): deliver again later")]
    InProgress { incident: String, owner: String, lease_until: i64 },
    /// A remediation step failed in a way a retry may fix; recorded and reported, and
    /// the event is delivered again.
    #[error("remediation failed for incident {incident}: {detail}")]
    Remediation { incident: String, detail: String, outcome: Box<Outcome> },
}

impl HandleError {
    pub fn is_retryable(&self) -> bool {
        match self {
            HandleError::BadEvent(_) => false,
            HandleError::Aws { source, .. } => source.is_retryable(),
            HandleError::InProgress { .. } | HandleError::Remediation { .. } => true,
        }
    }
}

/// One invocation: who it is, and until when its claims are its own (its deadline
/// plus a margin: a live handling is never taken over, a dead one is soon after).
#[derive(Clone, Debug)]
pub struct Invocation {
    pub owner: String,
    lease: Lease,
}

#[derive(Clone, Copy, Debug)]
enum Lease {
    /// A Lambda invocation: until its deadline plus a margin.
    Until(i64),
    /// The command line: this long from each claim (a long `sweep` or NDJSON stream
    /// gives each incident its own lease).
    For(Duration),
}

impl Invocation {
    /// A lease of `lease` from each claim (the CLI and its sweep; `REMEDIATOR_LEASE`).
    pub fn for_lease(owner: impl Into<String>, lease: Duration) -> Invocation {
        Invocation { owner: owner.into(), lease: Lease::For(lease) }
    }

    /// A Lambda invocation whose deadline is `deadline_ms` (Unix milliseconds).
    pub fn for_deadline(owner: impl Into<String>, deadline_ms: u64, margin: Duration) -> Invocation {
        let deadline = (deadline_ms / 1000) as i64;
        Invocation { owner: owner.into(), lease: Lease::Until(deadline.saturating_add(margin.as_secs() as i64)) }
    }

    /// Until when a claim made now is this invocation's.
    pub fn lease_until(&self) -> i64 {
        match self.lease {
            Lease::Until(t) => t,
            Lease::For(d) => clock::now().saturating_add(d.as_secs() as i64),
        }
    }
}

/// Everything handling needs, built once (at Lambda init or CLI start).
pub struct Handler {
    pub policies: PolicySet,
    pub dry_run: bool,
    pub allow: AllowList,
    /// The clients of remediator's own account.
    pub clients: Arc<Clients>,
    /// Which accounts it acts in, and how it reaches the member accounts.
    pub accounts: Accounts,
    pub locks: Arc<dyn ChangeLocks>,
    /// Storm digests, and their window (zero: every summary on its own).
    pub digests: Option<Arc<dyn Digests>>,
    pub digest_window: Duration,
    /// Durable timers for retries due later than an invocation should wait.
    pub timers: Option<Arc<dyn Timers>>,
    /// Who remediator is, to ignore the CloudTrail events of its own calls.
    pub identity: Identity,
    pub guards: Arc<dyn GuardStore>,
    pub log: Arc<dyn IncidentLog>,
    pub notifier: Arc<dyn Notifier>,
    /// The approval links of summaries (the function URL and its signing key), when the
    /// deployment has them; without, approvals are answered with `remediator approve`.
    pub links: Option<Arc<Links>>,
}

/// The accounts remediator acts in: its own (`home`, from its role's ARN, when known)
/// and the member accounts of an organization, reached with the member role.
#[derive(Clone, Default)]
pub struct Accounts {
    pub home: Option<String>,
    pub members: Members,
    pub access: Option<Arc<dyn MemberAccess>>,
}

/// With which clients an incident is handled (and in which account, when known), or why
/// it is not acted on.
enum Access {
    Clients(Arc<Clients>, Option<String>),
    Refused(String),
    /// The member role could not be assumed for a reason that may pass (throttling, a
    /// timeout): the event is given back for a later delivery.
    Retry(AwsError),
}

impl Access {
    /// The clients and their account, when the incident is acted on at all.
    fn reached(&self) -> Option<(&Clients, Option<&str>)> {
        match self {
            Access::Clients(c, account) => Some((c.as_ref(), account.as_deref())),
            Access::Refused(_) | Access::Retry(_) => None,
        }
    }

    /// Refuses the plan's changes the account rules forbid: all of them where the account
    /// is not reached (the reason is returned, for the outcome's note), those on another
    /// account's targets, and those of a paused account.
    fn restrict(&self, plan: &mut Plan, guards: &GuardState, now: i64) -> Option<String> {
        match self {
            Access::Refused(why) | Access::Retry(AwsError { message: why, .. }) => {
                refuse_changes(plan, why);
                Some(why.clone())
            }
            Access::Clients(_, account) => {
                refuse_other_accounts(plan, account.as_deref());
                refuse_paused_account(plan, guards, account.as_deref(), now);
                None
            }
        }
    }
}

/// How a handling ends, before the record: the facts [`Handler::finish`] needs.
struct Finish<'a> {
    /// The incident the claim is for (a timer's own key for a deferred retry).
    claim: &'a Incident,
    /// The incident the summary is about.
    about: &'a Incident,
    plan: Option<&'a Plan>,
    guards: Option<&'a GuardState>,
    policy: Option<&'a Policy>,
    dry_run: bool,
    /// A summary already composed (verifications); otherwise composed from the facts.
    summary: Option<Summary>,
    now: i64,
    /// How many handlings claimed this incident before (a retry that keeps failing is
    /// given up after `MAX_CLAIMS`).
    earlier_claims: u32,
    /// A request for approval this handling ends in.
    approval: Option<ApprovalRequest>,
}

/// How many handlings of one incident may end in a retryable failure before the last
/// is recorded as final: Lambda's own retries, then a few sweeps, never a loop.
pub const MAX_CLAIMS: u32 = 5;

impl<'a> Finish<'a> {
    /// The end of a handling that planned nothing (a refusal before planning, or a
    /// failure to read AWS): its summary is composed from the outcome alone.
    fn without_plan(claim: &'a Incident, about: &'a Incident, dry_run: bool, now: i64) -> Finish<'a> {
        Finish {
            claim,
            about,
            plan: None,
            guards: None,
            policy: None,
            dry_run,
            summary: None,
            now,
            earlier_claims: 0,
            approval: None,
        }
    }
}

/// Whether the claim went our way.
enum Begin {
    Go(Option<Takeover>),
    Stop(Box<Result<Outcome, HandleError>>),
}

impl Handler {
    /// Handles one event.
    #[tracing::instrument(skip_all, fields(event = tracing::field::Empty))]
    pub async fn handle(&self, document: Value, inv: &Invocation) -> Result<Outcome, HandleError> {
        let event = Event::from_value(document)?;
        tracing::Span::current().record("event", event.id.as_str());
        match triage(&event, &self.policies, &self.identity) {
            Triage::Ignore(note) => {
                Ok(Outcome { note: Some(note), execution: execution_of(&event), ..Outcome::for_event(&event) })
            }
            Triage::Internal(Internal::DigestDue) => {
                let sent = self
                    .flush_digests(inv)
                    .await
                    .map_err(|source| HandleError::Aws { incident: event.id.clone(), source })?;
                Ok(Outcome { note: Some(format!("{sent} digest(s) sent")), ..Outcome::for_event(&event) })
            }
            Triage::Internal(Internal::DeferredRetry) => self.deferred_retry(event, inv).await,
            Triage::Internal(Internal::ApprovalGranted) => self.approved(event, inv).await,
            Triage::Verification { watched } => self.verification(event, inv, &watched).await,
            Triage::Incident => self.incident(event, inv).await,
        }
    }

    /// A failure: claim, diagnose, decide, plan, the guards of its targets, guard, apply, finish.
    async fn incident(&self, event: Event, inv: &Invocation) -> Result<Outcome, HandleError> {
        let mut incident = Incident::new(event, None);
        // An account of the organization remediator is not configured for (the central
        // bus admits them all): ignored before anything is written, so that one noisy
        // account cannot fill the table and the topic. (Without a known home account the
        // incident is recorded and refused instead: a misconfiguration must be seen.)
        if self.accounts.home.is_some() {
            if let Reach::Refused(why) =
                reach(incident.event.account.as_deref(), self.accounts.home.as_deref(), &self.accounts.members)
            {
                info!(event = %incident.event.id, reason = %why, "ignored");
                return Ok(Outcome {
                    resolution: Resolution::Ignored,
                    note: Some(why),
                    ..Outcome::for_event(&incident.event)
                });
            }
        }
        let mut outcome = Outcome {
            incident: Some(incident.key.to_string()),
            execution: execution_of(&incident.event),
            ..Outcome::for_event(&incident.event)
        };
        let takeover = match self.begin(&incident, inv, &mut outcome).await {
            Begin::Go(takeover) => takeover,
            Begin::Stop(result) => return *result,
        };
        outcome.took_over_from = takeover.as_ref().map(|t| t.previous_owner.clone());
        let now = clock::now();
        let run = run_key(&incident);
        let access = match self.access(&incident).await {
            Access::Retry(e) => return self.could_not_read(&incident, inv, outcome, e, now).await,
            access => access,
        };
        let clients = access.reached().map(|(c, _)| c);
        let (diagnosed, previous) = tokio::join!(self.diagnose(clients, &mut incident), self.retry_of(run.as_deref()));
        let info = match diagnosed {
            Ok(info) => info,
            Err(e) => return self.could_not_read(&incident, inv, outcome, e, now).await,
        };
        outcome.diagnosis = incident.diagnosis.clone().map(redacted);
        // This run was remediator's retry of an earlier incident, and it failed again.
        if let Ok(Some(previous)) = previous {
            if let Err(e) = self.log.verify(&previous, Verdict::StillFailing, run.as_deref().unwrap_or_default()).await
            {
                warn!(incident = %previous, error = %e, "could not record the verification");
            }
            outcome.note = Some(format!("this run was the retry of incident {previous}, which is still failing"));
        }
        let applied = decide_applied(&self.policies, incident.document());
        let deciding = applied.first().copied();
        outcome.policy = deciding.map(|p| p.name.clone());
        let mut plan = plan(&incident, &applied, self.dry_run);
        // The pauses, and the attempts and circuits of the plan's own targets.
        let guards = match self.guards.load(now, &guard_keys(&plan)).await {
            Ok(guards) => guards,
            Err(e) => return self.could_not_read(&incident, inv, outcome, e, now).await,
        };
        guard(&mut plan, &self.allow, &guards, now);
        if let Some(why) = access.restrict(&mut plan, &guards, now) {
            outcome.note = Some(why);
        }
        let dry_run = self.dry_run || deciding.is_some_and(|p| p.dry_run);
        // A policy that asks a person first: the plan previewed (targets read as they are
        // now, nothing changed) and recorded as awaiting approval.
        // Any policy of the plan that asks (a `continue` policy before it does not lift it).
        let asking = applied.iter().copied().find_map(|p| p.approval.as_ref().map(|a| (p, a)));
        if let Some((policy, approval)) = asking {
            if !dry_run && wants_change(&plan) {
                let preview = previewed(&plan);
                outcome.actions =
                    self.apply(access.reached(), &preview, &incident, &incident, inv, info.as_ref()).await;
                let mut request = None;
                // A preview that could not read a target asks nothing: the failure is
                // reported (and given back when a retry may help), never approved blind.
                let failed = outcome.actions.iter().any(|a| a.result == StepResult::Failed);
                if !failed && outcome.actions.iter().any(|a| a.mutating && a.result == StepResult::WouldHave) {
                    let expires_at = now.saturating_add(approval.expires.as_secs() as i64);
                    outcome.resolution = Resolution::AwaitingApproval;
                    outcome.note = Some(format!(
                        "awaiting approval until {}: nothing is changed before a person approves",
                        crate::guard::format_time(expires_at)
                    ));
                    request = Some(ApprovalRequest {
                        policy: policy.name.clone(),
                        digest: digest_of(&incident.key, &preview, &outcome.actions),
                        expires_at,
                        approvers: approval.approvers.describe(),
                    });
                }
                let finish = Finish {
                    claim: &incident,
                    about: &incident,
                    plan: Some(&preview),
                    guards: Some(&guards),
                    policy: Some(policy),
                    dry_run: false,
                    summary: None,
                    now,
                    earlier_claims: takeover.as_ref().map_or(0, |t| t.earlier_claims),
                    approval: request,
                };
                return self.finish(finish, inv, outcome).await;
            }
        }
        outcome.actions = self.apply(access.reached(), &plan, &incident, &incident, inv, info.as_ref()).await;
        keep_before_images(&mut outcome.actions, takeover.as_ref());
        let finish = Finish {
            claim: &incident,
            about: &incident,
            plan: Some(&plan),
            guards: Some(&guards),
            policy: deciding,
            dry_run,
            summary: None,
            now,
            earlier_claims: takeover.as_ref().map_or(0, |t| t.earlier_claims),
            approval: None,
        };
        self.finish(finish, inv, outcome).await
    }

    /// A retry a timer deferred is due: claimed once under the timer's key, the guards
    /// read again (a person may have paused remediator since), and the retry run with
    /// the policy's limits in force now; it ends as any incident does.
    async fn deferred_retry(&self, timer_event: Event, inv: &Invocation) -> Result<Outcome, HandleError> {
        let detail = timer_event.document.get("detail").cloned().unwrap_or_default();
        let original = detail.get("event").cloned().ok_or(EventError::MissingDetail("event"))?;
        let policy_name = detail.get("policy").and_then(Value::as_str).unwrap_or_default().to_string();
        let timer = Incident::new(timer_event, None);
        let mut incident = Incident::new(Event::from_value(original)?, None);
        let mut outcome = Outcome {
            incident: Some(timer.key.to_string()),
            policy: Some(policy_name.clone()),
            execution: execution_of(&incident.event),
            note: Some(format!("scheduled retry of incident {}", incident.key)),
            ..Outcome::for_event(&timer.event)
        };
        let takeover = match self.begin(&timer, inv, &mut outcome).await {
            Begin::Go(takeover) => takeover,
            Begin::Stop(result) => return *result,
        };
        let now = clock::now();
        let access = match self.access(&incident).await {
            Access::Retry(e) => return self.could_not_read(&timer, inv, outcome, e, now).await,
            access => access,
        };
        let clients = access.reached().map(|(c, _)| c);
        let info = match self.diagnose(clients, &mut incident).await {
            Ok(info) => info,
            Err(e) => return self.could_not_read(&timer, inv, outcome, e, now).await,
        };
        outcome.diagnosis = incident.diagnosis.clone().map(redacted);
        let Some(policy) = self.policies.get(&policy_name) else {
            outcome.resolution = Resolution::Refused;
            outcome.note = Some(format!("policy {policy_name} no longer exists: the scheduled retry is dropped"));
            return self.finish(Finish::without_plan(&timer, &incident, self.dry_run, now), inv, outcome).await;
        };
        // The retry itself, now, with the policy's limits and the guards in force now.
        let mut now_policy = policy.clone();
        now_policy.actions = vec![Action::Redrive { delay: Duration::ZERO }];
        let mut plan = plan(&incident, &[&now_policy], self.dry_run);
        let guards = match self.guards.load(now, &guard_keys(&plan)).await {
            Ok(guards) => guards,
            Err(e) => return self.could_not_read(&timer, inv, outcome, e, now).await,
        };
        guard(&mut plan, &self.allow, &guards, now);
        access.restrict(&mut plan, &guards, now);
        outcome.actions = self.apply(access.reached(), &plan, &incident, &timer, inv, info.as_ref()).await;
        keep_before_images(&mut outcome.actions, takeover.as_ref());
        let finish = Finish {
            claim: &timer,
            about: &incident,
            plan: Some(&plan),
            guards: Some(&guards),
            policy: Some(policy),
            dry_run: self.dry_run || policy.dry_run,
            summary: None,
            now,
            earlier_claims: takeover.as_ref().map_or(0, |t| t.earlier_claims),
            approval: None,
        };
        self.finish(finish, inv, outcome).await
    }

    /// The end of what remediator watches (a retry that succeeded, an alarm back to
    /// `OK`) closes the incident it answered, once, with a final summary.
    async fn verification(&self, event: Event, inv: &Invocation, watched: &str) -> Result<Outcome, HandleError> {
        let incident = Incident::new(event, None);
        let mut outcome = Outcome { execution: execution_of(&incident.event), ..Outcome::for_event(&incident.event) };
        let aws = |source: AwsError| HandleError::Aws { incident: incident.key.to_string(), source };
        let Some(previous) = self.log.followed(watched).await.map_err(aws)? else {
            outcome.note = Some("not the end of anything remediator watches: nothing to close".into());
            return Ok(outcome);
        };
        outcome.incident = Some(incident.key.to_string());
        if let Begin::Stop(result) = self.begin(&incident, inv, &mut outcome).await {
            return *result;
        }
        let now = clock::now();
        if let Err(e) = self.log.verify(&previous, Verdict::Healed, watched).await {
            return self.could_not_read(&incident, inv, outcome, e, now).await;
        }
        outcome.resolution = Resolution::Healed;
        outcome.note = Some(format!("closes incident {previous}"));
        let summary = crate::summary::healed(&incident, &previous);
        let finish = Finish {
            claim: &incident,
            about: &incident,
            plan: None,
            guards: None,
            policy: None,
            dry_run: false,
            summary: Some(summary),
            now,
            earlier_claims: 0,
            approval: None,
        };
        self.finish(finish, inv, outcome).await
    }

    /// Claims an incident for this invocation. A duplicate finishes the job of the
    /// delivery that handled it (a summary it owes) and is an outcome; a live claim of
    /// another invocation is a retryable error.
    async fn begin(&self, incident: &Incident, inv: &Invocation, outcome: &mut Outcome) -> Begin {
        let key = &incident.key;
        let request = ClaimRequest {
            key: key.clone(),
            owner: inv.owner.clone(),
            lease_until: inv.lease_until(),
            event_id: incident.event.id.clone(),
            source: incident.event.source.clone(),
            input_hash: input_hash(&incident.event.document),
            event: redact::stored_event(&incident.event),
        };
        let aws = |source: AwsError| HandleError::Aws { incident: key.to_string(), source };
        let claim = match self.log.claim(&request).await {
            Ok(claim) => claim,
            Err(e) => return Begin::Stop(Box::new(Err(aws(e)))),
        };
        match claim {
            Claim::Claimed { takeover } => {
                if let Some(t) = &takeover {
                    warn!(incident = %key, previous = %t.previous_owner, "taking over an incident whose handling did not complete");
                }
                Begin::Go(takeover)
            }
            Claim::InProgress { owner, lease_until } => {
                outcome.resolution = Resolution::InProgress;
                Begin::Stop(Box::new(Err(HandleError::InProgress { incident: key.to_string(), owner, lease_until })))
            }
            Claim::Done { outcome: recorded, owed_summary, input_hash } => {
                outcome.resolution = Resolution::Duplicate;
                outcome.recorded = recorded;
                let differs = input_hash.is_some_and(|h| h != request.input_hash);
                outcome.note = Some(if differs {
                    "already handled by an earlier delivery of the same incident, whose event differed: nothing done"
                        .into()
                } else {
                    "already handled by an earlier delivery: nothing done".into()
                });
                if let Some(owed) = owed_summary {
                    // The first delivery acted but could not notify: finish its job, once.
                    match self.send_owed(key, inv, owed).await {
                        Ok(Some(sent)) => {
                            outcome.summary = Some(sent);
                            outcome.note =
                                Some("already handled; its summary had not been delivered and now is".into());
                        }
                        Ok(None) => {}
                        Err(e) => return Begin::Stop(Box::new(Err(aws(e)))),
                    }
                }
                info!(incident = %key, outcome = "duplicate", "duplicate delivery absorbed");
                Begin::Stop(Box::new(Ok(outcome.clone())))
            }
        }
    }

    /// Sends a summary a completed incident owes, if no one else is sending it.
    async fn send_owed(
        &self,
        key: &IncidentKey,
        inv: &Invocation,
        owed: OwedSummary,
    ) -> Result<Option<SentSummary>, AwsError> {
        if !self.log.take_summary(key, &inv.owner, inv.lease_until(), clock::now()).await? {
            return Ok(None);
        }
        let summary = Summary { subject: owed.subject, body: owed.body, attributes: Default::default() };
        match self.notifier.publish(&summary).await {
            Ok(id) => {
                self.log.mark_summary(key, &inv.owner, SummaryState::Sent).await?;
                Ok(Some(SentSummary { subject: summary.subject, folded: false, message_id: Some(id), error: None }))
            }
            Err(e) => {
                if let Err(mark) = self.log.mark_summary(key, &inv.owner, SummaryState::Owed).await {
                    warn!(incident = %key, error = %mark, "could not mark the summary as owed; it is retaken after the lease");
                }
                Err(e)
            }
        }
    }

    /// Diagnosis or the guards could not be read. A retryable error gives the claim back
    /// for the redelivery (a pause that cannot be read must not be ignored); any other
    /// kind is recorded and reported once, and the event is acknowledged.
    async fn could_not_read(
        &self,
        incident: &Incident,
        inv: &Invocation,
        mut outcome: Outcome,
        e: AwsError,
        now: i64,
    ) -> Result<Outcome, HandleError> {
        if e.is_retryable() {
            if let Err(release) = self.log.release(&incident.key, &inv.owner, &redact::text(&e.to_string())).await {
                warn!(incident = %incident.key, error = %release, "could not release the claim; it is taken over after its lease");
            }
            return Err(HandleError::Aws { incident: incident.key.to_string(), source: e });
        }
        outcome.resolution = Resolution::Failed;
        outcome.note = Some(format!(
            "not handled: {} ({}); a person must look, the event is not retried",
            redact::text(&e.to_string()),
            e.kind.as_str()
        ));
        self.finish(Finish::without_plan(incident, incident, self.dry_run, now), inv, outcome).await
    }

    /// Applies a plan with the preflight that re-reads pauses and journals before-images
    /// under the claim of `claim`.
    async fn apply(
        &self,
        clients: Option<(&Clients, Option<&str>)>,
        plan: &Plan,
        incident: &Incident,
        claim: &Incident,
        inv: &Invocation,
        info: Option<&ExecutionInfo>,
    ) -> Vec<StepOutcome> {
        let (clients, account) = clients.unwrap_or((&self.clients, None));
        let preflight = Gate {
            guards: self.guards.as_ref(),
            log: self.log.as_ref(),
            allow: &self.allow,
            account,
            key: &claim.key,
            owner: &inv.owner,
        };
        // Without clients (an account remediator may not act in) every change was refused
        // already: the home clients are never called for it.
        let services = Services {
            executions: clients.executions.as_ref(),
            functions: clients.functions.as_ref(),
            rules: clients.rules.as_ref(),
            objects: clients.objects.as_ref(),
            stacks: clients.stacks.as_ref(),
            locks: self.locks.as_ref(),
            timers: self.timers.as_deref(),
            preflight: Some(&preflight),
        };
        apply(plan, incident, info, &services).await
    }

    /// The one end of every handling: the guards' bookkeeping, the outcome and its
    /// status, the summary (alone or folded into a digest), record ∥ notify, and the
    /// mapping to an error when the event must come back.
    async fn finish(&self, f: Finish<'_>, inv: &Invocation, mut outcome: Outcome) -> Result<Outcome, HandleError> {
        let key = &f.claim.key;
        let aws = |source: AwsError| HandleError::Aws { incident: key.to_string(), source };
        if !matches!(
            outcome.resolution,
            Resolution::Healed
                | Resolution::Failed
                | Resolution::Refused
                | Resolution::AwaitingApproval
                | Resolution::Rejected
                | Resolution::Expired
        ) {
            outcome.resolution = resolve(f.policy, &outcome.actions);
        }
        if let (Some(plan), Some(guards)) = (f.plan, f.guards) {
            if let Err(e) = self.record_guards(f.claim, plan, guards, &mut outcome, f.now).await {
                // The remediation happened; the guards' bookkeeping failed. Say so.
                warn!(incident = %key, error = %e, "could not record attempts or circuit state");
                outcome.note = Some(format!("guard state not recorded: {}", redact::text(&e.to_string())));
            }
        }
        let mut retry = retry_may_help(&outcome);
        if retry && f.earlier_claims + 1 >= MAX_CLAIMS {
            // Never a loop: after this many handlings, the failure is final and a person
            // is told so (the sweep would otherwise take it up again every time).
            retry = false;
            outcome.note = Some(format!(
                "given up after {} handlings that failed in a way a retry might fix: a person must look",
                f.earlier_claims + 1
            ));
        }
        let status = if retry { Status::Released } else { Status::Completed };
        let summary = match f.summary {
            Some(s) => Some(s),
            None => should_notify(f.policy, outcome.resolution, &outcome.actions).then(|| {
                compose(&Facts {
                    incident: f.about,
                    policy: f.policy,
                    steps: &outcome.actions,
                    resolution: outcome.resolution,
                    dry_run: f.dry_run,
                    note: outcome.note.as_deref(),
                    approval: f.approval.as_ref().map(|r| self.asking(f.claim, f.policy, r)),
                })
            }),
        };
        // In a storm, later summaries that say the same thing fold into a digest.
        let (summary, folded) = match summary {
            // Folded at the time of folding, not of the handling's start (a window may
            // have closed during a minute-long wait).
            Some(s) if may_fold(&s) => self.fold(s, f.claim, clock::now()).await,
            other => (other, None),
        };
        outcome.summary = summary.as_ref().or(folded.as_ref()).map(|s| SentSummary {
            subject: s.subject.clone(),
            folded: folded.is_some(),
            message_id: None,
            error: None,
        });
        let mut completion = completion(f.claim, &f.about.key, inv, status, &outcome, summary.as_ref());
        completion.approval = f.approval.clone();
        // Record, then notify. The record carries the summary as "sending": a crash before
        // the publish is known leaves it owed (the next delivery or the sweep sends it),
        // never lost; and a record that did not land sends nothing, so the retry that
        // redoes the handling sends the one summary of its outcome.
        let (recorded, ()) = tokio::join!(self.log.complete(&completion), self.watch_alarm(f.claim));
        if let Err(e) = recorded {
            // The answer may have been lost while the write landed: look before releasing.
            match self.log.completed_by(key, &inv.owner).await {
                Ok(true) => warn!(incident = %key, error = %e, "the completion landed although its call failed"),
                _ => {
                    // Give the claim back. The release applies only to a claim still in
                    // progress, so a completion that did land is never turned into a
                    // failure; the journal keeps the before-images for the retry.
                    if let Err(release) = self.log.release(key, &inv.owner, &redact::text(&e.to_string())).await {
                        warn!(incident = %key, error = %release, "could not release the claim; it is taken over after its lease");
                    }
                    return Err(aws(e));
                }
            }
        }
        let published = match &summary {
            Some(s) => {
                let published = self.notifier.publish(s).await;
                let state = if published.is_ok() { SummaryState::Sent } else { SummaryState::Owed };
                if let Err(e) = self.log.mark_summary(key, &inv.owner, state).await {
                    warn!(incident = %key, error = %e, "could not record the summary's delivery");
                }
                Some(published)
            }
            None => None,
        };
        if let Some(sent) = outcome.summary.as_mut() {
            sent.message_id = published.as_ref().and_then(|p| p.as_ref().ok().cloned());
            sent.error = published.as_ref().and_then(|p| p.as_ref().err().map(|e| redact::text(&e.to_string())));
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
        if retry {
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

    /// Folds a summary into its digest window, or lets it go alone.
    async fn fold(&self, summary: Summary, claim: &Incident, now: i64) -> (Option<Summary>, Option<Summary>) {
        let Some(digests) = self.digests.as_ref().filter(|_| !self.digest_window.is_zero()) else {
            return (Some(summary), None);
        };
        let line = format!("{} ({})", summary.subject, claim.key);
        let digest_key = crate::summary::digest_key(&summary);
        match digests.open_or_fold(&digest_key, self.digest_window.as_secs() as i64, &line, now).await {
            Ok(Fold::Opened | Fold::Alone) => (Some(summary), None),
            Ok(Fold::Folded { closes_at }) => {
                // Wake up when the window closes (one timer per window); without timers
                // the scheduled sweep sends it.
                if let Some(timers) = &self.timers {
                    let name = format!(
                        "remediator-digest-{}",
                        IncidentKey::from_stored(format!("{digest_key}@{closes_at}")).digest(24)
                    );
                    let payload = serde_json::json!({
                        "version": "0", "id": name, "source": crate::triage::OWN_SOURCE,
                        "detail-type": crate::summary::DIGEST_DUE, "detail": {"digest": digest_key},
                    });
                    if let Err(e) = timers.schedule(&name, closes_at + 1, &payload).await {
                        warn!(incident = %claim.key, error = %e, "could not schedule the digest; the sweep will send it");
                    }
                }
                (None, Some(summary))
            }
            Err(e) => {
                warn!(incident = %claim.key, error = %e, "digest state unavailable: sending the summary on its own");
                (Some(summary), None)
            }
        }
    }

    /// An alarm's incident closes when the alarm returns to OK. Every incident of one
    /// alarm points at the latest, so this is a plain write (last one wins), outside the
    /// completion's transaction, where concurrent incidents would conflict on it.
    async fn watch_alarm(&self, incident: &Incident) {
        if let Signal::Alarm(alarm) = &incident.event.signal {
            if let Err(e) = self.log.follow(&alarm_watch_key(&incident.event, alarm), &incident.key).await {
                warn!(incident = %incident.key, error = %e, "could not record the alarm to watch");
            }
        }
    }

    /// The incident this run retries, if remediator started or redrove it.
    async fn retry_of(&self, run: Option<&str>) -> Result<Option<IncidentKey>, AwsError> {
        match run {
            Some(run) => self.log.followed(run).await,
            None => Ok(None),
        }
    }

    /// Sends the digests whose window has closed (the scheduled sweep, a digest timer and
    /// `remediator digests`). A window is deleted only after its digest was published;
    /// returns how many were sent.
    pub async fn flush_digests(&self, inv: &Invocation) -> Result<usize, AwsError> {
        let Some(digests) = &self.digests else { return Ok(0) };
        let mut sent = 0;
        let mut first_error = None;
        for (key, lines) in digests.claim_due(clock::now(), &inv.owner, inv.lease_until()).await? {
            if !lines.is_empty() {
                if let Err(e) = self.notifier.publish(&crate::summary::digest(&key, &lines)).await {
                    // Left in place: the next flush, after this one's lease, sends it.
                    warn!(digest = %key, error = %e, "digest not sent; kept for the next flush");
                    first_error.get_or_insert(e);
                    continue;
                }
                sent += 1;
            }
            if let Err(e) = digests.close(&key, &inv.owner).await {
                // Published but not deleted: the next flush after this one's lease sends it again.
                warn!(digest = %key, error = %e, "digest sent but its window not closed");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(sent),
        }
    }

    /// Records changes made (attempt limits, cooldowns) and failed or successful
    /// remediations (circuit breakers). Notes in the outcome a circuit this opened.
    async fn record_guards(
        &self,
        incident: &Incident,
        plan: &Plan,
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
                        outcome.circuit_opened = Some(circuit.clone());
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

    /// The account an incident is handled in: home, a member account (its role assumed),
    /// or none, with the reason.
    async fn access(&self, incident: &Incident) -> Access {
        match reach(incident.event.account.as_deref(), self.accounts.home.as_deref(), &self.accounts.members) {
            Reach::Home => Access::Clients(
                self.clients.clone(),
                self.accounts.home.clone().or_else(|| incident.event.account.clone().filter(|a| !a.is_empty())),
            ),
            Reach::Refused(why) => Access::Refused(why),
            Reach::Member(account) => match &self.accounts.access {
                None => Access::Refused(format!("account {account}: no member access is configured")),
                Some(members) => match members.clients(&account).await {
                    Ok(clients) => Access::Clients(clients, Some(account)),
                    Err(e) if e.is_retryable() => Access::Retry(e),
                    Err(e) => {
                        warn!(account = %account, error = %e, "member role not assumed");
                        Access::Refused(format!(
                            "account {account}: its member role could not be assumed ({e}); nothing is done there with remediator's own credentials"
                        ))
                    }
                },
            },
        }
    }

    /// Reads the execution's history and description (in parallel) for a failure.
    async fn diagnose(
        &self,
        clients: Option<&Clients>,
        incident: &mut Incident,
    ) -> Result<Option<ExecutionInfo>, AwsError> {
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
            Signal::Other => {
                if let Some(change) = StackChange::of(&incident.event) {
                    // The stack's events say which resource failed; without them (no
                    // permission for that stack, an account not reached) the event's own
                    // reason still goes to the policies. A throttle or a server error
                    // gives the event back instead, to be diagnosed fully.
                    let read = match clients {
                        Some(c) => c.stacks.events(&change.stack_id).await,
                        None => Ok(Vec::new()),
                    };
                    let events = match read {
                        Ok(events) => events,
                        // Throttling or a server error: the event comes back, diagnosed fully.
                        Err(e) if e.is_retryable() => return Err(e),
                        Err(e) => {
                            warn!(stack = %change.stack_id, error = %e, "could not read the stack's events: diagnosing from the event");
                            Vec::new()
                        }
                    };
                    incident.diagnosis = Some(diagnose_stack(&change, &events));
                }
                return Ok(None);
            }
        };
        // An account not reached is not read: the event's own error and cause remain.
        let Some(clients) = clients else {
            incident.diagnosis =
                Some(Diagnosis { error: change.error.clone(), cause: change.cause.clone(), ..Diagnosis::default() });
            return Ok(None);
        };
        let (history, info) = tokio::try_join!(
            clients.executions.history(&change.execution),
            clients.executions.describe(&change.execution)
        )?;
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
}

/// Approval: the request's summary facts, the answers, and the approved plan applied.
impl Handler {
    /// What the summary of a request for approval says about answering it.
    fn asking(&self, claim: &Incident, policy: Option<&Policy>, request: &ApprovalRequest) -> ApprovalFacts {
        let by_link = policy.and_then(|p| p.approval.as_ref()).is_some_and(|a| a.approvers.by_link());
        ApprovalFacts {
            incident: claim.key.to_string(),
            expires_at: request.expires_at,
            approvers: request.approvers.clone(),
            link: by_link
                .then(|| self.links.as_ref().map(|l| l.link(&claim.key, &request.digest, request.expires_at)))
                .flatten(),
        }
    }

    /// One answer to a request for approval: checked (who, for which plan, in time),
    /// taken once, then a rejection or expiry told, or the approved plan handled.
    /// Answers that change nothing (twice, late, for another plan, by someone the
    /// policy does not name) are outcomes with the reason, `Refused`.
    pub async fn answer(&self, answer: Answer, inv: &Invocation) -> Result<Outcome, HandleError> {
        let key = &answer.incident;
        let aws = |source: AwsError| HandleError::Aws { incident: key.to_string(), source };
        let mut outcome = Outcome {
            incident: Some(key.to_string()),
            resolution: Resolution::Refused,
            ..Outcome::new(format!("answer:{key}"), crate::triage::OWN_SOURCE.to_string())
        };
        let refused = |mut outcome: Outcome, why: String| {
            info!(incident = %key, reason = %why, "approval answer refused");
            outcome.note = Some(why);
            Ok(outcome)
        };
        let Some(record) = self.log.record(key).await.map_err(aws)? else {
            return refused(outcome, format!("no incident {key}"));
        };
        let Some(state) = record.approval_state else {
            return refused(outcome, format!("incident {key} did not ask for approval"));
        };
        let policy_name = record.approval_policy.clone().unwrap_or_default();
        outcome.policy = Some(policy_name.clone());
        // The digest a link was made for must be the plan awaiting: a request made again
        // for the same incident (a new plan) does not take an old link's answer.
        if let Via::Link { token, .. } = &answer.via {
            if token.incident != *key || record.approval_digest.as_deref() != Some(token.digest.as_str()) {
                return refused(outcome, "the link was made for another plan of this incident: nothing done".into());
            }
        }
        // Who may answer is the policy's word now (a pull request may have narrowed it).
        if !matches!(answer.via, Via::Remediator) {
            let Some(approval) = self.policies.get(&policy_name).and_then(|p| p.approval.as_ref()) else {
                return refused(
                    outcome,
                    format!("policy {policy_name} no longer asks for approval: nothing is done on this request"),
                );
            };
            let admitted = match &answer.via {
                Via::Cli { caller } | Via::Link { caller: Some(caller), .. } => approval.approvers.admits(caller),
                Via::Link { caller: None, .. } => approval.approvers.by_link(),
                Via::Remediator => true,
            };
            if !admitted {
                return refused(
                    outcome,
                    format!(
                        "{} may not answer: policy {policy_name} names its approvers ({})",
                        answer.by(),
                        approval.approvers.describe()
                    ),
                );
            }
        }
        if state != ApprovalState::Awaiting {
            let by = record.approval_by.as_deref().unwrap_or("-");
            let at = record.approval_at.map(crate::guard::format_time).unwrap_or_default();
            let already = format!("incident {key} was {} already, by {by} at {at}", state.as_str());
            if state == ApprovalState::Approved && answer.decision == Decision::Approve {
                // Approved, and its plan handled or not: the handling's own claim decides.
                // A handling that completed is a duplicate (refused here, with the reason);
                // one that was given back for a retry is taken up again.
                let handled = self
                    .handle(
                        granted_event(key, record.account().as_deref(), record.approval_at.unwrap_or_default()),
                        inv,
                    )
                    .await?;
                if handled.resolution != Resolution::Duplicate {
                    return Ok(handled);
                }
                return refused(outcome, format!("{already}, and its plan was handled: this answer changes nothing"));
            }
            return refused(outcome, format!("{already}: this answer changes nothing"));
        }
        let now = clock::now();
        let expires_at = record.approval_expires_at.unwrap_or(0);
        let (decision, late) = match &answer.decision {
            Decision::Expire if now < expires_at => {
                return refused(outcome, format!("not expired: open until {}", crate::guard::format_time(expires_at)));
            }
            // Too late: the request expires now, and the answer is refused.
            Decision::Approve | Decision::Reject { .. } if now >= expires_at => (Decision::Expire, true),
            d => (d.clone(), false),
        };
        let expiry = Answer { incident: key.clone(), decision: Decision::Expire, via: Via::Remediator };
        let taken = if late { &expiry } else { &answer };
        let reason = match &decision {
            Decision::Reject { reason } => Some(redact::truncate(&redact::text(reason), crate::approval::MAX_REASON)),
            _ => None,
        };
        // The write itself requires the request to be awaiting, and (for an approval or a
        // rejection) still open: an answer racing the expiry loses.
        let open_at = (decision != Decision::Expire).then_some(now);
        if !self
            .log
            .answer_approval(key, decision.state(), &taken.by(), reason.as_deref(), now, open_at)
            .await
            .map_err(aws)?
        {
            return refused(outcome, format!("incident {key} was answered meanwhile: this answer changes nothing"));
        }
        info!(incident = %key, answer = decision.state().as_str(), by = %taken.by(), "approval answered");
        if decision == Decision::Approve {
            // The approved plan is handled as remediator's own event, under its own claim:
            // a handling that dies is taken over by the sweep from that event.
            return self.handle(granted_event(key, record.account().as_deref(), now), inv).await;
        }
        let target =
            record.steps().into_iter().find(|s| s.result == crate::apply::StepResult::WouldHave).and_then(|s| s.target);
        let summary = answered_summary(key, &policy_name, taken, target.as_deref());
        outcome.resolution = if decision == Decision::Expire { Resolution::Expired } else { Resolution::Rejected };
        outcome.note = Some(if late {
            format!(
                "the request expired at {}: this answer came too late and nothing was done",
                crate::guard::format_time(expires_at)
            )
        } else {
            format!("{} by {}: nothing was done", outcome.resolution.as_str(), taken.by())
        });
        match self.notifier.publish(&summary).await {
            Ok(id) => {
                outcome.summary =
                    Some(SentSummary { subject: summary.subject, folded: false, message_id: Some(id), error: None })
            }
            Err(e) => {
                warn!(incident = %key, error = %e, "the answer is recorded; its summary was not sent");
                outcome.summary = Some(SentSummary {
                    subject: summary.subject,
                    folded: false,
                    message_id: None,
                    error: Some(redact::text(&e.to_string())),
                });
            }
        }
        if late {
            outcome.resolution = Resolution::Refused;
        }
        Ok(outcome)
    }

    /// An approved plan: planned again now, with the guards, pauses and account rules in
    /// force now, previewed, and applied only if the preview is the plan that was
    /// approved (the same steps, the targets as they were).
    async fn approved(&self, event: Event, inv: &Invocation) -> Result<Outcome, HandleError> {
        let key = event
            .document
            .pointer("/detail/incident")
            .and_then(Value::as_str)
            .map(IncidentKey::from_stored)
            .ok_or(EventError::MissingDetail("incident"))?;
        let claim = Incident::new(event, None);
        let mut outcome = Outcome { incident: Some(claim.key.to_string()), ..Outcome::for_event(&claim.event) };
        let aws = |source: AwsError| HandleError::Aws { incident: claim.key.to_string(), source };
        let record = self.log.record(&key).await.map_err(aws)?.unwrap_or_default();
        // Only an approval recorded in the table is acted on: this event alone proves nothing.
        if record.approval_state != Some(ApprovalState::Approved) {
            outcome.resolution = Resolution::Ignored;
            outcome.note = Some(format!("incident {key} has no approved request: nothing to apply"));
            return Ok(outcome);
        }
        let Some(stored) = record.event() else {
            outcome.resolution = Resolution::Ignored;
            outcome.note = Some(format!("incident {key} kept no event: nothing to apply"));
            return Ok(outcome);
        };
        let by = record.approval_by.clone().unwrap_or_default();
        let policy_name = record.approval_policy.clone().unwrap_or_default();
        outcome.policy = Some(policy_name.clone());
        let takeover = match self.begin(&claim, inv, &mut outcome).await {
            Begin::Go(takeover) => takeover,
            Begin::Stop(result) => return *result,
        };
        let mut incident = Incident::new(Event::from_value(stored)?, None);
        let now = clock::now();
        // An account this process cannot reach (a person's `approve` with their own
        // credentials, which a member role does not trust) gives the approved plan back:
        // the function's sweep applies it, never a refusal that would use it up; a few
        // times, then final (refused and told, never silently dropped).
        let earlier = takeover.as_ref().map_or(0, |t| t.earlier_claims);
        let access = match self.access(&incident).await {
            Access::Retry(e) => return self.could_not_read(&claim, inv, outcome, e, now).await,
            Access::Refused(why) if earlier + 1 < MAX_CLAIMS => {
                let e = AwsError {
                    kind: ErrorKind::Transient,
                    ..AwsError::invalid("reaching the incident's account", why)
                };
                return self.could_not_read(&claim, inv, outcome, e, now).await;
            }
            access => access,
        };
        let clients = access.reached().map(|(c, _)| c);
        let info = match self.diagnose(clients, &mut incident).await {
            Ok(info) => info,
            Err(e) => return self.could_not_read(&claim, inv, outcome, e, now).await,
        };
        outcome.diagnosis = incident.diagnosis.clone().map(redacted);
        outcome.execution = execution_of(&incident.event);
        let applied = decide_applied(&self.policies, incident.document());
        let (Some(policy), true) = (applied.first().copied(), applied.iter().any(|p| p.name == policy_name)) else {
            outcome.resolution = Resolution::Refused;
            outcome.note =
                Some(format!("approved by {by}, but policy {policy_name} no longer applies to it: nothing done"));
            return self.finish(Finish::without_plan(&claim, &incident, self.dry_run, now), inv, outcome).await;
        };
        let mut plan = plan(&incident, &applied, self.dry_run);
        let guards = match self.guards.load(now, &guard_keys(&plan)).await {
            Ok(guards) => guards,
            Err(e) => return self.could_not_read(&claim, inv, outcome, e, now).await,
        };
        guard(&mut plan, &self.allow, &guards, now);
        access.restrict(&mut plan, &guards, now);
        let preview_plan = previewed(&plan);
        let preview = self.apply(access.reached(), &preview_plan, &incident, &claim, inv, info.as_ref()).await;
        // A target that could not be read now: given back, to be tried again (the sweep).
        if let Some(failed) =
            preview.iter().find(|a| a.result == StepResult::Failed && a.error_kind.is_some_and(|k| k.is_retryable()))
        {
            let e = AwsError {
                kind: failed.error_kind.unwrap_or(ErrorKind::Transient),
                ..AwsError::invalid("previewing the approved plan", failed.detail.clone())
            };
            return self.could_not_read(&claim, inv, outcome, e, now).await;
        }
        let mut note = format!("approved by {by}");
        // A plan the guards refuse now (a pause, a limit) is applied as refused and says
        // why; otherwise it must be the plan that was approved, step by step.
        if wants_change(&plan) {
            let resumed = takeover.is_some();
            if let Err(why) =
                agrees(record.approval_digest.as_deref().unwrap_or_default(), &key, &preview_plan, &preview, resumed)
            {
                let why = format!("the plan changed since approval was asked: {why}; nothing done");
                refuse_changes(&mut plan, &why);
                note = format!("{note}; {why}");
            }
        }
        outcome.actions = self.apply(access.reached(), &plan, &incident, &claim, inv, info.as_ref()).await;
        keep_before_images(&mut outcome.actions, takeover.as_ref());
        outcome.note = Some(note);
        let finish = Finish {
            claim: &claim,
            about: &incident,
            plan: Some(&plan),
            guards: Some(&guards),
            policy: Some(policy),
            dry_run: self.dry_run || policy.dry_run,
            summary: None,
            now,
            earlier_claims: takeover.as_ref().map_or(0, |t| t.earlier_claims),
            approval: None,
        };
        self.finish(finish, inv, outcome).await
    }
}

/// What a request's summary says about answering it.
pub struct ApprovalFacts {
    pub incident: String,
    pub expires_at: i64,
    pub approvers: String,
    /// The link, when the policy lets anyone with it answer and links are configured.
    pub link: Option<String>,
}

/// The preflight of one handling: pauses read again right before each change, and the
/// before-image journaled under the claim before the change is made.
struct Gate<'a> {
    guards: &'a dyn GuardStore,
    log: &'a dyn IncidentLog,
    /// Checked again here: a step may change more than its planned target (a catch-up
    /// run starts the rule's state machine).
    allow: &'a AllowList,
    /// The account the incident is handled in, when known: a target in another is refused.
    account: Option<&'a str>,
    key: &'a IncidentKey,
    owner: &'a str,
}

#[async_trait::async_trait]
impl Preflight for Gate<'_> {
    async fn before_change(&self, step: &Step, target: &str, before: Option<&Value>) -> Result<Go, AwsError> {
        let now = clock::now();
        let state = self.guards.load(now, &[]).await?;
        if let Some(reason) = pause_refusal_in(&state, &step.policy, Some(target), self.account, now) {
            return Ok(Go::Refuse(Refusal::Paused, reason));
        }
        if !self.allow.allows(target) {
            return Ok(Go::Refuse(Refusal::NotAllowed, format!("{target} is outside the allow-list")));
        }
        if let (Some(account), Some(other)) = (self.account, target.split(':').nth(4).filter(|a| !a.is_empty())) {
            if other != account {
                return Ok(Go::Refuse(
                    Refusal::NotAllowed,
                    format!("{target} is in account {other}, but this incident is handled in account {account}"),
                ));
            }
        }
        if let Some(before) = before {
            let entry = JournalEntry {
                policy: step.policy.clone(),
                action: step.action.name().to_string(),
                target: target.to_string(),
                before: before.clone(),
            };
            self.log.journal(self.key, self.owner, &entry).await?;
        }
        Ok(Go::Proceed)
    }
}

/// Whether a plan would change anything: a mutating step the guards let through.
fn wants_change(plan: &Plan) -> bool {
    plan.steps.iter().any(|s| s.action.is_mutating() && s.disposition == Disposition::Act)
}

/// The plan as a dry run: every step read up to its change, which is not made.
fn previewed(plan: &Plan) -> Plan {
    let mut preview = plan.clone();
    for step in &mut preview.steps {
        step.dry_run = true;
    }
    preview
}

/// Every change of a plan refused, for an account remediator may not act in.
fn refuse_changes(plan: &mut Plan, why: &str) {
    for step in plan.steps.iter_mut().filter(|s| s.action.is_mutating() && s.disposition == Disposition::Act) {
        step.disposition = Disposition::refuse(Refusal::NotAllowed, why);
    }
}

/// Every change of an incident handled in a paused account (the guard saw the targets'
/// own ARNs; an S3 object's names no account).
fn refuse_paused_account(plan: &mut Plan, guards: &GuardState, account: Option<&str>, now: i64) {
    let Some(account) = account else { return };
    for step in plan.steps.iter_mut().filter(|s| s.action.is_mutating() && s.disposition == Disposition::Act) {
        if let Some(reason) = pause_refusal_in(guards, &step.policy, step.target.as_deref(), Some(account), now) {
            step.disposition = Disposition::refuse(Refusal::Paused, reason);
        }
    }
}

/// Every change whose target names an account other than the one the incident is handled
/// in: its clients could only reach the wrong account's resource of the same name.
fn refuse_other_accounts(plan: &mut Plan, account: Option<&str>) {
    let Some(account) = account else { return };
    for step in plan.steps.iter_mut().filter(|s| s.action.is_mutating() && s.disposition == Disposition::Act) {
        let Some(target) = step.target.as_deref() else { continue };
        let named = target.split(':').nth(4).filter(|a| !a.is_empty());
        if let Some(other) = named.filter(|a| *a != account) {
            let why = format!("{target} is in account {other}, but this incident is handled in account {account}");
            step.disposition = Disposition::refuse(Refusal::NotAllowed, why);
        }
    }
}

/// After a takeover, a change the interrupted handling made is found already made: its
/// before-image comes from the journal, so `undo` and `history` stay right.
fn keep_before_images(actions: &mut [StepOutcome], takeover: Option<&Takeover>) {
    let Some(takeover) = takeover else { return };
    for action in actions.iter_mut().filter(|a| a.mutating && a.before.is_none()) {
        let journaled = takeover.journal.iter().rev().find(|e| {
            e.policy == action.policy
                && e.action == action.action
                && Some(e.target.as_str()) == action.target.as_deref()
        });
        // A redrive the interrupted handling made: found "already retried" now, it is
        // ours, and its run is the one to verify.
        if let (Some(entry), StepResult::Skipped) = (journaled, action.result) {
            if let Some(count) = entry.before.get("redrive_count").and_then(Value::as_u64) {
                action.result = StepResult::Done;
                action.follow_up = Some(format!("{}#{}", entry.target, count + 1));
                action.short = Some("redriven".into());
                action.detail = "redriven by an earlier, interrupted handling of this incident".into();
                continue;
            }
        }
        if let Some(entry) = journaled.filter(|e| e.before.get("redrive_count").is_none()) {
            action.before = Some(entry.before.clone());
            action
                .detail
                .push_str(" (made by an earlier, interrupted handling of this incident; its before-image is kept)");
        }
    }
}

/// Whether the event should come back: a remediation step failed with an error a retry
/// may fix (throttling, a server error, a timeout). A denied, missing or invalid call,
/// or a failure without an AWS error (no input to restart with), is final.
fn retry_may_help(outcome: &Outcome) -> bool {
    outcome.resolution == Resolution::Failed
        && outcome
            .actions
            .iter()
            .filter(|a| a.result == StepResult::Failed)
            .any(|a| a.error_kind.is_some_and(ErrorKind::is_retryable))
}

/// A digest of an event's content (the decision's input).
fn input_hash(document: &Value) -> String {
    IncidentKey::from_stored(document.to_string()).digest(16)
}

fn execution_of(event: &Event) -> Option<String> {
    match &event.signal {
        Signal::Execution(c) => Some(c.execution.to_string()),
        _ => None,
    }
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

/// The resolution of a handling from its steps.
pub fn resolve(policy: Option<&Policy>, steps: &[StepOutcome]) -> Resolution {
    if policy.is_none() {
        return Resolution::NoPolicy;
    }
    let any = |r: StepResult| steps.iter().any(|s| s.result == r);
    if any(StepResult::Failed) {
        Resolution::Failed
    } else if steps.iter().filter(|s| s.mutating).any(|s| s.result == StepResult::Refused) {
        Resolution::Refused
    } else if any(StepResult::WouldHave) {
        Resolution::WouldRemediate
    } else if steps.iter().filter(|s| s.mutating).any(|s| s.result == StepResult::Done) {
        Resolution::Remediated
    } else {
        Resolution::Notified
    }
}

/// Whether a handling's outcome is told to a person.
pub fn should_notify(policy: Option<&Policy>, resolution: Resolution, steps: &[StepOutcome]) -> bool {
    let Some(policy) = policy else {
        // A failure no policy covers, or one that could not be handled, is never hidden.
        return true;
    };
    let has_notify_action = policy.actions.iter().any(|a| matches!(a, Action::Notify { .. }));
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
    answers: &IncidentKey,
    inv: &Invocation,
    status: Status,
    outcome: &Outcome,
    summary: Option<&Summary>,
) -> Completion {
    let (execution, state_machine) = match &incident.event.signal {
        Signal::Execution(c) => (Some(c.execution.to_string()), Some(c.state_machine_arn.clone())),
        Signal::Alarm(_) | Signal::Other => (None, None),
    };
    Completion {
        key: incident.key.clone(),
        owner: inv.owner.clone(),
        status,
        resolution: outcome.resolution,
        policy: outcome.policy.clone(),
        execution,
        state_machine,
        state: outcome.diagnosis.as_ref().and_then(|d| d.state.clone()),
        error: outcome.diagnosis.as_ref().and_then(|d| d.error.clone()),
        outcome: serde_json::to_value(outcome).unwrap_or(Value::Null),
        summary: summary.map(|s| (s.subject.clone(), s.body.clone())),
        follow_ups: outcome.actions.iter().filter_map(|a| a.follow_up.clone()).collect(),
        answers: answers.clone(),
        // A deferred retry's own claim answers an incident that has its row already.
        report: (incident.key == *answers).then(|| report_row(incident, outcome, status)).flatten(),
        approval: None,
    }
}

/// The incident's line in `remediator report`: a failure handled to the end (not a
/// verification's own claim, not a release, not an event that was no failure).
fn report_row(incident: &Incident, outcome: &Outcome, status: Status) -> Option<ReportRow> {
    let counted = matches!(
        outcome.resolution,
        Resolution::Remediated
            | Resolution::WouldRemediate
            | Resolution::Notified
            | Resolution::Refused
            | Resolution::Failed
            | Resolution::NoPolicy
            | Resolution::AwaitingApproval
    );
    if status != Status::Completed || !counted {
        return None;
    }
    let now = clock::now();
    Some(ReportRow {
        incident: incident.key.as_str().to_string(),
        account: incident.event.account.clone().filter(|a| !a.is_empty()),
        policy: outcome.policy.clone(),
        error: outcome.diagnosis.as_ref().and_then(|d| d.error.clone()),
        resolution: Some(outcome.resolution),
        refusals: outcome
            .actions
            .iter()
            .filter_map(|a| a.refusal)
            .filter_map(|r| serde_json::to_value(r).ok()?.as_str().map(str::to_string))
            .collect(),
        failed_at: incident.event.time.as_deref().and_then(crate::event::parse_timestamp).unwrap_or(now),
        completed_at: now,
        verdict: None,
        verified_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(action: &'static str, result: StepResult, before: Option<Value>) -> StepOutcome {
        StepOutcome {
            policy: "p".into(),
            action,
            mutating: true,
            target: Some("arn:aws:states:us-east-1:1:execution:m:r".into()),
            result,
            detail: "the execution is RUNNING now: someone else already retried it".into(),
            refusal: None,
            error_kind: None,
            attempt: None,
            before,
            short: None,
            follow_up: None,
        }
    }

    fn journal(action: &str, before: Value) -> Takeover {
        Takeover {
            previous_owner: "lambda-dead".into(),
            earlier_claims: 1,
            journal: vec![JournalEntry {
                policy: "p".into(),
                action: action.into(),
                target: "arn:aws:states:us-east-1:1:execution:m:r".into(),
                before,
            }],
        }
    }

    // A takeover that finds the execution running again after the dead handling's
    // redrive knows the redrive was its own, and verifies its run.
    #[test]
    fn a_journaled_redrive_found_running_is_ours_and_followed() {
        let mut actions = vec![step("redrive", StepResult::Skipped, None)];
        keep_before_images(&mut actions, Some(&journal("redrive", serde_json::json!({"redrive_count": 2}))));
        assert_eq!(actions[0].result, StepResult::Done);
        assert_eq!(actions[0].follow_up.as_deref(), Some("arn:aws:states:us-east-1:1:execution:m:r#3"));
        assert_eq!(actions[0].before, None, "a redrive has no before-image to undo");
        // Without a journal, someone else's retry stays someone else's.
        let mut others = vec![step("redrive", StepResult::Skipped, None)];
        keep_before_images(&mut others, None);
        assert_eq!(others[0].result, StepResult::Skipped);
    }

    #[test]
    fn a_journaled_before_image_is_kept_for_a_change_found_made() {
        let mut actions = vec![step("raise-timeout", StepResult::Done, None)];
        let before = serde_json::json!({"timeout": 300, "set_to": 450});
        keep_before_images(&mut actions, Some(&journal("raise-timeout", before.clone())));
        assert_eq!(actions[0].before, Some(before));
    }

    #[test]
    fn only_a_failure_a_retry_may_fix_brings_the_event_back() {
        let event =
            Event::from_value(serde_json::json!({"id": "e", "source": "aws.events", "detail-type": "x", "detail": {}}))
                .unwrap();
        let with = |kind: Option<ErrorKind>| {
            let mut failed = step("enable-rule", StepResult::Failed, None);
            failed.error_kind = kind;
            Outcome { resolution: Resolution::Failed, actions: vec![failed], ..Outcome::for_event(&event) }
        };
        assert!(retry_may_help(&with(Some(ErrorKind::Throttled))));
        assert!(retry_may_help(&with(Some(ErrorKind::Transient))));
        assert!(!retry_may_help(&with(Some(ErrorKind::Denied))));
        assert!(!retry_may_help(&with(Some(ErrorKind::NotFound))));
        assert!(!retry_may_help(&with(Some(ErrorKind::Invalid))));
        assert!(!retry_may_help(&with(None)), "no AWS error (no input to restart with): final");
    }
}
