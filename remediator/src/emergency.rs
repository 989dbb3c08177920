//! The guide's emergency procedure "Stop Pipeline", as one command that does its steps
//! safely and in order, and can be lifted.
//!
//! Stopping a pipeline by hand is three steps done under stress: disable its rules, stop
//! its running executions, and keep remediator from undoing either (re-enabling a rule
//! is exactly what it does for a disabled one). `emergency-stop` does them in the order
//! that never fights the operator: the pause first (so the rules disabled next are not
//! re-enabled, and the executions stopped are not retried), then the rules, then the
//! executions. What it will change is written to the state table before it changes it,
//! and what it did after, so that `--lift` puts back exactly the rules it disabled (and
//! only those still disabled: a rule someone changed since is left alone), and nothing
//! is half-done without being said: every failure is listed and the command fails.

use serde::{Deserialize, Serialize};

use crate::apply::{Executions, Rules};
use crate::error::AwsError;
use crate::guard::{format_time, GuardStore, Pause, PauseScope};
use crate::summary::{Notifier, Summary};

/// What the pipeline has now, and what a stop would change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Survey {
    /// Enabled rules: the stop disables them.
    pub rules: Vec<String>,
    /// Rules already disabled: left as they are, and not enabled by a lift.
    pub disabled: Vec<String>,
    /// Running executions: the stop stops them.
    pub executions: Vec<String>,
    /// What could not be listed.
    pub failures: Vec<String>,
}

/// Reads the pipeline's rules (by name prefix) and its running executions (of the
/// standard state machines whose name has the prefix; express executions cannot be
/// listed and are named as not stopped). A state machine whose executions cannot be
/// listed is a failure to report, not a reason to stop nothing.
pub async fn survey(rules: &dyn Rules, executions: &dyn Executions, prefix: &str) -> Result<Survey, AwsError> {
    let mut survey = Survey::default();
    for (name, state) in rules.list(prefix).await? {
        if state == "ENABLED" {
            survey.rules.push(name);
        } else {
            survey.disabled.push(name);
        }
    }
    let (running, failures) = running(executions, prefix).await;
    survey.executions = running;
    survey.failures = failures;
    Ok(survey)
}

/// The running executions of the pipeline's state machines, and what could not be listed.
async fn running(executions: &dyn Executions, prefix: &str) -> (Vec<String>, Vec<String>) {
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    match executions.state_machines(prefix).await {
        Ok(machines) => {
            for machine in machines {
                match executions.running(&machine).await {
                    Ok(running) => found.extend(running),
                    Err(e) => failures.push(format!("list the running executions of {machine}: {e}")),
                }
            }
        }
        Err(e) => failures.push(format!("list the state machines {prefix}*: {e}")),
    }
    (found, failures)
}

/// The state table's record of an emergency stop of one pipeline: its before-images (the
/// rules were enabled) and what was done, so that a lift puts back exactly that.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StopRecord {
    pub pk: String,
    pub sk: String,
    pub prefix: String,
    pub reason: String,
    pub by: String,
    pub at: i64,
    pub until: i64,
    /// Rules that were enabled when the stop began (written before any change).
    pub planned_rules: Vec<String>,
    pub rules_disabled: Vec<String>,
    pub executions_stopped: Vec<String>,
    /// What failed, with the error.
    pub failures: Vec<String>,
    pub lifted_at: Option<i64>,
    pub lifted_by: Option<String>,
    /// On lift: rules enabled again, and rules left alone because someone changed them.
    pub rules_enabled: Vec<String>,
    pub rules_left: Vec<String>,
}

impl StopRecord {
    pub fn key(prefix: &str) -> (String, String) {
        (format!("EMERGENCY#{prefix}"), "STOP".to_string())
    }

    /// Not lifted: a lift still puts its rules back, even after its pause expired.
    pub fn not_lifted(&self) -> bool {
        self.at > 0 && self.lifted_at.is_none()
    }

    /// Not lifted and its pause still holds: a new stop adds to it.
    pub fn in_force(&self, now: i64) -> bool {
        self.not_lifted() && self.until > now
    }
}

