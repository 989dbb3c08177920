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

use crate::pattern::{closest, Pattern};
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

/// When a summary is sent for a policy's incidents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyWhen {
    Always,
    OnAction,
    OnFailure,
    Never,
}

/// How hard a notification should hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

// Bounds of the numeric fields: the loader enforces them and the JSON Schema
// (`schema.rs`) states them, both from these constants.

/// `priority`: lowest and highest.
pub const PRIORITY_MIN: i64 = -1_000_000;
pub const PRIORITY_MAX: i64 = 1_000_000;
/// `limits.max_attempts`: fewest and most.
pub const MAX_ATTEMPTS_MIN: i64 = 1;
pub const MAX_ATTEMPTS_MAX: i64 = 100;
/// `factor` of `raise-timeout` and `raise-memory`: above this (a factor of 1 changes
/// nothing) ...
pub const FACTOR_ABOVE: f64 = 1.0;
/// ... and at most this.
pub const FACTOR_MAX: f64 = 10.0;
/// `raise-timeout.max_seconds`: Lambda's timeout runs from 1 s to 900 s.
pub const LAMBDA_TIMEOUT_MIN_SECONDS: i64 = 1;
pub const LAMBDA_TIMEOUT_MAX_SECONDS: i64 = 900;
/// `raise-memory.max_mb`: Lambda's memory runs from 128 MB to 10240 MB.
pub const LAMBDA_MEMORY_MIN_MB: i64 = 128;
pub const LAMBDA_MEMORY_MAX_MB: i64 = 10240;
/// `name`: at most this many of a-z, 0-9 and `-`.
pub const NAME_MAX_LEN: usize = 64;

/// A remediation step and its parameters. The set is closed: each variant knows its
/// parameters, their limits and the IAM actions it needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Redrive { delay: Duration },
    StartExecution { state_machine: Option<String>, input: Option<serde_json::Value> },
    RaiseTimeout { factor: f64, max_seconds: u32 },
    RaiseMemory { factor: f64, max_mb: u32 },
    EnableRule { rule: Option<String> },
    RestoreObject { bucket: Option<String>, key: Option<String> },
    Notify { severity: Severity },
}

/// The parameters each action accepts (`None` for an unknown action).
pub fn action_parameters(action: &str) -> Option<&'static [&'static str]> {
    Some(match action {
        "redrive" => &["delay"],
        "start-execution" => &["state_machine", "input"],
        "raise-timeout" => &["factor", "max_seconds"],
        "raise-memory" => &["factor", "max_mb"],
        "enable-rule" => &["rule"],
        "restore-object" => &["bucket", "key"],
        "notify" => &["severity"],
        _ => return None,
    })
}

pub const ACTION_NAMES: &[&str] =
    &["redrive", "start-execution", "raise-timeout", "raise-memory", "enable-rule", "restore-object", "notify"];

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Redrive { .. } => "redrive",
            Action::StartExecution { .. } => "start-execution",
            Action::RaiseTimeout { .. } => "raise-timeout",
            Action::RaiseMemory { .. } => "raise-memory",
            Action::EnableRule { .. } => "enable-rule",
            Action::RestoreObject { .. } => "restore-object",
            Action::Notify { .. } => "notify",
        }
    }

    /// Whether the step changes AWS (and so is skipped in dry-run).
    pub fn is_mutating(&self) -> bool {
        !matches!(self, Action::Notify { .. })
    }
}

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
    pub origin: Origin,
}

/// Default priority of a policy that names none: after every explicit priority below it.
pub const DEFAULT_PRIORITY: i64 = 1000;

/// The policies of a directory, ordered by priority, then file, then position.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

pub const POLICY_KEYS: &[&str] =
    &["name", "description", "priority", "match", "actions", "limits", "notify", "dry_run", "runbook", "continue"];

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

struct Ctx<'a> {
    file: &'a str,
    policy: Option<String>,
    errors: &'a mut Vec<PolicyError>,
}

