//! Human approval, as a policy asks for it: `approval: {expires: 1h, approvers: [...]}`.
//!
//! A policy with `approval` never changes anything on its own: remediator plans, checks
//! the guards, records the plan as awaiting approval and says how to answer. Who may
//! answer is written in the policy, reviewed in its pull request like everything else:
//! IAM principal patterns (checked against the caller's identity, for `remediator
//! approve` and for a function-URL request signed with SigV4), or `anyone-with-link`,
//! which makes explicit that whoever can read the summary can approve with its link.
//! Nothing is approved by default: an approval that is not given before `expires` is
//! an expiry, and nothing is done.
//!
//! Pure: the matching of principals and the digest of a plan, unit-tested here.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::de::Checked;

/// The spelling of "whoever can reach the link may approve".
pub const ANYONE_WITH_LINK: &str = "anyone-with-link";
/// The shortest and longest a request for approval may stay open.
pub const EXPIRES_MIN: Duration = Duration::from_secs(60);
pub const EXPIRES_MAX: Duration = Duration::from_secs(7 * 86400);

/// A policy's approval requirement.
#[derive(Clone, Debug, PartialEq)]
pub struct Approval {
    /// How long the request stays open; then it expires and nothing is done.
    pub expires: Duration,
    pub approvers: Approvers,
}

/// Who may answer a request for approval.
#[derive(Clone, Debug, PartialEq)]
pub enum Approvers {
    /// Whoever can reach the link in the summary (or run `remediator approve`).
    AnyoneWithLink,
    /// IAM principals whose ARN matches one of these patterns (`*` any run of
    /// characters, `?` one). A role's pattern admits its assumed-role sessions.
    Principals(Vec<String>),
}

impl Approvers {
    /// Whether `caller` (an IAM or STS ARN, as `GetCallerIdentity` or a signed request
    /// names it) may answer.
    pub fn admits(&self, caller: &str) -> bool {
        match self {
            Approvers::AnyoneWithLink => true,
            Approvers::Principals(patterns) => {
                let forms = caller_forms(caller);
                patterns.iter().any(|p| forms.iter().any(|c| glob(p, c)))
            }
        }
    }

    /// Whether an unsigned request carrying the link's token may answer.
    pub fn by_link(&self) -> bool {
        matches!(self, Approvers::AnyoneWithLink)
    }

    /// As recorded and shown: `anyone-with-link`, or the patterns joined by `, `.
    pub fn describe(&self) -> String {
        match self {
            Approvers::AnyoneWithLink => ANYONE_WITH_LINK.to_string(),
            Approvers::Principals(p) => p.join(", "),
        }
    }
}

/// The ARNs a caller is known by: itself, and for an assumed-role session
/// (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`) its role
/// (`arn:aws:iam::ACCOUNT:role/ROLE`), so a policy can name the role people assume.
pub fn caller_forms(caller: &str) -> Vec<String> {
    let mut forms = vec![caller.to_string()];
    let parts: Vec<&str> = caller.splitn(6, ':').collect();
    if let [_, partition, "sts", _, account, resource] = parts.as_slice() {
        if let Some((role, _session)) = resource.strip_prefix("assumed-role/").and_then(|r| r.rsplit_once('/')) {
            forms.push(format!("arn:{partition}:iam::{account}:role/{role}"));
        }
    }
    forms
}

