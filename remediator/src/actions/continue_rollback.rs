//! `continue-rollback`: a pipeline stack stuck in `UPDATE_ROLLBACK_FAILED` has its
//! rollback continued (`ContinueUpdateRollback`), the guide's "Rollback Deployment"
//! done for a person who opted in with a policy. The shipped policies only report.
//!
//! Only a stack in `UPDATE_ROLLBACK_FAILED` is touched, and only one with a service role:
//! CloudFormation rolls back with the caller's credentials when the stack has none, and
//! remediator's role is deliberately too narrow for that (a rollback half-done by a
//! role that cannot finish it is worse than the stuck stack). The result is checked:
//! the stack must have left `UPDATE_ROLLBACK_FAILED`.
//!
//! No undo: a rollback, like a run, cannot be taken back; its before-image (the status
//! it was in) is recorded for the history.

use crate::apply::{done, failed, refused, Done, Services, StepResult};
use crate::plan::{Refusal, Step};

/// What continuing a rollback may call.
pub const PERMISSIONS: &[&str] = &["cloudformation:DescribeStacks", "cloudformation:ContinueUpdateRollback"];

pub(crate) async fn continue_rollback(step: &Step, services: &Services<'_>, stack_id: &str) -> Done {
    let name = crate::deployment::stack_name(stack_id).unwrap_or(stack_id);
    let info = match services.stacks.describe(stack_id).await {
        Ok(Some(i)) => i,
        Ok(None) => return refused(Refusal::NotApplicable, format!("stack {name} does not exist")),
        Err(e) => return failed("DescribeStacks", &e),
    };
    // Continued already (by an earlier delivery or handling of this incident, or a
    // person): nothing left to do here.
    if matches!(info.status.as_str(), "UPDATE_ROLLBACK_IN_PROGRESS" | "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS") {
        return done(
            StepResult::Done,
            format!("stack {name} is {}: its rollback is under way, nothing to do", info.status),
        );
    }
    if info.status != "UPDATE_ROLLBACK_FAILED" {
        return refused(
            Refusal::NotApplicable,
            format!("stack {name} is {}, not UPDATE_ROLLBACK_FAILED: no rollback to continue", info.status),
        );
    }
    if info.role_arn.is_none() {
        return refused(
            Refusal::NotApplicable,
            format!(
                "stack {name} has no service role: its rollback would run with remediator's own narrow permissions; a person continues it"
            ),
        );
    }
    let before = Some(serde_json::json!({"status": info.status}));
    if step.dry_run {
        return Done { before, ..done(StepResult::WouldHave, format!("would continue the rollback of stack {name}")) };
    }
    if let Some(stop) = services.preflight(step, stack_id, before.as_ref()).await {
        return stop;
    }
    if let Err(e) = services.stacks.continue_rollback(stack_id).await {
        return failed("ContinueUpdateRollback", &e);
    }
    match services.stacks.describe(stack_id).await {
        Ok(Some(i)) if i.status != "UPDATE_ROLLBACK_FAILED" => Done {
            before,
            short: Some("rollback continued".into()),
            ..done(StepResult::Done, format!("continued the rollback of stack {name}: it is {}", i.status))
        },
        Ok(i) => Done {
            before,
            ..done(
                StepResult::Failed,
                format!(
                    "stack {name} is still {} after ContinueUpdateRollback",
                    i.map_or_else(|| "missing".to_string(), |i| i.status)
                ),
            )
        },
        Err(e) => failed("DescribeStacks", &e),
    }
}
