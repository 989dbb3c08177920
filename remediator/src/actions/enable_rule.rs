//! `enable-rule`: a disabled EventBridge rule enabled again (never one managed by
//! another service), and verified; with `catch_up`, the runs its schedule missed while
//! it was disabled are started once each. `undo` disables the rule again only while it
//! is still enabled as remediator left it; a catch-up run, like any run, is not undone.
//!
//! The catch-up run: the missed fires are the schedule's fires after the rule was
//! disabled (the `DisableRule` call's time; for an event that is not that call, such as
//! an alarm on missing runs, after the target state machine's newest run started) up to
//! now; the newest `catch_up` of them are started, each with the input the rule's target
//! would have received and under a name made from the rule and the fire time, so a
//! redelivered or taken-over incident, or the rule disabled again, finds it started and
//! never starts it twice. A run started by hand in the meantime is not recognised (its
//! name is not ours): the summary lists the run remediator started. Each
//! start passes the preflight, so a pause set meanwhile wins and a target outside the
//! allow-list is refused.

use crate::apply::{done, failed, refused, Done, Rules, Secret, Services, Start, StepResult};
use crate::error::AwsError;
use crate::incident::Incident;
use crate::plan::{disabled_since, Refusal, Step};
use crate::policy::Action;
use crate::rule_input::scheduled_event;
use crate::schedule::{catch_up_name, Schedule};

use super::Undone;

/// What enabling a rule may call.
pub const PERMISSIONS: &[&str] = &["events:DescribeRule", "events:EnableRule"];
/// ... and with `catch_up`: the rule's targets, the state machine's runs, and the start.
pub const CATCH_UP_PERMISSIONS: &[&str] = &[
    "events:DescribeRule",
    "events:EnableRule",
    "events:ListTargetsByRule",
    "states:ListExecutions",
    "states:StartExecution",
];

/// Enables a rule only if it is disabled; rules managed by another service are reported.
pub(crate) async fn enable_rule(step: &Step, incident: &Incident, services: &Services<'_>, arn: &str) -> Done {
    let rules = services.rules;
    let name = rule_name(arn);
    let catch_up = match step.action {
        Action::EnableRule { catch_up, .. } => catch_up,
        _ => 0,
    };
    // Rules on a custom bus: `rule/BUS/NAME`; EnableRule here covers the default bus.
    let info = match rules.describe(name).await {
        Ok(i) => i,
        Err(e) => return failed("DescribeRule", &e),
    };
    if let Some(service) = &info.managed_by {
        return refused(Refusal::NotApplicable, format!("rule {name} is managed by {service}: not touched"));
    }
    let enabled = if info.state != "DISABLED" {
        done(StepResult::Done, format!("rule {name} is {}: nothing to do", info.state))
    } else {
        let before = Some(serde_json::json!({"state": info.state}));
        if step.dry_run {
            Done { before, ..done(StepResult::WouldHave, format!("would enable rule {name}")) }
        } else if let Some(stop) = services.preflight(step, arn, before.as_ref()).await {
            return stop;
        } else if let Err(e) = rules.enable(name).await {
            return failed("EnableRule", &e);
        } else {
            match rules.describe(name).await {
                Ok(i) if i.state == "ENABLED" => Done {
                    before,
                    short: Some("enabled".into()),
                    ..done(StepResult::Done, format!("enabled rule {name}"))
                },
                Ok(i) => {
                    return Done {
                        before,
                        ..done(StepResult::Failed, format!("rule {name} is still {} after EnableRule", i.state))
                    }
                }
                Err(e) => return failed("DescribeRule", &e),
            }
        }
    };
    if catch_up == 0 {
        return enabled;
    }
    let Some(expression) = info.schedule.as_deref() else {
        return with_detail(enabled, format!("no catch-up: rule {name} has no schedule expression"));
    };
    let rule_arn = info.arn.clone().unwrap_or_else(|| arn.to_string());
    catch_up_runs(step, incident, services, &rule_arn, expression, catch_up as usize, enabled).await
}