impl Ctx<'_> {
    fn error(&mut self, mark: Mark, message: impl Into<String>, hint: Option<String>) {
        self.errors.push(PolicyError {
            file: self.file.to_string(),
            mark,
            policy: self.policy.clone(),
            message: message.into(),
            hint,
        });
    }

    /// Checks a mapping's keys against the allowed ones; reports unknown and duplicate keys.
    fn entries<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Vec<(String, &'n Node, &'n Node)> {
        let Value::Map(entries) = &node.value else {
            self.error(node.mark, format!("{what} must be a mapping, found {}", node.kind()), None);
            return Vec::new();
        };
        let mut out: Vec<(String, &Node, &Node)> = Vec::new();
        for (k, v) in entries {
            let name = key_text(k);
            if out.iter().any(|(n, _, _)| *n == name) {
                self.error(k.mark, format!("`{name}` appears twice in {what}"), None);
            } else if !allowed.contains(&name.as_str()) {
                self.error(
                    k.mark,
                    format!("unknown key `{name}` in {what}"),
                    Some(match closest(&name, allowed) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => format!("allowed: {}", allowed.join(", ")),
                    }),
                );
            } else {
                out.push((name, k, v));
            }
        }
        out
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.error(node.mark, format!("{what} must be a string, found {}", node.kind()), None);
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.error(node.mark, format!("{what} must be true or false, found {}", node.kind()), None);
                None
            }
        }
    }

    fn integer(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        match node.value {
            Value::Number(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 => Some(n as i64),
            Value::Number(n) => {
                self.error(node.mark, format!("{what} must be a whole number from {min} to {max}, found {n}"), None);
                None
            }
            _ => {
                self.error(node.mark, format!("{what} must be a whole number, found {}", node.kind()), None);
                None
            }
        }
    }

    fn number(&mut self, node: &Node, what: &str, min_exclusive: f64, max: f64) -> Option<f64> {
        match node.value {
            Value::Number(n) if n > min_exclusive && n <= max => Some(n),
            Value::Number(n) => {
                self.error(
                    node.mark,
                    format!("{what} must be above {min_exclusive} and at most {max}, found {n}"),
                    None,
                );
                None
            }
            _ => {
                self.error(node.mark, format!("{what} must be a number, found {}", node.kind()), None);
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = match &node.value {
            Value::String(s) => s.clone(),
            Value::Number(n) if *n == 0.0 => return Some(Duration::ZERO),
            _ => {
                self.error(
                    node.mark,
                    format!("{what} must be a duration such as 90s, 5m, 24h, found {}", node.kind()),
                    None,
                );
                return None;
            }
        };
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(m) => {
                self.error(
                    node.mark,
                    format!("{what}: {m}"),
                    Some("use a number with a unit: 30s, 5m, 2h, 1d, or 1h30m".into()),
                );
                None
            }
        }
    }
}

/// The longest duration a policy or a flag may name: a year, leap day included.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86400);

/// Parses `90s`, `5m`, `24h`, `1d`, `1h30m`, `250ms`, up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration");
    let too_long = || format!("`{text}` is longer than the maximum of {}", format_duration(MAX_DURATION));
    if text.is_empty() {
        return Err(bad());
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        // Only digits are left, so the one way to fail is a number past u64.
        let n: Option<u64> = rest[..digits].parse().ok();
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60 * 1000,
            "h" => 3600 * 1000,
            "d" => 86400 * 1000,
            "" => return Err(format!("`{text}` has a number without a unit")),
            other => return Err(format!("`{text}` has an unknown unit `{other}`")),
        };
        total_ms = n
            .and_then(|n| n.checked_mul(unit_ms))
            .and_then(|part| total_ms.checked_add(part))
            .filter(|&t| u128::from(t) <= MAX_DURATION.as_millis())
            .ok_or_else(too_long)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way policies write it.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 && s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (days, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    for (v, u) in [(days, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out
    }
}

fn parse_file(file: &str, text: &str, out: &mut Vec<Policy>, errors: &mut Vec<PolicyError>) {
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            errors.push(PolicyError {
                file: file.to_string(),
                mark: e.mark,
                policy: None,
                message: format!("YAML syntax error: {}", e.message),
                hint: None,
            });
            return;
        }
    };
    let mut ctx = Ctx { file, policy: None, errors };
    let top = ctx.entries(&root, "a policy file", &["policies"]);
    let Some((_, key, list)) = top.into_iter().next() else {
        if matches!(root.value, Value::Map(_) | Value::Null) {
            ctx.error(root.mark, "a policy file needs a top-level `policies:` list", None);
        }
        return;
    };
    let Value::Seq(items) = &list.value else {
        ctx.error(list.mark, format!("`policies` must be a list, found {}", list.kind()), None);
        return;
    };
    if items.is_empty() {
        ctx.error(key.mark, "`policies` is empty", None);
    }
    for (index, item) in items.iter().enumerate() {
        ctx.policy = None;
        if let Some(p) = parse_policy(&mut ctx, item, index) {
            out.push(p);
        }
    }
}

