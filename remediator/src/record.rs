//! The incident log: claims that make handling idempotent, and the record of outcomes.
//!
//! A conditional write claims an incident before anything is done: a second delivery of
//! the same event, or a concurrent invocation, finds the claim and acts on nothing. A
//! claim is a lease that lasts as long as the invocation that holds it can live (its
//! deadline plus a margin), so a live handling is never taken over and a dead one is
//! taken over by the next delivery or by the scheduled sweep, which finds it by its
//! lease and handles the event the claim keeps.
//!
//! What must survive a crash is written before it is needed:
//! - the event (without execution input or output), with the claim, so a takeover can
//!   handle it again whatever its source;
//! - each before-image, in the claim's journal, *before* the change it describes, so an
//!   `undo` and `history` are right even if the handling dies right after the change;
//! - the summary, with the completion, as "sending": it becomes "sent" only after the
//!   publish, so a crash in between leaves it owed, never lost.
//!
//! Status moves one way: `IN_PROGRESS` → `COMPLETED` (final), or `IN_PROGRESS` →
//! `RELEASED` (a retryable failure: the next delivery claims it again). A release or a
//! completion only applies to a claim its owner still holds in progress, so a retry can
//! never turn a completed incident into a failed one.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::apply::StepResult;
use crate::error::AwsError;
use crate::incident::IncidentKey;
use crate::outcome::Resolution;

/// A request to claim an incident.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    pub key: IncidentKey,
    /// Who holds the claim (the Lambda request id, or a CLI run id).
    pub owner: String,
    /// Until when (Unix seconds) the claim is this owner's.
    pub lease_until: i64,
    pub event_id: String,
    pub source: String,
    /// A digest of the event, so a later delivery can tell it saw the same content.
    pub input_hash: String,
    /// The event as it can be handled again (execution input and output removed).
    pub event: Value,
}

/// A before-image written ahead of the change it describes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub policy: String,
    pub action: String,
    pub target: String,
    pub before: Value,
}

/// What the claim found.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// Ours: go ahead. `takeover` when an earlier handling held it and died or released
    /// it; its journal says what it may already have changed.
    Claimed { takeover: Option<Takeover> },
    /// Handled before: the stored outcome, and a summary still owed if sending it failed.
    Done { outcome: Option<Value>, owed_summary: Option<OwedSummary>, input_hash: Option<String> },
    /// Another invocation holds a live lease.
    InProgress { owner: String, lease_until: i64 },
}

/// An earlier handling of the same incident that did not complete.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Takeover {
    pub previous_owner: String,
    pub journal: Vec<JournalEntry>,
    /// How many handlings claimed the incident before this one.
    pub earlier_claims: u32,
}

/// A summary recorded with a completion and not (known to be) delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct OwedSummary {
    pub subject: String,
    pub body: String,
}

/// How a handling ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Final: what was done is recorded; a redelivery is a duplicate.
    Completed,
    /// Handling failed in a way a retry may fix; the next delivery claims it again.
    Released,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "COMPLETED",
            Status::Released => "RELEASED",
        }
    }
}

/// What became of a recorded summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryState {
    /// Being published by the claim's owner.
    Sending,
    Sent,
    /// The publish failed: the next delivery sends it.
    Owed,
}

impl SummaryState {
    pub fn as_str(self) -> &'static str {
        match self {
            SummaryState::Sending => "sending",
            SummaryState::Sent => "sent",
            SummaryState::Owed => "owed",
        }
    }
}

/// The verdict on a retry remediator made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Healed,
    StillFailing,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healed => "healed",
            Verdict::StillFailing => "still-failing",
        }
    }
}

/// Where a claim stands, as its item says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimStatus {
    /// Held by `owner` until `lease_until`.
    InProgress,
    Completed,
    Released,
    /// Written by versions before `RELEASED`: the same meaning.
    Failed,
    /// Absent, or written by a version this one does not know: treated as handled.
    #[default]
    #[serde(other)]
    Unknown,
}

