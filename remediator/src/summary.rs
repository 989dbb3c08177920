//! Summaries a person can act on in ten seconds.
//!
//! One message per incident that remediator acted on, refused, or could not handle.
//! The subject says the outcome and the pipeline; the body says what failed, what was
//! done, the outcome, and where to look. Execution input and output never appear; error
//! causes are redacted and truncated.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::apply::{StepOutcome, StepResult};
use crate::error::AwsError;
use crate::event::Signal;
use crate::incident::Incident;
use crate::outcome::Resolution;
use crate::plan::Refusal;
use crate::policy::Policy;
use crate::redact;

/// SNS allows 100 characters in a subject.
const MAX_SUBJECT: usize = 99;
const MAX_CAUSE: usize = 600;

/// A composed summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub subject: String,
    pub body: String,
    /// Message attributes for subscription filters.
    pub attributes: BTreeMap<String, String>,
}

/// Where summaries go.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Publishes and returns the message id.
    async fn publish(&self, summary: &Summary) -> Result<String, AwsError>;
}

/// The facts a summary is made of.
pub struct Facts<'a> {
    pub incident: &'a Incident,
    pub policy: Option<&'a Policy>,
    pub steps: &'a [StepOutcome],
    pub resolution: Resolution,
    pub dry_run: bool,
    /// Anything else a person must know (e.g. a circuit breaker that opened).
    pub note: Option<&'a str>,
    /// For a request for approval: how to answer it.
    pub approval: Option<crate::handle::ApprovalFacts>,
}