fn parse_policy(ctx: &mut Ctx, node: &Node, index: usize) -> Option<Policy> {
    // Find the name first so that every later error names the policy.
    if let Value::Map(entries) = &node.value {
        if let Some((_, v)) = entries.iter().find(|(k, _)| key_text(k) == "name") {
            ctx.policy = v.as_str().map(str::to_string);
        }
    }
    let before = ctx.errors.len();
    let entries = ctx.entries(node, "a policy", POLICY_KEYS);
    let mut name = None;
    let mut description = None;
    let mut priority = DEFAULT_PRIORITY;
    let mut pattern = None;
    let mut pattern_json = serde_json::Value::Null;
    let mut actions = None;
    let mut limits = Limits::default();
    let mut notify = NotifyWhen::OnAction;
    let mut dry_run = false;
    let mut runbook = None;
    let mut continue_ = false;
    for (key, _, v) in &entries {
        match key.as_str() {
            "name" => {
                if let Some(n) = ctx.string(v, "`name`") {
                    let valid = !n.is_empty()
                        && n.len() <= NAME_MAX_LEN
                        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                    if valid {
                        name = Some(n);
                    } else {
                        ctx.error(
                            v.mark,
                            format!("invalid name `{n}`: use 1 to {NAME_MAX_LEN} of a-z, 0-9 and -"),
                            None,
                        );
                    }
                }
            }
            "description" => description = ctx.string(v, "`description`"),
            "runbook" => runbook = ctx.string(v, "`runbook`"),
            "priority" => priority = ctx.integer(v, "`priority`", PRIORITY_MIN, PRIORITY_MAX).unwrap_or(priority),
            "dry_run" => dry_run = ctx.boolean(v, "`dry_run`").unwrap_or(false),
            "continue" => continue_ = ctx.boolean(v, "`continue`").unwrap_or(false),
            "notify" => {
                let allowed = ["always", "on-action", "on-failure", "never"];
                if let Some(s) = ctx.string(v, "`notify`") {
                    notify = match s.as_str() {
                        "always" => NotifyWhen::Always,
                        "on-action" => NotifyWhen::OnAction,
                        "on-failure" => NotifyWhen::OnFailure,
                        "never" => NotifyWhen::Never,
                        other => {
                            ctx.error(
                                v.mark,
                                format!("unknown notify setting `{other}`"),
                                Some(closest(other, &allowed).map_or_else(
                                    || format!("one of {}", allowed.join(", ")),
                                    |c| format!("did you mean `{c}`?"),
                                )),
                            );
                            NotifyWhen::OnAction
                        }
                    }
                }
            }
            "match" => {
                pattern_json = v.to_json();
                match Pattern::compile(v) {
                    Ok(p) => pattern = Some(p),
                    Err(errs) => {
                        for e in errs {
                            let at = if e.path.is_empty() { String::new() } else { format!(" at `{}`", e.path) };
                            ctx.error(e.mark, format!("invalid pattern{at}: {}", e.message), e.hint);
                        }
                    }
                }
            }
            "actions" => actions = parse_actions(ctx, v),
            "limits" => limits = parse_limits(ctx, v),
            _ => unreachable!("keys are checked against POLICY_KEYS"),
        }
    }
    let missing = |ctx: &mut Ctx, key: &str| {
        if !entries.iter().any(|(k, _, _)| k == key) {
            ctx.error(node.mark, format!("missing `{key}`"), None);
        }
    };
    if matches!(node.value, Value::Map(_)) {
        missing(ctx, "name");
        missing(ctx, "match");
        missing(ctx, "actions");
    }
    if ctx.errors.len() != before {
        return None;
    }
    Some(Policy {
        name: name?,
        description,
        priority,
        pattern: pattern?,
        pattern_json,
        actions: actions?,
        limits,
        notify,
        dry_run,
        runbook,
        continue_,
        origin: Origin { file: ctx.file.to_string(), mark: node.mark, index },
    })
}

