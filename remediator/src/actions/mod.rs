//! The actions, one file each: what an action may call (its IAM permissions, from which
//! the deployment's policy is generated), how it is applied, and how it is undone (its
//! before-image, as a type). Adding an action touches its file, the policy language's
//! `Action` (its parameters and their schema) and the three dispatch lines below.
//!
//! Every action is idempotent (a redelivered or taken-over incident never doubles a
//! change) and calls the preflight immediately before each mutating call, so a pause set
//! during a wait wins and the before-image is journaled before the change.

pub mod continue_rollback;
pub mod enable_rule;
pub mod notify;
pub mod raise;
pub mod restore_object;
pub mod retry;

use serde::Serialize;

use crate::apply::{Done, ExecutionInfo, FunctionSettings, ObjectVersions, Rules, Services, StepOutcome, StepResult};
use crate::error::AwsError;
use crate::incident::Incident;
use crate::plan::Step;
use crate::plan::{Disposition, Plan};
use crate::policy::Action;
use crate::record::RecordedStep;

/// The IAM actions an action needs (checked against the generated template).
pub fn permissions(action: &Action) -> &'static [&'static str] {
    match action {
        Action::Redrive { .. } => retry::REDRIVE_PERMISSIONS,
        Action::StartExecution { .. } => retry::START_PERMISSIONS,
        Action::RaiseTimeout { .. } | Action::RaiseMemory { .. } => raise::PERMISSIONS,
        Action::EnableRule { catch_up: 0, .. } => enable_rule::PERMISSIONS,
        Action::EnableRule { .. } => enable_rule::CATCH_UP_PERMISSIONS,
        Action::RestoreObject { copy_back_when, .. } if copy_back_when.is_empty() => restore_object::PERMISSIONS,
        Action::RestoreObject { .. } => restore_object::COPY_BACK_PERMISSIONS,
        Action::Notify { .. } => notify::PERMISSIONS,
        Action::ContinueRollback => continue_rollback::PERMISSIONS,
    }
}

/// Applies one step that its guards let through.
pub(crate) async fn run(
    step: &Step,
    incident: &Incident,
    info: Option<&ExecutionInfo>,
    services: &Services<'_>,
) -> Done {
    let target = step.target.as_deref().unwrap_or_default();
    match &step.action {
        Action::Notify { severity } => notify::notify(severity),
        Action::Redrive { delay } => retry::redrive(step, incident, info, services, delay).await,
        Action::StartExecution { state_machine, input } => {
            retry::start_execution(step, incident, info, services, state_machine, input).await
        }
        Action::RaiseTimeout { factor, max_seconds } => {
            raise::raise(step, incident, services, target, raise::Kind::Timeout, *factor, *max_seconds).await
        }
        Action::RaiseMemory { factor, max_mb } => {
            raise::raise(step, incident, services, target, raise::Kind::Memory, *factor, *max_mb).await
        }
        Action::EnableRule { .. } => enable_rule::enable_rule(step, incident, services, target).await,
        Action::RestoreObject { .. } => restore_object::restore_object(step, incident, services, target).await,
        Action::ContinueRollback => continue_rollback::continue_rollback(step, services, target).await,
    }
}

/// What an undo did.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "kebab-case")]
pub enum Undone {
    Done(String),
    /// Nothing to do: the target is as it was before the change (idempotent).
    Already(String),
    /// Someone changed the target since remediator did: left alone, with the reason.
    Refused(String),
    WouldHave(String),
}

/// One change to put back, with its typed before-image.
#[derive(Clone, Debug, PartialEq)]
pub struct Reversal {
    pub action: String,
    pub target: String,
    pub policy: String,
    pub image: BeforeImage,
}

/// The before-images that can be put back, one variant per action that has an undo.
#[derive(Clone, Debug, PartialEq)]
pub enum BeforeImage {
    Raise(raise::Kind, raise::Before),
    EnableRule,
    RestoreObject(restore_object::Before),
}

/// The reversals of a stored outcome's changes, newest first. Retries of executions
/// have none: a run cannot be un-run.
pub fn reversals(steps: &[RecordedStep]) -> Vec<Reversal> {
    let mut out = Vec::new();
    for step in steps.iter().filter(|s| s.result == StepResult::Done) {
        let Some(before) = &step.before else { continue };
        let image = match step.action.as_str() {
            "raise-timeout" => raise::Before::parse(before).map(|b| BeforeImage::Raise(raise::Kind::Timeout, b)),
            "raise-memory" => raise::Before::parse(before).map(|b| BeforeImage::Raise(raise::Kind::Memory, b)),
            "enable-rule" => Some(BeforeImage::EnableRule),
            "restore-object" => restore_object::Before::parse(before).map(BeforeImage::RestoreObject),
            _ => None,
        };
        if let Some(image) = image {
            out.push(Reversal {
                action: step.action.clone(),
                target: step.target.clone().unwrap_or_default(),
                policy: step.policy.clone(),
                image,
            });
        }
    }
    out.reverse();
    out
}

/// Puts one change back, if the target still is as remediator left it.
pub async fn undo(
    r: &Reversal,
    functions: &dyn FunctionSettings,
    rules: &dyn Rules,
    objects: &dyn ObjectVersions,
    dry_run: bool,
) -> Result<Undone, AwsError> {
    match &r.image {
        BeforeImage::Raise(kind, before) => raise::undo(*kind, &r.target, before, functions, dry_run).await,
        BeforeImage::EnableRule => enable_rule::undo(&r.target, rules, dry_run).await,
        BeforeImage::RestoreObject(before) => restore_object::undo(&r.target, before, objects, dry_run).await,
    }
}

