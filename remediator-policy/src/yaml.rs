//! A YAML tree in which every node knows its line and column.
//!
//! Policies are edited by hand and reviewed in pull requests, so every error must point
//! at the exact place in the file. We build this small tree from the parser's events
//! (saphyr-parser, a maintained YAML 1.2 parser that reports markers); `de` deserializes
//! policies from it with serde, and the pattern compiler walks it, both keeping every
//! error with its position.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// A position in a source file: line and column, both 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The value of a node, resolved with the YAML 1.2 core schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// One node of the tree with the position where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

/// The YAML text itself could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("{mark}: {message}")]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

impl Node {
    pub fn new(value: Value, mark: Mark) -> Self {
        Node { value, mark }
    }

    /// A short name of the node's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// How many nodes the tree holds, this one included.
    pub fn count(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(k, v)| k.count() + v.count()).sum(),
            _ => 0,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Converts to JSON (used for events and history written inline in YAML case files).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => number_to_json(*n),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => serde_json::Value::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => {
                serde_json::Value::Object(entries.iter().map(|(k, v)| (key_text(k), v.to_json())).collect())
            }
        }
    }

    /// Builds a tree from JSON; positions are all zero (JSON patterns come from code).
    pub fn from_json(value: &serde_json::Value) -> Node {
        let v = match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => Value::Seq(items.iter().map(Node::from_json).collect()),
            serde_json::Value::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| (Node::new(Value::String(k.clone()), Mark::default()), Node::from_json(v)))
                    .collect(),
            ),
        };
        Node::new(v, Mark::default())
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
    }
}

/// The text of a mapping key, whatever its type.
pub fn key_text(key: &Node) -> String {
    match &key.value {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_to_json(*n).to_string(),
        _ => format!("<{}>", key.kind()),
    }
}

/// The most nodes that aliases may add to a document: a policy needs few, and a
/// "billion laughs" file (anchors of lists of aliases of anchors) would need billions.
pub const MAX_ALIAS_NODES: usize = 10_000;

/// Parses one YAML document. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| SyntaxError {
            mark: Mark { line: e.marker().line(), column: e.marker().col() + 1 },
            message: e.info().to_string(),
        })?;
        let mark = Mark { line: span.start.line(), column: span.start.col() + 1 };
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        mark,
                        message: "a policy file holds one YAML document; found a second one".into(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let value =
                    if style == ScalarStyle::Plain { resolve_plain(&text) } else { Value::String(text.into_owned()) };
                builder.push(Node::new(value, mark), anchor)?;
            }
            Event::SequenceStart(anchor, _) => builder.open(Value::Seq(Vec::new()), mark, anchor),
            Event::MappingStart(anchor, _) => builder.open(Value::Map(Vec::new()), mark, anchor),
            Event::SequenceEnd | Event::MappingEnd => builder.close()?,
            Event::Alias(id) => {
                let (node, size) = builder
                    .anchors
                    .get(&id)
                    .ok_or_else(|| SyntaxError { mark, message: "alias refers to an unknown anchor".into() })?;
                // Count before copying: each alias copies its anchor's whole subtree, so
                // nested anchors of aliases grow the tree exponentially.
                builder.expanded = builder.expanded.saturating_add(*size);
                if builder.expanded > MAX_ALIAS_NODES {
                    return Err(SyntaxError {
                        mark,
                        message: format!(
                            "alias expansion exceeds {MAX_ALIAS_NODES} nodes (each alias copies its anchor's nodes)"
                        ),
                    });
                }
                let node = node.clone();
                builder.push(node, 0)?;
            }
            _ => {}
        }
    }
    Ok(builder.root.unwrap_or(Node::new(Value::Null, Mark { line: 1, column: 1 })))
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Node, usize, Option<Node>)>,
    /// Each anchor's node and how many nodes it holds.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes added by aliases so far.
    expanded: usize,
    root: Option<Node>,
}

