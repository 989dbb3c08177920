//! Guards that keep remediator from touching what it must not, or too often: the
//! allow-list of resources it may change, the pauses humans set, attempt limits and
//! cooldowns per policy and target, and circuit breakers per target.
//!
//! All are applied to a plan before anything runs, and a guarded step becomes a refusal
//! with a reason (recorded and named in the summary), never a silent skip. A pause
//! always wins: the troubleshooting guide's emergency procedure disables the pipeline's
//! rules on purpose, and re-enabling them then would fight the operator. Attempt limits
//! stop remediator from fighting anyone else who keeps undoing its change.
//!
//! The checks are pure (state and time are arguments), so `explain` runs them offline;
//! the state (pauses, attempts, circuits) lives in the state table under one partition,
//! behind `remediator`'s `GuardStore`, so a single query reads all of it, in parallel
//! with diagnosis.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::pattern::Glob;
use crate::plan::{Disposition, Plan, Refusal};

/// ARN patterns remediator may act on.
///
/// A pattern is matched the way an ARN is built, segment by segment, so that a `*`
/// admits no more than it appears to:
///
/// - the header fields (partition, service, region, account) are matched each on its
///   own: a `*` never crosses a `:` (`arn:aws*:lambda:*:*:...` lets the region be any
///   region, never `us-east-1:123456789012:more`);
/// - in the resource, a `*` stays within its segment (it crosses no `/` or `:`), except
///   a `*` that ends the pattern, which matches the rest of the resource:
///   `function:thera-pipeline-*` covers `function:thera-pipeline-x:live` but not
///   `function:other:thera-pipeline-x`, and `thera-pipeline/*` covers nested keys;
/// - an S3 object ARN (`arn:aws:s3:::BUCKET/KEY`) is a bucket and a key: a wildcard in
///   the bucket never reaches into the key, so `arn:aws:s3:::*/thera-pipeline/*` admits
///   keys that start with `thera-pipeline/` only, and a pattern without a `/KEY` covers
///   buckets, not their objects.
#[derive(Clone, Debug)]
pub struct AllowList {
    patterns: Vec<ArnPattern>,
}

/// The shipped default: the Thera pipeline's resources by name, any account and region,
/// and objects whose key starts with `thera-pipeline/` (in any bucket, unless the
/// deployment names its data buckets: [`AllowList::default_for`]).
pub const DEFAULT_ALLOW: &[&str] = &[
    "arn:aws*:states:*:*:stateMachine:thera-pipeline-*",
    "arn:aws*:states:*:*:execution:thera-pipeline-*",
    "arn:aws*:lambda:*:*:function:thera-pipeline-*",
    "arn:aws*:events:*:*:rule/thera-pipeline-*",
    "arn:aws*:s3:::*/thera-pipeline/*",
    "arn:aws*:cloudformation:*:*:stack/thera-pipeline-*",
];

/// The key prefix of the pipeline's objects in the default allow-list.
pub const DEFAULT_OBJECT_PREFIX: &str = "thera-pipeline/";

impl AllowList {
    /// Parses comma- or newline-separated ARN patterns (see [`AllowList`]).
    pub fn parse(text: &str) -> Result<AllowList, String> {
        let patterns = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(ArnPattern::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Err("the allow-list is empty: remediator could act on nothing".into());
        }
        Ok(AllowList { patterns })
    }

    /// [`DEFAULT_ALLOW`]: objects under `thera-pipeline/` in any bucket.
    pub fn default_list() -> AllowList {
        AllowList::parse(&DEFAULT_ALLOW.join(",")).expect("the default allow-list is valid")
    }

    /// The default with its objects narrowed to `thera-pipeline/` in the named buckets
    /// (none named: [`AllowList::default_list`]).
    pub fn default_for(buckets: &[String]) -> Result<AllowList, String> {
        if buckets.is_empty() {
            return Ok(AllowList::default_list());
        }
        let mut patterns: Vec<String> =
            DEFAULT_ALLOW.iter().filter(|p| p.split(':').nth(2) != Some("s3")).map(|p| p.to_string()).collect();
        for bucket in buckets {
            check_bucket_name(bucket)?;
            patterns.push(format!("arn:aws*:s3:::{bucket}/{DEFAULT_OBJECT_PREFIX}*"));
        }
        AllowList::parse(&patterns.join(","))
    }

