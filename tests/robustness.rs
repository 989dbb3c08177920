//! Bad input never panics: the event parser, the policy loader and the pattern compiler
//! are fed mutations of real inputs (a deterministic generator, so a failure is
//! reproducible), and every rejection must name its problem. This is the smoke test
//! that runs in `make test`.

use remediator::event::Event;
use remediator::pattern::Pattern;
use remediator::policy::PolicySet;

/// xorshift64*: small, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "null",
    "true",
    "-",
    "0",
    "1e999",
    "-5e9",
    "*",
    "**",
    "\\*",
    "$or",
    "prefix",
    "suffix",
    "wildcard",
    "numeric",
    "exists",
    "cidr",
    "anything-but",
    "equals-ignore-case",
    ">",
    "<=",
    "=",
    "\n",
    "  ",
    "- ",
    "&a",
    "*a",
    "!!str",
    "#",
    "'",
    "\u{0}",
    "ü",
    "𝄞",
    "10.0.0.0/33",
    "::/129",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 if !chars.is_empty() => {
                let end = (at + rng.below(8)).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                chars.splice(at..at, token.chars());
            }
            2 if !chars.is_empty() => {
                let i = rng.below(chars.len());
                chars[i] = char::from_u32(rng.below(0x250) as u32).unwrap_or('?');
            }
            _ => {
                let from = rng.below(chars.len() + 1);
                let piece: Vec<char> = chars[from..(from + rng.below(16)).min(chars.len())].to_vec();
                let at = at.min(chars.len());
                chars.splice(at..at, piece);
            }
        }
    }
    chars.into_iter().collect()
}

fn seeds(dir: &str, ext: &str) -> Vec<String> {
    let root = format!("{}/../{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(root)];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().and_then(|x| x.to_str()) == Some(ext) {
                out.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out.sort();
    assert!(!out.is_empty());
    out
}

#[test]
fn mutated_events_are_parsed_or_rejected_with_a_reason() {
    let seeds = seeds("tests/fixtures/events", "json");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4000 {
        let seed = &seeds[rng.below(seeds.len())];
        let text = mutate(&mut rng, seed);
        if let Err(e) = Event::parse(&text) {
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn mutated_policies_load_or_fail_with_positioned_errors() {
    let seeds = seeds("policies", "yaml");
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..1500 {
        let seed = &seeds[rng.below(seeds.len())];
        let text = mutate(&mut rng, seed);
        if let Err(errors) = PolicySet::from_sources(&[("p.yaml".into(), text.clone())]) {
            for e in &errors.0 {
                assert!(e.to_string().starts_with("p.yaml:"), "{e} from:\n{text}");
                assert!(!e.message.is_empty());
            }
        }
    }
}

#[test]
fn mutated_patterns_compile_or_fail_and_compiled_ones_match_without_panicking() {
    let patterns = [
        r#"{"source":["aws.states"],"detail":{"status":["FAILED",{"prefix":"TIMED"}],"n":[{"numeric":[">",0,"<=",5]}]}}"#,
        r#"{"a":[{"wildcard":"x*y\\*z"},{"anything-but":{"suffix":".tmp"}},{"cidr":"10.0.0.0/8"},{"exists":false}],"$or":[{"b":[1]},{"c":[null]}]}"#,
        r#"{"d":[{"equals-ignore-case":"ÅB"},{"suffix":{"equals-ignore-case":"Ç"}},{"anything-but":[1,2]}]}"#,
    ];
    let documents: Vec<serde_json::Value> =
        seeds("tests/fixtures/events", "json").iter().map(|t| serde_json::from_str(t).unwrap()).collect();
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut compiled = 0;
    for _ in 0..4000 {
        let seed = patterns[rng.below(patterns.len())];
        let text = mutate(&mut rng, seed);
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        match Pattern::from_json(&json) {
            Ok(p) => {
                compiled += 1;
                for d in &documents {
                    let _ = p.matches(d);
                    let _ = p.first_mismatch(d);
                }
            }
            Err(errors) => assert!(errors.iter().all(|e| !e.message.is_empty())),
        }
    }
    assert!(compiled > 100, "the mutations should keep many patterns valid ({compiled})");
}
