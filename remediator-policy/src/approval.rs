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

/// One step of a plan as approval sees it: what it changes and what the target looked
/// like when the plan was made (its before-image, from a dry run).
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedChange<'a> {
    pub policy: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    /// `would-have`, `refused`, `skipped`, ...
    pub result: &'a str,
    /// The before-image as JSON text (canonical: `serde_json` sorts object keys).
    pub before: Option<String>,
}

/// The digest of a plan: an approval is for this plan on this incident, with the targets
/// as they were. A plan made again at approval time that differs in any step, or a
/// target whose before-image changed, has another digest.
pub fn plan_digest(incident: &str, changes: &[PlannedChange<'_>]) -> String {
    let mut h = Sha256::new();
    h.update(incident.as_bytes());
    for c in changes {
        for part in [c.policy, c.action, c.target.unwrap_or("-"), c.result, c.before.as_deref().unwrap_or("-")] {
            h.update([0u8]);
            h.update(part.len().to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
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
        ["arn", _, "iam" | "sts" | "*", _, _, resource] if !resource.is_empty() => Ok(()),
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
                {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^arn:[^:]*:(iam|sts|\\*):[^:]*:[^:]*:.+$"}}
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

    #[test]
    fn the_digest_changes_with_any_step_or_before_image() {
        let step = |before: &str| PlannedChange {
            policy: "p",
            action: "raise-timeout",
            target: Some("f"),
            result: "would-have",
            before: Some(before.to_string()),
        };
        let a = plan_digest("inc", &[step(r#"{"timeout":60}"#)]);
        assert_eq!(a, plan_digest("inc", &[step(r#"{"timeout":60}"#)]));
        assert_ne!(a, plan_digest("inc", &[step(r#"{"timeout":90}"#)]));
        assert_ne!(a, plan_digest("other", &[step(r#"{"timeout":60}"#)]));
        assert_ne!(a, plan_digest("inc", &[step(r#"{"timeout":60}"#), step(r#"{"timeout":60}"#)]));
    }
}