/// Composes the summary for an incident.
pub fn compose(f: &Facts) -> Summary {
    let incident = f.incident;
    let d = incident.diagnosis.clone().unwrap_or_default();
    let stack = crate::deployment::StackChange::of(&incident.event);
    let (pipeline, execution, region) = match &incident.event.signal {
        Signal::Execution(c) => {
            (c.execution.state_machine_name().to_string(), Some(c.execution.clone()), c.execution.region().to_string())
        }
        Signal::Alarm(a) => (a.name.clone(), None, incident.event.region.clone().unwrap_or_default()),
        // A failed deployment: the stack.
        Signal::Other if stack.is_some() => (
            stack.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
            None,
            incident.event.region.clone().unwrap_or_default(),
        ),
        // Not a pipeline run: name what the event is about (a rule, an object).
        Signal::Other => (
            f.steps
                .iter()
                .find_map(|s| s.target.as_deref())
                .map(short_name)
                .unwrap_or_else(|| incident.event.source.clone()),
            None,
            incident.event.region.clone().unwrap_or_default(),
        ),
    };
    let headline = headline(f);
    let what = d
        .error
        .clone()
        .or_else(|| d.alarm.as_ref().map(|a| format!("alarm {a}")))
        .or_else(|| incident.event.document.pointer("/detail/eventName").and_then(|v| v.as_str()).map(str::to_string))
        .unwrap_or_else(|| incident.event.detail_type.clone());
    let at = d.state.as_deref().map(|s| format!(" at {s}")).unwrap_or_default();
    let subject = clean_subject(&format!("[{headline}] {pipeline}: {what}{at}"));

    let lead = match f.resolution {
        Resolution::Remediated => "remediator acted on a failure (a final message follows when a retry succeeds)",
        Resolution::WouldRemediate => "DRY RUN: remediator would have acted on a failure (nothing was changed)",
        Resolution::Notified => "remediator reports a failure it must not retry",
        Resolution::Refused => "remediator did NOT act on a failure: a guard stopped it",
        Resolution::Failed => "remediator tried to heal a failure and the remediation itself FAILED",
        Resolution::NoPolicy => "A failure matched no remediation policy: a person must look",
        Resolution::AwaitingApproval => {
            "remediator will act on a failure once a person APPROVES: nothing has been changed yet"
        }
        _ => "remediator handled an event",
    };
    let mut b = format!("{lead}.\n\nWhat failed\n");
    let mut line = |k: &str, v: &str| b.push_str(&format!("  {k:<14} {v}\n"));
    line("Pipeline:", &pipeline);
    if let Some(account) = incident.event.account.as_deref().filter(|a| !a.is_empty()) {
        line("Account:", account);
    }
    if let Some(e) = &execution {
        line("Execution:", e.as_str());
    }
    if let Some(s) = &d.state {
        let within = match (&d.parent_state, &d.branch, d.map_iteration) {
            (Some(p), Some(b), _) => format!(" (branch {b} of {p})"),
            (Some(p), None, Some(i)) => format!(" (iteration {i} of {p})"),
            (None, None, Some(i)) => format!(" (Map iteration {i})"),
            _ => String::new(),
        };
        line("Failed state:", &format!("{s}{within}"));
    }
    if let Some(t) = timeout_line(&d) {
        line("Timeout:", &t);
    }
    if let Some(r) = &d.resource {
        line("Resource:", r);
    }
    line("Error:", d.error.as_deref().unwrap_or("(not reported)"));
    if let Some(c) = &d.cause {
        line("Cause:", &redact::truncate(&redact::text(c).replace(['\n', '\r'], " "), MAX_CAUSE));
    }
    b.push_str("\nWhat remediator did\n");
    let mut line = |k: &str, v: &str| b.push_str(&format!("  {k:<14} {v}\n"));
    match f.policy {
        Some(p) => line(
            "Policy:",
            &match &p.description {
                Some(desc) => format!("{} ({desc})", p.name),
                None => p.name.clone(),
            },
        ),
        None => line("Policy:", "none matched"),
    }
    for s in f.steps {
        let verb = match s.result {
            StepResult::Done => "done",
            StepResult::WouldHave if f.approval.is_some() => "on approval",
            StepResult::WouldHave => "would have",
            StepResult::Refused => "REFUSED",
            StepResult::Skipped => "skipped",
            StepResult::Failed => "FAILED",
        };
        let attempt = s.attempt.as_deref().map(|a| format!(", attempt {a}")).unwrap_or_default();
        line("Action:", &format!("{} [{verb}{attempt}] {}", s.action, redact::text(&s.detail)));
    }
    line("Outcome:", f.resolution.as_str());
    if f.dry_run {
        line("Mode:", "dry run");
    }
    if let Some(note) = f.note {
        line("Note:", &redact::text(note));
    }
    if let Some(a) = &f.approval {
        b.push_str("\nApproval needed\n");
        let mut line = |k: &str, v: &str| b.push_str(&format!("  {k:<14} {v}\n"));
        line("Expires:", &format!("{} (then nothing is done)", crate::guard::format_time(a.expires_at)));
        line("Approvers:", &a.approvers);
        line("Approve:", &format!("remediator approve {}", a.incident));
        line("Reject:", &format!("remediator reject {} --reason \"...\"", a.incident));
        if let Some(link) = &a.link {
            line("Or open:", link);
        }
        b.push_str(
            "  On approval remediator checks everything again (pauses, limits, the targets as they are then).\n",
        );
    }
    if let Some(rb) = f.policy.and_then(|p| p.runbook.as_deref()) {
        b.push_str(&format!("\nRunbook\n  {}\n", rb.trim().replace('\n', "\n  ")));
    }
    if let Some(change) = &stack {
        b.push_str("\nCommands (the guide's Rollback Deployment)\n");
        for command in crate::deployment::commands(change, &region) {
            b.push_str(&format!("  {command}\n"));
        }
    }
    b.push_str("\nLinks\n");
    if let Some(change) = &stack {
        b.push_str(&format!(
            "  https://{region}.console.aws.amazon.com/cloudformation/home?region={region}#/stacks/events?stackId={}\n",
            change.stack_id.replace(':', "%3A").replace('/', "%2F")
        ));
    }
    if let Some(e) = &execution {
        b.push_str(&format!(
            "  https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{}\n",
            e.as_str()
        ));
    }
    b.push_str(&format!("  Incident: {}\n", incident.key));
    if let Some(p) = f.policy {
        b.push_str(&format!(
            "\nTo stop remediator acting on this: remediator pause --policy {} --reason \"...\" --for 2h\n",
            p.name
        ));
    }

    // A policy's `notify {severity}` says how hard its summary hits; otherwise the
    // outcome does.
    let declared = f.policy.and_then(|p| {
        p.actions.iter().find_map(|a| match a {
            crate::policy::Action::Notify { severity } => Some(severity.as_str()),
            _ => None,
        })
    });
    let severity = match (f.resolution, declared) {
        (Resolution::Failed | Resolution::Refused | Resolution::NoPolicy, _) => "critical",
        (_, Some(s)) => s,
        (Resolution::Notified, None) => "warning",
        _ => "info",
    };
    let mut attributes = BTreeMap::new();
    attributes.insert("outcome".to_string(), f.resolution.as_str().to_string());
    if f.dry_run {
        attributes.insert("mode".to_string(), "dry-run".to_string());
    }
    attributes.insert("severity".to_string(), severity.to_string());
    attributes.insert("pipeline".to_string(), pipeline);
    if let Some(p) = f.policy {
        attributes.insert("policy".to_string(), p.name.clone());
    }
    Summary { subject, body: b, attributes }
}