impl Builder {
    fn open(&mut self, value: Value, mark: Mark, anchor: usize) {
        self.stack.push((Node::new(value, mark), anchor, None));
    }

    fn close(&mut self) -> Result<(), SyntaxError> {
        let (node, anchor, pending) = self.stack.pop().expect("parser balances start and end events");
        if let Some(key) = pending {
            return Err(SyntaxError { mark: key.mark, message: "mapping key without a value".into() });
        }
        self.push(node, anchor)
    }

    fn push(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), node.count()));
        }
        let Some((parent, _, pending)) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut parent.value {
            Value::Seq(items) => items.push(node),
            Value::Map(entries) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
            _ => unreachable!("only collections are opened"),
        }
        Ok(())
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Value::Number(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Number(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Number(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(n) = i64::from_str_radix(hex, 16) {
            return Value::Number(n as f64);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(n) = i64::from_str_radix(oct, 8) {
            return Value::Number(n as f64);
        }
    }
    if looks_numeric(text) {
        if let Ok(n) = text.parse::<f64>() {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn looks_numeric(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - digits_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - s;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_carry_their_line_and_column() {
        let root = parse("a:\n  b: [x, 2]\n").unwrap();
        let Value::Map(entries) = &root.value else { panic!() };
        let (_, inner) = &entries[0];
        let Value::Map(inner) = &inner.value else { panic!() };
        let (key, list) = &inner[0];
        assert_eq!(key.mark, Mark { line: 2, column: 3 });
        let Value::Seq(items) = &list.value else { panic!() };
        assert_eq!(items[0].mark, Mark { line: 2, column: 7 });
        assert_eq!(items[1].value, Value::Number(2.0));
    }

    #[test]
    fn plain_scalars_resolve_with_the_core_schema_and_quoted_ones_stay_strings() {
        let root = parse("[null, ~, true, 'true', 5m, 1.5e3, '', aws.states, 0x10]").unwrap();
        let Value::Seq(items) = root.value else { panic!() };
        let values: Vec<Value> = items.into_iter().map(|n| n.value).collect();
        assert_eq!(
            values,
            vec![
                Value::Null,
                Value::Null,
                Value::Bool(true),
                Value::String("true".into()),
                Value::String("5m".into()),
                Value::Number(1500.0),
                Value::String(String::new()),
                Value::String("aws.states".into()),
                Value::Number(16.0),
            ]
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("a: [1, 2\nb: c").unwrap_err();
        assert!(err.mark.line >= 1, "{err}");
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let root = parse("a: &x [1]\nb: *x\n").unwrap();
        assert_eq!(root.to_json(), serde_json::json!({"a": [1], "b": [1]}));
    }

    /// `levels` anchors, each a list of ten aliases of the one before: 10^levels leaves.
    fn laughs(levels: usize) -> String {
        let mut text = String::from("a0: &a0 [lol]\n");
        for i in 1..=levels {
            let aliases = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{aliases}]\n"));
        }
        text
    }

    #[test]
    fn alias_expansion_past_the_cap_is_a_positioned_error() {
        // 10^5 leaves: small enough to build without a cap, far above it.
        // Not `unwrap_err`: it would print the whole expanded tree.
        let Err(err) = parse(&laughs(5)) else { panic!("no error") };
        assert!(err.message.contains(&format!("alias expansion exceeds {MAX_ALIAS_NODES} nodes")), "{err}");
        assert_eq!(err.mark.line, 5, "{err}");
        assert!(err.mark.column > 1, "{err}");
    }

    #[test]
    fn a_billion_laughs_fails_fast() {
        let started = std::time::Instant::now();
        let Err(err) = parse(&laughs(10)) else { panic!("no error") };
        assert!(err.message.contains("alias expansion exceeds"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
    }

    #[test]
    fn aliases_below_the_cap_still_expand() {
        let root = parse(&laughs(3)).unwrap();
        let Value::Map(entries) = &root.value else { panic!() };
        assert_eq!(entries[3].1.to_json().to_string().matches("lol").count(), 1000);
    }
}
