//! remediator's pattern matcher against EventBridge's own (event-ruler, run as an oracle
//! from `shared/event-ruler/`): generated patterns (every operator, `$or`, lists of values,
//! arrays of values and of objects) and generated events, whose values change type on
//! purpose (`"error": null` on a success is not academic). Validity and every verdict
//! must agree; the oracle's own known faults (its README) are left out by construction.
//!
//! Deterministic: a fixed seed per round, so a failure names the rule and the event to
//! replay. Java 17 runs the oracle (it is on the machines; without it the test fails,
//! it does not pass silently).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use remediator_policy::pattern::Pattern;
use serde_json::{json, Map, Value};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const STRINGS: &[&str] = &["a", "ab", "abc", "Thera-x", "thera-y", "THERA-Z", "x-thera", "10.0.0.7", "192.168.1.9", ""];
const NUMBERS: &[f64] = &[0.0, 1.0, 1.5, -3.0, 100.0, 1000.0, 5e-1];
/// Leaf fields (a path) and nested object fields of the generated events.
const LEAVES: &[&str] = &["source", "status", "error", "count", "ip"];

fn scalar(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0..=4 => json!(rng.pick(STRINGS)),
        5..=7 => json!(rng.pick(NUMBERS)),
        8 => json!(rng.chance(50)),
        _ => Value::Null,
    }
}

/// One value of an event's leaf field: a scalar, or an array of them.
fn event_value(rng: &mut Rng) -> Value {
    if rng.chance(20) {
        Value::Array((0..rng.below(3) + 1).map(|_| scalar(rng)).collect())
    } else {
        scalar(rng)
    }
}

fn event(rng: &mut Rng, i: usize) -> Value {
    let mut detail = Map::new();
    for leaf in LEAVES {
        if rng.chance(80) {
            detail.insert(leaf.to_string(), event_value(rng));
        }
    }
    if rng.chance(60) {
        let items = (0..rng.below(3) + 1)
            .map(|_| {
                let mut item = Map::new();
                for k in ["name", "size"] {
                    if rng.chance(80) {
                        item.insert(k.to_string(), scalar(rng));
                    }
                }
                Value::Object(item)
            })
            .collect();
        detail.insert("items".into(), Value::Array(items));
    }
    json!({"id": format!("e{i}"), "source": rng.pick(&["aws.states", "aws.s3", "Aws.States"]), "detail": detail})
}

/// One matcher of a field's list.
fn matcher(rng: &mut Rng) -> Value {
    let s = |rng: &mut Rng| json!(rng.pick(STRINGS));
    let n = |rng: &mut Rng| json!(rng.pick(NUMBERS));
    let text = |rng: &mut Rng| rng.pick(&["", "a", "th", "Th", "ab", "-x", "y", "abc"]).to_string();
    let glob = |rng: &mut Rng| rng.pick(&["*", "a*", "*x", "thera-*", "*er*", "a*c", "Thera-?"]).to_string();
    match rng.below(16) {
        0 | 1 => s(rng),
        2 => n(rng),
        3 => rng.pick(&[Value::Null, json!(true), json!(false)]).clone(),
        4 => json!({"prefix": text(rng)}),
        5 => json!({"suffix": text(rng)}),
        6 => json!({"wildcard": glob(rng)}),
        7 => json!({"equals-ignore-case": text(rng)}),
        8 => json!({"prefix": {"equals-ignore-case": text(rng)}}),
        9 => json!({"suffix": {"equals-ignore-case": text(rng)}}),
        10 => json!({"exists": rng.chance(50)}),
        11 => {
            let op = rng.pick(&[">", ">=", "<", "<=", "="]);
            if rng.chance(50) {
                json!({"numeric": [op, rng.pick(NUMBERS)]})
            } else {
                json!({"numeric": [">", -5, "<=", rng.pick(NUMBERS)]})
            }
        }
        12 => json!({"cidr": rng.pick(&["10.0.0.0/24", "192.168.0.0/16", "10.0.0.7/32", "10.0.0.0/8"])}),
        13 => match rng.below(3) {
            0 => json!({"anything-but": s(rng)}),
            1 => json!({"anything-but": [s(rng), s(rng)]}),
            _ => json!({"anything-but": [n(rng), n(rng)]}),
        },
        14 => match rng.below(4) {
            0 => json!({"anything-but": {"prefix": text(rng)}}),
            1 => json!({"anything-but": {"suffix": text(rng)}}),
            2 => json!({"anything-but": {"wildcard": glob(rng)}}),
            _ => json!({"anything-but": {"equals-ignore-case": [text(rng), text(rng)]}}),
        },
        _ => json!({"anything-but": n(rng)}),
    }
}

