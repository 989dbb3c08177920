//! The offline policy tools: what `validate`, `explain`, `test` (case files) and `plan`
//! (the backtest of a policy change) do, shared by the `remediator` binary and the
//! SDK-free `remediator-policy` binary. They read files and write lines; nothing here
//! calls AWS, so a policy pull request builds and runs them without the SDK.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::diagnose::{events_from_json, HistoryEvent};
use crate::explain::explain;
use crate::guard::AllowList;
use crate::policy::{case_files, PolicyErrors, PolicySet};
use crate::yaml;

/// `validate`: every error of a policy set, one per line. Whether it loaded.
pub fn validate(loaded: Result<PolicySet, PolicyErrors>, out: &mut impl Write) -> Result<bool> {
    match loaded {
        Ok(set) => {
            writeln!(out, "{} policies OK", set.policies().len())?;
            Ok(true)
        }
        Err(PolicyErrors(errors)) => {
            for e in &errors {
                writeln!(out, "{e}")?;
            }
            eprintln!("{} error(s)", errors.len());
            Ok(false)
        }
    }
}

/// The allow-list as the function reads it from its environment: `REMEDIATOR_ALLOW`, or
/// the shipped default narrowed to `REMEDIATOR_DATA_BUCKETS` when set.
pub fn allow_list_from_env() -> Result<AllowList> {
    let mut errors = Vec::new();
    let allow = crate::guard::allow_list(&|k: &str| std::env::var(k).ok(), &mut errors);
    if errors.is_empty() {
        Ok(allow)
    } else {
        Err(anyhow::anyhow!(errors.join("; ")))
    }
}

/// A saved `GetExecutionHistory` response.
pub fn read_history(path: &Path) -> Result<Vec<HistoryEvent>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    events_from_json(&value).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// NDJSON events from a file, or standard input for `-`.
pub fn open_events(path: &str) -> Result<Box<dyn BufRead>> {
    Ok(if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(path).with_context(|| format!("opening {path}"))?))
    })
}

/// What `explain` needs besides the events.
pub struct Explainer<'a> {
    pub set: &'a PolicySet,
    pub allow: &'a AllowList,
    pub history: Option<&'a [HistoryEvent]>,
    pub why: bool,
}

impl Explainer<'_> {
    /// Explains one event (JSON text) as one JSON line; `false` when it could not be.
    pub fn one(&self, text: &str, out: &mut impl Write) -> Result<bool> {
        let explained = serde_json::from_str::<Value>(text)
            .map_err(|e| format!("malformed event: not valid JSON: {e}"))
            .and_then(|doc| explain(self.set, self.allow, doc, self.history, self.why));
        match explained {
            Ok(x) => {
                serde_json::to_writer(&mut *out, &x)?;
                writeln!(out)?;
                Ok(true)
            }
            Err(e) => {
                writeln!(out, "{}", json!({"error": e}))?;
                Ok(false)
            }
        }
    }

    /// Explains NDJSON events, one line each; the number that could not be explained.
    pub fn lines(&self, input: impl BufRead, out: &mut impl Write) -> Result<usize> {
        let mut failures = 0;
        for line in input.lines() {
            let line = line.context("reading events")?;
            if !line.trim().is_empty() && !self.one(&line, out)? {
                failures += 1;
            }
        }
        Ok(failures)
    }
}

/// The part of a decision a reviewer compares: the deciding policy and its steps.
fn decision_of(set: &PolicySet, doc: Value) -> Value {
    match explain(set, &AllowList::default_list(), doc, None, false) {
        Ok(x) => json!({"policy": x.policy, "actions": x.actions}),
        Err(e) => json!({"error": e}),
    }
}

/// How many events a backtest read, and how many decisions changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backtest {
    pub events: usize,
    pub changed: usize,
    pub malformed: usize,
}

/// `plan`: replays events through both policy sets; one line per decision that differs,
/// then the counts.
pub fn plan(before: &PolicySet, after: &PolicySet, input: impl BufRead, out: &mut impl Write) -> Result<Backtest> {
    let mut counts = Backtest::default();
    for line in input.lines() {
        let line = line.context("reading events")?;
        if line.trim().is_empty() {
            continue;
        }
        counts.events += 1;
        let Ok(doc) = serde_json::from_str::<Value>(&line) else {
            counts.malformed += 1;
            continue;
        };
        let id = doc.get("id").cloned().unwrap_or(Value::Null);
        let (b, a) = (decision_of(before, doc.clone()), decision_of(after, doc));
        if a != b {
            counts.changed += 1;
            writeln!(out, "{}", json!({"event": id, "before": b, "after": a}))?;
        }
    }
    let unchanged = counts.events - counts.changed - counts.malformed;
    let summary = json!({
        "events": counts.events, "changed": counts.changed, "unchanged": unchanged, "malformed": counts.malformed,
        "touched": touched(before, after),
    });
    writeln!(out, "{}", json!({ "summary": summary }))?;
    Ok(counts)
}

