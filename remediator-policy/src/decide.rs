//! Matching an incident against the policy set: which policies decide.
//!
//! Pure and allocation-light: policies are already compiled and sorted by priority. The
//! first matching policy decides; one that says `continue: true` lets later matches add
//! their actions too.

use serde_json::Value;

use crate::policy::{Policy, PolicySet};

/// The policies that matched an incident, in priority order, and those that apply.
#[derive(Debug)]
pub struct Decision<'p> {
    /// Every policy whose pattern holds.
    pub matched: Vec<&'p Policy>,
    /// The deciding policy first, then any that a `continue: true` let through.
    pub applied: Vec<&'p Policy>,
}

impl<'p> Decision<'p> {
    /// The deciding policy, if any matched.
    pub fn policy(&self) -> Option<&'p Policy> {
        self.applied.first().copied()
    }
}

/// Evaluates every policy (so `explain` can list all matches) and picks those that apply.
pub fn decide<'p>(policies: &'p PolicySet, document: &Value) -> Decision<'p> {
    let matched: Vec<&Policy> = policies.policies().iter().filter(|p| p.pattern.matches(document)).collect();
    let mut applied = Vec::new();
    for p in &matched {
        applied.push(*p);
        if !p.continue_ {
            break;
        }
    }
    Decision { matched, applied }
}

/// Only the deciding policies, stopping at the first that does not continue (the
/// handler's path: it needs no list of every match).
pub fn decide_applied<'p>(policies: &'p PolicySet, document: &Value) -> Vec<&'p Policy> {
    let mut applied = Vec::new();
    for p in policies.policies() {
        if p.pattern.matches(document) {
            applied.push(p);
            if !p.continue_ {
                break;
            }
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(text: &str) -> PolicySet {
        PolicySet::from_sources(&[("p.yaml".into(), text.into())]).unwrap()
    }

    #[test]
    fn the_first_match_by_priority_decides() {
        let s = set("policies:
  - {name: late, priority: 20, match: {source: [a]}, actions: [notify]}
  - {name: early, priority: 10, match: {source: [a]}, actions: [redrive]}
");
        let d = decide(&s, &json!({"source": "a"}));
        assert_eq!(d.policy().unwrap().name, "early");
        assert_eq!(d.matched.len(), 2);
        assert_eq!(d.applied.len(), 1);
    }

    #[test]
    fn continue_lets_later_policies_apply() {
        let s = set("policies:
  - {name: first, priority: 1, continue: true, match: {source: [a]}, actions: [notify]}
  - {name: second, priority: 2, match: {source: [a]}, actions: [redrive]}
  - {name: third, priority: 3, match: {source: [a]}, actions: [redrive]}
");
        let names: Vec<&str> = decide_applied(&s, &json!({"source": "a"})).iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["first", "second"]);
    }

    #[test]
    fn no_match_decides_nothing() {
        let s = set("policies:\n  - {name: a, match: {source: [a]}, actions: [notify]}\n");
        assert!(decide(&s, &json!({"source": "b"})).policy().is_none());
    }
}