/// An incident's item in the state table, as a type: written by `claim`, then added to
/// by `journal`, `complete` or `release`, `mark_summary`, `verify` and `undo`; read whole
/// by a claim that finds the incident taken, the sweep, `history` and `undo`. Attributes
/// it does not name are ignored, and those a version did not write are absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IncidentRecord {
    #[serde(deserialize_with = "lenient")]
    pub incident: String,
    #[serde(deserialize_with = "lenient")]
    pub status: ClaimStatus,
    #[serde(deserialize_with = "lenient")]
    pub owner: String,
    #[serde(deserialize_with = "lenient")]
    pub lease_until: i64,
    #[serde(deserialize_with = "lenient")]
    pub claimed_at: i64,
    /// How many handlings claimed it.
    #[serde(deserialize_with = "lenient")]
    pub deliveries: u32,
    #[serde(deserialize_with = "lenient")]
    pub event_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub event_source: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub input_hash: Option<String>,
    /// The event as it can be handled again (JSON text, execution input and output removed).
    #[serde(deserialize_with = "lenient")]
    pub stored_event: Option<String>,
    /// Before-images, each JSON text, written ahead of their changes.
    #[serde(deserialize_with = "lenient")]
    pub journal: Vec<String>,
    #[serde(deserialize_with = "lenient")]
    pub completed_at: Option<i64>,
    #[serde(deserialize_with = "lenient")]
    pub resolution: Option<Resolution>,
    /// The whole outcome (JSON text, redacted).
    #[serde(deserialize_with = "lenient")]
    pub outcome: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub policy: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub execution_arn: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub state_machine_arn: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub failed_state: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub error_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub summary_state: Option<SummaryState>,
    /// Who is sending the summary: the handling that completed, or one that took it over.
    #[serde(deserialize_with = "lenient")]
    pub summary_owner: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub summary_subject: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub summary_body: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub released_at: Option<i64>,
    #[serde(deserialize_with = "lenient")]
    pub release_note: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub verification: Option<Verdict>,
    #[serde(deserialize_with = "lenient")]
    pub verified_by: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub verified_at: Option<i64>,
    #[serde(deserialize_with = "lenient")]
    pub undone_at: Option<i64>,
    #[serde(deserialize_with = "lenient")]
    pub undone_by: Option<String>,
    /// What each undo did (JSON text).
    #[serde(deserialize_with = "lenient")]
    pub undo_results: Option<String>,
    /// A request for approval: where it stands, for which plan, until when, who may
    /// answer, and the answer.
    #[serde(deserialize_with = "lenient")]
    pub approval_state: Option<crate::approval::ApprovalState>,
    #[serde(deserialize_with = "lenient")]
    pub approval_policy: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub approval_digest: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub approval_expires_at: Option<i64>,
    #[serde(deserialize_with = "lenient")]
    pub approval_approvers: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub approval_by: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub approval_at: Option<i64>,
    #[serde(deserialize_with = "lenient")]
    pub approval_reason: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub expires_at: Option<i64>,
}

/// Reads a field as its type, or as its default when some version wrote it otherwise: one
/// odd attribute must not make a whole incident unreadable (that would wedge it, and
/// stop every sweep that lists it).
fn lenient<'de, D: serde::Deserializer<'de>, T: serde::de::DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

impl IncidentRecord {
    /// The before-images of the journal (an entry that does not parse is skipped).
    pub fn journal_entries(&self) -> Vec<JournalEntry> {
        self.journal.iter().filter_map(|e| serde_json::from_str(e).ok()).collect()
    }

    /// The recorded outcome, if it completed.
    pub fn outcome_json(&self) -> Option<Value> {
        self.outcome.as_deref().and_then(|o| serde_json::from_str(o).ok())
    }

