//! Policies: the YAML files in `policies/` that say what remediator may do.
//!
//! Policies change by pull request, so loading them is a compiler front end: every file
//! under the directory is read, every problem (unknown key, bad duration, unknown action
//! or parameter, invalid pattern, duplicate name) is reported with `file:line:column`,
//! the policy's name and a hint, and all of them at once. A policy set that loads is
//! fully checked: nothing later can fail on its shape.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::action::ActionDoc;
use crate::de::{self, optional, required, Bounded, Checked, Dur, Name, NonEmpty, Positive, Problem, Sink};
use crate::pattern::Pattern;
use crate::yaml::{self, key_text, Mark, Node, Value};

/// One problem in a policy file.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyError {
    pub file: String,
    pub mark: Mark,
    pub policy: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.mark)?;
        if let Some(p) = &self.policy {
            write!(f, "policy `{p}`: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// Every problem found while loading a policy set.
#[derive(Debug, thiserror::Error)]
#[error("{} error(s) in policies:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct PolicyErrors(pub Vec<PolicyError>);

// Messages name it "notify setting" (its serde name).
/// When a summary is sent for a policy's incidents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize, JsonSchema)]
#[serde(rename = "notify setting", rename_all = "kebab-case")]
#[schemars(rename = "NotifyWhen")]
pub enum NotifyWhen {
    Always,
    OnAction,
    OnFailure,
    Never,
}

pub use crate::action::raise::{
    LAMBDA_MEMORY_MAX_MB, LAMBDA_MEMORY_MIN_MB, LAMBDA_TIMEOUT_MAX_SECONDS, LAMBDA_TIMEOUT_MIN_SECONDS,
};
pub use crate::action::{action_names, Action, CopyBackWhen, Severity};
pub use crate::de::{FACTOR_ABOVE, FACTOR_MAX, NAME_MAX_LEN};
pub use crate::duration::{format_duration, parse_duration, MAX_DURATION};

/// `priority`: lowest and highest.
pub const PRIORITY_MIN: i64 = -1_000_000;
pub const PRIORITY_MAX: i64 = 1_000_000;
/// `limits.max_attempts`: fewest and most.
pub const MAX_ATTEMPTS_MIN: i64 = 1;
pub const MAX_ATTEMPTS_MAX: i64 = 100;

/// Attempt limits of a policy, per target.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_attempts: u32,
    pub window: Duration,
    pub cooldown: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_attempts: 3, window: Duration::from_secs(24 * 3600), cooldown: Duration::ZERO }
    }
}

/// Where a policy was defined.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    pub file: String,
    pub mark: Mark,
    pub index: usize,
}

/// One loaded, fully checked policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub name: String,
    pub description: Option<String>,
    pub priority: i64,
    pub pattern: Pattern,
    /// The pattern as written, for `remediator rules`.
    pub pattern_json: serde_json::Value,
    pub actions: Vec<Action>,
    pub limits: Limits,
    pub notify: NotifyWhen,
    pub dry_run: bool,
    pub runbook: Option<String>,
    pub continue_: bool,
    /// A person approves each change before it is made (`None`: remediator acts alone).
    pub approval: Option<crate::approval::Approval>,
    pub origin: Origin,
}

/// Default priority of a policy that names none: after every explicit priority below it.
pub const DEFAULT_PRIORITY: i64 = 1000;