/// `*` matches any run of characters (including none), `?` exactly one; all else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One step of a plan as approval sees it: what it changes, how, and what the target
/// looked like when the plan was made (its before-image, from a dry run).
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedChange<'a> {
    pub policy: &'a str,
    pub action: &'a str,
    /// The action with its parameters, as the policy says them now.
    pub parameters: String,
    pub target: Option<&'a str>,
    /// `would-have`, `refused`, `skipped`, ...
    pub result: &'a str,
    /// What the dry run says it would do (digits left out: times and values are in the
    /// before-image, and a scheduled time moves).
    pub detail: &'a str,
    /// The before-image as JSON text (canonical: `serde_json` sorts object keys).
    pub before: Option<String>,
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The digest of one step on one incident: what it is (incident, policy, action with its
/// parameters, target) and what it would do (the dry run's words without digits, the
/// before-image), 12 hex digits each, as `IDENTITY:STATE`.
pub fn step_digest(incident: &str, c: &PlannedChange<'_>) -> String {
    let detail: String = c.detail.chars().filter(|ch| !ch.is_ascii_digit()).collect();
    let identity = digest(&[incident, c.policy, c.action, c.parameters.as_str(), c.target.unwrap_or("-")]);
    let state = digest(&[identity.as_str(), c.result, detail.as_str(), c.before.as_deref().unwrap_or("-")]);
    format!("{identity}:{state}")
}

/// The digest of a plan: its steps' digests, in order, joined by `-`. An approval is for
/// this plan on this incident, with the targets as they were: a plan made again at
/// approval time that differs in any step (its action, parameters, target, what the dry
/// run says, the before-image) has another digest.
pub fn plan_digest(incident: &str, changes: &[PlannedChange<'_>]) -> String {
    changes.iter().map(|c| step_digest(incident, c)).collect::<Vec<_>>().join("-")
}

/// Whether a plan previewed again at approval time is the approved one, step by step:
/// every step must be the same step (incident, policy, action and parameters, target).
/// A step already in place (a dry run that finds the change made: by another incident's
/// approved raise of the same function, say) agrees whatever its state; with `resumed`
/// (a handling of this approval that died half-way), so does a step found already
/// under way (`skipped`: the run it would start is running). Every other step must be
/// in the state that was approved.
pub fn same_plan(approved: &str, incident: &str, now: &[PlannedChange<'_>], resumed: bool) -> Result<(), String> {
    let steps: Vec<&str> = approved.split('-').collect();
    if steps.len() != now.len() {
        return Err(format!("the plan has {} step(s) now, {} when approval was asked", now.len(), steps.len()));
    }
    for (approved, change) in steps.iter().zip(now) {
        let current = step_digest(incident, change);
        let (id, state) = current.split_once(':').unwrap_or_default();
        let (approved_id, approved_state) = approved.split_once(':').unwrap_or((approved, ""));
        let in_place = change.result == "done" || (resumed && change.result == "skipped");
        if id == approved_id && (in_place || state == approved_state) {
            continue;
        }
        return Err(format!(
            "its `{}` step on {} is not what was approved (now: {})",
            change.action,
            change.target.unwrap_or("-"),
            change.detail
        ));
    }
    Ok(())
}

/// `approval:` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename = "approval", deny_unknown_fields)]
#[schemars(rename = "Approval")]
pub(crate) struct ApprovalDoc {
    /// How long the request stays open (1m to 7d); then nothing is done.
    expires: Checked<Expiry>,
    /// IAM principal ARN patterns (`*`, `?`), or `anyone-with-link`.
    approvers: Checked<Approvers>,
}

impl ApprovalDoc {
    pub(crate) fn into_approval(self) -> Option<Approval> {
        Some(Approval { expires: self.expires.0?.0, approvers: self.approvers.0? })
    }
}

/// A duration from [`EXPIRES_MIN`] to [`EXPIRES_MAX`].
#[derive(Debug)]
pub(crate) struct Expiry(Duration);

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Expiry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration from 1m to 7d, such as 1h")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Expiry, E> {
                match crate::duration::parse_duration(v) {
                    Ok(d) if (EXPIRES_MIN..=EXPIRES_MAX).contains(&d) => Ok(Expiry(d)),
                    Ok(_) => Err(E::custom(format!(
                        "`{v}` is out of range: a request for approval stays open from 1m to 7d"
                    ))),
                    Err(m) => Err(E::custom(format!("{m} (use a number with a unit: 30m, 1h, 2d)"))),
                }
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for Expiry {
    fn schema_name() -> Cow<'static, str> {
        "ApprovalExpiry".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "How long a request for approval stays open, from 1m to 7d: a number with a unit, e.g. 1h.",
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h|d))+$"
        })
    }
}