fn headline(f: &Facts) -> String {
    // What was done, in the steps' own short words: `timeout 300s→450s, restarted`.
    let done: Vec<&str> = f
        .steps
        .iter()
        .filter(|s| s.result == StepResult::Done && s.action != "notify")
        .filter_map(|s| s.short.as_deref())
        .collect();
    let paused = f.steps.iter().any(|s| s.result == StepResult::Refused && s.refusal == Some(Refusal::Paused));
    match f.resolution {
        Resolution::Remediated if !done.is_empty() => done.join(", "),
        Resolution::Remediated => "nothing to change".into(),
        Resolution::WouldRemediate => "dry run".into(),
        Resolution::AwaitingApproval => "approval needed".into(),
        Resolution::Notified => "needs attention".into(),
        Resolution::NoPolicy => "unhandled".into(),
        Resolution::Refused if paused => "paused".into(),
        other => other.as_str().into(),
    }
}

/// The final summary of an incident whose retry succeeded.
pub fn healed(run: &Incident, previous: &crate::incident::IncidentKey) -> Summary {
    let (pipeline, execution, region) = match &run.event.signal {
        Signal::Execution(c) => {
            (c.execution.state_machine_name().to_string(), c.execution.to_string(), c.execution.region().to_string())
        }
        _ => (run.event.source.clone(), String::new(), String::new()),
    };
    let subject = match &run.event.signal {
        Signal::Alarm(a) => clean_subject(&format!("[healed] {}: alarm back to OK", a.name)),
        _ => clean_subject(&format!("[healed] {pipeline}: the retry succeeded")),
    };
    let body = format!(
        "What remediator watched has ended well (a retry succeeded, or an alarm is OK again): the incident is closed.\n\n  {:<14} {pipeline}\n  {:<14} {execution}\n  {:<14} {previous}\n\nLinks\n  https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution}\n",
        "Pipeline:", "Retry:", "Incident:"
    );
    let mut attributes = BTreeMap::new();
    attributes.insert("outcome".to_string(), "healed".to_string());
    attributes.insert("severity".to_string(), "info".to_string());
    attributes.insert("pipeline".to_string(), pipeline);
    Summary { subject, body, attributes }
}

/// Storm control: the first summary of a policy, target and outcome in a window goes out
/// at once; later ones of the same kind fold into one digest sent when the window
/// closes. A folded line is deleted only after the digest carrying it was published.
#[async_trait]
pub trait Digests: Send + Sync {
    /// Opens a window for `key` (send now), or folds `line` into the open one.
    async fn open_or_fold(&self, key: &str, window_secs: i64, line: &str, now: i64) -> Result<Fold, AwsError>;
    /// Claims every window due at `now` for `owner` until `lease_until` (so that two
    /// flushers never send one twice), returning each one's key and folded lines.
    async fn claim_due(&self, now: i64, owner: &str, lease_until: i64) -> Result<Vec<(String, Vec<String>)>, AwsError>;
    /// Deletes a window whose digest was published, if `owner` still holds it.
    async fn close(&self, key: &str, owner: &str) -> Result<(), AwsError>;
}

