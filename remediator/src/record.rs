//! The incident log: claims that make handling idempotent, and the record of outcomes.
//!
//! A conditional write claims an incident before anything is done: a second delivery of
//! the same event, or a concurrent invocation, finds the claim and acts on nothing. A
//! claim is a lease: if the invocation that holds it dies, the next delivery after the
//! lease takes over (every action is itself idempotent, so resuming never doubles a
//! change). A handling that failed releases the incident for EventBridge's retry.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::AwsError;
use crate::incident::IncidentKey;

/// A request to claim an incident.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    pub key: IncidentKey,
    /// Who holds the claim (the Lambda request id, or a CLI run id).
    pub owner: String,
    pub lease: Duration,
    pub event_id: String,
    pub source: String,
    /// A digest of the event, so a later delivery can tell it saw the same content.
    pub input_hash: String,
}

/// What the claim found.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// Ours: go ahead.
    Claimed,
    /// Handled before: the stored outcome, and a summary still owed if sending it failed.
    Done { outcome: Option<Value>, unsent_summary: Option<(String, String)>, input_hash: Option<String> },
    /// Another invocation holds a live lease.
    InProgress { owner: String },
}

/// Final state of an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Completed,
    /// Handling failed; the incident may be claimed again by a retry.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
        }
    }
}

/// The record written when handling ends.
#[derive(Clone, Debug)]
pub struct Completion {
    pub key: IncidentKey,
    pub owner: String,
    pub status: Status,
    pub resolution: String,
    pub policy: Option<String>,
    pub execution: Option<String>,
    pub state_machine: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    /// The whole outcome as JSON (already redacted).
    pub outcome: Value,
    /// The summary's subject and body, and whether it was delivered.
    pub summary: Option<(String, String)>,
    pub summary_sent: bool,
    /// Runs (execution ARN#redriveCount) whose end verifies this incident's retries,
    /// recorded with the completion in one transaction.
    pub follow_ups: Vec<String>,
}

/// Where incidents are claimed and recorded.
#[async_trait]
pub trait IncidentLog: Send + Sync {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, AwsError>;
    async fn complete(&self, completion: &Completion) -> Result<(), AwsError>;
    /// Records whether an incident's stored summary was delivered.
    async fn mark_summary(&self, key: &IncidentKey, sent: bool) -> Result<(), AwsError>;
    /// Remembers that the run `execution` (ARN#redriveCount) is the retry of `incident`.
    async fn follow(&self, execution: &str, incident: &IncidentKey) -> Result<(), AwsError>;
    /// The incident whose retry `execution` is, if any.
    async fn followed(&self, execution: &str) -> Result<Option<IncidentKey>, AwsError>;
    /// Records the verdict of a retry on its incident (`healed`, `still-failing`).
    async fn verify(&self, incident: &IncidentKey, verdict: &str, execution: &str) -> Result<(), AwsError>;
}