    /// The steps of the recorded outcome.
    pub fn steps(&self) -> Vec<RecordedStep> {
        #[derive(Deserialize)]
        struct Steps {
            #[serde(default)]
            actions: Vec<RecordedStep>,
        }
        self.outcome
            .as_deref()
            .and_then(|o| serde_json::from_str::<Steps>(o).ok())
            .map(|s| s.actions)
            .unwrap_or_default()
    }

    /// The stored event, if the claim kept one.
    pub fn event(&self) -> Option<Value> {
        self.stored_event.as_deref().and_then(|e| serde_json::from_str(e).ok())
    }

    /// The account the incident happened in, as its event says.
    pub fn account(&self) -> Option<String> {
        self.event()?.get("account")?.as_str().filter(|a| !a.is_empty()).map(str::to_string)
    }

    /// When it last moved: completed, else claimed.
    pub fn at(&self) -> i64 {
        self.completed_at.unwrap_or(self.claimed_at)
    }

    /// The summary a handling that completed still owes at `now`: one whose publish
    /// failed, or whose sender's lease ran out while sending it.
    pub fn owed_summary(&self, now: i64) -> Option<OwedSummary> {
        let owed = match self.summary_state {
            Some(SummaryState::Owed) => true,
            Some(SummaryState::Sending) => self.lease_until < now,
            _ => false,
        };
        match (owed, &self.summary_subject, &self.summary_body) {
            (true, Some(subject), Some(body)) => Some(OwedSummary { subject: subject.clone(), body: body.clone() }),
            _ => None,
        }
    }
}

/// A step as an incident's record keeps it (what [`crate::apply::StepOutcome`] wrote).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RecordedStep {
    #[serde(default)]
    pub policy: String,
    pub action: String,
    pub target: Option<String>,
    pub result: StepResult,
    #[serde(default)]
    pub detail: String,
    /// What the target looked like before the change.
    pub before: Option<Value>,
}

/// The record written when handling ends.
#[derive(Clone, Debug)]
pub struct Completion {
    pub key: IncidentKey,
    pub owner: String,
    pub status: Status,
    pub resolution: Resolution,
    pub policy: Option<String>,
    pub execution: Option<String>,
    pub state_machine: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    /// The whole outcome as JSON (already redacted).
    pub outcome: Value,
    /// The summary's subject and body, recorded as "sending" until the publish is known.
    pub summary: Option<(String, String)>,
    /// Runs (execution ARN#redriveCount) whose end verifies this incident's retries,
    /// recorded with the completion in one transaction.
    pub follow_ups: Vec<String>,
    /// The incident those runs answer (the original incident of a deferred retry).
    pub answers: IncidentKey,
    /// The incident's line in the report, written with the completion (a failure that
    /// was handled; `None` for a verification's own claim and for releases).
    pub report: Option<ReportRow>,
    /// A request for approval, recorded as awaiting with the completion.
    pub approval: Option<crate::approval::ApprovalRequest>,
}

/// One handled failure, as `remediator report` counts it. Kept in the state table under
/// the month it completed (`pk = REPORT#YYYY-MM`, `sk` = the incident), for a year and a
/// month, longer than the incident itself: a report over months reads one partition per
/// month with a query, never a scan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportRow {
    pub incident: String,
    /// The account the failure happened in (absent in rows written before accounts).
    pub account: Option<String>,
    pub policy: Option<String>,
    /// The failure's class: its error.
    pub error: Option<String>,
    pub resolution: Option<Resolution>,
    /// The guards that refused a step, as `Refusal` kinds (`paused`, `cooling-down`, ...).
    pub refusals: Vec<String>,
    /// When the failure happened (the event's time), else when it was claimed.
    pub failed_at: i64,
    pub completed_at: i64,
    /// Filled in by the verdict row (`sk = INCIDENT#verdict`), when a retry ends.
    pub verdict: Option<Verdict>,
    pub verified_at: Option<i64>,
}

/// The report partition of a time: `REPORT#YYYY-MM` (UTC).
pub fn report_month(t: i64) -> String {
    let stamp = crate::event::format_timestamp(t);
    format!("REPORT#{}", stamp.get(..7).unwrap_or("0000-00"))
}

