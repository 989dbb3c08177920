//! EventBridge event patterns: compiled once, matched against JSON documents.
//!
//! A policy's `match` is an EventBridge event pattern so that people who already write
//! EventBridge rules need to learn nothing new, and so that `remediator rules` can hand
//! the same patterns to EventBridge. The semantics follow EventBridge's: arrays are
//! any-of, a field that is an array in the event matches when any element does, fields
//! under one nested key of an array of objects must come from the same element, only
//! `exists: false` matches an absent field (in an array of objects: absent from every
//! element), numbers compare as numbers, and `anything-but` a string's prefix, suffix,
//! spelling or shape matches numbers, booleans and `null`. `tests/event_ruler.rs` holds
//! this to EventBridge's own matcher on generated patterns and events.
//!
//! Compilation validates the whole pattern and reports every problem with its position;
//! matching walks the compiled tree against a `serde_json::Value` without allocating.

use std::net::IpAddr;

use serde_json::Value as Json;

use crate::yaml::{key_text, Mark, Node, Value};

/// A compiled event pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    root: Object,
}

/// A problem in a pattern, at a position in the policy file.
#[derive(Clone, Debug, PartialEq)]
pub struct PatternError {
    pub mark: Mark,
    /// Dotted path of the field inside the pattern.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Clone, Debug)]
struct Object {
    fields: Vec<Field>,
    /// Each `$or` is a list of branches of which one must match.
    ors: Vec<Vec<Object>>,
    /// Whether this object matches when the value it applies to is absent.
    absent_ok: bool,
}

#[derive(Clone, Debug)]
struct Field {
    name: Box<str>,
    rule: Rule,
}

#[derive(Clone, Debug)]
enum Rule {
    Nested(Object),
    Leaf(Vec<Matcher>),
}

#[derive(Clone, Debug)]
enum Literal {
    String(Box<str>),
    Number(f64),
    Bool(bool),
    Null,
}

#[derive(Clone, Debug)]
enum Matcher {
    Exact(Literal),
    Prefix(Text),
    Suffix(Text),
    EqualsIgnoreCase(Box<str>),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(Range),
    Exists(bool),
    Cidr(Cidr),
}

/// A string operand, compared either exactly or ignoring case (stored lower-cased).
#[derive(Clone, Debug)]
struct Text {
    text: Box<str>,
    ignore_case: bool,
}

#[derive(Clone, Debug)]
enum AnythingBut {
    Values(Vec<Literal>),
    Prefix(Vec<Text>),
    Suffix(Vec<Text>),
    EqualsIgnoreCase(Vec<Box<str>>),
    Wildcard(Vec<Wildcard>),
}

#[derive(Clone, Debug)]
struct Range {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

#[derive(Clone, Debug)]
struct Cidr {
    network: IpAddr,
    bits: u8,
}

/// A `*` glob (with `\*` and `\\` escapes), as in EventBridge's `wildcard`; used for
/// allow-lists and pause scopes.
#[derive(Clone, Debug)]
pub struct Glob(Wildcard);

impl Glob {
    pub fn new(text: &str) -> Result<Glob, String> {
        let mut errors = Vec::new();
        let node = Node::new(Value::String(text.into()), Mark::default());
        compile_wildcard(text, &node, "", &mut errors)
            .map(Glob)
            .ok_or_else(|| errors.first().map(|e| e.message.clone()).unwrap_or_default())
    }

    pub fn matches(&self, text: &str) -> bool {
        self.0.matches(text)
    }
}

/// A wildcard pattern split into literal pieces around each `*`.
#[derive(Clone, Debug)]
struct Wildcard {
    pieces: Vec<Box<str>>,
}

const OPERATORS: &[&str] =
    &["prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists", "cidr"];
/// EventBridge's range for numeric matching.
const NUMERIC_LIMIT: f64 = 5.0e9;

impl Pattern {
    /// Compiles a pattern from a YAML (or JSON) tree, collecting every error.
    pub fn compile(node: &Node) -> Result<Pattern, Vec<PatternError>> {
        let mut errors = Vec::new();
        let root = compile_object(node, "", &mut errors);
        match root {
            Some(root) if errors.is_empty() => Ok(Pattern { root }),
            _ => Err(errors),
        }
    }

    /// Compiles a pattern given as JSON (for tests and tools).
    pub fn from_json(value: &Json) -> Result<Pattern, Vec<PatternError>> {
        Pattern::compile(&Node::from_json(value))
    }

    /// Whether the document matches the pattern.
    pub fn matches(&self, document: &Json) -> bool {
        object_matches(&self.root, document)
    }

    /// The first field (dotted path) that keeps the document from matching, or `None`
    /// when it matches. Slower than [`Pattern::matches`]; for `explain --why`.
    pub fn first_mismatch(&self, document: &Json) -> Option<String> {
        if self.matches(document) {
            return None;
        }
        Some(first_mismatch(&self.root, document, "").unwrap_or_else(|| "$or".into()))
    }

    /// The top-level fields the pattern constrains, with their rules as JSON patterns.
    pub fn top_level_fields(&self) -> impl Iterator<Item = &str> {
        self.root.fields.iter().map(|f| &*f.name)
    }