/// Whether a pattern can name an IAM principal: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
fn principal_pattern(p: &str) -> Result<(), String> {
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    match parts.as_slice() {
        // The account is named: a wildcard there would admit the same role name in any
        // AWS account in the world.
        ["arn", _, "iam" | "sts", _, account, _] if !crate::accounts::is_account_id(account) => Err(format!(
            "`{p}`: name the account (12 digits) of the approvers' principals; a wildcard there admits any AWS account"
        )),
        ["arn", _, "iam" | "sts", _, _, resource] if !resource.is_empty() => Ok(()),
        _ => Err(format!(
            "`{p}` is not an IAM principal ARN pattern (for example arn:aws:iam::123456789012:role/oncall-*); \
             write `{ANYONE_WITH_LINK}` instead of a list to let anyone with the link approve"
        )),
    }
}

impl<'de> Deserialize<'de> for Approvers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Approvers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a list of IAM principal ARN patterns, or `{ANYONE_WITH_LINK}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Approvers, E> {
                if v == ANYONE_WITH_LINK {
                    Ok(Approvers::AnyoneWithLink)
                } else {
                    Err(E::custom(format!(
                        "`{v}`: approvers are a list of IAM principal ARN patterns, or `{ANYONE_WITH_LINK}`"
                    )))
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Approvers, A::Error> {
                let mut patterns = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    principal_pattern(&p).map_err(de::Error::custom)?;
                    patterns.push(p);
                }
                if patterns.is_empty() {
                    return Err(de::Error::custom(format!(
                        "no approvers: name at least one principal pattern, or write `{ANYONE_WITH_LINK}`"
                    )));
                }
                Ok(Approvers::Principals(patterns))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Approvers {
    fn schema_name() -> Cow<'static, str> {
        "Approvers".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Who may approve: IAM principal ARN patterns (`*`, `?`; a role's pattern admits its sessions), or `anyone-with-link`.",
            "oneOf": [
                {"type": "string", "const": ANYONE_WITH_LINK},
                {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^arn:[^:]*:(iam|sts):[^:]*:[0-9]{12}:.+$"}}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_pattern_admits_its_sessions_and_nothing_else() {
        let a = Approvers::Principals(vec!["arn:aws:iam::123456789012:role/oncall-*".into()]);
        assert!(a.admits("arn:aws:sts::123456789012:assumed-role/oncall-data/maria"));
        assert!(a.admits("arn:aws:iam::123456789012:role/oncall-data"));
        assert!(!a.admits("arn:aws:sts::123456789012:assumed-role/dev/oncall-data"));
        assert!(!a.admits("arn:aws:sts::999999999999:assumed-role/oncall-data/maria"));
        assert!(!a.admits("arn:aws:iam::123456789012:user/oncall-data"));
        assert!(!a.by_link());
        assert!(Approvers::AnyoneWithLink.by_link());
    }

    #[test]
    fn globs_match_whole_arns() {
        assert!(glob("arn:aws:iam::*:user/a?c", "arn:aws:iam::1:user/abc"));
        assert!(!glob("arn:aws:iam::*:user/a?c", "arn:aws:iam::1:user/abcd"));
        assert!(glob("*", ""));
        assert!(!glob("arn:aws:iam::1:user/x", "arn:aws:iam::1:user/xy"));
        assert!(glob("a*b*c", "aXXbYYbc"));
    }

    fn step<'a>(before: &str, parameters: &str, result: &'a str, detail: &'a str) -> PlannedChange<'a> {
        PlannedChange {
            policy: "p",
            action: "raise-timeout",
            parameters: parameters.into(),
            target: Some("f"),
            result,
            detail,
            before: Some(before.to_string()),
        }
    }

    #[test]
    fn the_digest_changes_with_any_step_its_parameters_or_before_image_not_with_times() {
        let one = |before: &str| step(before, "factor 1.5", "would-have", "would raise timeout 60s→90s");
        let a = plan_digest("inc", &[one(r#"{"timeout":60}"#)]);
        assert_eq!(a, plan_digest("inc", &[one(r#"{"timeout":60}"#)]));
        assert_ne!(a, plan_digest("inc", &[one(r#"{"timeout":90}"#)]));
        assert_ne!(a, plan_digest("other", &[one(r#"{"timeout":60}"#)]));
        assert_ne!(
            a,
            plan_digest("inc", &[step(r#"{"timeout":60}"#, "factor 2", "would-have", "would raise timeout 60s→90s")])
        );
        let b = plan_digest("inc", &[one(r#"{"timeout":60}"#), one(r#"{"timeout":60}"#)]);
        assert_ne!(a, b);
        // A scheduled time moves; the digest does not.
        let at = |d| step("{}", "delay 10m", "would-have", d);
        assert_eq!(
            plan_digest("inc", &[at("would schedule the retry at 2026-11-30T07:00:00Z")]),
            plan_digest("inc", &[at("would schedule the retry at 2026-11-30T07:09:41Z")])
        );
        assert_ne!(plan_digest("inc", &[at("would redrive")]), plan_digest("inc", &[at("would restart")]));
    }

    #[test]
    fn the_same_plan_is_compared_step_by_step_and_a_change_in_place_agrees() {
        let raise = step(r#"{"timeout":60}"#, "factor 1.5", "would-have", "would raise timeout 60s→90s");
        let redrive = PlannedChange { action: "redrive", before: None, detail: "would redrive", ..raise.clone() };
        let approved = plan_digest("inc", &[raise.clone(), redrive.clone()]);
        assert_eq!(same_plan(&approved, "inc", &[raise.clone(), redrive.clone()], false), Ok(()));
        // The raise was made meanwhile (a takeover, another incident's approval): in place.
        let in_place =
            PlannedChange { result: "done", detail: "timeout is 90s, changed since this failure", ..raise.clone() };
        assert_eq!(same_plan(&approved, "inc", &[in_place, redrive.clone()], false), Ok(()));
        // Someone changed the timeout to something else: the preview's before-image differs.
        let changed = step(r#"{"timeout":75}"#, "factor 1.5", "would-have", "would raise timeout 75s→113s");
        assert!(same_plan(&approved, "inc", &[changed, redrive.clone()], false).unwrap_err().contains("raise-timeout"));
        assert!(same_plan(&approved, "inc", &[raise], false).is_err(), "a step fewer");
        let skipped = PlannedChange { result: "skipped", ..redrive.clone() };
        let raise = step(r#"{"timeout":60}"#, "factor 1.5", "would-have", "would raise timeout 60s→90s");
        assert!(same_plan(&approved, "inc", &[raise.clone(), skipped.clone()], false).is_err());
        // Resuming this approval's own handling, a run already under way is in place.
        assert_eq!(same_plan(&approved, "inc", &[raise.clone(), skipped], true), Ok(()));
        // A step "in place" must still be the approved step: another target, or other
        // parameters, is not.
        let elsewhere = PlannedChange { target: Some("g"), result: "done", ..raise.clone() };
        assert!(same_plan(&approved, "inc", &[elsewhere, redrive.clone()], false).is_err());
        let other = PlannedChange { parameters: "factor 3".into(), result: "done", ..raise };
        assert!(same_plan(&approved, "inc", &[other, redrive], false).is_err());
    }

    #[test]
    fn approvers_name_their_account() {
        assert!(principal_pattern("arn:aws:iam::123456789012:role/oncall-*").is_ok());
        assert!(principal_pattern("arn:aws:iam::*:role/oncall").unwrap_err().contains("any AWS account"));
        assert!(principal_pattern("arn:aws:sts::12345678901?:assumed-role/x/*").is_err());
        assert!(principal_pattern("oncall").is_err());
    }
}