/// The policies of a directory, ordered by priority, then file, then position.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// Loads a policy file or a directory of them (recursively; `cases/` folders hold
    /// test cases and are skipped).
    pub fn load(path: &Path) -> Result<PolicySet, PolicyErrors> {
        let files = policy_files(path).map_err(|e| {
            PolicyErrors(vec![PolicyError {
                file: path.display().to_string(),
                mark: Mark::default(),
                policy: None,
                message: format!("cannot read policies: {e}"),
                hint: None,
            }])
        })?;
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => sources.push((file.display().to_string(), text)),
                Err(e) => errors.push(PolicyError {
                    file: file.display().to_string(),
                    mark: Mark::default(),
                    policy: None,
                    message: format!("cannot read file: {e}"),
                    hint: None,
                }),
            }
        }
        match PolicySet::from_sources(&sources) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(PolicyErrors(errors)),
            Err(PolicyErrors(more)) => {
                errors.extend(more);
                Err(PolicyErrors(errors))
            }
        }
    }

    /// Loads policies from (file name, text) pairs.
    pub fn from_sources(sources: &[(String, String)]) -> Result<PolicySet, PolicyErrors> {
        let mut errors = Vec::new();
        let mut policies = Vec::new();
        for (file, text) in sources {
            parse_file(file, text, &mut policies, &mut errors);
        }
        for (i, p) in policies.iter().enumerate() {
            if let Some(first) = policies[..i].iter().find(|q| q.name == p.name) {
                errors.push(PolicyError {
                    file: p.origin.file.clone(),
                    mark: p.origin.mark,
                    policy: Some(p.name.clone()),
                    message: format!(
                        "duplicate policy name: also defined at {}:{}",
                        first.origin.file, first.origin.mark
                    ),
                    hint: Some("names are unique across the policy directory".into()),
                });
            }
        }
        if policies.is_empty() && errors.is_empty() {
            errors.push(PolicyError {
                file: sources.first().map(|s| s.0.clone()).unwrap_or_else(|| "<policies>".into()),
                mark: Mark::default(),
                policy: None,
                message: "no policies found".into(),
                hint: Some("policy files are *.yaml or *.yml with a top-level `policies:` list".into()),
            });
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| (&a.file, a.mark).cmp(&(&b.file, b.mark)));
            return Err(PolicyErrors(errors));
        }
        policies.sort_by(|a, b| {
            (a.priority, &a.origin.file, a.origin.index).cmp(&(b.priority, &b.origin.file, b.origin.index))
        });
        Ok(PolicySet { policies })
    }
}

/// Policy files under `path`, sorted; a file path is returned as is.
pub fn policy_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    walk(path, &mut out, false)?;
    out.sort();
    Ok(out)
}

/// Case files: YAML files under `cases/` folders.
pub fn case_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(path, &mut out, true)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, cases: bool) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let in_cases = path.components().any(|c| c.as_os_str() == "cases");
        if path.is_dir() {
            walk(&path, out, cases)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) && in_cases == cases {
            out.push(path);
        }
    }
    Ok(())
}

// The loader deserializes policy files into these types with `crate::de`, and
// `remediator schema` derives `policies/schema.json` from them: one description.

// The loader reads a file's items as `P = IgnoredAny`, then each policy on its own, so
// that every error is attributed to the policy it was found in, even through a YAML
// alias; the schema is `PolicyFile<PolicyDoc>`.
/// A policy file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "remediator policy file", rename = "PolicyFile")]
pub(crate) struct PolicyFile<P> {
    /// The policies of this file, evaluated by priority across the directory.
    #[allow(dead_code)] // deserialized for its errors; the loader reads the items one by one
    policies: Checked<NonEmpty<P>>,
}

// Messages name it "a policy" (its serde name).
/// One policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename = "policy", deny_unknown_fields)]
#[schemars(rename = "PolicyDoc")]
pub(crate) struct PolicyDoc {
    /// Unique across the policy directory.
    name: Checked<Name>,
    description: Option<Checked<String>>,
    /// Lower first; default 1000; ties by file path, then list order.
    priority: Option<Checked<Bounded<PRIORITY_MIN, PRIORITY_MAX>>>,
    /// An EventBridge event pattern, matched against the event plus `diagnosis`.
    #[serde(rename = "match")]
    pattern: Checked<serde_json::Map<String, serde_json::Value>>,
    /// Ordered steps; each a name or a one-key mapping of name to parameters.
    actions: Checked<NonEmpty<Checked<ActionDoc>>>,
    limits: Option<Checked<LimitsDoc>>,
    /// When a summary is sent (default on-action).
    notify: Option<Checked<NotifyWhen>>,
    dry_run: Option<Checked<bool>>,
    /// Shown in summaries: what a person should check.
    runbook: Option<Checked<String>>,
    /// true: later matching policies apply too.
    #[serde(rename = "continue")]
    continue_: Option<Checked<bool>>,
    /// A person approves each change before it is made; unanswered by `expires`, nothing is done.
    approval: Option<Checked<crate::approval::ApprovalDoc>>,
}

/// Attempt limits, per policy and target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsDoc {
    /// Attempts per policy and target within `window` (default 3).
    max_attempts: Option<Checked<Bounded<MAX_ATTEMPTS_MIN, MAX_ATTEMPTS_MAX>>>,
    /// Default 24h.
    window: Option<Checked<Positive>>,
    /// Default 0s.
    cooldown: Option<Checked<Dur>>,
}