    /// Whether the pattern has a top-level `$or`.
    pub fn has_top_level_or(&self) -> bool {
        !self.root.ors.is_empty()
    }
}

fn err(errors: &mut Vec<PatternError>, node: &Node, path: &str, message: impl Into<String>, hint: Option<String>) {
    errors.push(PatternError { mark: node.mark, path: path.to_string(), message: message.into(), hint });
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn compile_object(node: &Node, path: &str, errors: &mut Vec<PatternError>) -> Option<Object> {
    let Value::Map(entries) = &node.value else {
        err(errors, node, path, format!("a pattern must be a mapping of field names, found {}", node.kind()), None);
        return None;
    };
    if entries.is_empty() && path.is_empty() {
        // EventBridge accepts `{}` as "match everything" only for some APIs; a policy
        // that matches every event is almost always a mistake.
        err(errors, node, path, "empty pattern: it would match every event", Some("name at least `source`".into()));
        return None;
    }
    let mut fields = Vec::new();
    let mut ors = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in entries {
        let name = key_text(key);
        if seen.contains(&name) {
            err(errors, key, path, format!("field `{name}` appears twice"), None);
            continue;
        }
        seen.push(name.clone());
        let field_path = join(path, &name);
        // `$or` is the or-primitive only with a list; with a mapping it is an ordinary
        // field name, as in EventBridge (kept for backward compatibility there).
        if name == "$or" && !matches!(value.value, Value::Map(_)) {
            if let Some(branches) = compile_or(value, &field_path, errors) {
                ors.push(branches);
            }
            continue;
        }
        let rule = match &value.value {
            Value::Map(_) => compile_object(value, &field_path, errors).map(Rule::Nested),
            Value::Seq(items) => compile_leaf(value, items, &field_path, errors).map(Rule::Leaf),
            _ => {
                err(
                    errors,
                    value,
                    &field_path,
                    format!("match values must be in a list, found {}", value.kind()),
                    Some(format!("write `{name}: [{}]`", scalar_text(value))),
                );
                None
            }
        };
        if let Some(rule) = rule {
            fields.push(Field { name: name.into(), rule });
        }
    }
    let absent_ok = fields.iter().all(|f| match &f.rule {
        Rule::Nested(o) => o.absent_ok,
        Rule::Leaf(ms) => ms.iter().any(|m| matches!(m, Matcher::Exists(false))),
    }) && ors.iter().all(|branches: &Vec<Object>| branches.iter().any(|b| b.absent_ok));
    Some(Object { fields, ors, absent_ok })
}

fn scalar_text(node: &Node) -> String {
    match &node.value {
        Value::String(s) => s.clone(),
        _ => node.to_json().to_string(),
    }
}

fn compile_or(node: &Node, path: &str, errors: &mut Vec<PatternError>) -> Option<Vec<Object>> {
    let Value::Seq(items) = &node.value else {
        err(errors, node, path, format!("`$or` takes a list of patterns, found {}", node.kind()), None);
        return None;
    };
    if items.len() < 2 {
        err(errors, node, path, "`$or` needs at least two patterns", None);
        return None;
    }
    let mut branches = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let branch_path = format!("{path}[{i}]");
        if !matches!(item.value, Value::Map(_)) {
            err(
                errors,
                item,
                &branch_path,
                format!("each `$or` branch must be a pattern mapping, found {}", item.kind()),
                None,
            );
            continue;
        }
        let Value::Map(entries) = &item.value else { unreachable!() };
        if entries.is_empty() {
            err(errors, item, &branch_path, "empty `$or` branch", None);
            continue;
        }
        if let Some(o) = compile_object(item, &branch_path, errors) {
            branches.push(o);
        }
    }
    Some(branches)
}

fn compile_leaf(node: &Node, items: &[Node], path: &str, errors: &mut Vec<PatternError>) -> Option<Vec<Matcher>> {
    if items.is_empty() {
        err(errors, node, path, "empty list: it matches nothing", Some("list at least one value".into()));
        return None;
    }
    let before = errors.len();
    let mut matchers = Vec::with_capacity(items.len());
    for item in items {
        if let Some(m) = compile_matcher(item, path, errors) {
            matchers.push(m);
        }
    }
    (errors.len() == before).then_some(matchers)
}

fn literal(node: &Node) -> Option<Literal> {
    Some(match &node.value {
        Value::String(s) => Literal::String(s.as_str().into()),
        Value::Number(n) => Literal::Number(*n),
        Value::Bool(b) => Literal::Bool(*b),
        Value::Null => Literal::Null,
        _ => return None,
    })
}

fn compile_matcher(node: &Node, path: &str, errors: &mut Vec<PatternError>) -> Option<Matcher> {
    if let Some(lit) = literal(node) {
        if let Literal::Number(n) = lit {
            if !n.is_finite() {
                err(errors, node, path, "numbers must be finite", None);
                return None;
            }
        }
        return Some(Matcher::Exact(lit));
    }
    let Value::Map(entries) = &node.value else {
        err(
            errors,
            node,
            path,
            "match values must be strings, numbers, true, false, null or an operator mapping; found a list",
            None,
        );
        return None;
    };
    if entries.len() != 1 {
        err(
            errors,
            node,
            path,
            format!("an operator mapping holds exactly one operator, found {}", entries.len()),
            Some("put each operator in its own list item".into()),
        );
        return None;
    }
    let (key, operand) = &entries[0];
    let op = key_text(key);
    match op.as_str() {
        "prefix" | "suffix" => {
            let text = compile_text(operand, path, &op, errors)?;
            Some(if op == "prefix" { Matcher::Prefix(text) } else { Matcher::Suffix(text) })
        }
        "equals-ignore-case" => match &operand.value {
            Value::String(s) => Some(Matcher::EqualsIgnoreCase(s.to_lowercase().into())),
            _ => {
                err(
                    errors,
                    operand,
                    path,
                    format!("`equals-ignore-case` takes a string, found {}", operand.kind()),
                    None,
                );
                None
            }
        },
        "wildcard" => match &operand.value {
            Value::String(s) => compile_wildcard(s, operand, path, errors).map(Matcher::Wildcard),
            _ => {
                err(errors, operand, path, format!("`wildcard` takes a string, found {}", operand.kind()), None);
                None
            }
        },
        "anything-but" => compile_anything_but(operand, path, errors).map(Matcher::AnythingBut),
        "numeric" => compile_numeric(operand, path, errors).map(Matcher::Numeric),
        "exists" => match operand.value {
            Value::Bool(b) => Some(Matcher::Exists(b)),
            _ => {
                err(errors, operand, path, format!("`exists` takes true or false, found {}", operand.kind()), None);
                None
            }
        },
        "cidr" => match &operand.value {
            Value::String(s) => match parse_cidr(s) {
                Ok(c) => Some(Matcher::Cidr(c)),
                Err(m) => {
                    err(errors, operand, path, m, None);
                    None
                }
            },
            _ => {
                err(
                    errors,
                    operand,
                    path,
                    format!("`cidr` takes a string such as \"10.0.0.0/24\", found {}", operand.kind()),
                    None,
                );
                None
            }
        },
        other => {
            err(
                errors,
                key,
                path,
                format!("unknown operator `{other}`"),
                closest(other, OPERATORS).map(|c| format!("did you mean `{c}`?")),
            );
            None
        }
    }
}

/// The operand of `prefix`/`suffix`: a string, or `{equals-ignore-case: string}`.
fn compile_text(operand: &Node, path: &str, op: &str, errors: &mut Vec<PatternError>) -> Option<Text> {
    match &operand.value {
        Value::String(s) => Some(Text { text: s.as_str().into(), ignore_case: false }),
        Value::Map(entries) if entries.len() == 1 && key_text(&entries[0].0) == "equals-ignore-case" => {
            match &entries[0].1.value {
                Value::String(s) => Some(Text { text: s.to_lowercase().into(), ignore_case: true }),
                _ => {
                    err(errors, &entries[0].1, path, format!("`{op}: {{equals-ignore-case}}` takes a string"), None);
                    None
                }
            }
        }
        _ => {
            err(
                errors,
                operand,
                path,
                format!("`{op}` takes a string or {{equals-ignore-case: string}}, found {}", operand.kind()),
                None,
            );
            None
        }
    }
}

fn compile_wildcard(s: &str, node: &Node, path: &str, errors: &mut Vec<PatternError>) -> Option<Wildcard> {
    let mut pieces = vec![String::new()];
    let mut chars = s.chars().peekable();
    let mut last_was_star = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('*' | '\\')) => {
                    pieces.last_mut().expect("never empty").push(e);
                    last_was_star = false;
                }
                _ => {
                    err(
                        errors,
                        node,
                        path,
                        format!("invalid escape in wildcard `{s}`: only \\* and \\\\ are allowed"),
                        None,
                    );
                    return None;
                }
            },
            '*' => {
                if last_was_star {
                    err(
                        errors,
                        node,
                        path,
                        format!("consecutive `*` in wildcard `{s}`"),
                        Some("one `*` already matches any run of characters".into()),
                    );
                    return None;
                }
                pieces.push(String::new());
                last_was_star = true;
            }
            c => {
                pieces.last_mut().expect("never empty").push(c);
                last_was_star = false;
            }
        }
    }
    Some(Wildcard { pieces: pieces.into_iter().map(Into::into).collect() })
}