fn list(rng: &mut Rng) -> Value {
    Value::Array((0..rng.below(3) + 1).map(|_| matcher(rng)).collect())
}

fn detail_pattern(rng: &mut Rng) -> Map<String, Value> {
    let mut detail = Map::new();
    for _ in 0..rng.below(2) + 1 {
        detail.insert(rng.pick(LEAVES).to_string(), list(rng));
    }
    if rng.chance(35) {
        // One field, or two (which must then come from one element of the array).
        let mut items = Map::new();
        // (`exists: false` beside another field of one array element is not generated:
        // event-ruler's verdicts there follow rules not reproduced here; see the README.)
        let keys: Vec<&str> = if rng.chance(50) { vec!["name", "size"] } else { vec![*rng.pick(&["name", "size"])] };
        let single = keys.len() == 1;
        for key in keys {
            let field = if rng.chance(25) { json!([{"exists": single && rng.chance(30)}]) } else { list(rng) };
            let field = if single { field } else { without_absent(field) };
            items.insert(key.to_string(), field);
        }
        detail.insert("items".into(), Value::Object(items));
    }
    detail
}

/// A field's list without `exists: false` (replaced by `exists: true`).
fn without_absent(list: Value) -> Value {
    match list {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|m| if m == json!({"exists": false}) { json!({"exists": true}) } else { m })
                .collect(),
        ),
        other => other,
    }
}

fn pattern(rng: &mut Rng) -> Value {
    let mut top = Map::new();
    if rng.chance(40) {
        top.insert("source".into(), list(rng));
    }
    if rng.chance(20) {
        top.insert("$or".into(), json!([{"detail": detail_pattern(rng)}, {"detail": detail_pattern(rng)}]));
    } else {
        top.insert("detail".into(), Value::Object(detail_pattern(rng)));
    }
    Value::Object(top)
}