/// What became of a summary in storm control.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fold {
    /// A new window: send this summary now.
    Opened,
    /// Folded into the open window, which closes at this time (Unix seconds).
    Folded { closes_at: i64 },
    /// An earlier window of this key closed and its digest is not sent yet: send this
    /// summary on its own (never overwrite or delay behind an unsent digest).
    Alone,
}

pub use crate::triage::DIGEST_DUE;

/// Whether a summary may wait in a digest: never a critical one, a refusal, a failure
/// or a failure nothing handles. Those go out at once, each on its own.
pub fn may_fold(summary: &Summary) -> bool {
    let attr = |k: &str| summary.attributes.get(k).map(String::as_str);
    attr("severity") != Some("critical")
        && !matches!(attr("outcome"), Some("refused" | "failed" | "no-policy" | "awaiting-approval") | None)
}

/// The digest key of a summary: its policy, what it is about (pipeline or target), its
/// outcome, its severity and whether it is a dry run, so that only summaries that say
/// the same thing fold together.
pub fn digest_key(summary: &Summary) -> String {
    let attr = |k: &str, default: &'static str| {
        summary.attributes.get(k).map(String::as_str).unwrap_or(default).replace('|', "/")
    };
    format!(
        "{}|{}|{}|{}|{}",
        attr("policy", "none"),
        attr("pipeline", "-"),
        attr("outcome", "-"),
        attr("severity", "info"),
        attr("mode", "live")
    )
}

/// The digest of the incidents folded into one window: the outcome and severity of the
/// summaries it carries.
pub fn digest(key: &str, lines: &[String]) -> Summary {
    let mut parts = key.split('|');
    let mut next = |default: &'static str| parts.next().filter(|p| !p.is_empty()).unwrap_or(default).to_string();
    let (policy, pipeline, outcome, severity, mode) = (next("none"), next("-"), next("-"), next("info"), next("live"));
    let dry = if mode == "dry-run" { " (dry run)" } else { "" };
    let tag = if mode == "dry-run" { "digest, dry run" } else { "digest" };
    let subject = clean_subject(&format!("[{tag}] {pipeline}: {} more {outcome} under {policy}", lines.len()));
    let mut body = format!(
        "{} more incident(s) of policy {policy} on {pipeline}, each {outcome}{dry}, arrived while the first one's summary was fresh.\nEach is in the state table (remediator history --policy {policy}).\n\n",
        lines.len()
    );
    for l in lines {
        body.push_str(&format!("  - {}\n", redact::text(l)));
    }
    let mut attributes = BTreeMap::new();
    attributes.insert("outcome".to_string(), outcome);
    attributes.insert("severity".to_string(), severity);
    attributes.insert("policy".to_string(), policy);
    attributes.insert("pipeline".to_string(), pipeline);
    attributes.insert("digest".to_string(), "true".to_string());
    if mode == "dry-run" {
        attributes.insert("mode".to_string(), mode);
    }
    Summary { subject, body, attributes }
}

/// The message for `MessageStructure=json`: text by default (e-mail, SQS), the subject
/// alone for SMS, and the AWS Chatbot custom-notification JSON for chat (HTTPS).
pub fn per_protocol(summary: &Summary) -> serde_json::Value {
    serde_json::json!({
        "default": summary.body,
        "email": format!("{}\n\n{}", summary.subject, summary.body),
        "sms": summary.subject,
        "https": chat(summary).to_string(),
    })
}

/// The custom-notification format AWS Chatbot renders in Slack, Teams and Chime.
pub fn chat(summary: &Summary) -> serde_json::Value {
    // Chat shows the lines that matter: what failed, what was done, the outcome.
    let description: String = summary
        .body
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            ["Pipeline:", "Failed state:", "Error:", "Action:", "Outcome:", "Note:"].iter().any(|k| t.starts_with(k))
        })
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    let next_steps: Vec<String> = summary
        .body
        .lines()
        .filter(|l| l.trim_start().starts_with("https://") || l.contains("remediator pause"))
        .map(|l| l.trim().to_string())
        .collect();
    serde_json::json!({
        "version": "1.0",
        "source": "custom",
        "id": summary.attributes.get("outcome"),
        "content": {
            "textType": "client-markdown",
            "title": summary.subject,
            "description": description,
            "nextSteps": next_steps,
        },
        "metadata": {"enableCustomActions": false, "additionalContext": summary.attributes},
    })
}