fn strings_of(operand: &Node, path: &str, what: &str, errors: &mut Vec<PatternError>) -> Option<Vec<(String, Node)>> {
    match &operand.value {
        Value::String(s) => Some(vec![(s.clone(), operand.clone())]),
        Value::Seq(items) if !items.is_empty() => {
            let mut out = Vec::new();
            for item in items {
                match &item.value {
                    Value::String(s) => out.push((s.clone(), item.clone())),
                    _ => {
                        err(errors, item, path, format!("`{what}` takes strings, found {}", item.kind()), None);
                        return None;
                    }
                }
            }
            Some(out)
        }
        _ => {
            err(
                errors,
                operand,
                path,
                format!("`{what}` takes a string or a non-empty list of strings, found {}", operand.kind()),
                None,
            );
            None
        }
    }
}

fn compile_anything_but(operand: &Node, path: &str, errors: &mut Vec<PatternError>) -> Option<AnythingBut> {
    match &operand.value {
        Value::Seq(items) => {
            if items.is_empty() {
                err(errors, operand, path, "`anything-but` list is empty", None);
                return None;
            }
            let mut values = Vec::new();
            let mut kind: Option<&'static str> = None;
            for item in items {
                let Some(lit) = literal(item).filter(|l| matches!(l, Literal::String(_) | Literal::Number(_))) else {
                    err(
                        errors,
                        item,
                        path,
                        format!("`anything-but` lists hold strings or numbers, found {}", item.kind()),
                        None,
                    );
                    return None;
                };
                let k = item.kind();
                if kind.is_some_and(|prev| prev != k) {
                    err(
                        errors,
                        item,
                        path,
                        "`anything-but` list mixes strings and numbers",
                        Some("use one type per list".into()),
                    );
                    return None;
                }
                kind = Some(k);
                values.push(lit);
            }
            Some(AnythingBut::Values(values))
        }
        Value::Map(entries) => {
            if entries.len() != 1 {
                err(errors, operand, path, "`anything-but` takes one operator", None);
                return None;
            }
            let (key, inner) = &entries[0];
            let op = key_text(key);
            match op.as_str() {
                "prefix" | "suffix" => {
                    let list = strings_of(inner, path, &format!("anything-but: {op}"), errors)?;
                    // EventBridge rejects an empty one ("Null prefix/suffix not allowed").
                    if let Some((_, n)) = list.iter().find(|(s, _)| s.is_empty()) {
                        err(
                            errors,
                            n,
                            path,
                            format!("`anything-but: {op}` cannot be empty (it would exclude every string)"),
                            None,
                        );
                        return None;
                    }
                    let texts = list.into_iter().map(|(s, _)| Text { text: s.into(), ignore_case: false }).collect();
                    Some(if op == "prefix" { AnythingBut::Prefix(texts) } else { AnythingBut::Suffix(texts) })
                }
                "equals-ignore-case" => {
                    let list = strings_of(inner, path, "anything-but: equals-ignore-case", errors)?;
                    Some(AnythingBut::EqualsIgnoreCase(
                        list.into_iter().map(|(s, _)| s.to_lowercase().into()).collect(),
                    ))
                }
                "wildcard" => {
                    let list = strings_of(inner, path, "anything-but: wildcard", errors)?;
                    let mut ws = Vec::new();
                    for (s, n) in list {
                        ws.push(compile_wildcard(&s, &n, path, errors)?);
                    }
                    Some(AnythingBut::Wildcard(ws))
                }
                other => {
                    err(
                        errors,
                        key,
                        path,
                        format!("`anything-but` does not take `{other}`"),
                        closest(other, &["prefix", "suffix", "equals-ignore-case", "wildcard"])
                            .map(|c| format!("did you mean `{c}`?")),
                    );
                    None
                }
            }
        }
        _ => match literal(operand) {
            Some(lit @ (Literal::String(_) | Literal::Number(_))) => Some(AnythingBut::Values(vec![lit])),
            _ => {
                err(
                    errors,
                    operand,
                    path,
                    format!("`anything-but` takes a string, a number, a list or an operator, found {}", operand.kind()),
                    None,
                );
                None
            }
        },
    }
}