fn parse_limits(ctx: &mut Ctx, node: &Node) -> Limits {
    let mut limits = Limits::default();
    for (key, _, v) in ctx.entries(node, "`limits`", &["max_attempts", "window", "cooldown"]) {
        match key.as_str() {
            "max_attempts" => {
                if let Some(n) = ctx.integer(v, "`max_attempts`", MAX_ATTEMPTS_MIN, MAX_ATTEMPTS_MAX) {
                    limits.max_attempts = n as u32;
                }
            }
            "window" => limits.window = ctx.duration(v, "`window`").unwrap_or(limits.window),
            "cooldown" => limits.cooldown = ctx.duration(v, "`cooldown`").unwrap_or(limits.cooldown),
            _ => unreachable!(),
        }
    }
    limits
}

fn parse_actions(ctx: &mut Ctx, node: &Node) -> Option<Vec<Action>> {
    let Value::Seq(items) = &node.value else {
        ctx.error(node.mark, format!("`actions` must be a list, found {}", node.kind()), None);
        return None;
    };
    if items.is_empty() {
        ctx.error(node.mark, "`actions` is empty", Some("list at least one action, e.g. `- notify`".into()));
        return None;
    }
    let before = ctx.errors.len();
    let actions: Vec<Action> = items.iter().filter_map(|item| parse_action(ctx, item)).collect();
    (ctx.errors.len() == before).then_some(actions)
}

