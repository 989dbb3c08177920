//! Guards that keep remediator from touching what it must not: the allow-list of
//! resources it may change, and the pauses humans set.
//!
//! Both are applied to a plan before anything runs, and a guarded step becomes a refusal
//! with a reason (recorded and named in the summary), never a silent skip. A pause
//! always wins: the troubleshooting guide's emergency procedure disables the pipeline's
//! rules on purpose, and re-enabling them then would fight the operator.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::AwsError;

use crate::pattern::Glob;
use crate::plan::{Disposition, Plan};

/// ARN patterns remediator may act on.
#[derive(Clone, Debug)]
pub struct AllowList {
    patterns: Vec<(String, Glob)>,
}

/// The shipped default: the Thera pipeline's resources by name, any account and region.
pub const DEFAULT_ALLOW: &[&str] = &[
    "arn:aws*:states:*:*:stateMachine:thera-pipeline-*",
    "arn:aws*:states:*:*:execution:thera-pipeline-*",
    "arn:aws*:lambda:*:*:function:thera-pipeline-*",
    "arn:aws*:events:*:*:rule/thera-pipeline-*",
    "arn:aws*:s3:::*/thera-pipeline/*",
];

impl AllowList {
    /// Parses comma- or newline-separated ARN globs.
    pub fn parse(text: &str) -> Result<AllowList, String> {
        let mut patterns = Vec::new();
        for p in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if !p.starts_with("arn:") {
                return Err(format!("`{p}` is not an ARN pattern (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE, with *)"));
            }
            patterns.push((
                p.to_string(),
                Glob::new(p).map_err(|e| format!("`{p}`: {e}"))?,
            ));
        }
        if patterns.is_empty() {
            return Err("the allow-list is empty: remediator could act on nothing".into());
        }
        Ok(AllowList { patterns })
    }

    pub fn default_list() -> AllowList {
        AllowList::parse(&DEFAULT_ALLOW.join(",")).expect("the default allow-list is valid")
    }

    pub fn allows(&self, arn: &str) -> bool {
        self.patterns.iter().any(|(_, g)| g.matches(arn))
    }

    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|(p, _)| p.as_str())
    }
}

/// What a pause covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", content = "value", rename_all = "kebab-case")]
pub enum PauseScope {
    Global,
    Policy(String),
    /// A target ARN or ARN glob.
    Target(String),
}

impl PauseScope {
    /// The sort key of the pause item.
    pub fn key(&self) -> String {
        match self {
            PauseScope::Global => "global".into(),
            PauseScope::Policy(p) => format!("policy#{p}"),
            PauseScope::Target(t) => format!("target#{t}"),
        }
    }

    pub fn from_key(key: &str) -> Option<PauseScope> {
        if key == "global" {
            return Some(PauseScope::Global);
        }
        if let Some(p) = key.strip_prefix("policy#") {
            return Some(PauseScope::Policy(p.into()));
        }
        key.strip_prefix("target#")
            .map(|t| PauseScope::Target(t.into()))
    }

