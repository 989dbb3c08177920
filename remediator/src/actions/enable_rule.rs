//! `enable-rule`: a disabled EventBridge rule enabled again (never one managed by
//! another service), and verified; with `catch_up`, the runs its schedule missed while
//! it was disabled are started once each. `undo` disables the rule again only while it
//! is still enabled as remediator left it; a catch-up run, like any run, is not undone.
//!
//! The catch-up run happens only when this handling enabled the rule: the missed fires
//! are the schedule's fires after the rule was disabled (the `DisableRule` call's time;
//! for an event that is not that call, such as an alarm on missing runs, after the
//! target state machine's newest run started) and before remediator enabled it (later
//! fires are EventBridge's own). The newest `catch_up` of them are started, each with the
//! input the rule's target would have received, under a name made from the rule (and
//! the target, when the rule has several) and the fire time, so two handlings racing on
//! one disable start each run once. A rule found enabled already (by a person, or by an
//! interrupted earlier handling) is not caught up: which of its fires ran is not known,
//! and the summary says so. Express state machines are refused (their runs are not
//! unique by name). Each start passes the preflight, so a pause set meanwhile wins and a
//! target outside the allow-list is refused; the enable stays done (and undoable)
//! whatever the catch-up meets, and its subject says `catch-up REFUSED` or `FAILED`.

use crate::apply::{done, failed, refused, Done, Rules, Secret, Services, Start, StepResult};
use crate::error::AwsError;
use crate::event::format_timestamp;
use crate::incident::Incident;
use crate::plan::{disabled_since, Refusal, Step};
use crate::policy::Action;
use crate::rule_input::scheduled_event;
use crate::schedule::{catch_up_name, Schedule};

use super::Undone;

/// What enabling a rule may call.
pub const PERMISSIONS: &[&str] = &["events:DescribeRule", "events:EnableRule"];
/// ... and with `catch_up`: the rule's targets, the state machine's type and runs, and
/// the start.
pub const CATCH_UP_PERMISSIONS: &[&str] = &[
    "events:DescribeRule",
    "events:EnableRule",
    "events:ListTargetsByRule",
    "states:DescribeStateMachine",
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
    // The calls name the rule only: the clients' account must be the target's.
    if let Some(found) = info.arn.as_deref().filter(|found| !same_resource(found, arn)) {
        return refused(Refusal::NotAllowed, format!("the credentials in use reach {found}, not {arn}: not touched"));
    }
    if info.state != "DISABLED" {
        let mut detail = format!("rule {name} is {}: nothing to do", info.state);
        if catch_up > 0 {
            // Whoever enabled it (a person, or an earlier handling of this incident that
            // was interrupted), the fires since are EventBridge's own: a catch-up now
            // could start a run that already happened. A person checks.
            detail.push_str("; no catch-up: the rule was enabled by someone else or an earlier handling, so which fires it missed is not known; check the state machine's runs since it was disabled");
        }
        return done(StepResult::Done, detail);
    }
    let before = Some(serde_json::json!({"state": info.state}));
    if step.dry_run {
        let enabled = Done { before, ..done(StepResult::WouldHave, format!("would enable rule {name}")) };
        return match (catch_up, info.schedule.as_deref()) {
            (0, _) | (_, None) => enabled,
            (n, Some(expression)) => {
                let rule_arn = info.arn.clone().unwrap_or_else(|| arn.to_string());
                let window = CatchUp { rule_arn: &rule_arn, expression, max: n as usize, until: crate::clock::now() };
                window.run(step, incident, services, enabled).await
            }
        };
    }
    if let Some(stop) = services.preflight(step, arn, before.as_ref()).await {
        return stop;
    }
    // The end of the window: fires after this are EventBridge's to deliver.
    let enabled_at = crate::clock::now();
    if let Err(e) = rules.enable(name).await {
        return failed("EnableRule", &e);
    }
    let enabled = match rules.describe(name).await {
        Ok(i) if i.state == "ENABLED" => {
            Done { before, short: Some("enabled".into()), ..done(StepResult::Done, format!("enabled rule {name}")) }
        }
        Ok(i) => {
            return Done {
                before,
                ..done(StepResult::Failed, format!("rule {name} is still {} after EnableRule", i.state))
            }
        }
        Err(e) => return failed("DescribeRule", &e),
    };
    if catch_up == 0 {
        return enabled;
    }
    let Some(expression) = info.schedule.as_deref() else {
        return with_details(enabled, vec![format!("no catch-up: rule {name} has no schedule expression")]);
    };
    let rule_arn = info.arn.clone().unwrap_or_else(|| arn.to_string());
    let window = CatchUp { rule_arn: &rule_arn, expression, max: catch_up as usize, until: enabled_at };
    window.run(step, incident, services, enabled).await
}