    pub fn allows(&self, arn: &str) -> bool {
        match Arn::split(arn) {
            Some(arn) => self.patterns.iter().any(|p| p.matches(&arn)),
            None => false,
        }
    }

    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| p.text.as_str())
    }
}

/// Checks a general purpose S3 bucket name against S3's naming rules.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let problem = if !(3..=63).contains(&name.len()) {
        Some("is not 3-63 characters long")
    } else if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        Some("has characters other than a-z, 0-9, `.` and `-`")
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some("does not begin and end with a letter or digit")
    } else if name.contains("..") {
        Some("has two adjacent periods")
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        Some("is formatted as an IP address")
    } else if ["xn--", "sthree-", "amzn-s3-demo-"].iter().any(|p| name.starts_with(p)) {
        Some("starts with a reserved prefix (xn--, sthree-, amzn-s3-demo-)")
    } else if ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"].iter().any(|s| name.ends_with(s)) {
        Some("ends with a reserved suffix (-s3alias, --ol-s3, .mrap, --x-s3, --table-s3)")
    } else {
        None
    };
    match problem {
        Some(p) => Err(format!("`{name}` is not an S3 bucket name: it {p}")),
        None => Ok(()),
    }
}

/// An ARN (or an ARN pattern) split into its fields; the resource keeps its `:`s.
struct Arn<'a> {
    /// Partition, service, region, account.
    header: [&'a str; 4],
    resource: &'a str,
}

impl<'a> Arn<'a> {
    fn split(text: &'a str) -> Option<Arn<'a>> {
        let mut fields = text.splitn(6, ':');
        if fields.next() != Some("arn") {
            return None;
        }
        let header = [fields.next()?, fields.next()?, fields.next()?, fields.next()?];
        let resource = fields.next()?;
        Some(Arn { header, resource })
    }
}

/// One allow-list pattern, checked at parse time.
#[derive(Clone, Debug)]
struct ArnPattern {
    text: String,
    /// Partition, service, region, account.
    header: [String; 4],
    resource: String,
}

impl ArnPattern {
    fn parse(text: &str) -> Result<ArnPattern, String> {
        let shape = "arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE, with *";
        let Some(arn) = Arn::split(text) else {
            return Err(format!("`{text}` is not an ARN pattern ({shape})"));
        };
        if arn.header[0].is_empty() || arn.header[1].is_empty() || arn.resource.is_empty() {
            return Err(format!(
                "`{text}` is not an ARN pattern ({shape}): the partition, service and resource are required"
            ));
        }
        if text.contains("**") {
            return Err(format!(
                "`{text}`: `**` is not supported (a `*` matches within one segment; a `*` at the end matches the rest)"
            ));
        }
        Ok(ArnPattern {
            text: text.to_string(),
            header: arn.header.map(str::to_string),
            resource: arn.resource.to_string(),
        })
    }