    pub fn describe(&self) -> String {
        match self {
            PauseScope::Global => "all remediation".into(),
            PauseScope::Policy(p) => format!("policy {p}"),
            PauseScope::Target(t) => format!("target {t}"),
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
    fn covers(&self, policy: &str, target: Option<&str>) -> bool {
        match &self.scope {
            PauseScope::Global => true,
            PauseScope::Policy(p) => p == policy,
            PauseScope::Target(t) => target.is_some_and(|target| {
                Glob::new(t).map(|g| g.matches(target)).unwrap_or(false) || t == target
            }),
        }
    }
}

/// Where pauses are kept (the state table).
#[async_trait]
pub trait Pauses: Send + Sync {
    /// Every pause that has not expired.
    async fn active(&self, now: i64) -> Result<Vec<Pause>, AwsError>;
    async fn set(&self, pause: &Pause) -> Result<(), AwsError>;
    /// Removes a pause; returns whether there was one.
    async fn clear(&self, scope: &PauseScope) -> Result<bool, AwsError>;
}

/// Refuses the plan's mutating steps whose target is outside the allow-list or paused.
pub fn guard(plan: &mut Plan, allow: &AllowList, pauses: &[Pause], now: i64) {
    for step in &mut plan.steps {
        if step.disposition != Disposition::Act || !step.action.is_mutating() {
            continue;
        }
        if let Some(pause) = pauses
            .iter()
            .find(|p| p.until > now && p.covers(&step.policy, step.target.as_deref()))
        {
            step.disposition = Disposition::Refuse(format!(
                "paused ({}) until {} by {}: {}",
                pause.scope.describe(),
                format_time(pause.until),
                pause.by,
                pause.reason
            ));
            continue;
        }
        match &step.target {
            Some(t) if allow.allows(t) => {}
            Some(t) => {
                step.disposition = Disposition::Refuse(format!("{t} is outside the allow-list"))
            }
            None => step.disposition = Disposition::Refuse("no target to act on".into()),
        }
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_timestamp;
    use crate::plan::Step;
    use crate::policy::Action;

    fn step(policy: &str, target: &str) -> Step {
        Step {
            policy: policy.into(),
            action: Action::EnableRule { rule: None },
            target: Some(target.into()),
            dry_run: false,
            attempt: None,
            disposition: Disposition::Act,
        }
    }

    const RULE: &str = "arn:aws:events:us-east-1:123456789012:rule/thera-pipeline-daily-rule";

    #[test]
    fn the_default_allow_list_covers_the_thera_pipeline_only() {
        let allow = AllowList::default_list();
        assert!(allow.allows(RULE));
        assert!(allow
            .allows("arn:aws:lambda:sa-east-1:1:function:thera-pipeline-prod-apollo-delta-pull"));
        assert!(allow.allows("arn:aws:s3:::thera-pipeline-data/thera-pipeline/apollo/latest.json"));
        assert!(
            allow.allows("arn:aws:states:us-east-1:1:execution:thera-pipeline-prod-daily:run-1")
        );
        assert!(!allow.allows("arn:aws:events:us-east-1:1:rule/billing-export"));
        assert!(!allow.allows("arn:aws:s3:::thera-pipeline-data/other/file.json"));
        assert!(AllowList::parse("not-an-arn").is_err());
        assert!(AllowList::parse(" , ").is_err());
    }

    #[test]
    fn a_target_outside_the_allow_list_is_refused() {
        let mut plan = Plan {
            steps: vec![step("p", "arn:aws:events:us-east-1:1:rule/billing-export")],
        };
        guard(&mut plan, &AllowList::default_list(), &[], 0);
        assert!(
            matches!(&plan.steps[0].disposition, Disposition::Refuse(r) if r.contains("outside the allow-list"))
        );
    }

    #[test]
    fn pauses_win_until_they_expire_and_only_in_their_scope() {
        let allow = AllowList::default_list();
        let pause = |scope| Pause {
            scope,
            reason: "emergency stop".into(),
            until: 1000,
            by: "maria".into(),
        };
        for scope in [
            PauseScope::Global,
            PauseScope::Policy("p".into()),
            PauseScope::Target(RULE.into()),
            PauseScope::Target("arn:aws:events:*:*:rule/thera-*".into()),
        ] {
            let mut plan = Plan {
                steps: vec![step("p", RULE)],
            };
            guard(&mut plan, &allow, &[pause(scope.clone())], 999);
            assert!(
                matches!(&plan.steps[0].disposition, Disposition::Refuse(r) if r.contains("paused") && r.contains("emergency stop")),
                "{scope:?}"
            );
            let mut expired = Plan {
                steps: vec![step("p", RULE)],
            };
            guard(&mut expired, &allow, &[pause(scope)], 1000);
            assert_eq!(expired.steps[0].disposition, Disposition::Act);
        }
        let mut other = Plan {
            steps: vec![step("q", RULE)],
        };
        guard(
            &mut other,
            &allow,
            &[pause(PauseScope::Policy("p".into()))],
            0,
        );
        assert_eq!(other.steps[0].disposition, Disposition::Act);
    }

    #[test]
    fn times_format_and_parse_back() {
        for t in [0, 1570035880, 1795967217] {
            assert_eq!(parse_timestamp(&format_time(t)), Some(t));
        }
    }
}