/// The catch-up of one rule: its schedule, how many runs at most, and the end of the
/// interval it was disabled (when remediator enabled it).
struct CatchUp<'a> {
    rule_arn: &'a str,
    expression: &'a str,
    max: usize,
    until: i64,
}

/// How the catch-up went, for the summary's subject.
#[derive(PartialEq, PartialOrd)]
enum Went {
    Nothing,
    Started,
    Refused,
    Failed,
}

impl CatchUp<'_> {
    /// Starts the newest missed runs of the rule's state-machine targets. The enable
    /// stays done whatever happens here (its before-image is what `undo` needs); a run
    /// that could not be started is named in the detail and the subject, never retried
    /// by a redelivery (which finds the rule enabled and does not guess again).
    async fn run(&self, step: &Step, incident: &Incident, services: &Services<'_>, enabled: Done) -> Done {
        let name = rule_name(self.rule_arn);
        let mut notes: Vec<String> = Vec::new();
        let mut went = Went::Nothing;
        let schedule = match Schedule::parse(self.expression, None) {
            Ok(s) => s,
            Err(e) => return with_details(enabled, vec![format!("no catch-up: {e}")]),
        };
        let targets = match services.rules.targets(name).await {
            Ok(t) => t,
            Err(e) => return finish(enabled, vec![failed("ListTargetsByRule (catch-up)", &e).detail], Went::Failed),
        };
        let (machines, others): (Vec<_>, Vec<_>) = targets.into_iter().partition(|t| t.arn.contains(":stateMachine:"));
        notes.extend(others.iter().map(|t| format!("target {} is not a state machine: not caught up", t.arn)));
        if machines.is_empty() {
            notes.push(format!("no catch-up: rule {name} starts no state machine"));
        }
        // The DisableRule call's own time, when the event is that call for this rule.
        let called_for_this_rule =
            incident.event.document.pointer("/detail/requestParameters/name") == Some(&serde_json::Value::from(name));
        let disabled_at = disabled_since(incident).filter(|_| called_for_this_rule);
        let several = machines.len() > 1;
        for target in &machines {
            let since = match disabled_at {
                Some(t) => Some(t),
                // Not the DisableRule call (an alarm on missing runs): from the newest run.
                None => match services.executions.latest_start(&target.arn).await {
                    Ok(latest) => latest,
                    Err(e) => {
                        notes.push(failed("ListExecutions (catch-up)", &e).detail);
                        went = went.max_with(Went::Failed);
                        continue;
                    }
                },
            };
            let Some(since) = since else {
                notes.push(format!(
                    "no catch-up for {}: when rule {name} stopped is not known (the event is not its DisableRule call, and the state machine has no runs)",
                    target.arn
                ));
                continue;
            };
            let fires = schedule.fires_between(since, self.until, self.max);
            if fires.is_empty() {
                notes.push(format!(
                    "no catch-up for {}: no fire of {} missed between {} and {}",
                    target.arn,
                    self.expression,
                    format_timestamp(since),
                    format_timestamp(self.until)
                ));
                continue;
            }
            match services.executions.is_express(&target.arn).await {
                Ok(false) => {}
                Ok(true) => {
                    notes.push(format!(
                        "no catch-up for {}: an Express state machine does not make runs unique by name, so a run could start twice",
                        target.arn
                    ));
                    went = went.max_with(Went::Refused);
                    continue;
                }
                Err(e) => {
                    notes.push(failed("DescribeStateMachine (catch-up)", &e).detail);
                    went = went.max_with(Went::Failed);
                    continue;
                }
            }
            // Two targets of one rule may start the same state machine: the target's id
            // keeps their runs apart.
            let label = if several { format!("{name}-{}", target.id) } else { name.to_string() };
            for at in fires {
                let run = catch_up_name(&label, at);
                let when = format_timestamp(at);
                let input = match target.input.render(&scheduled_event(self.rule_arn, at), self.rule_arn) {
                    Ok(i) if serde_json::from_str::<serde_json::Value>(&i).is_ok() => Secret(i),
                    Ok(_) => {
                        notes.push(format!(
                            "catch-up {run} of {} not started: the target's input is not JSON, which Step Functions requires",
                            target.arn
                        ));
                        went = went.max_with(Went::Failed);
                        continue;
                    }
                    Err(e) => {
                        notes.push(format!("catch-up {run} of {} not started: {e}", target.arn));
                        went = went.max_with(Went::Failed);
                        continue;
                    }
                };
                if step.dry_run {
                    notes.push(format!("would start catch-up run {run} of {} for the {when} fire", target.arn));
                    continue;
                }
                if let Some(stop) = services.preflight(step, &target.arn, None).await {
                    notes.push(format!("catch-up {run} REFUSED: {}", stop.detail));
                    went = went.max_with(if stop.result == StepResult::Refused { Went::Refused } else { Went::Failed });
                    continue;
                }
                match services.executions.start(&target.arn, &run, &input).await {
                    Ok(Start::Started(arn)) => {
                        notes.push(format!("started catch-up run {arn} for the {when} fire"));
                        went = went.max_with(Went::Started);
                    }
                    Ok(Start::AlreadyStarted(arn)) => {
                        notes.push(format!("catch-up run {arn} for the {when} fire was started already"));
                    }
                    Err(e) => {
                        notes.push(format!("catch-up {run}: {}", failed("StartExecution", &e).detail));
                        went = went.max_with(Went::Failed);
                    }
                }
            }
        }
        finish(enabled, notes, went)
    }
}