    fn matches(&self, arn: &Arn) -> bool {
        if !self.header.iter().zip(arn.header).all(|(p, t)| segment_matches(p, t)) {
            return false;
        }
        if arn.header[1] == "s3" {
            // A bucket, and optionally a key: the bucket is one segment of its own.
            let (pattern_bucket, pattern_key) = split_once_opt(&self.resource, '/');
            let (bucket, key) = split_once_opt(arn.resource, '/');
            return segment_matches(pattern_bucket, bucket)
                && match (pattern_key, key) {
                    (Some(p), Some(k)) => resource_matches(p, k),
                    (None, None) => true,
                    _ => false,
                };
        }
        resource_matches(&self.resource, arn.resource)
    }
}

fn split_once_opt(text: &str, sep: char) -> (&str, Option<&str>) {
    match text.split_once(sep) {
        Some((head, tail)) => (head, Some(tail)),
        None => (text, None),
    }
}

/// Whether a resource path matches: segments (split at `/` and `:`) one by one, with
/// the same separators between them, except that a `*` ending the pattern matches the
/// rest of the path.
fn resource_matches(pattern: &str, resource: &str) -> bool {
    let is_separator = |c: char| c == '/' || c == ':';
    let pattern_segments: Vec<&str> = pattern.split(is_separator).collect();
    let segments: Vec<&str> = resource.split(is_separator).collect();
    let pattern_separators = pattern.matches(is_separator);
    let separators = resource.matches(is_separator);
    let open_ended = pattern.ends_with('*');
    if segments.len() < pattern_segments.len() || (!open_ended && segments.len() != pattern_segments.len()) {
        return false;
    }
    // The pattern's separators are the resource's first ones, and its segments match
    // the resource's first ones; an open end (the last `*`) takes whatever follows.
    pattern_separators.zip(separators).all(|(p, s)| p == s)
        && pattern_segments.iter().zip(&segments).all(|(p, s)| segment_matches(p, s))
}

/// Whether one segment (no separators) matches a pattern whose `*`s match any run of
/// characters.
fn segment_matches(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        // No `*`: the whole segment is literal.
        return rest.is_empty();
    };
    // Each middle piece at its first place after the previous one (leftmost is always
    // safe), the last piece at the very end.
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// What a pause covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", content = "value", rename_all = "kebab-case")]
pub enum PauseScope {
    Global,
    Policy(String),
    /// A target ARN or ARN glob.
    Target(String),
    /// Everything of a pipeline: every target a part of whose resource name starts with
    /// the prefix (`thera-pipeline-` covers its rules, state machines and their
    /// executions, functions and its data bucket).
    Pipeline(String),
    /// Everything in one AWS account (an organization's member account, or the home one).
    Account(String),
}

impl PauseScope {
    /// The sort key of the pause item.
    pub fn key(&self) -> String {
        match self {
            PauseScope::Global => "global".into(),
            PauseScope::Policy(p) => format!("policy#{p}"),
            PauseScope::Target(t) => format!("target#{t}"),
            PauseScope::Pipeline(p) => format!("pipeline#{p}"),
            PauseScope::Account(a) => format!("account#{a}"),
        }
    }

    pub fn from_key(key: &str) -> Option<PauseScope> {
        if key == "global" {
            return Some(PauseScope::Global);
        }
        if let Some(p) = key.strip_prefix("policy#") {
            return Some(PauseScope::Policy(p.into()));
        }
        if let Some(p) = key.strip_prefix("pipeline#") {
            return Some(PauseScope::Pipeline(p.into()));
        }
        if let Some(a) = key.strip_prefix("account#") {
            return Some(PauseScope::Account(a.into()));
        }
        key.strip_prefix("target#").map(|t| PauseScope::Target(t.into()))
    }

    pub fn describe(&self) -> String {
        match self {
            PauseScope::Global => "all remediation".into(),
            PauseScope::Policy(p) => format!("policy {p}"),
            PauseScope::Target(t) => format!("target {t}"),
            PauseScope::Pipeline(p) => format!("pipeline {p}*"),
            PauseScope::Account(a) => format!("account {a}"),
        }
    }
}

/// A pause set by a person.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pause {
    pub scope: PauseScope,
    pub reason: String,
    /// Unix seconds; a pause always expires.
    pub until: i64,
    pub by: String,
}

impl Pause {
    /// Whether the pause covers a step of `policy` on `target` in `account` (the
    /// incident's, else the one the target's ARN names). A pause of a state machine covers
    /// its executions (an execution's circuit is its state machine).
    fn covers(&self, policy: &str, target: Option<&str>, account: Option<&str>) -> bool {
        match &self.scope {
            PauseScope::Account(a) => {
                let named = target.and_then(|t| t.split(':').nth(4)).filter(|x| !x.is_empty());
                account.or(named) == Some(a.as_str()) || named == Some(a.as_str())
            }
            PauseScope::Global => true,
            PauseScope::Policy(p) => p == policy,
            PauseScope::Target(t) => target.is_some_and(|target| {
                let matches = |arn: &str| t == arn || Glob::new(t).map(|g| g.matches(arn)).unwrap_or(false);
                matches(target) || matches(&circuit_key(target))
            }),
            PauseScope::Pipeline(prefix) => target.is_some_and(|t| names_a_part_of(t, prefix)),
        }
    }
}