fn parse_action(ctx: &mut Ctx, node: &Node) -> Option<Action> {
    static EMPTY: Node = Node { value: Value::Null, mark: Mark { line: 0, column: 0 } };
    let (name, name_mark, params) = match &node.value {
        Value::String(s) => (s.clone(), node.mark, &EMPTY),
        Value::Map(entries) if entries.len() == 1 => (key_text(&entries[0].0), entries[0].0.mark, &entries[0].1),
        Value::Map(entries) => {
            ctx.error(
                node.mark,
                format!("each action is a one-key mapping, found {} keys", entries.len()),
                Some("write each action as its own list item".into()),
            );
            return None;
        }
        _ => {
            ctx.error(node.mark, format!("an action is a name or a one-key mapping, found {}", node.kind()), None);
            return None;
        }
    };
    let allowed: &[&str] =
        match action_parameters(&name) {
            Some(allowed) => allowed,
            None => {
                let other = name.as_str();
                ctx.error(
                    name_mark,
                    format!("unknown action `{other}`"),
                    Some(closest(other, ACTION_NAMES).map_or_else(
                        || format!("one of {}", ACTION_NAMES.join(", ")),
                        |c| format!("did you mean `{c}`?"),
                    )),
                );
                return None;
            }
        };
    let entries = if matches!(params.value, Value::Null) {
        Vec::new()
    } else {
        ctx.entries(params, &format!("parameters of `{name}`"), allowed)
    };
    let get = |k: &str| entries.iter().find(|(n, _, _)| n == k).map(|(_, _, v)| *v);
    let action = match name.as_str() {
        "redrive" => {
            Action::Redrive { delay: get("delay").and_then(|v| ctx.duration(v, "`delay`")).unwrap_or(Duration::ZERO) }
        }
        "start-execution" => Action::StartExecution {
            state_machine: get("state_machine").and_then(|v| ctx.string(v, "`state_machine`")),
            input: get("input").map(Node::to_json),
        },
        "raise-timeout" => Action::RaiseTimeout {
            factor: get("factor").and_then(|v| ctx.number(v, "`factor`", FACTOR_ABOVE, FACTOR_MAX)).unwrap_or(1.5),
            max_seconds: get("max_seconds")
                .and_then(|v| {
                    let what = format!("`max_seconds` (Lambda's limit is {LAMBDA_TIMEOUT_MAX_SECONDS})");
                    ctx.integer(v, &what, LAMBDA_TIMEOUT_MIN_SECONDS, LAMBDA_TIMEOUT_MAX_SECONDS)
                })
                .unwrap_or(LAMBDA_TIMEOUT_MAX_SECONDS) as u32,
        },
        "raise-memory" => Action::RaiseMemory {
            factor: get("factor").and_then(|v| ctx.number(v, "`factor`", FACTOR_ABOVE, FACTOR_MAX)).unwrap_or(2.0),
            max_mb: get("max_mb")
                .and_then(|v| {
                    let what = format!("`max_mb` (Lambda's limit is {LAMBDA_MEMORY_MAX_MB})");
                    ctx.integer(v, &what, LAMBDA_MEMORY_MIN_MB, LAMBDA_MEMORY_MAX_MB)
                })
                .unwrap_or(LAMBDA_MEMORY_MAX_MB) as u32,
        },
        "enable-rule" => Action::EnableRule { rule: get("rule").and_then(|v| ctx.string(v, "`rule`")) },
        "restore-object" => Action::RestoreObject {
            bucket: get("bucket").and_then(|v| ctx.string(v, "`bucket`")),
            key: get("key").and_then(|v| ctx.string(v, "`key`")),
        },
        "notify" => Action::Notify {
            severity: match get("severity").and_then(|v| ctx.string(v, "`severity`").map(|s| (s, v.mark))) {
                None => Severity::Warning,
                Some((s, mark)) => match s.as_str() {
                    "info" => Severity::Info,
                    "warning" => Severity::Warning,
                    "critical" => Severity::Critical,
                    other => {
                        ctx.error(
                            mark,
                            format!("unknown severity `{other}`"),
                            Some("one of info, warning, critical".into()),
                        );
                        Severity::Warning
                    }
                },
            },
        },
        _ => unreachable!("unknown names returned above"),
    };
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            joined.contains("`max_seconds` (Lambda's limit is 900) must be a whole number from 1 to 900, found 901"),
            "{joined}"
        );
        assert!(joined.contains("p.yaml:5:22: policy `a`: `window`: `5 minutes` has an unknown unit"), "{joined}");
        assert_eq!(errors.len(), 4, "{joined}");
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
        assert!(errors.contains("`dry_run` must be true or false, found a string"), "{errors}");
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
        assert!(errors[0].contains("`factor` must be above 1 and at most 10, found 1"), "{errors:?}");
    }

    #[test]
    fn did_you_mean_picks_the_nearest_close_candidate() {
        assert_eq!(closest("redrve", ACTION_NAMES), Some("redrive"));
        assert_eq!(closest("raise-memroy", ACTION_NAMES), Some("raise-memory"));
        assert_eq!(closest("limts", POLICY_KEYS), Some("limits"));
        assert_eq!(closest("ön-action", &["on-action", "never"]), Some("on-action"));
        assert_eq!(closest("restart", ACTION_NAMES), None);
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