fn compile_numeric(operand: &Node, path: &str, errors: &mut Vec<PatternError>) -> Option<Range> {
    let Value::Seq(items) = &operand.value else {
        err(
            errors,
            operand,
            path,
            format!("`numeric` takes a list such as [\">\", 0, \"<=\", 5], found {}", operand.kind()),
            None,
        );
        return None;
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        err(errors, operand, path, "`numeric` takes one or two (operator, number) pairs", None);
        return None;
    }
    let mut range = Range { lower: None, upper: None };
    let mut equals = false;
    for pair in items.chunks(2) {
        let (op, num) = (&pair[0], &pair[1]);
        let Value::Number(n) = num.value else {
            err(errors, num, path, format!("`numeric` compares with numbers, found {}", num.kind()), None);
            return None;
        };
        if !(-NUMERIC_LIMIT..=NUMERIC_LIMIT).contains(&n) {
            err(errors, num, path, format!("{n} is outside EventBridge's numeric range (-5e9 to 5e9)"), None);
            return None;
        }
        let slot = match op.as_str() {
            Some("=") => {
                if items.len() != 2 {
                    err(errors, op, path, "`=` cannot be combined with other comparisons", None);
                    return None;
                }
                equals = true;
                range.lower = Some((n, true));
                range.upper = Some((n, true));
                continue;
            }
            Some(">") => (&mut range.lower, (n, false)),
            Some(">=") => (&mut range.lower, (n, true)),
            Some("<") => (&mut range.upper, (n, false)),
            Some("<=") => (&mut range.upper, (n, true)),
            _ => {
                err(
                    errors,
                    op,
                    path,
                    format!("unknown numeric operator {}", op.to_json()),
                    Some("use one of =, <, <=, >, >=".into()),
                );
                return None;
            }
        };
        if slot.0.is_some() {
            err(errors, op, path, "`numeric` has two bounds on the same side", None);
            return None;
        }
        *slot.0 = Some(slot.1);
    }
    if !equals {
        if let (Some((lo, _)), Some((hi, _))) = (range.lower, range.upper) {
            if lo >= hi {
                err(
                    errors,
                    operand,
                    path,
                    format!("empty numeric range: the lower bound {lo} is not below the upper bound {hi}"),
                    None,
                );
                return None;
            }
        }
    }
    Some(range)
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let bad = || format!("`{s}` is not a CIDR block such as 10.0.0.0/24 or 2001:db8::/32");
    let (addr, bits) = s.split_once('/').ok_or_else(bad)?;
    let network: IpAddr = addr.parse().map_err(|_| bad())?;
    let bits: u8 = bits.parse().map_err(|_| bad())?;
    let max = if network.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(bad());
    }
    // EventBridge rejects a block of one address ("mask bits must be < 32"): match the
    // address itself as a string.
    if bits == max {
        return Err(format!(
            "`{s}` is a single address: EventBridge takes masks below /{max}; match \"{addr}\" as a value"
        ));
    }
    Ok(Cidr { network, bits })
}

/// The closest candidate by edit distance, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

// ---------------------------------------------------------------------------------
// Matching