/// Starts the newest `max` missed runs of the rule's state-machine targets.
async fn catch_up_runs(
    step: &Step,
    incident: &Incident,
    services: &Services<'_>,
    rule_arn: &str,
    expression: &str,
    max: usize,
    enabled: Done,
) -> Done {
    let name = rule_name(rule_arn);
    let schedule = match Schedule::parse(expression, None) {
        Ok(s) => s,
        Err(e) => return with_detail(enabled, format!("no catch-up: {e}")),
    };
    let targets = match services.rules.targets(name).await {
        Ok(t) => t,
        Err(e) => return fail_after(enabled, "ListTargetsByRule", &e),
    };
    let (machines, others): (Vec<_>, Vec<_>) = targets.into_iter().partition(|t| t.arn.contains(":stateMachine:"));
    let mut notes: Vec<String> =
        others.iter().map(|t| format!("target {} is not a state machine: not caught up", t.arn)).collect();
    if machines.is_empty() {
        notes.push(format!("no catch-up: rule {name} starts no state machine"));
    }
    let now = crate::clock::now();
    let mut result = enabled;
    for target in machines {
        // The interval the rule was disabled: from its DisableRule call when the event is
        // that call; otherwise (an alarm on missing runs) from the state machine's newest run.
        let since = match disabled_since(incident) {
            Some(t) => Some(t),
            None => match services.executions.latest_start(&target.arn).await {
                Ok(latest) => latest,
                Err(e) => return fail_after(with_details(result, notes), "ListExecutions", &e),
            },
        };
        let Some(since) = since else {
            notes.push(format!(
                "no catch-up for {}: when rule {name} stopped is not known (the event is not its DisableRule call, and the state machine has no runs)",
                target.arn
            ));
            continue;
        };
        let fires = schedule.fires_between(since, now, max);
        if fires.is_empty() {
            notes.push(format!(
                "no catch-up for {}: no fire of {expression} missed since {}",
                target.arn,
                crate::event::format_timestamp(since)
            ));
            continue;
        }
        for at in fires {
            let run = catch_up_name(name, at);
            let when = crate::event::format_timestamp(at);
            let input = match target.input.render(&scheduled_event(rule_arn, at), rule_arn) {
                Ok(i) => Secret(i),
                Err(e) => {
                    notes.push(format!("catch-up {run} of {} not started: {e}", target.arn));
                    result.result = StepResult::Failed;
                    continue;
                }
            };
            if step.dry_run {
                notes.push(format!("would start catch-up run {run} of {} for the {when} fire", target.arn));
                continue;
            }
            if let Some(stop) = services.preflight(step, &target.arn, None).await {
                notes.push(format!("catch-up {run} not started: {}", stop.detail));
                continue;
            }
            match services.executions.start(&target.arn, &run, &input).await {
                Ok(Start::Started(arn)) => notes.push(format!("started catch-up run {arn} for the {when} fire")),
                Ok(Start::AlreadyStarted(arn)) => {
                    notes.push(format!("catch-up run {arn} for the {when} fire was started already"))
                }
                Err(e) => return fail_after(with_details(result, notes), "StartExecution (catch-up)", &e),
            }
        }
    }
    if result.result == StepResult::Done && notes.iter().any(|n| n.starts_with("started catch-up")) {
        result.short = Some(match result.short.take() {
            Some(s) => format!("{s}, caught up"),
            None => "caught up".into(),
        });
    }
    with_details(result, notes)
}

fn rule_name(arn: &str) -> &str {
    arn.rsplit_once("rule/").map_or(arn, |(_, n)| n)
}

fn with_detail(done: Done, note: String) -> Done {
    with_details(done, vec![note])
}

fn with_details(mut done: Done, notes: Vec<String>) -> Done {
    for note in notes {
        done.detail.push_str("; ");
        done.detail.push_str(&note);
    }
    done
}

/// The rule was enabled (or found enabled), then a catch-up call failed: the step failed
/// with that call's error (so a retryable one brings the event back, and the deterministic
/// names keep the runs already started from starting twice), the before-image kept.
fn fail_after(enabled: Done, what: &str, e: &AwsError) -> Done {
    let f = failed(what, e);
    Done { before: enabled.before, detail: format!("{}; {}", enabled.detail, f.detail), ..f }
}

/// Disables the rule again, only while it is enabled as remediator left it.
pub async fn undo(arn: &str, rules: &dyn Rules, dry_run: bool) -> Result<Undone, AwsError> {
    let name = rule_name(arn);
    let info = rules.describe(name).await?;
    if info.state == "DISABLED" {
        return Ok(Undone::Already(format!("rule {name} is disabled already")));
    }
    if info.state != "ENABLED" {
        return Ok(Undone::Refused(format!("rule {name} is {}: left alone", info.state)));
    }
    let description = format!("disable rule {name} again");
    if dry_run {
        return Ok(Undone::WouldHave(description));
    }
    rules.disable(name).await?;
    Ok(Undone::Done(description))
}