/// How long report rows are kept: a year and a month.
pub const REPORT_RETENTION_SECS: i64 = 396 * 86400;

/// A claim whose lease ran out before it completed: a handling that died.
#[derive(Clone, Debug, PartialEq)]
pub struct Abandoned {
    pub key: IncidentKey,
    pub owner: String,
    pub claimed_at: i64,
    pub lease_until: i64,
    /// The event to handle again (absent for claims written before events were kept).
    pub event: Option<Value>,
}

/// Where incidents are claimed and recorded.
#[async_trait]
pub trait IncidentLog: Send + Sync {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, AwsError>;
    /// Appends a before-image to the owner's claim, ahead of the change.
    async fn journal(&self, key: &IncidentKey, owner: &str, entry: &JournalEntry) -> Result<(), AwsError>;
    /// Records the end of a handling the owner still holds in progress.
    async fn complete(&self, completion: &Completion) -> Result<(), AwsError>;
    /// Whether the incident is completed by `owner` (a completion whose answer was lost).
    async fn completed_by(&self, key: &IncidentKey, owner: &str) -> Result<bool, AwsError>;
    /// Gives the claim back for a retry (only while the owner holds it in progress).
    async fn release(&self, key: &IncidentKey, owner: &str, note: &str) -> Result<(), AwsError>;
    /// Records whether the summary recorded with the completion was delivered, if
    /// `owner` is the one sending it (else someone took it over, and their record wins).
    async fn mark_summary(&self, key: &IncidentKey, owner: &str, state: SummaryState) -> Result<(), AwsError>;
    /// Takes an owed summary (or one whose sender died) for this owner to send; `false`
    /// when someone else is sending it or it was sent.
    async fn take_summary(&self, key: &IncidentKey, owner: &str, lease_until: i64, now: i64) -> Result<bool, AwsError>;
    /// Remembers that the run `execution` (ARN#redriveCount) is the retry of `incident`.
    async fn follow(&self, execution: &str, incident: &IncidentKey) -> Result<(), AwsError>;
    /// The incident whose retry `execution` is, if any.
    async fn followed(&self, execution: &str) -> Result<Option<IncidentKey>, AwsError>;
    /// Records the verdict of a retry on its incident.
    async fn verify(&self, incident: &IncidentKey, verdict: Verdict, execution: &str) -> Result<(), AwsError>;
    /// Claims whose owner's lease ended before `now` with work left: in progress, or
    /// completed with a summary still being sent.
    async fn abandoned(&self, now: i64) -> Result<Vec<Abandoned>, AwsError>;
    /// The report rows of failures completed from `since` to `now`, with their verdicts.
    async fn report_rows(&self, since: i64, now: i64) -> Result<Vec<ReportRow>, AwsError>;
    /// An incident's record, read consistently.
    async fn record(&self, key: &IncidentKey) -> Result<Option<IncidentRecord>, AwsError>;
    /// Answers a request for approval that is still awaiting (and, with `open_at`, still
    /// open at that time): `false` when it is not (answered already, expired, or never
    /// asked), so an answer is taken once.
    #[allow(clippy::too_many_arguments)]
    async fn answer_approval(
        &self,
        key: &IncidentKey,
        state: crate::approval::ApprovalState,
        by: &str,
        reason: Option<&str>,
        at: i64,
        open_at: Option<i64>,
    ) -> Result<bool, AwsError>;
    /// The sweep's work on approvals at `now`: requests still awaiting whose time ran
    /// out, and requests approved in the last day (whose plan the sweep makes sure is
    /// applied: a handling of it that completed is a duplicate).
    async fn approvals_due(&self, now: i64) -> Result<Vec<DueApproval>, AwsError>;
}

/// A request for approval the sweep looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct DueApproval {
    pub key: IncidentKey,
    pub state: crate::approval::ApprovalState,
    /// The incident's account, as its event says.
    pub account: Option<String>,
    /// When it was answered (approved ones).
    pub answered_at: Option<i64>,
}