impl LimitsDoc {
    fn into_limits(self) -> Option<Limits> {
        let default = Limits::default();
        Some(Limits {
            max_attempts: optional(self.max_attempts, default.max_attempts, |b| b.0 as u32)?,
            window: optional(self.window, default.window, |d| d.0)?,
            cooldown: optional(self.cooldown, default.cooldown, |d| d.0)?,
        })
    }
}

impl PolicyDoc {
    /// The checked policy; `None` if anything failed (every error is in the sink).
    fn into_policy(self, node: &Node, origin: Origin, sink: &mut Vec<Problem>) -> Option<Policy> {
        // The pattern compiler reads the positioned node itself, for its own positions.
        let pattern_json = serde_json::Value::Object(self.pattern.0?);
        let match_node = match &node.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| key_text(k) == "match").map(|(_, v)| v),
            _ => None,
        }?;
        let pattern = match Pattern::compile(match_node) {
            Ok(p) => Some(p),
            Err(errors) => {
                for e in errors {
                    let at = if e.path.is_empty() { String::new() } else { format!(" at `{}`", e.path) };
                    sink.push(Problem {
                        mark: e.mark,
                        message: format!("invalid pattern{at}: {}", e.message),
                        hint: e.hint,
                    });
                }
                None
            }
        };
        let actions: Option<Vec<Action>> =
            required(self.actions)?.0.into_iter().map(|a| required(a).and_then(ActionDoc::into_action)).collect();
        Some(Policy {
            name: required(self.name)?.0,
            description: optional(self.description, None, Some)?,
            priority: optional(self.priority, DEFAULT_PRIORITY, |b| b.0)?,
            pattern: pattern?,
            pattern_json,
            actions: actions?,
            limits: optional(self.limits, Some(Limits::default()), LimitsDoc::into_limits)??,
            notify: optional(self.notify, NotifyWhen::OnAction, |n| n)?,
            dry_run: optional(self.dry_run, false, |b| b)?,
            runbook: optional(self.runbook, None, Some)?,
            continue_: optional(self.continue_, false, |b| b)?,
            approval: optional(self.approval, Some(None), |a| a.into_approval().map(Some))??,
            origin,
        })
    }
}

