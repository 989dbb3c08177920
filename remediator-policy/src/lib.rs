//! remediator-policy: the policy language of remediator, without the AWS SDK.
//!
//! This crate owns everything a policy is and everything decided from a policy alone:
//!
//! - [`yaml`]: YAML read by hand into nodes with positions, so every error names its line;
//! - [`pattern`]: EventBridge event patterns, compiled and matched;
//! - [`de`]: serde over that tree, keeping every error with its position;
//! - [`action`]: the actions and their parameters, one file each;
//! - [`policy`]: policy files loaded and checked into a [`policy::PolicySet`];
//! - [`schema`]: the JSON Schema of policy files (`policies/schema.json`);
//! - [`event`]: EventBridge events parsed into typed signals;
//! - [`decide`]: the pure choice of the policy that applies to an event.
//!
//! It is a crate of its own so that the policy language builds in seconds, not in the
//! minutes the AWS SDK takes (cold: about 30 s against about 10 min for the binary): it is
//! the language `validate`, `explain`, `test` and `plan` load and match policies with,
//! what the fuzz targets for the parsers link, and what a policy pull request changes. The
//! `remediator` crate re-exports these modules under their old paths (`remediator::policy`,
//! ...) and adds diagnosis, guards, planning, the AWS adapters and the binary.
//!
//! It depends on no `aws-*` crate; `tests/no_sdk.rs` keeps it so.

pub mod accounts;
pub mod action;
pub mod approval;
pub mod de;
pub mod decide;
pub mod deployment;
pub mod diagnose;
pub mod duration;
pub mod event;
pub mod explain;
pub mod guard;
pub mod incident;
pub mod offline;
pub mod pattern;
pub mod plan;
pub mod policy;
pub mod rule_input;
pub mod schedule;
pub mod schema;
pub mod triage;
pub mod yaml;