/// The short name of an ARN: a rule's or function's name, an object's key.
pub(crate) fn short_name(arn: &str) -> String {
    if let Some((_, key)) = crate::plan::split_object_arn(arn) {
        return key.to_string();
    }
    let tail = arn.rsplit(':').next().unwrap_or(arn);
    tail.rsplit('/').next().unwrap_or(tail).to_string()
}

/// Whose time ran out, with the limit and how long the task ran.
fn timeout_line(d: &crate::diagnose::Diagnosis) -> Option<String> {
    use crate::diagnose::TimeoutKind;
    let ran = d.duration_seconds.map(|r| format!("; it ran {r:.1} s")).unwrap_or_default();
    let limit =
        |what: &str, s: Option<u64>| s.map_or(format!("the state's {what}"), |s| format!("the state's {what} ({s} s)"));
    Some(match d.timeout_kind? {
        TimeoutKind::Function => match d.timed_out_after_seconds {
            Some(n) => format!("the function ran out of its own time (Lambda stopped it after {n:.2} s)"),
            None => format!("the function ran out of its own time{ran}"),
        },
        TimeoutKind::State => format!(
            "{} ran out{ran}; not the function's timeout, so it was not raised",
            limit("TimeoutSeconds", d.state_timeout_seconds)
        ),
        TimeoutKind::Heartbeat => format!(
            "no heartbeat within {}{ran}; not the function's timeout, so it was not raised",
            limit("HeartbeatSeconds", d.heartbeat_seconds)
        ),
        TimeoutKind::Execution => "the execution's TimeoutSeconds ran out".to_string(),
    })
}