fn object_matches(object: &Object, value: &Json) -> bool {
    match value {
        Json::Object(map) => {
            object.fields.iter().all(|field| field_matches(field, map.get(&*field.name)))
                && object.ors.iter().all(|branches| branches.iter().any(|b| object_matches(b, value)))
        }
        Json::Array(items) => {
            items.iter().any(|item| match item {
                Json::Object(map) => element_matches(object, map, item, items),
                Json::Array(_) => object_matches(object, item),
                _ => false,
            }) || (object.absent_ok && !items.iter().any(|i| matches!(i, Json::Object(_) | Json::Array(_))))
        }
        _ => object.absent_ok,
    }
}

/// One element of an array of objects, as EventBridge reads it: the fields it has come
/// from this element; a field it lacks is absent (`exists: false`) when another field of
/// the pattern anchors the pattern to this element, and otherwise only when no element
/// of the array has it (the array is read flattened).
fn element_matches(object: &Object, map: &serde_json::Map<String, Json>, item: &Json, siblings: &[Json]) -> bool {
    let anchored = object.fields.iter().any(|f| map.contains_key(&*f.name));
    object.fields.iter().all(|field| match map.get(&*field.name) {
        Some(v) => field_matches(field, Some(v)),
        None if anchored => field_matches(field, None),
        None => field_matches(field, None) && !siblings.iter().any(|s| s.get(&*field.name).is_some()),
    }) && object.ors.iter().all(|branches| branches.iter().any(|b| object_matches(b, item)))
}

fn field_matches(field: &Field, value: Option<&Json>) -> bool {
    match (&field.rule, value) {
        (Rule::Nested(object), None) => object.absent_ok,
        (Rule::Nested(object), Some(v)) => object_matches(object, v),
        (Rule::Leaf(matchers), None) => matchers.iter().any(|m| matches!(m, Matcher::Exists(false))),
        (Rule::Leaf(matchers), Some(v)) => {
            if has_leaf(v) {
                matchers.iter().any(|m| leaf_matches(m, v))
            } else {
                matchers.iter().any(|m| matches!(m, Matcher::Exists(false)))
            }
        }
    }
}

/// Whether the value holds at least one leaf (a scalar, possibly inside arrays).
fn has_leaf(value: &Json) -> bool {
    match value {
        Json::Object(_) => false,
        Json::Array(items) => items.iter().any(has_leaf),
        _ => true,
    }
}

fn leaf_matches(matcher: &Matcher, value: &Json) -> bool {
    match matcher {
        Matcher::Exists(b) => *b,
        _ => any_leaf(value, &|leaf| scalar_matches(matcher, leaf)),
    }
}

fn any_leaf(value: &Json, f: &dyn Fn(&Json) -> bool) -> bool {
    match value {
        Json::Object(_) => false,
        Json::Array(items) => items.iter().any(|i| any_leaf(i, f)),
        leaf => f(leaf),
    }
}

fn literal_eq(lit: &Literal, value: &Json) -> bool {
    match (lit, value) {
        (Literal::String(a), Json::String(b)) => **a == **b,
        (Literal::Number(a), Json::Number(b)) => b.as_f64() == Some(*a),
        (Literal::Bool(a), Json::Bool(b)) => a == b,
        (Literal::Null, Json::Null) => true,
        _ => false,
    }
}

fn scalar_matches(matcher: &Matcher, value: &Json) -> bool {
    match matcher {
        Matcher::Exact(lit) => literal_eq(lit, value),
        Matcher::Exists(b) => *b,
        Matcher::Numeric(range) => value.as_f64().is_some_and(|n| value.is_number() && range.contains(n)),
        Matcher::Cidr(cidr) => {
            value.as_str().and_then(|s| s.parse::<IpAddr>().ok()).is_some_and(|ip| cidr.contains(ip))
        }
        Matcher::AnythingBut(ab) => anything_but_matches(ab, value),
        _ => {
            let Json::String(s) = value else { return false };
            match matcher {
                Matcher::Prefix(t) => starts_with(s, t),
                Matcher::Suffix(t) => ends_with(s, t),
                Matcher::EqualsIgnoreCase(t) => eq_ignore_case(s, t),
                Matcher::Wildcard(w) => w.matches(s),
                _ => unreachable!("handled above"),
            }
        }
    }
}

fn anything_but_matches(ab: &AnythingBut, value: &Json) -> bool {
    match ab {
        AnythingBut::Values(values) => !values.iter().any(|l| literal_eq(l, value)),
        _ => {
            // A number, a boolean or null is "anything but" a string's prefix, suffix,
            // spelling or shape, as EventBridge has it (`"error": null` on a success).
            let Json::String(s) = value else { return true };
            match ab {
                AnythingBut::Prefix(ts) => !ts.iter().any(|t| starts_with(s, t)),
                AnythingBut::Suffix(ts) => !ts.iter().any(|t| ends_with(s, t)),
                AnythingBut::EqualsIgnoreCase(ts) => !ts.iter().any(|t| eq_ignore_case(s, t)),
                AnythingBut::Wildcard(ws) => !ws.iter().any(|w| w.matches(s)),
                AnythingBut::Values(_) => unreachable!("handled above"),
            }
        }
    }
}

fn lower(s: &str) -> impl DoubleEndedIterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

fn starts_with(s: &str, t: &Text) -> bool {
    if t.ignore_case {
        let mut it = lower(s);
        t.text.chars().all(|c| it.next() == Some(c))
    } else {
        s.starts_with(&*t.text)
    }
}

fn ends_with(s: &str, t: &Text) -> bool {
    if t.ignore_case {
        let mut it = s.chars().rev().flat_map(|c| c.to_lowercase().rev());
        t.text.chars().rev().all(|c| it.next() == Some(c))
    } else {
        s.ends_with(&*t.text)
    }
}