/// The policies a change touches: added, removed, or changed in anything but where they
/// are written (their file and line), by name. The pull-request workflow reports the
/// recorded outcomes of these.
pub fn touched(before: &PolicySet, after: &PolicySet) -> Vec<String> {
    let definition = |p: &crate::policy::Policy| {
        // Every field named: a field added to `Policy` fails to compile here until it is
        // placed on one side or the other.
        let crate::policy::Policy {
            name: _,
            origin: _,
            pattern: _,
            description,
            priority,
            pattern_json,
            actions,
            limits,
            notify,
            dry_run,
            runbook,
            continue_,
            approval,
        } = p;
        format!(
            "{:?}",
            (description, priority, pattern_json, actions, limits, notify, dry_run, runbook, continue_, approval)
        )
    };
    let mut names: Vec<String> = Vec::new();
    for p in after.policies() {
        if before.get(&p.name).is_none_or(|b| definition(b) != definition(p)) {
            names.push(p.name.clone());
        }
    }
    for p in before.policies() {
        if after.get(&p.name).is_none() {
            names.push(p.name.clone());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// `test`: runs the case files under `cases/` folders below `root` (a policy directory,
/// or a policy file's directory). Prints each failure and the counts; whether all passed.
pub fn test(set: &PolicySet, root: &Path, allow: &AllowList, out: &mut impl Write) -> Result<bool> {
    let dir =
        if root.is_file() { root.parent().map(Path::to_path_buf).unwrap_or_default() } else { root.to_path_buf() };
    let files: Vec<PathBuf> = case_files(&dir).with_context(|| format!("listing cases under {}", dir.display()))?;
    if files.is_empty() {
        bail!("no case files under {}/**/cases/", dir.display());
    }
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        match run_case(set, file, allow) {
            Ok(()) => passed += 1,
            Err(e) => {
                failed += 1;
                writeln!(out, "FAIL {}: {e:#}", file.display())?;
            }
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(failed == 0)
}

/// Runs one case file: `event` or `event_file`, optional `history`/`history_file`,
/// and `expect: {policy, actions}`.
fn run_case(set: &PolicySet, file: &Path, allow: &AllowList) -> Result<()> {
    let text = std::fs::read_to_string(file)?;
    let root = yaml::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", file.display()))?.to_json();
    let base = file.parent().unwrap_or(Path::new("."));
    let obj = root.as_object().context("a case is a mapping with `event` and `expect`")?;
    for k in obj.keys() {
        if !["event", "event_file", "history", "history_file", "expect", "description"].contains(&k.as_str()) {
            bail!("unknown key `{k}` (allowed: event, event_file, history, history_file, expect, description)");
        }
    }
    let event = match (obj.get("event"), obj.get("event_file")) {
        (Some(e), None) => e.clone(),
        (None, Some(Value::String(f))) => {
            let path = base.join(f);
            serde_json::from_str(
                &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("{} is not JSON", path.display()))?
        }
        _ => bail!("a case needs exactly one of `event` or `event_file`"),
    };
    let history = match (obj.get("history"), obj.get("history_file")) {
        (Some(h), None) => Some(events_from_json(h).map_err(|e| anyhow::anyhow!(e))?),
        (None, Some(Value::String(f))) => Some(read_history(&base.join(f))?),
        (None, None) => None,
        _ => bail!("give `history` or `history_file`, not both"),
    };
    let expect = obj.get("expect").context("a case needs `expect: {policy: NAME or null, actions: [...]}`")?;
    let x = explain(set, allow, event, history.as_deref(), false).map_err(|e| anyhow::anyhow!(e))?;
    let want_policy = expect.get("policy").context("`expect` needs `policy` (a name or null)")?;
    let got_policy = x.policy.clone().map(Value::String).unwrap_or(Value::Null);
    if *want_policy != got_policy {
        bail!("expected policy {want_policy}, got {got_policy} (matched: {:?})", x.matched);
    }
    if let Some(want) = expect.get("actions") {
        let got: Vec<Value> =
            x.actions.iter().filter(|a| a.refused.is_none()).map(|a| Value::String(a.action.clone())).collect();
        if *want != Value::Array(got.clone()) {
            bail!("expected actions {want}, got {}", Value::Array(got));
        }
    }
    Ok(())
}