/// The oracle's own known faults (shared/event-ruler/README.md): a `wildcard` beside a
/// `{"prefix": {"equals-ignore-case": ...}}` in one list matches values neither matches
/// alone. Found here, more of the same kind: beside a `{"suffix": {"equals-ignore-case":
/// ...}}` too (`[{"wildcard": "*er*"}, {"suffix": {"equals-ignore-case": "-x"}}]`
/// matches `"THERA-Z"`), and `[{"prefix": "Th"}, {"suffix": {"equals-ignore-case":
/// "ab"}}]` matches `"Thera-x"` or not depending on the rule's *name* (`r0-5` yes,
/// `r3-299` no, in a JVM of its own). So a list holding a prefix or suffix with
/// `equals-ignore-case` beside another string operator is left out. Not generated
/// either: `{"cidr": "x/0"}`, which event-ruler also matches against addresses of the
/// other family (`10.0.0.0/0` matches `::1`).
fn oracle_fault(pattern: &Value) -> bool {
    fn lists(v: &Value, out: &mut Vec<Vec<Value>>) {
        match v {
            Value::Object(m) => m.values().for_each(|x| lists(x, out)),
            Value::Array(items) if items.iter().all(|i| !i.as_object().is_some_and(|o| o.contains_key("detail"))) => {
                out.push(items.clone())
            }
            Value::Array(items) => items.iter().for_each(|x| lists(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    lists(pattern, &mut all);
    all.iter().any(|l| {
        let string_ops = l
            .iter()
            .filter(|m| {
                // Plain or under `anything-but`.
                let text = m.to_string();
                ["\"prefix\"", "\"suffix\"", "\"wildcard\"", "\"equals-ignore-case\""].iter().any(|k| text.contains(k))
            })
            .count();
        let folded = l.iter().any(|m| {
            ["prefix", "suffix"].iter().any(|k| m.get(*k).is_some_and(|v| v.get("equals-ignore-case").is_some()))
        });
        folded && string_ops > 1
    })
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs the oracle: the names of the rules it rejects, and each event's matching rules.
fn oracle(rules: &Map<String, Value>, events: &[Value]) -> (BTreeSet<String>, Vec<BTreeSet<String>>) {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("remediator-event-ruler-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules_path = dir.join("rules.json");
    let events_path = dir.join("events.ndjson");
    std::fs::write(&rules_path, Value::Object(rules.clone()).to_string()).unwrap();
    let mut f = std::fs::File::create(&events_path).unwrap();
    for e in events {
        writeln!(f, "{e}").unwrap();
    }
    let jars = workspace().parent().unwrap().join("shared/event-ruler");
    let cp: Vec<String> =
        ["event-ruler-oracle.jar", "jackson-databind.jar", "jackson-core.jar", "jackson-annotations.jar", "jsr305.jar"]
            .iter()
            .map(|j| jars.join(j).display().to_string())
            .collect();
    let out = Command::new("java")
        .arg("-cp")
        .arg(cp.join(":"))
        .arg("Oracle")
        .arg(&rules_path)
        .arg(&events_path)
        .output()
        .expect("java runs the event-ruler oracle (Java 17 is on the machines)");
    assert!(out.status.success(), "the oracle failed: {}", String::from_utf8_lossy(&out.stderr));
    let invalid = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("INVALID "))
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect();
    let verdicts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Vec<String>>(l).unwrap().into_iter().collect())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    (invalid, verdicts)
}

#[test]
fn remediator_matches_as_eventbridge_does_on_generated_patterns_and_events() {
    let mut differences: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut compared = (0usize, 0usize, 0usize);
    for round in 0..4u64 {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (round + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut rules = Map::new();
        for i in 0..300 {
            let p = pattern(&mut rng);
            if !oracle_fault(&p) {
                rules.insert(format!("r{round}-{i}"), p);
            }
        }
        let events: Vec<Value> = (0..200).map(|i| event(&mut rng, i)).collect();
        let (invalid, verdicts) = oracle(&rules, &events);
        assert_eq!(verdicts.len(), events.len(), "the oracle answered for every event");
        for (name, p) in &rules {
            let ours = Pattern::from_json(p);
            let theirs_valid = !invalid.contains(name);
            match (&ours, theirs_valid) {
                (Ok(_), false) => {
                    differences.entry("valid here, rejected by EventBridge".into()).or_default().push(p.to_string());
                    continue;
                }
                (Err(e), true) => {
                    let why = e.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ");
                    differences
                        .entry("rejected here, valid in EventBridge".into())
                        .or_default()
                        .push(format!("{p} ({why})"));
                    continue;
                }
                (Err(_), false) => continue,
                (Ok(_), true) => {}
            }
            let ours = ours.unwrap();
            compared.0 += 1;
            for (e, theirs) in events.iter().zip(&verdicts) {
                compared.1 += 1;
                let (a, b) = (ours.matches(e), theirs.contains(name));
                if a != b {
                    // Asked again with this rule alone, in a JVM of its own: event-ruler's
                    // verdicts can change with the other rules loaded beside it (its
                    // README's first fault, seen here across machines too). Its verdict on
                    // the rule alone is EventBridge's for a rule on its own.
                    let alone = Map::from_iter([(name.clone(), p.clone())]);
                    let (_, again) = oracle(&alone, std::slice::from_ref(e));
                    if again[0].contains(name) == a {
                        compared.2 += 1;
                        continue;
                    }
                    let kind = if a { "matches here, not in EventBridge" } else { "matches in EventBridge, not here" };
                    differences
                        .entry(kind.into())
                        .or_default()
                        .push(format!("{p}\n      event {e}\n      alone: {:?}", again[0]));
                }
            }
        }
    }
    let mut report = String::new();
    for (kind, cases) in &differences {
        report.push_str(&format!("\n{kind}: {} case(s), e.g.\n", cases.len()));
        for c in cases.iter().take(6) {
            report.push_str(&format!("    {c}\n"));
        }
    }
    eprintln!(
        "{} rules and {} verdicts compared; {} verdicts of the oracle changed when the rule was asked alone",
        compared.0, compared.1, compared.2
    );
    assert!(differences.is_empty(), "{} rules and {} verdicts compared; differences:{report}", compared.0, compared.1);
    // The oracle's verdicts are deterministic once its known faults are left out: a
    // verdict that changes when asked again is a fault not yet written down.
    assert_eq!(compared.2, 0, "verdicts of the oracle that changed when asked again");
    assert!(compared.0 > 600 && compared.1 > 120_000, "too little compared: {compared:?}");
}