fn eq_ignore_case(s: &str, lowered: &str) -> bool {
    lower(s).eq(lowered.chars())
}

impl Range {
    fn contains(&self, n: f64) -> bool {
        let above = match self.lower {
            None => true,
            Some((lo, inclusive)) => n > lo || (inclusive && n == lo),
        };
        let below = match self.upper {
            None => true,
            Some((hi, inclusive)) => n < hi || (inclusive && n == hi),
        };
        above && below
    }
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.bits == 0 { 0 } else { u32::MAX << (32 - self.bits) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.bits == 0 { 0 } else { u128::MAX << (128 - self.bits) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Wildcard {
    fn matches(&self, s: &str) -> bool {
        let pieces = &self.pieces;
        if pieces.len() == 1 {
            return *s == *pieces[0];
        }
        let (first, last) = (&*pieces[0], &*pieces[pieces.len() - 1]);
        if s.len() < first.len() + last.len() || !s.starts_with(first) || !s.ends_with(last) {
            return false;
        }
        // Greedy left-to-right search of the middle pieces is exact for `*`-only globs.
        let mut rest = &s[first.len()..s.len() - last.len()];
        for piece in &pieces[1..pieces.len() - 1] {
            match rest.find(&**piece) {
                Some(i) => rest = &rest[i + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

fn first_mismatch(object: &Object, value: &Json, path: &str) -> Option<String> {
    let map = match value {
        Json::Object(map) => map,
        Json::Array(items) => {
            // Report against the first object element, the likeliest intended one.
            let first = items.iter().find(|i| i.is_object());
            return match first {
                Some(item) => first_mismatch(object, item, path),
                None => Some(if path.is_empty() { "$".into() } else { path.into() }),
            };
        }
        _ => return Some(if path.is_empty() { "$".into() } else { path.into() }),
    };
    for field in &object.fields {
        let child = map.get(&*field.name);
        if !field_matches(field, child) {
            let p = join(path, &field.name);
            return match (&field.rule, child) {
                (Rule::Nested(o), Some(v)) => first_mismatch(o, v, &p).or(Some(p)),
                _ => Some(p),
            };
        }
    }
    for (i, branches) in object.ors.iter().enumerate() {
        if !branches.iter().any(|b| object_matches(b, value)) {
            return Some(format!("{}[{i}]", join(path, "$or")));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn m(pattern: Json, event: Json) -> bool {
        Pattern::from_json(&pattern).unwrap_or_else(|e| panic!("{e:?}")).matches(&event)
    }

    fn compile_error(pattern: Json) -> String {
        let errors = Pattern::from_json(&pattern).unwrap_err();
        errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn exact_values_are_any_of_and_typed() {
        assert!(m(json!({"source": ["aws.states", "aws.s3"]}), json!({"source": "aws.s3"})));
        assert!(!m(json!({"source": ["aws.states"]}), json!({"source": "aws.lambda"})));
        assert!(m(json!({"n": [5]}), json!({"n": 5.0})));
        assert!(m(json!({"n": [300]}), json!({"n": 3e2})));
        assert!(!m(json!({"n": ["5"]}), json!({"n": 5})));
        assert!(m(json!({"b": [true]}), json!({"b": true})));
        assert!(m(json!({"z": [null]}), json!({"z": null})));
        assert!(!m(json!({"z": [null]}), json!({})));
        assert!(m(json!({"e": [""]}), json!({"e": ""})));
    }

    #[test]
    fn nested_fields_and_missing_fields() {
        let p = json!({"detail": {"status": ["FAILED"]}});
        assert!(m(p.clone(), json!({"detail": {"status": "FAILED"}})));
        assert!(!m(p.clone(), json!({"detail": {}})));
        assert!(!m(p.clone(), json!({})));
        assert!(!m(p, json!({"detail": "FAILED"})));
    }

    #[test]
    fn arrays_in_the_event_match_when_any_element_does() {
        assert!(m(json!({"resources": ["arn:b"]}), json!({"resources": ["arn:a", "arn:b"]})));
        assert!(!m(json!({"resources": ["arn:c"]}), json!({"resources": ["arn:a", "arn:b"]})));
        assert!(m(json!({"r": [{"prefix": "arn:"}]}), json!({"r": [["x", "arn:q"]]})));
    }

    #[test]
    fn fields_of_one_array_element_must_come_from_the_same_element() {
        let p = json!({"items": {"name": ["a"], "size": [2]}});
        assert!(m(p.clone(), json!({"items": [{"name": "a", "size": 2}, {"name": "b", "size": 3}]})));
        assert!(!m(p, json!({"items": [{"name": "a", "size": 3}, {"name": "b", "size": 2}]})));
    }

    #[test]
    fn prefix_suffix_and_ignore_case() {
        assert!(m(json!({"e": [{"prefix": "Athena."}]}), json!({"e": "Athena.Throttling"})));
        assert!(!m(json!({"e": [{"prefix": "Athena."}]}), json!({"e": "athena.x"})));
        assert!(m(json!({"e": [{"prefix": {"equals-ignore-case": "ATHENA."}}]}), json!({"e": "athena.x"})));
        assert!(m(json!({"k": [{"suffix": ".png"}]}), json!({"k": "a/b.png"})));
        assert!(m(json!({"k": [{"suffix": {"equals-ignore-case": ".PNG"}}]}), json!({"k": "a/b.png"})));
        assert!(!m(json!({"k": [{"suffix": ".png"}]}), json!({"k": 5})));
        assert!(m(json!({"k": [{"equals-ignore-case": "FaIlEd"}]}), json!({"k": "failed"})));
        assert!(m(json!({"k": [{"prefix": ""}]}), json!({"k": "anything"})));
    }

    #[test]
    fn wildcards_with_escapes() {
        let p = json!({"arn": [{"wildcard": "arn:aws:states:*:*:stateMachine:thera-pipeline-*"}]});
        assert!(m(
            p.clone(),
            json!({"arn": "arn:aws:states:us-east-1:123456789012:stateMachine:thera-pipeline-prod-daily"})
        ));
        assert!(!m(p, json!({"arn": "arn:aws:states:us-east-1:123456789012:stateMachine:other"})));
        assert!(m(json!({"k": [{"wildcard": "a\\*b"}]}), json!({"k": "a*b"})));
        assert!(!m(json!({"k": [{"wildcard": "a\\*b"}]}), json!({"k": "axb"})));
        assert!(m(json!({"k": [{"wildcard": "*"}]}), json!({"k": ""})));
        assert!(m(json!({"k": [{"wildcard": "a*a"}]}), json!({"k": "aa"})));
        assert!(!m(json!({"k": [{"wildcard": "a*a"}]}), json!({"k": "a"})));
        assert!(m(json!({"k": [{"wildcard": "*ab*ab"}]}), json!({"k": "xabyabab"})));
        assert!(m(json!({"k": [{"wildcard": "c:\\\\*"}]}), json!({"k": "c:\\dir"})));
        assert!(compile_error(json!({"k": [{"wildcard": "a**b"}]})).contains("consecutive"));
        assert!(compile_error(json!({"k": [{"wildcard": "a\\b"}]})).contains("escape"));
    }

    #[test]
    fn anything_but_in_all_its_forms() {
        assert!(m(json!({"s": [{"anything-but": "OK"}]}), json!({"s": "ALARM"})));
        assert!(!m(json!({"s": [{"anything-but": ["OK", "ALARM"]}]}), json!({"s": "ALARM"})));
        assert!(!m(json!({"s": [{"anything-but": "OK"}]}), json!({})));
        assert!(m(json!({"n": [{"anything-but": [1, 2]}]}), json!({"n": 3})));
        assert!(!m(json!({"n": [{"anything-but": [1, 2]}]}), json!({"n": 2.0})));
        assert!(!m(json!({"s": [{"anything-but": {"prefix": "thera-"}}]}), json!({"s": "thera-x"})));
        assert!(m(json!({"s": [{"anything-but": {"suffix": ".tmp"}}]}), json!({"s": "a.json"})));
        assert!(!m(json!({"s": [{"anything-but": {"equals-ignore-case": ["ok"]}}]}), json!({"s": "OK"})));
        assert!(!m(json!({"s": [{"anything-but": {"wildcard": "*.tmp"}}]}), json!({"s": "x.tmp"})));
        assert!(compile_error(json!({"s": [{"anything-but": ["a", 1]}]})).contains("mixes"));
    }

    #[test]
    fn numeric_ranges_compare_numbers_only() {
        let p = json!({"c": [{"numeric": [">", 0, "<=", 5]}]});
        assert!(m(p.clone(), json!({"c": 5})));
        assert!(m(p.clone(), json!({"c": 0.5})));
        assert!(!m(p.clone(), json!({"c": 0})));
        assert!(!m(p, json!({"c": "3"})));
        assert!(m(json!({"c": [{"numeric": ["=", 3]}]}), json!({"c": 3.0})));
        assert!(m(json!({"c": [{"numeric": [">=", 1]}]}), json!({"c": [0, 1]})));
        assert!(compile_error(json!({"c": [{"numeric": [">", 5, "<", 1]}]})).contains("empty numeric range"));
        assert!(compile_error(json!({"c": [{"numeric": ["~", 5]}]})).contains("unknown numeric operator"));
        assert!(compile_error(json!({"c": [{"numeric": [">", 6e9]}]})).contains("outside"));
        assert!(compile_error(json!({"c": [{"numeric": [">", 1, ">", 2]}]})).contains("two bounds"));
    }

    #[test]
    fn exists_works_on_leaves_only() {
        assert!(m(json!({"d": {"error": [{"exists": true}]}}), json!({"d": {"error": "X"}})));
        assert!(m(json!({"d": {"error": [{"exists": true}]}}), json!({"d": {"error": null}})));
        assert!(!m(json!({"d": {"error": [{"exists": true}]}}), json!({"d": {}})));
        assert!(m(json!({"d": {"error": [{"exists": false}]}}), json!({"d": {}})));
        assert!(m(json!({"d": {"error": [{"exists": false}]}}), json!({})));
        assert!(!m(json!({"d": {"error": [{"exists": false}]}}), json!({"d": {"error": "X"}})));
        assert!(!m(json!({"d": [{"exists": true}]}), json!({"d": {"x": 1}})));
        assert!(m(json!({"d": [{"exists": false}]}), json!({"d": []})));
    }

    #[test]
    fn cidr_blocks_for_both_families() {
        assert!(m(json!({"ip": [{"cidr": "10.0.0.0/24"}]}), json!({"ip": "10.0.0.255"})));
        assert!(!m(json!({"ip": [{"cidr": "10.0.0.0/24"}]}), json!({"ip": "10.0.1.1"})));
        assert!(m(json!({"ip": [{"cidr": "2001:db8::/32"}]}), json!({"ip": "2001:db8:1::1"})));
        assert!(!m(json!({"ip": [{"cidr": "2001:db8::/32"}]}), json!({"ip": "10.0.0.1"})));
        assert!(compile_error(json!({"ip": [{"cidr": "10.0.0.0/33"}]})).contains("CIDR"));
    }

    #[test]
    fn or_needs_one_branch_to_match() {
        let p = json!({"source": ["aws.states"], "$or": [{"detail": {"status": ["FAILED"]}}, {"detail": {"status": ["TIMED_OUT"]}}]});
        assert!(m(p.clone(), json!({"source": "aws.states", "detail": {"status": "TIMED_OUT"}})));
        assert!(!m(p, json!({"source": "aws.states", "detail": {"status": "SUCCEEDED"}})));
        assert!(compile_error(json!({"$or": [{"a": ["x"]}]})).contains("at least two"));
        // With a mapping, `$or` is an ordinary field name.
        assert!(m(json!({"$or": {"a": ["x"]}}), json!({"$or": {"a": "x"}})));
        assert!(!m(json!({"$or": {"a": ["x"]}}), json!({"a": "x"})));
    }

    #[test]
    fn invalid_patterns_are_rejected_with_hints() {
        let errors = Pattern::from_json(&json!({"source": "aws.states"})).unwrap_err();
        assert!(errors[0].message.contains("must be in a list"), "{errors:?}");
        assert_eq!(errors[0].hint.as_deref(), Some("write `source: [aws.states]`"));
        let errors = Pattern::from_json(&json!({"a": [{"prefx": "x"}]})).unwrap_err();
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `prefix`?"));
        assert!(compile_error(json!({"a": []})).contains("empty list"));
        assert!(compile_error(json!({"a": [{"prefix": "x", "suffix": "y"}]})).contains("exactly one"));
        assert!(compile_error(json!({"a": [[1]]})).contains("found a list"));
        assert!(compile_error(json!({"a": [{"exists": "yes"}]})).contains("true or false"));
        // Every error at once.
        assert_eq!(Pattern::from_json(&json!({"a": "x", "b": [{"nope": 1}]})).unwrap_err().len(), 2);
    }

    #[test]
    fn first_mismatch_names_the_failing_field() {
        let p = Pattern::from_json(&json!({"source": ["aws.states"], "detail": {"status": ["FAILED"]}})).unwrap();
        let doc = json!({"source": "aws.states", "detail": {"status": "SUCCEEDED"}});
        assert_eq!(p.first_mismatch(&doc).as_deref(), Some("detail.status"));
        assert_eq!(p.first_mismatch(&json!({"source": "aws.states", "detail": {"status": "FAILED"}})), None);
    }

    // Found by the differential test against event-ruler (tests/event_ruler.rs).
    #[test]
    fn anything_but_a_strings_shape_matches_numbers_booleans_and_null_as_eventbridge_does() {
        let p = |m: serde_json::Value| Pattern::from_json(&json!({"detail": {"error": [m]}})).unwrap();
        for m in [
            json!({"anything-but": {"prefix": "States."}}),
            json!({"anything-but": {"suffix": "Error"}}),
            json!({"anything-but": {"wildcard": "*Timeout*"}}),
            json!({"anything-but": {"equals-ignore-case": ["x"]}}),
        ] {
            let p = p(m.clone());
            for v in [json!(null), json!(1), json!(true), json!([null])] {
                assert!(p.matches(&json!({"detail": {"error": v}})), "{m} vs {v}");
            }
            assert!(!p.matches(&json!({"detail": {}})), "{m}: an absent field is not anything-but");
        }
    }

    #[test]
    fn eventbridge_rejects_single_address_blocks_and_empty_anything_but_prefixes() {
        assert!(compile_error(json!({"ip": [{"cidr": "10.0.0.7/32"}]})).contains("single address"));
        assert!(compile_error(json!({"ip": [{"cidr": "::1/128"}]})).contains("single address"));
        assert!(Pattern::from_json(&json!({"ip": [{"cidr": "10.0.0.6/31"}]})).is_ok());
        assert!(compile_error(json!({"a": [{"anything-but": {"prefix": ""}}]})).contains("cannot be empty"));
        assert!(compile_error(json!({"a": [{"anything-but": {"suffix": ["x", ""]}}]})).contains("cannot be empty"));
    }

    #[test]
    fn in_an_array_of_objects_a_field_is_absent_only_if_no_element_has_it() {
        let p = Pattern::from_json(&json!({"items": {"size": [{"exists": false}]}})).unwrap();
        assert!(!p.matches(&json!({"items": [{"size": 1}, {}]})), "another element has it");
        assert!(p.matches(&json!({"items": [{"name": "a"}, {}]})));
        // Another field of the pattern anchors it to one element: there, absent is absent.
        let p = Pattern::from_json(&json!({"items": {"name": ["a"], "size": [{"exists": false}]}})).unwrap();
        assert!(p.matches(&json!({"items": [{"name": "a"}, {"size": 3}]})));
        assert!(!p.matches(&json!({"items": [{"name": "a", "size": 3}]})));
        // And the fields of one match come from one element.
        let p = Pattern::from_json(&json!({"items": {"name": ["a"], "size": [2]}})).unwrap();
        assert!(!p.matches(&json!({"items": [{"name": "a"}, {"size": 2}]})));
        assert!(p.matches(&json!({"items": [{"name": "b"}, {"name": "a", "size": 2}]})));
    }
}