fn parse_file(file: &str, text: &str, out: &mut Vec<Policy>, errors: &mut Vec<PolicyError>) {
    let error = |mark: Mark, policy: Option<String>, message: String, hint: Option<String>| PolicyError {
        file: file.to_string(),
        mark,
        policy,
        message,
        hint,
    };
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            errors.push(error(e.mark, None, format!("YAML syntax error: {}", e.message), None));
            return;
        }
    };
    if root.value == Value::Null {
        let hint = Some("policy files are *.yaml or *.yml with a top-level `policies:` list".to_string());
        errors.push(error(root.mark, None, "a policy file needs a top-level `policies:` list".into(), hint));
        return;
    }
    // The file's shape first (its items skipped), then each policy on its own sink.
    let sink = Sink::default();
    let _: Option<PolicyFile<serde::de::IgnoredAny>> = de::from_node(&root, "a policy file", &sink);
    let mut problems: Vec<(Option<String>, Problem)> = sink.into_problems().into_iter().map(|p| (None, p)).collect();
    let items: &[Node] = match &root.value {
        Value::Map(entries) => match entries.iter().find(|(k, _)| key_text(k) == "policies") {
            Some((_, Node { value: Value::Seq(items), .. })) => items,
            _ => &[],
        },
        _ => &[],
    };
    for (index, node) in items.iter().enumerate() {
        let name = match &node.value {
            Value::Map(entries) => {
                entries.iter().find(|(k, _)| key_text(k) == "name").and_then(|(_, v)| v.as_str()).map(str::to_string)
            }
            _ => None,
        };
        let sink = Sink::default();
        let doc: Option<PolicyDoc> = de::from_node(node, "a policy", &sink);
        let mut found = sink.into_problems();
        let origin = Origin { file: file.to_string(), mark: node.mark, index };
        match doc.and_then(|d| d.into_policy(node, origin, &mut found)) {
            Some(policy) => out.push(policy),
            // Cannot happen: a policy that failed has recorded why. Never drop one silently.
            None if found.is_empty() => {
                found.push(Problem { mark: node.mark, message: "this policy could not be read".into(), hint: None })
            }
            None => {}
        }
        // An alias repeats its nodes: one error per place and policy.
        let mut seen: Vec<(Mark, String)> = Vec::new();
        for p in found {
            if !seen.iter().any(|(m, msg)| *m == p.mark && *msg == p.message) {
                seen.push((p.mark, p.message.clone()));
                problems.push((name.clone(), p));
            }
        }
    }
    for (policy, p) in problems {
        errors.push(error(p.mark, policy, p.message, p.hint));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::closest;

    fn load(text: &str) -> Result<PolicySet, Vec<String>> {
        PolicySet::from_sources(&[("p.yaml".into(), text.into())])
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    const GOOD: &str = "policies:
  - name: redrive-throttled
    priority: 10
    match:
      source: [aws.states]
      diagnosis:
        error: [Lambda.TooManyRequestsException, {prefix: 'Athena.'}]
    actions:
      - redrive: {delay: 2m}
      - notify
    limits: {max_attempts: 3, window: 24h, cooldown: 5m}
    notify: on-action
  - name: auth
    match: {source: [aws.states]}
    actions: [{notify: {severity: critical}}]
";

    #[test]
    fn a_valid_file_loads_with_defaults_and_priority_order() {
        let set = load(GOOD).unwrap();
        let names: Vec<&str> = set.policies().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["redrive-throttled", "auth"]);
        let p = &set.policies()[0];
        assert_eq!(p.actions[0], Action::Redrive { delay: Duration::from_secs(120) });
        assert_eq!(p.actions[1], Action::Notify { severity: Severity::Warning });
        assert_eq!(p.limits.cooldown, Duration::from_secs(300));
        assert_eq!(set.policies()[1].priority, DEFAULT_PRIORITY);
    }

    #[test]
    fn approval_is_read_with_its_expiry_and_approvers_and_its_errors_have_positions() {
        use crate::approval::{Approval, Approvers};
        let policy = |approval: &str| {
            format!("policies:\n  - name: a\n    match: {{source: [x]}}\n    actions: [raise-memory]\n    approval: {approval}\n")
        };
        let set = load(&policy("{expires: 1h, approvers: ['arn:aws:iam::123456789012:role/oncall']}")).unwrap();
        assert_eq!(
            set.policies()[0].approval,
            Some(Approval {
                expires: Duration::from_secs(3600),
                approvers: Approvers::Principals(vec!["arn:aws:iam::123456789012:role/oncall".into()])
            })
        );
        let set = load(&policy("{expires: 30m, approvers: anyone-with-link}")).unwrap();
        assert_eq!(set.policies()[0].approval.as_ref().map(|a| &a.approvers), Some(&Approvers::AnyoneWithLink));
        assert!(load(GOOD).unwrap().policies()[0].approval.is_none());
        let errors = load(&policy("{expires: 8d, approvers: anyone}")).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("p.yaml:5:25: policy `a`:") && errors[0].contains("from 1m to 7d"), "{errors:?}");
        assert!(
            errors[1].starts_with("p.yaml:5:40: policy `a`:") && errors[1].contains("anyone-with-link"),
            "{errors:?}"
        );
        let errors = load(&policy("{expires: 1h, approvers: [oncall]}")).unwrap_err();
        assert!(errors[0].contains("`oncall` is not an IAM principal ARN pattern"), "{errors:?}");
        let errors = load(&policy("{expires: 1h}")).unwrap_err();
        assert!(errors[0].contains("approvers"), "{errors:?}");
    }

    #[test]
    fn unknown_keys_get_a_position_the_policy_name_and_the_closest_key() {
        let errors = load("policies:\n  - name: a\n    match: {source: [x]}\n    actions: [notify]\n    limts: {}\n")
            .unwrap_err();
        assert_eq!(errors, ["p.yaml:5:5: policy `a`: unknown key `limts` in a policy (hint: did you mean `limits`?)"]);
    }

    #[test]
    fn every_error_of_a_file_is_reported_at_once() {
        let text = "policies:
  - name: a
    match: {source: aws.states}
    actions: [redrve, {raise-timeout: {max_seconds: 901}}]
    limits: {window: 5 minutes}
  - name: a
    match: {source: [x]}
    actions: [notify]
";
        let errors = load(text).unwrap_err();
        let joined = errors.join("\n");
        assert!(
            joined.contains("p.yaml:3:21: policy `a`: invalid pattern at `source`: match values must be in a list"),
            "{joined}"
        );
        assert!(
            joined.contains("p.yaml:4:15: policy `a`: unknown action `redrve` (hint: did you mean `redrive`?)"),
            "{joined}"
        );
        assert!(
            joined.contains("p.yaml:4:53: policy `a`: `max_seconds`: must be a whole number from 1 to 900, found 901"),
            "{joined}"
        );
        assert!(joined.contains("p.yaml:5:22: policy `a`: `window`: `5 minutes` has an unknown unit"), "{joined}");
        assert_eq!(errors.len(), 4, "{joined}");
    }

    #[test]
    fn each_kind_of_shape_error_names_its_place() {
        let cases: &[(&str, &str)] = &[
            ("actions: [{notify: {severity: loud}}]", "p.yaml:2:67: policy `a`: unknown severity `loud` (hint: one of info, warning, critical)"),
            ("actions: [notify], notify: on-actoin", "p.yaml:2:64: policy `a`: unknown notify setting `on-actoin` (hint: did you mean `on-action`?)"),
            ("actions: [5]", "p.yaml:2:47: policy `a`: item 1 of `actions`: must be a name, or a one-key mapping of a name to its parameters, found a number"),
            ("actions: [{notify: {}, redrive: {}}]", "p.yaml:2:47: policy `a`: item 1 of `actions`: must be a one-key mapping (one action), found 2 keys (hint: write each action as its own list item)"),
            ("actions: [{redrive: {delay: 1m, dleay: 2m}}]", "p.yaml:2:69: policy `a`: unknown key `dleay` in parameters of `redrive` (hint: did you mean `delay`?)"),
            ("actions: [notify], limits: {window: 1h, window: 2h}", "p.yaml:2:77: policy `a`: `window` appears twice in `limits`"),
            ("actions: notify", "p.yaml:2:46: policy `a`: `actions`: must be a list, found a string"),
            ("actions: []", "p.yaml:2:46: policy `a`: `actions`: must not be empty"),
            ("actions: [notify], limits: [1]", "p.yaml:2:64: policy `a`: `limits`: must be a mapping, found a list"),
            ("actions: [notify], description: 5", "p.yaml:2:69: policy `a`: `description`: must be a string, found a number"),
            ("actions: [{raise-memory: {max_mb: 1.5}}]", "p.yaml:2:71: policy `a`: `max_mb`: must be a whole number from 128 to 10240, found 1.5"),
            ("actions: [notify], notify: {always: }", "p.yaml:2:65: policy `a`: `always` is written alone, without a value"),
            ("actions: [notify], limits: {window: 0s}", "p.yaml:2:73: policy `a`: `window`: `0s` is 0: use a duration longer than 0s"),
        ];
        for (policy, want) in cases {
            let text = format!("policies:\n  - {{name: a, match: {{source: [x]}}, {policy}}}\n");
            assert_eq!(load(&text).unwrap_err(), [want.to_string()], "{policy}");
        }
    }

    #[test]
    fn an_error_in_an_aliased_node_is_reported_once_for_each_policy_that_uses_it() {
        let text = "policies:
  - name: a
    match: {source: [x]}
    actions: [notify]
    limits: &l {window: 5 minutes}
  - name: b
    match: {source: [x]}
    actions: [notify, notify]
    limits: *l
";
        let errors = load(text).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with("p.yaml:5:25: policy `a`: `window`: `5 minutes`"), "{errors:#?}");
        assert!(errors[1].starts_with("p.yaml:5:25: policy `b`: `window`: `5 minutes`"), "{errors:#?}");
        let twice =
            "policies:\n  - name: a\n    match: {source: [x]}\n    actions: [&n {notify: {severity: loud}}, *n]\n";
        assert_eq!(load(twice).unwrap_err().len(), 1, "one place, one policy: one error");
    }

    #[test]
    fn an_action_with_null_or_no_parameters_takes_the_defaults() {
        let text = "policies:\n  - name: a\n    match: {source: [x]}\n    actions:\n      - raise-timeout:\n      - raise-memory\n";
        let set = load(text).unwrap();
        assert_eq!(
            set.policies()[0].actions,
            [
                Action::RaiseTimeout { factor: 1.5, max_seconds: 900 },
                Action::RaiseMemory { factor: 2.0, max_mb: 10240 }
            ]
        );
    }

    #[test]
    fn a_file_that_is_not_a_policy_file_says_so() {
        assert_eq!(load("").unwrap_err(), ["p.yaml:1:1: a policy file needs a top-level `policies:` list (hint: policy files are *.yaml or *.yml with a top-level `policies:` list)"]);
        assert_eq!(load("[1]").unwrap_err(), ["p.yaml:1:1: a policy file: must be a mapping, found a list"]);
        assert_eq!(load("policies: []").unwrap_err(), ["p.yaml:1:11: `policies`: must not be empty"]);
        assert_eq!(
            load("polices: []").unwrap_err(),
            [
                "p.yaml:1:1: unknown key `polices` in a policy file (hint: did you mean `policies`?)",
                "p.yaml:1:1: missing `policies`"
            ]
        );
    }

    #[test]
    fn duplicate_names_point_at_both_definitions() {
        let text = "policies:\n  - {name: a, match: {source: [x]}, actions: [notify]}\n  - {name: a, match: {source: [y]}, actions: [notify]}\n";
        let errors = load(text).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("p.yaml:3:5: policy `a`: duplicate policy name: also defined at p.yaml:2:5"),
            "{errors:?}"
        );
    }

    #[test]
    fn missing_fields_and_bad_types_are_named() {
        let errors = load("policies:\n  - name: Bad_Name\n    dry_run: yes\n").unwrap_err().join("\n");
        assert!(errors.contains("invalid name `Bad_Name`"), "{errors}");
        assert!(
            errors.contains("p.yaml:3:14: policy `Bad_Name`: `dry_run`: must be true or false, found a string"),
            "{errors}"
        );
        assert!(errors.contains("missing `match`"), "{errors}");
        assert!(errors.contains("missing `actions`"), "{errors}");
    }

    #[test]
    fn yaml_syntax_errors_have_a_position() {
        let errors = load("policies:\n  - name: [a\n").unwrap_err();
        assert!(errors[0].starts_with("p.yaml:"), "{errors:?}");
        assert!(errors[0].contains("YAML syntax error"), "{errors:?}");
    }

    #[test]
    fn durations_that_overflow_or_exceed_the_maximum_are_errors() {
        for text in
            ["18446744073709551615s1s", "99999999999999999d", "213503982334601d", "99999999999999999999s", "367d"]
        {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("longer than the maximum of 366d"), "{text}: {err}");
        }
        assert_eq!(parse_duration("366d").unwrap(), MAX_DURATION);
        assert_eq!(parse_duration("365d23h59m59s1000ms").unwrap(), MAX_DURATION);
    }

    #[test]
    fn huge_durations_in_policies_are_positioned_errors() {
        let text = "policies:
  - name: a
    match: {source: [x]}
    actions: [{redrive: {delay: 99999999999999999d}}]
    limits: {window: 18446744073709551615s1s, cooldown: 99999999999999999h}
";
        let errors = load(text).unwrap_err();
        let joined = errors.join("\n");
        assert_eq!(errors.len(), 3, "{joined}");
        assert!(joined.contains("p.yaml:4:33: policy `a`: `delay`: `99999999999999999d` is longer than"), "{joined}");
        assert!(joined.contains("p.yaml:5:22: policy `a`: `window`: `18446744073709551615s1s` is longer"), "{joined}");
        assert!(joined.contains("p.yaml:5:57: policy `a`: `cooldown`: `99999999999999999h` is longer"), "{joined}");
    }

    #[test]
    fn numeric_fields_reject_overflow() {
        let text = "policies:
  - name: a
    priority: 9223372036854775808
    match: {source: [x]}
    actions:
      - raise-memory: {factor: 1e400, max_mb: 18446744073709551616}
      - raise-timeout: {factor: .nan, max_seconds: 4294967297}
    limits: {max_attempts: 4294967297}
";
        let errors = load(text).unwrap_err();
        let joined = errors.join("\n");
        assert_eq!(errors.len(), 6, "{joined}");
        for at in ["3:15", "6:32", "6:47", "7:33", "7:52", "8:28"] {
            assert!(joined.contains(&format!("p.yaml:{at}: policy `a`: ")), "{at}: {joined}");
        }
    }

    #[test]
    fn a_factor_of_exactly_one_is_refused() {
        let text = "policies:
  - name: a
    match: {source: [x]}
    actions: [{raise-memory: {factor: 1}}]
";
        let errors = load(text).unwrap_err();
        assert_eq!(errors, ["p.yaml:4:39: policy `a`: `factor`: must be above 1 and at most 10, found 1"]);
    }

    #[test]
    fn did_you_mean_picks_the_nearest_close_candidate() {
        let actions = action_names();
        assert_eq!(closest("redrve", actions), Some("redrive"));
        assert_eq!(closest("raise-memroy", actions), Some("raise-memory"));
        assert_eq!(closest("limts", &["name", "limits", "match"]), Some("limits"));
        assert_eq!(closest("ön-action", &["on-action", "never"]), Some("on-action"));
        assert_eq!(closest("restart", actions), None);
        assert_eq!(closest("", &["ab", "abcd"]), Some("ab"));
    }

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