impl Went {
    fn max_with(self, other: Went) -> Went {
        if other > self {
            other
        } else {
            self
        }
    }
}

/// The enable's outcome with the catch-up's notes, and the catch-up in its subject.
fn finish(enabled: Done, notes: Vec<String>, went: Went) -> Done {
    let mut done = with_details(enabled, notes);
    let word = match went {
        Went::Nothing => None,
        Went::Started => Some("caught up"),
        Went::Refused => Some("catch-up REFUSED"),
        Went::Failed => Some("catch-up FAILED"),
    };
    if let Some(word) = word {
        done.short = Some(match done.short.take() {
            Some(s) => format!("{s}, {word}"),
            None => word.to_string(),
        });
    }
    done
}

/// Whether two ARNs name the same resource: service, region, account and resource equal
/// (the partition is left out: targets are written `arn:aws:`, a GovCloud or China
/// rule says `arn:aws-us-gov:` or `arn:aws-cn:`). A bare name (a policy's `rule:`)
/// names no account to compare.
fn same_resource(found: &str, target: &str) -> bool {
    if !target.starts_with("arn:") {
        return true;
    }
    let fields = |arn: &str| {
        let mut f: Vec<String> = arn.splitn(6, ':').map(str::to_string).collect();
        if f.len() > 1 {
            f.remove(1);
        }
        f
    };
    fields(found) == fields(target)
}

fn rule_name(arn: &str) -> &str {
    arn.rsplit_once("rule/").map_or(arn, |(_, n)| n)
}

fn with_details(mut done: Done, notes: Vec<String>) -> Done {
    for note in notes {
        done.detail.push_str("; ");
        done.detail.push_str(&note);
    }
    done
}

/// Disables the rule again, only while it is enabled as remediator left it.
pub async fn undo(arn: &str, rules: &dyn Rules, dry_run: bool) -> Result<Undone, AwsError> {
    let name = rule_name(arn);
    let info = rules.describe(name).await?;
    if let Some(found) = info.arn.as_deref().filter(|found| !same_resource(found, arn)) {
        return Ok(Undone::Refused(format!("the credentials in use reach {found}, not {arn}: left alone")));
    }
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

#[cfg(test)]
mod tests {
    use super::same_resource;

    #[test]
    fn the_rule_found_must_be_the_target_whatever_the_partition() {
        let target = "arn:aws:events:us-gov-west-1:123456789012:rule/thera-pipeline-daily-rule";
        assert!(same_resource(
            "arn:aws-us-gov:events:us-gov-west-1:123456789012:rule/thera-pipeline-daily-rule",
            target
        ));
        assert!(!same_resource("arn:aws:events:us-gov-west-1:111122223333:rule/thera-pipeline-daily-rule", target));
        assert!(same_resource("arn:aws:events:us-east-1:1:rule/x", "x"), "a bare name names no account");
    }
}
