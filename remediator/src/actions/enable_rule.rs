//! `enable-rule`: a disabled EventBridge rule enabled again (never one managed by
//! another service), and verified. `undo` disables it again only while it is still
//! enabled as remediator left it.

use crate::apply::{done, failed, refused, Done, Rules, Services, StepResult};
use crate::error::AwsError;

use super::Undone;
use crate::plan::{Refusal, Step};

/// What enabling a rule may call.
pub const PERMISSIONS: &[&str] = &["events:DescribeRule", "events:EnableRule"];

/// Enables a rule only if it is disabled; rules managed by another service are reported.
pub(crate) async fn enable_rule(step: &Step, services: &Services<'_>, arn: &str) -> Done {
    let rules = services.rules;
    let name = arn.rsplit_once("rule/").map_or(arn, |(_, n)| n);
    // Rules on a custom bus: `rule/BUS/NAME`; EnableRule here covers the default bus.
    let info = match rules.describe(name).await {
        Ok(i) => i,
        Err(e) => return failed("DescribeRule", &e),
    };
    if let Some(service) = &info.managed_by {
        return refused(Refusal::NotApplicable, format!("rule {name} is managed by {service}: not touched"));
    }
    if info.state != "DISABLED" {
        return done(StepResult::Done, format!("rule {name} is {}: nothing to do", info.state));
    }
    let before = Some(serde_json::json!({"state": info.state}));
    if step.dry_run {
        return Done { before, ..done(StepResult::WouldHave, format!("would enable rule {name}")) };
    }
    if let Some(stop) = services.preflight(step, arn, before.as_ref()).await {
        return stop;
    }
    if let Err(e) = rules.enable(name).await {
        return failed("EnableRule", &e);
    }
    match rules.describe(name).await {
        Ok(i) if i.state == "ENABLED" => {
            Done { before, short: Some("enabled".into()), ..done(StepResult::Done, format!("enabled rule {name}")) }
        }
        Ok(i) => {
            Done { before, ..done(StepResult::Failed, format!("rule {name} is still {} after EnableRule", i.state)) }
        }
        Err(e) => failed("DescribeRule", &e),
    }
}

/// Disables the rule again, only while it is enabled as remediator left it.
pub async fn undo(arn: &str, rules: &dyn Rules, dry_run: bool) -> Result<Undone, AwsError> {
    let name = arn.rsplit_once("rule/").map_or(arn, |(_, n)| n);
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