/// Applies a plan step by step. After a failed or refused mutating step the remaining
/// mutating steps are skipped (a raise that failed must not be followed by a redrive).
pub async fn apply(
    plan: &Plan,
    incident: &Incident,
    info: Option<&ExecutionInfo>,
    services: &Services<'_>,
) -> Vec<StepOutcome> {
    let mut outcomes = Vec::with_capacity(plan.steps.len());
    let mut blocked: Option<String> = None;
    for step in &plan.steps {
        let mut out = StepOutcome {
            policy: step.policy.clone(),
            action: step.action.name(),
            mutating: step.action.is_mutating(),
            target: step.target.clone(),
            result: StepResult::Done,
            detail: String::new(),
            refusal: None,
            error_kind: None,
            attempt: step.attempt.map(|(n, max)| format!("{n} of {max}")),
            before: None,
            short: None,
            follow_up: None,
        };
        match (&step.disposition, &blocked) {
            (Disposition::Refuse { refusal, reason }, _) => {
                out.result = StepResult::Refused;
                out.detail = reason.clone();
                out.refusal = Some(*refusal);
            }
            (Disposition::Act, Some(reason)) if step.action.is_mutating() => {
                out.result = StepResult::Skipped;
                out.detail = format!("not attempted: {reason}");
            }
            (Disposition::Act, _) => {
                let d = run(step, incident, info, services).await;
                out.result = d.result;
                out.detail = d.detail;
                out.refusal = d.refusal;
                out.error_kind = d.error_kind;
                out.before = d.before;
                out.short = d.short;
                out.follow_up = d.follow_up;
            }
        }
        if step.action.is_mutating() && matches!(out.result, StepResult::Failed | StepResult::Refused) {
            let how = if out.result == StepResult::Failed { "failed" } else { "refused" };
            blocked.get_or_insert_with(|| format!("an earlier `{}` step was {how}", out.action));
        }
        outcomes.push(out);
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    // The permissions each action declares, written here independently of the files
    // that declare them: a change to an action's reach must change this test too.
    #[test]
    fn each_action_declares_exactly_the_calls_it_makes() {
        let d = std::time::Duration::ZERO;
        let cases: Vec<(Action, &[&str])> = vec![
            (
                Action::Redrive { delay: d },
                &[
                    "states:RedriveExecution",
                    "states:DescribeExecution",
                    "states:StartExecution",
                    "scheduler:CreateSchedule",
                    "iam:PassRole",
                ],
            ),
            (
                Action::StartExecution { state_machine: None, input: None },
                &["states:StartExecution", "states:DescribeExecution"],
            ),
            (
                Action::RaiseTimeout { factor: 1.5, max_seconds: 900 },
                &["lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"],
            ),
            (Action::EnableRule { rule: None, catch_up: 0 }, &["events:DescribeRule", "events:EnableRule"]),
            (
                Action::EnableRule { rule: None, catch_up: 1 },
                &[
                    "events:DescribeRule",
                    "events:EnableRule",
                    "events:ListTargetsByRule",
                    "states:DescribeStateMachine",
                    "states:ListExecutions",
                    "states:StartExecution",
                ],
            ),
            (
                Action::RestoreObject { bucket: None, key: None, copy_back_when: vec![] },
                &["s3:ListBucketVersions", "s3:DeleteObjectVersion", "s3:GetObject"],
            ),
            (
                Action::RestoreObject {
                    bucket: None,
                    key: None,
                    copy_back_when: vec![crate::policy::CopyBackWhen::Empty],
                },
                &[
                    "s3:ListBucketVersions",
                    "s3:DeleteObjectVersion",
                    "s3:GetObject",
                    "s3:GetObjectVersion",
                    "s3:PutObject",
                ],
            ),
        ];
        for (action, expected) in cases {
            assert_eq!(permissions(&action), expected, "{}", action.name());
        }
    }

    #[test]
    fn only_done_changes_with_a_before_image_are_reversed_newest_first() {
        let outcome = serde_json::json!({"actions": [
            {"action": "raise-timeout", "policy": "p", "target": "arn:aws:lambda:us-east-1:1:function:f", "result": "done", "before": {"timeout": 300, "set_to": 450}},
            {"action": "redrive", "policy": "p", "target": "arn:aws:states:us-east-1:1:execution:m:r", "result": "done"},
            {"action": "enable-rule", "policy": "q", "target": "arn:aws:events:us-east-1:1:rule/thera-pipeline-daily-rule", "result": "done", "before": {"state": "DISABLED"}},
            {"action": "restore-object", "policy": "r", "target": "arn:aws:s3:::b/thera-pipeline/x.json", "result": "refused", "before": {}}
        ]});
        let steps: Vec<RecordedStep> = serde_json::from_value(outcome["actions"].clone()).unwrap();
        let r = reversals(&steps);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].image, BeforeImage::EnableRule);
        assert_eq!(
            r[1].image,
            BeforeImage::Raise(
                raise::Kind::Timeout,
                raise::Before { timeout: Some(300), memory: None, set_to: Some(450) }
            )
        );
    }
}
