//! remediator: self-healing for AWS data pipelines.
//!
//! An event flows through plain types, one module per stage:
//!
//! ```text
//! EventBridge event ──event──▶ Incident ──diagnose (AWS read)──▶ Incident + Diagnosis
//!   ──decide (pure)──▶ Decision ──plan (pure)──▶ Plan
//!   ──apply (the only place that changes AWS)──▶ Outcome ──▶ record (DynamoDB) ∥ summary (SNS)
//! ```
//!
//! [`handle`] runs the stages for the Lambda and the CLI; [`explain`] runs the pure ones
//! offline. Policies ([`policy`]) are EventBridge patterns ([`pattern`]) with actions,
//! loaded from YAML with positions ([`yaml`]). The AWS adapters live in [`aws`], behind
//! the traits [`apply::Executions`], [`record::IncidentLog`] and [`summary::Notifier`].
//!
//! The policy language and the pure core ([`yaml`], [`pattern`], [`policy`], [`schema`],
//! [`event`], [`decide`], [`triage`], [`diagnose`], [`incident`], [`plan`], the checks of
//! [`guard`], [`explain`] and the [`offline`] tools) are the crate `remediator-policy`,
//! which builds without the AWS SDK; they are re-exported here under the same paths.

pub use remediator_policy::{
    accounts, decide, deployment, diagnose, event, explain, incident, offline, pattern, plan, policy, rule_input,
    schedule, schema, triage, yaml,
};

pub mod actions;
pub mod apply;
pub mod approval;
pub mod aws;
pub mod clock;
pub mod config;
pub mod emergency;
pub mod error;
pub mod guard;
pub mod handle;
pub mod infra;
pub mod metrics;
pub mod outcome;
pub mod record;
pub mod redact;
pub mod report;
pub mod rules;
pub mod summary;
pub mod sweep;