/// Whether a part of the resource of `arn` (after partition, service, region and
/// account; split at `:` and `/`) starts with `prefix`; for an S3 object, also whether
/// its key is under the prefix as a folder (`thera-pipeline-` → `thera-pipeline/`,
/// where the pipeline keeps its data whatever the bucket's name).
fn names_a_part_of(arn: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return false;
    }
    let folder = format!("{}/", prefix.trim_end_matches(['-', '_', '.']));
    let in_folder = arn
        .split_once(":s3:::")
        .and_then(|(_, object)| object.split_once('/'))
        .is_some_and(|(_, key)| key.starts_with(&folder));
    let named = |resource: &str| resource.split([':', '/']).any(|part| part.starts_with(prefix));
    in_folder || arn.splitn(6, ':').nth(5).is_some_and(named)
}

/// The pause that stops a step of `policy` on `target` now, as a reason, if any. The
/// guard applies it when planning, and the driver again right before each change.
pub fn pause_refusal(state: &GuardState, policy: &str, target: Option<&str>, now: i64) -> Option<String> {
    pause_refusal_in(state, policy, target, None, now)
}

/// [`pause_refusal`] for an incident handled in `account`, so that a pause of the account
/// also covers targets whose ARN names none (S3 objects).
pub fn pause_refusal_in(
    state: &GuardState,
    policy: &str,
    target: Option<&str>,
    account: Option<&str>,
    now: i64,
) -> Option<String> {
    let pause = state.pauses.iter().find(|p| p.until > now && p.covers(policy, target, account))?;
    Some(format!(
        "paused ({}) until {} by {}: {}",
        pause.scope.describe(),
        format_time(pause.until),
        pause.by,
        pause.reason
    ))
}

/// A circuit breaker of one target.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Circuit {
    /// Failed remediations in a row.
    pub failures: u32,
    pub open: bool,
}

/// Failed remediations in a row that open a target's circuit.
pub const CIRCUIT_THRESHOLD: u32 = 3;

/// Everything the guards read, loaded at once.
#[derive(Clone, Debug, Default)]
pub struct GuardState {
    pub pauses: Vec<Pause>,
    /// Times (Unix seconds) of changes made, by (policy, target).
    pub attempts: HashMap<(String, String), Vec<i64>>,
    pub circuits: HashMap<String, Circuit>,
}

/// Refuses the plan's mutating steps whose target is outside the allow-list, paused,
/// over its policy's attempt limit or in cooldown, or behind an open circuit.
pub fn guard(plan: &mut Plan, allow: &AllowList, state: &GuardState, now: i64) {
    for step in &mut plan.steps {
        if step.disposition != Disposition::Act || !step.action.is_mutating() {
            continue;
        }
        if let Some(reason) = pause_refusal(state, &step.policy, step.target.as_deref(), now) {
            step.disposition = Disposition::refuse(Refusal::Paused, reason);
            continue;
        }
        let target = match &step.target {
            Some(t) if allow.allows(t) => t.clone(),
            Some(t) => {
                step.disposition = Disposition::refuse(Refusal::NotAllowed, format!("{t} is outside the allow-list"));
                continue;
            }
            None => {
                step.disposition = Disposition::refuse(Refusal::NoTarget, "no target to act on");
                continue;
            }
        };
        if state.circuits.get(&circuit_key(&target)).is_some_and(|c| c.open) {
            step.disposition = Disposition::refuse(Refusal::CircuitOpen, format!(
                "circuit open for {target} after {CIRCUIT_THRESHOLD} failed remediations: run `remediator reset {target}` once it is fixed"
            ));
            continue;
        }
        // Execution retries are limited by the execution's own redrive/restart count
        // (planned already); other changes by the times recorded per policy and target.
        if step.attempt.is_some() {
            continue;
        }
        let limits = &step.limits;
        let times = state.attempts.get(&(step.policy.clone(), target)).map(Vec::as_slice).unwrap_or_default();
        let window = limits.window.as_secs() as i64;
        let recent = times.iter().filter(|t| **t > now - window).count() as u32;
        if recent >= limits.max_attempts {
            step.disposition = Disposition::refuse(
                Refusal::AttemptsExhausted,
                format!(
                    "attempts exhausted: {recent} of {} within {}; a person must look",
                    limits.max_attempts,
                    crate::policy::format_duration(limits.window)
                ),
            );
        } else if let Some(last) = times.iter().max().filter(|t| now - **t < limits.cooldown.as_secs() as i64) {
            step.disposition = Disposition::refuse(
                Refusal::CoolingDown,
                format!(
                    "cooling down: last change at {}, cooldown {}",
                    format_time(*last),
                    crate::policy::format_duration(limits.cooldown)
                ),
            );
        }
    }
}