/// Where stop records are kept (the state table).
#[async_trait::async_trait]
pub trait StopRecords: Send + Sync {
    async fn load(&self, prefix: &str) -> Result<Option<StopRecord>, AwsError>;
    async fn save(&self, record: &StopRecord) -> Result<(), AwsError>;
}

/// What the command needs.
pub struct Emergency<'a> {
    pub rules: &'a dyn Rules,
    pub executions: &'a dyn Executions,
    pub guards: &'a dyn GuardStore,
    pub records: &'a dyn StopRecords,
    pub notifier: &'a dyn Notifier,
}

/// What a lift did.
#[derive(Clone, Debug, Default)]
pub struct Lift {
    /// The stop lifted (or, in a dry run or after a failure, the one that stays).
    pub record: Option<StopRecord>,
    /// What this lift could not do.
    pub failures: Vec<String>,
    /// No stop was recorded, but its pause was there (a stop that died early): ended.
    pub paused_without_record: bool,
}

/// The error and cause a stopped execution's history shows.
pub const STOP_ERROR: &str = "EmergencyStop";

impl Emergency<'_> {
    /// Stops the pipeline: pause, rules, executions, in that order; one summary. The
    /// pause comes first, before anything is even listed, so that nothing the stop does
    /// is undone by remediator. The record is saved before each change it describes and
    /// after it, so a stop that dies half-way is still lifted right. A stop while another
    /// is in force adds to it.
    pub async fn stop(
        &self,
        prefix: &str,
        reason: &str,
        by: &str,
        now: i64,
        until: i64,
    ) -> Result<StopRecord, AwsError> {
        // A longer pause of the pipeline already in force is not shortened.
        let scope = PauseScope::Pipeline(prefix.to_string());
        let held =
            self.guards.load(now, &[]).await?.pauses.into_iter().filter(|p| p.scope == scope).map(|p| p.until).max();
        let until = held.map_or(until, |held| held.max(until));
        let pause = Pause { scope, reason: format!("emergency stop: {reason}"), until, by: by.to_string() };
        self.guards.set_pause(&pause).await?;
        let (pk, sk) = StopRecord::key(prefix);
        let mut record = match self.records.load(prefix).await? {
            Some(r) if r.in_force(now) => r,
            _ => StopRecord { pk, sk, prefix: prefix.to_string(), at: now, ..StopRecord::default() },
        };
        record.reason = reason.to_string();
        record.by = by.to_string();
        record.until = until;
        record.failures.clear();
        self.records.save(&record).await?;
        let (rules, disabled) = match self.rules.list(prefix).await {
            Ok(all) => all.into_iter().partition::<Vec<_>, _>(|(_, state)| state == "ENABLED"),
            Err(e) => {
                record.failures.push(format!("list the rules {prefix}*: {e}"));
                (Vec::new(), Vec::new())
            }
        };
        for (rule, _) in &rules {
            // The before-image first: the rule was enabled.
            if !record.planned_rules.contains(rule) {
                record.planned_rules.push(rule.clone());
                self.records.save(&record).await?;
            }
            match self.rules.disable(rule).await {
                Ok(()) if !record.rules_disabled.contains(rule) => record.rules_disabled.push(rule.clone()),
                Ok(()) => {}
                Err(e) => record.failures.push(format!("disable rule {rule}: {e}")),
            }
        }
        self.records.save(&record).await?;
        // Listed after the rules are disabled: a run a rule started meanwhile is stopped too.
        let (executions, failures) = running(self.executions, prefix).await;
        record.failures.extend(failures);
        let cause = format!("remediator emergency-stop by {by}: {reason}");
        for execution in &executions {
            match self.executions.stop(execution, STOP_ERROR, &cause).await {
                Ok(()) => record.executions_stopped.push(execution.clone()),
                Err(e) => record.failures.push(format!("stop execution {execution}: {e}")),
            }
        }
        self.records.save(&record).await?;
        let subject = format!(
            "[emergency stop] {prefix}*: {} rule(s) disabled, {} execution(s) stopped{}",
            record.rules_disabled.len(),
            record.executions_stopped.len(),
            if record.failures.is_empty() { String::new() } else { format!(", {} NOT DONE", record.failures.len()) }
        );
        let mut body = format!(
            "The pipeline {prefix}* was stopped by {by}: {reason}\n\nremediator is paused for it until {} \
             (remediator emergency-stop --pipeline {prefix} --lift ends it early).\n",
            format_time(until)
        );
        let already: Vec<String> = disabled.into_iter().map(|(name, _)| name).collect();
        list(&mut body, "Rules disabled", &record.rules_disabled);
        list(&mut body, "Rules that were disabled already (a lift leaves them disabled)", &already);
        list(&mut body, "Executions stopped", &record.executions_stopped);
        list(&mut body, "NOT DONE", &record.failures);
        if let Err(e) = self.publish(&subject, &body, "critical").await {
            record.failures.push(format!("send the summary: {e}"));
        }
        Ok(record)
    }

    /// Lifts a stop: every rule it found enabled (its before-images, saved before each
    /// change) that is still disabled is enabled again, then the pause ends. A rule that
    /// could not be enabled keeps the stop in force (lift again). Stopped executions are
    /// not started again (the summary says so). The pause ends even with no record (a
    /// stop that died before saving one).
    pub async fn lift(&self, prefix: &str, by: &str, now: i64, dry_run: bool) -> Result<Lift, AwsError> {
        let scope = PauseScope::Pipeline(prefix.to_string());
        let Some(mut record) = self.records.load(prefix).await?.filter(StopRecord::not_lifted) else {
            let paused = !dry_run && self.guards.clear_pause(&scope).await?;
            return Ok(Lift { record: None, failures: Vec::new(), paused_without_record: paused });
        };
        let (mut enabled, mut left, mut failures) = (Vec::new(), Vec::new(), Vec::new());
        for rule in &record.planned_rules {
            match self.rules.describe(rule).await.map(|r| r.state) {
                Ok(s) if s == "DISABLED" => {
                    if !dry_run {
                        if let Err(e) = self.rules.enable(rule).await {
                            failures.push(format!("enable rule {rule}: {e}"));
                            continue;
                        }
                    }
                    enabled.push(rule.clone());
                }
                Ok(s) => left.push(format!("{rule} ({s} now: changed since the stop)")),
                Err(e) => failures.push(format!("describe rule {rule}: {e}")),
            }
        }
        record.rules_enabled = enabled;
        record.rules_left = left;
        if dry_run {
            return Ok(Lift { record: Some(record), failures, paused_without_record: false });
        }
        if !failures.is_empty() {
            // Still in force: the rules that could not be enabled are enabled by the next lift.
            self.records.save(&record).await?;
            return Ok(Lift { record: Some(record), failures, paused_without_record: false });
        }
        self.guards.clear_pause(&scope).await?;
        record.lifted_at = Some(now);
        record.lifted_by = Some(by.to_string());
        self.records.save(&record).await?;
        let subject =
            format!("[emergency stop lifted] {prefix}*: {} rule(s) enabled again", record.rules_enabled.len());
        let mut body = format!("The emergency stop of {prefix}* ({}) was lifted by {by}.\n", record.reason);
        list(&mut body, "Rules enabled again", &record.rules_enabled);
        list(&mut body, "Rules left as they are", &record.rules_left);
        list(
            &mut body,
            "Executions stopped by the stop (not started again: start them if needed)",
            &record.executions_stopped,
        );
        if let Err(e) = self.publish(&subject, &body, "warning").await {
            failures.push(format!("send the summary: {e}"));
        }
        Ok(Lift { record: Some(record), failures, paused_without_record: false })
    }

    async fn publish(&self, subject: &str, body: &str, severity: &str) -> Result<(), AwsError> {
        let summary = Summary {
            subject: subject.to_string(),
            body: body.to_string(),
            attributes: [("severity".to_string(), severity.to_string()), ("outcome".into(), "emergency-stop".into())]
                .into_iter()
                .collect(),
        };
        self.notifier.publish(&summary).await.map(|_| ())
    }
}

fn list(body: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    body.push_str(&format!("\n{title}:\n"));
    for item in items {
        body.push_str(&format!("  - {item}\n"));
    }
}