/// Subjects: under 100 characters, printable, one line.
pub(crate) fn clean_subject(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    redact::truncate(&redact::text(&one_line), MAX_SUBJECT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Diagnosis;
    use crate::event::Event;

    fn incident() -> Incident {
        let text = r#"{"id":"e","source":"aws.states","detail-type":"Step Functions Execution Status Change","detail":{
            "executionArn":"arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-prod-daily:run-1",
            "status":"FAILED","input":"{\"apollo_api_key\":\"sk-live-SEEDED-SECRET-0001\"}"}}"#;
        let d = Diagnosis {
            state: Some("PullApolloDelta".into()),
            error: Some("HTTPError".into()),
            cause: Some("401 Unauthorized: api_key=sk-live-SEEDED-SECRET-0001 rejected\nline two".into()),
            ..Diagnosis::default()
        };
        Incident::new(Event::parse(text).unwrap(), Some(d))
    }

    #[test]
    fn a_summary_names_the_failure_and_never_carries_input_or_secrets() {
        let i = incident();
        let s = compose(&Facts {
            incident: &i,
            policy: None,
            steps: &[],
            resolution: Resolution::NoPolicy,
            dry_run: false,
            note: None,
            approval: None,
        });
        assert_eq!(s.subject, "[unhandled] thera-pipeline-prod-daily: HTTPError at PullApolloDelta");
        assert!(s.body.contains("Failed state:  PullApolloDelta"), "{}", s.body);
        assert!(s.body.contains("console.aws.amazon.com/states/home?region=us-east-1"));
        assert!(!s.body.contains("SEEDED-SECRET"), "{}", s.body);
        assert!(!s.body.contains("apollo_api_key"), "{}", s.body);
        assert_eq!(s.attributes["severity"], "critical");
    }

    #[test]
    fn each_protocol_gets_its_format_and_chat_gets_the_chatbot_json() {
        let i = incident();
        let s = compose(&Facts {
            incident: &i,
            policy: None,
            steps: &[],
            resolution: Resolution::NoPolicy,
            dry_run: false,
            note: None,
            approval: None,
        });
        let m = per_protocol(&s);
        assert_eq!(m["default"], s.body);
        assert_eq!(m["sms"], s.subject);
        let chat: serde_json::Value = serde_json::from_str(m["https"].as_str().unwrap()).unwrap();
        assert_eq!(chat["version"], "1.0");
        assert_eq!(chat["source"], "custom");
        assert_eq!(chat["content"]["title"], s.subject);
        assert!(chat["content"]["description"].as_str().unwrap().contains("Failed state:  PullApolloDelta"));
        assert!(!m.to_string().contains("SEEDED-SECRET"));
    }

    #[test]
    fn a_state_timeout_in_a_branch_is_reported_with_its_limit_and_duration() {
        let mut i = incident();
        i.diagnosis = Some(Diagnosis {
            state: Some("PullApolloDelta".into()),
            error: Some("States.Timeout".into()),
            parent_state: Some("PullSources".into()),
            branch: Some("PullApolloDelta".into()),
            timeout_kind: Some(crate::diagnose::TimeoutKind::State),
            state_timeout_seconds: Some(60),
            duration_seconds: Some(60.01),
            ..Diagnosis::default()
        });
        let s = compose(&Facts {
            incident: &i,
            policy: None,
            steps: &[],
            resolution: Resolution::Notified,
            dry_run: false,
            note: None,
            approval: None,
        });
        assert!(
            s.body.contains("Failed state:  PullApolloDelta (branch PullApolloDelta of PullSources)"),
            "{}",
            s.body
        );
        assert!(
            s.body.contains(
                "Timeout:       the state's TimeoutSeconds (60 s) ran out; it ran 60.0 s; not the function's"
            ),
            "{}",
            s.body
        );
    }

    #[test]
    fn subjects_are_one_short_line() {
        let long = format!("a\nb{}", "x".repeat(300));
        let s = clean_subject(&long);
        assert!(s.chars().count() < 100);
        assert!(!s.contains('\n'));
    }

    fn summary_with(outcome: &str, severity: &str, dry_run: bool) -> Summary {
        let mut attributes = BTreeMap::new();
        attributes.insert("outcome".to_string(), outcome.to_string());
        attributes.insert("severity".to_string(), severity.to_string());
        attributes.insert("policy".to_string(), "p".to_string());
        attributes.insert("pipeline".to_string(), "thera-pipeline-prod-daily".to_string());
        if dry_run {
            attributes.insert("mode".to_string(), "dry-run".to_string());
        }
        Summary { subject: "s".into(), body: "b".into(), attributes }
    }

    // Issue 9, defect 2: folding is outcome-aware.
    #[test]
    fn only_summaries_that_say_the_same_thing_fold_and_urgent_ones_never_wait() {
        let cases = [
            ("remediated", "info", true),
            ("notified", "warning", true),
            ("would-remediate", "info", true),
            ("refused", "critical", false),
            ("failed", "critical", false),
            ("no-policy", "critical", false),
            ("notified", "critical", false),
            ("refused", "warning", false),
        ];
        for (outcome, severity, folds) in cases {
            assert_eq!(may_fold(&summary_with(outcome, severity, false)), folds, "{outcome} {severity}");
        }
        let live = digest_key(&summary_with("remediated", "info", false));
        assert_ne!(live, digest_key(&summary_with("notified", "info", false)), "outcomes fold apart");
        assert_ne!(live, digest_key(&summary_with("remediated", "warning", false)), "severities fold apart");
        assert_ne!(
            live,
            digest_key(&summary_with("remediated", "info", true)),
            "a dry run never folds with real actions"
        );
        let d = digest(&digest_key(&summary_with("notified", "warning", false)), &["a".into(), "b".into()]);
        assert_eq!(d.attributes["severity"], "warning", "a digest keeps its summaries' severity");
        assert_eq!(d.attributes["outcome"], "notified");
        assert!(d.subject.contains("2 more notified under p"), "{}", d.subject);
    }
}