/// The circuit a target belongs to: executions count against their state machine
/// (each retry is a new execution), everything else against itself.
pub fn circuit_key(target: &str) -> String {
    match crate::event::ExecutionArn::parse(target) {
        Some(execution) => execution.state_machine_arn(),
        None => target.to_string(),
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: i64) -> String {
    crate::event::format_timestamp(t)
}

/// The allow-list the settings name: `REMEDIATOR_ALLOW` when set, else the shipped
/// default with its objects narrowed to the buckets in `REMEDIATOR_DATA_BUCKETS` (when
/// set). Every problem is added to `errors`; with problems, the shipped default is
/// returned.
pub fn allow_list(get: &impl Fn(&str) -> Option<String>, errors: &mut Vec<String>) -> AllowList {
    let mut buckets: Vec<String> = Vec::new();
    if let Some(text) = get("REMEDIATOR_DATA_BUCKETS") {
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match check_bucket_name(name) {
                Ok(()) if !buckets.iter().any(|b| b == name) => buckets.push(name.to_string()),
                Ok(()) => {}
                Err(e) => errors.push(format!("REMEDIATOR_DATA_BUCKETS: {e}")),
            }
        }
    }
    let allow = match get("REMEDIATOR_ALLOW").filter(|a| !a.trim().is_empty()) {
        None => AllowList::default_for(&buckets),
        Some(text) => AllowList::parse(&text).map_err(|e| format!("REMEDIATOR_ALLOW: {e}")),
    };
    allow.unwrap_or_else(|e| {
        errors.push(e);
        AllowList::default_list()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pipeline_pause_covers_every_resource_named_for_the_pipeline() {
        let state = GuardState {
            pauses: vec![Pause {
                scope: PauseScope::Pipeline("thera-pipeline-".into()),
                reason: "emergency stop".into(),
                until: 100,
                by: "maria".into(),
            }],
            ..GuardState::default()
        };
        for covered in [
            "arn:aws:events:us-east-1:123456789012:rule/thera-pipeline-daily-rule",
            "arn:aws:states:us-east-1:123456789012:stateMachine:thera-pipeline-prod-daily",
            "arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-prod-daily:run-1",
            "arn:aws:lambda:us-east-1:123456789012:function:thera-pipeline-prod-apollo-delta-pull",
            "arn:aws:s3:::thera-pipeline-data/thera-pipeline/apollo/latest.json",
            "arn:aws:s3:::acme-data/thera-pipeline/apollo/latest.json",
        ] {
            assert!(pause_refusal(&state, "p", Some(covered), 50).is_some(), "{covered}");
        }
        for other in [
            "arn:aws:events:us-east-1:123456789012:rule/other-daily-rule",
            "arn:aws:lambda:us-east-1:123456789012:function:other-thera-pipeline-x",
            "arn:aws:s3:::data/other/thera-pipeline/latest.json",
            "arn:aws:s3:::data/thera-pipelines/latest.json",
        ] {
            assert!(pause_refusal(&state, "p", Some(other), 50).is_none(), "{other}");
        }
        assert!(pause_refusal(&state, "p", Some("arn:aws:events:us-east-1:1:rule/thera-pipeline-x"), 100).is_none());
        assert_eq!(PauseScope::from_key(&state.pauses[0].scope.key()), Some(state.pauses[0].scope.clone()));
    }

    use super::*;
    use crate::event::parse_timestamp;

    #[test]
    fn an_account_pause_covers_its_resources_and_the_incidents_handled_there() {
        let state = with_pauses(vec![Pause {
            scope: PauseScope::Account("111122223333".into()),
            reason: "migration".into(),
            until: 100,
            by: "maria".into(),
        }]);
        let member_rule = "arn:aws:events:us-east-1:111122223333:rule/thera-pipeline-daily-rule";
        let object = "arn:aws:s3:::thera-pipeline-data/thera-pipeline/apollo/latest.json";
        assert!(pause_refusal(&state, "p", Some(member_rule), 50).is_some());
        assert!(pause_refusal(&state, "p", Some(RULE), 50).is_none(), "another account");
        assert!(pause_refusal(&state, "p", Some(object), 50).is_none(), "an object names no account");
        assert!(pause_refusal_in(&state, "p", Some(object), Some("111122223333"), 50).is_some());
        assert!(pause_refusal_in(&state, "p", Some(object), Some("123456789012"), 50).is_none());
        assert!(
            pause_refusal_in(&state, "p", Some(member_rule), Some("123456789012"), 50).is_some(),
            "the target's own account"
        );
        assert_eq!(PauseScope::from_key("account#111122223333"), Some(PauseScope::Account("111122223333".into())));
    }
    use crate::plan::Step;
    use crate::policy::Action;

    fn step(policy: &str, target: &str) -> Step {
        Step {
            policy: policy.into(),
            action: Action::EnableRule { rule: None, catch_up: 0 },
            target: Some(target.into()),
            dry_run: false,
            attempt: None,
            disposition: Disposition::Act,
            limits: crate::policy::Limits::default(),
        }
    }

    const RULE: &str = "arn:aws:events:us-east-1:123456789012:rule/thera-pipeline-daily-rule";

    fn with_pauses(pauses: Vec<Pause>) -> GuardState {
        GuardState { pauses, ..GuardState::default() }
    }

    #[test]
    fn the_default_allow_list_covers_the_thera_pipeline_only() {
        let allow = AllowList::default_list();
        assert!(allow.allows(RULE));
        assert!(allow.allows("arn:aws:lambda:sa-east-1:1:function:thera-pipeline-prod-apollo-delta-pull"));
        assert!(allow.allows("arn:aws:s3:::thera-pipeline-data/thera-pipeline/apollo/latest.json"));
        assert!(allow.allows("arn:aws:states:us-east-1:1:execution:thera-pipeline-prod-daily:run-1"));
        assert!(!allow.allows("arn:aws:events:us-east-1:1:rule/billing-export"));
        assert!(!allow.allows("arn:aws:s3:::thera-pipeline-data/other/file.json"));
        assert!(AllowList::parse("not-an-arn").is_err());
        assert!(AllowList::parse(" , ").is_err());
    }

    fn allows(pattern: &str, arn: &str) -> bool {
        AllowList::parse(pattern).unwrap().allows(arn)
    }

    #[test]
    fn a_wildcard_stays_in_its_header_field() {
        let region_any = "arn:aws:lambda:*:123456789012:function:thera-pipeline-*";
        assert!(allows(region_any, "arn:aws:lambda:us-east-1:123456789012:function:thera-pipeline-x"));
        // A `*` in the region never reaches into the account.
        assert!(!allows(
            region_any,
            "arn:aws:lambda:us-east-1:123456789012:extra:123456789012:function:thera-pipeline-x"
        ));
        assert!(!allows(
            "arn:aws:lambda:*:123456789012:function:*",
            "arn:aws:lambda:us-east-1:999999999999:123456789012:function:x"
        ));
        assert!(!allows(
            "arn:aws:states:*:123:stateMachine:thera-pipeline-*",
            "arn:aws:states:us-east-1:123456789012:extra:123:stateMachine:thera-pipeline-x"
        ));
        // Partition wildcards cover the partitions and nothing else.
        let partition_any = "arn:aws*:events:*:*:rule/thera-pipeline-*";
        assert!(allows(partition_any, "arn:aws-cn:events:cn-north-1:1:rule/thera-pipeline-daily"));
        assert!(!allows(partition_any, "arn:aws:events:us-east-1:1:rule/other/thera-pipeline-daily"));
    }

    #[test]
    fn a_wildcard_in_the_resource_stays_in_its_segment_unless_it_ends_the_pattern() {
        let functions = "arn:aws*:lambda:*:*:function:thera-pipeline-*";
        assert!(allows(functions, "arn:aws:lambda:us-east-1:123:function:thera-pipeline-x"));
        assert!(allows(functions, "arn:aws:lambda:us-east-1:123:function:thera-pipeline-x:live"));
        assert!(!allows(functions, "arn:aws:lambda:us-east-1:123:function:other:thera-pipeline-x"));
        assert!(!allows(functions, "arn:aws:lambda:us-east-1:123:layer:thera-pipeline-x"));
        let executions = "arn:aws:states:*:*:execution:thera-pipeline-*";
        assert!(allows(executions, "arn:aws:states:us-east-1:1:execution:thera-pipeline-prod-daily:run-1"));
        let middle = "arn:aws:states:*:*:execution:*:run-1";
        assert!(allows(middle, "arn:aws:states:us-east-1:1:execution:thera-pipeline-prod-daily:run-1"));
        assert!(!allows(middle, "arn:aws:states:us-east-1:1:execution:a:b:run-1"));
        assert!(!allows("arn:aws:events:*:*:rule/*-daily", "arn:aws:events:us-east-1:1:rule/bus/x-daily"));
    }

    #[test]
    fn an_object_pattern_names_its_bucket_and_the_start_of_its_key() {
        let one_bucket = "arn:aws:s3:::data-bucket/thera-pipeline/*";
        assert!(allows(one_bucket, "arn:aws:s3:::data-bucket/thera-pipeline/raw/2026/x.json"));
        assert!(!allows(one_bucket, "arn:aws:s3:::other-bucket/x/thera-pipeline/y"));
        assert!(!allows(one_bucket, "arn:aws:s3:::data-bucket/x/thera-pipeline/y"));
        assert!(!allows(one_bucket, "arn:aws:s3:::data-bucket"));
        let any_bucket = "arn:aws:s3:::*/thera-pipeline/*";
        assert!(allows(any_bucket, "arn:aws:s3:::b/thera-pipeline/k"));
        assert!(allows(any_bucket, "arn:aws:s3:::b/thera-pipeline/raw/2026/x.json"));
        // The bucket wildcard never reaches into the key: the key must start with the prefix.
        assert!(!allows(any_bucket, "arn:aws:s3:::b/a/thera-pipeline/k"));
        // A pattern without a key covers buckets, not their objects, even with a trailing `*`.
        assert!(allows("arn:aws:s3:::data-*", "arn:aws:s3:::data-bucket"));
        assert!(!allows("arn:aws:s3:::data-*", "arn:aws:s3:::data-bucket/thera-pipeline/x"));
        assert!(allows("arn:aws:s3:::data-*/*", "arn:aws:s3:::data-bucket/thera-pipeline/x"));
        // The shipped default admits objects under `thera-pipeline/` of any bucket, no deeper.
        let allow = AllowList::default_list();
        assert!(allow.allows("arn:aws:s3:::thera-pipeline-data/thera-pipeline/apollo/latest.json"));
        assert!(!allow.allows("arn:aws:s3:::other-bucket/x/thera-pipeline/y"));
        assert!(!allow.allows("arn:aws:lambda:us-east-1:123:function:other:thera-pipeline-x"));
    }

    #[test]
    fn the_default_for_named_buckets_covers_their_pipeline_objects_only() {
        let allow = AllowList::default_for(&["thera-data".into(), "thera-archive".into()]).unwrap();
        assert!(allow.allows(RULE));
        assert!(allow.allows("arn:aws:s3:::thera-data/thera-pipeline/raw/2026/x.json"));
        assert!(allow.allows("arn:aws-us-gov:s3:::thera-archive/thera-pipeline/x.json"));
        assert!(!allow.allows("arn:aws:s3:::thera-pipeline-data/thera-pipeline/x.json"));
        assert!(!allow.allows("arn:aws:s3:::thera-data/other/thera-pipeline/x.json"));
        assert_eq!(allow.patterns().count(), DEFAULT_ALLOW.len() + 1);
        assert_eq!(AllowList::default_for(&[]).unwrap().patterns().collect::<Vec<_>>(), DEFAULT_ALLOW.to_vec());
        assert!(AllowList::default_for(&["*".into()]).unwrap_err().contains("`*`"));
    }

    #[test]
    fn a_pattern_that_is_not_an_arn_of_six_fields_is_refused_by_name() {
        for bad in ["arn:aws:s3", "arn:aws:lambda:*:*", "arn:aws:lambda:us-east-1:function", "*:aws:s3:::b/*"] {
            let err = AllowList::parse(&format!("arn:aws:events:*:*:rule/x,{bad}")).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
        assert!(AllowList::parse("arn:aws:s3:::*/a/**").unwrap_err().contains("`arn:aws:s3:::*/a/**`"));
    }

    #[test]
    fn a_target_outside_the_allow_list_is_refused() {
        let mut plan = Plan { steps: vec![step("p", "arn:aws:events:us-east-1:1:rule/billing-export")] };
        guard(&mut plan, &AllowList::default_list(), &GuardState::default(), 0);
        assert!(
            matches!(&plan.steps[0].disposition, Disposition::Refuse { reason: r, .. } if r.contains("outside the allow-list"))
        );
    }

    #[test]
    fn pauses_win_until_they_expire_and_only_in_their_scope() {
        let allow = AllowList::default_list();
        let pause = |scope| Pause { scope, reason: "emergency stop".into(), until: 1000, by: "maria".into() };
        for scope in [
            PauseScope::Global,
            PauseScope::Policy("p".into()),
            PauseScope::Target(RULE.into()),
            PauseScope::Target("arn:aws:events:*:*:rule/thera-*".into()),
        ] {
            let mut plan = Plan { steps: vec![step("p", RULE)] };
            guard(&mut plan, &allow, &with_pauses(vec![pause(scope.clone())]), 999);
            assert!(
                matches!(&plan.steps[0].disposition, Disposition::Refuse { reason: r, .. } if r.contains("paused") && r.contains("emergency stop")),
                "{scope:?}"
            );
            let mut expired = Plan { steps: vec![step("p", RULE)] };
            guard(&mut expired, &allow, &with_pauses(vec![pause(scope)]), 1000);
            assert_eq!(expired.steps[0].disposition, Disposition::Act);
        }
        let mut other = Plan { steps: vec![step("q", RULE)] };
        guard(&mut other, &allow, &with_pauses(vec![pause(PauseScope::Policy("p".into()))]), 0);
        assert_eq!(other.steps[0].disposition, Disposition::Act);
    }

    #[test]
    fn changes_are_refused_past_max_attempts_in_the_window_and_during_cooldown() {
        let allow = AllowList::default_list();
        let mut state = GuardState::default();
        let key = ("p".to_string(), RULE.to_string());
        let mut s = step("p", RULE);
        s.limits = crate::policy::Limits {
            max_attempts: 2,
            window: std::time::Duration::from_secs(3600),
            cooldown: std::time::Duration::from_secs(300),
        };
        // Two changes in the window: the third is refused.
        state.attempts.insert(key.clone(), vec![1000, 2000]);
        let mut plan = Plan { steps: vec![s.clone()] };
        guard(&mut plan, &allow, &state, 2500);
        assert!(
            matches!(&plan.steps[0].disposition, Disposition::Refuse { reason: r, .. } if r.contains("attempts exhausted: 2 of 2"))
        );
        // One old change outside the window, one within the cooldown.
        state.attempts.insert(key, vec![0, 4900]);
        let mut plan = Plan { steps: vec![s.clone()] };
        guard(&mut plan, &allow, &state, 5000);
        assert!(
            matches!(&plan.steps[0].disposition, Disposition::Refuse { reason: r, .. } if r.contains("cooling down"))
        );
        // After the cooldown it may act again.
        let mut plan = Plan { steps: vec![s] };
        guard(&mut plan, &allow, &state, 5300);
        assert_eq!(plan.steps[0].disposition, Disposition::Act);
    }

    #[test]
    fn an_open_circuit_refuses_every_change_to_its_target() {
        let mut state = GuardState::default();
        state.circuits.insert(RULE.into(), Circuit { failures: 3, open: true });
        let mut plan = Plan { steps: vec![step("p", RULE)] };
        guard(&mut plan, &AllowList::default_list(), &state, 0);
        assert!(
            matches!(&plan.steps[0].disposition, Disposition::Refuse { reason: r, .. } if r.contains("circuit open") && r.contains("remediator reset"))
        );
    }

    #[test]
    fn times_format_and_parse_back() {
        for t in [0, 1570035880, 1795967217] {
            assert_eq!(parse_timestamp(&format_time(t)), Some(t));
        }
    }
}
