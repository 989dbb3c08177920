//! Serde over the positioned YAML tree: a policy file is deserialized into the same types
//! that derive its JSON Schema (one description of the format), and every error is kept
//! with its line and column, all of them at once.
//!
//! Serde stops a struct at its first error. Three things keep reading past it:
//! - the deserializer records each error where it happens, at the node it was reading
//!   (an error coming back from a visitor is recorded there too, so validation written in
//!   a visitor, as [`Bounded`], [`Factor`], [`Dur`], [`Name`] and [`NonEmpty`] do, gets
//!   the value's position);
//! - a struct never fails on its keys: unknown and repeated keys are recorded and
//!   skipped, and an absent field is handed to its type as *absent* (an `Option` is
//!   `None`; anything else records "missing `field`" at the mapping);
//! - fields are [`Checked`]: a value that failed (already recorded) becomes
//!   `Checked(None)`, so the fields after it are still read.
//!
//! The types turn into the loaded policy afterwards; a `Checked(None)` anywhere drops
//! that policy, and its errors are already in the sink.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;

use crate::pattern::closest;
use crate::yaml::{key_text, Mark, Node, Value};

/// One problem found while deserializing.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub mark: Mark,
    pub message: String,
    pub hint: Option<String>,
}

/// Where the problems of one deserialization go.
#[derive(Default)]
pub struct Sink(RefCell<Vec<Problem>>);

impl Sink {
    fn push(&self, mark: Mark, message: String, hint: Option<String>) {
        self.0.borrow_mut().push(Problem { mark, message, hint });
    }

    pub fn into_problems(self) -> Vec<Problem> {
        self.0.into_inner()
    }
}

/// Deserializes `T` from `node`, naming the node `label` in messages. Every problem goes
/// to `sink`; the result is `None` when `T` could not be built at all.
pub fn from_node<'a, T: Deserialize<'a>>(node: &'a Node, label: &str, sink: &'a Sink) -> Option<T> {
    T::deserialize(De::new(Src::Node(node), label.to_string(), sink)).ok()
}

/// The error serde passes around. By the time it leaves the deserializer it has been
/// recorded in the sink with its position; callers only learn that the value failed.
#[derive(Debug)]
pub struct Error {
    message: String,
    hint: Option<String>,
    /// `unknown_variant`: reported as "unknown {enum} `{variant}`", whatever the label.
    unknown_variant: bool,
    recorded: bool,
}

impl Error {
    fn new(message: String, hint: Option<String>) -> Self {
        Error { message, hint, unknown_variant: false, recorded: false }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// "did you mean `x`?" when one candidate is close, else the list.
fn hint(word: &str, candidates: &[&str]) -> Option<String> {
    if candidates.is_empty() {
        return None;
    }
    Some(match closest(word, candidates) {
        Some(c) => format!("did you mean `{c}`?"),
        None => format!("one of {}", candidates.join(", ")),
    })
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(msg.to_string(), None)
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        Error::new(format!("must be {exp}, found {unexp}"), None)
    }

    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        Error::new(format!("must be {exp}, found {unexp}"), None)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error { unknown_variant: true, ..Error::new(variant.to_string(), hint(variant, expected)) }
    }
}

/// What a deserializer reads.
#[derive(Clone, Copy)]
enum Src<'a> {
    Node(&'a Node),
    /// A field the mapping at `parent` does not have.
    Absent {
        field: &'static str,
        parent: Mark,
    },
    /// No value: an action written by its name alone has no parameters.
    Empty(Mark),
}

struct De<'a> {
    src: Src<'a>,
    /// How messages name this value: "`limits`", "item 2 of `actions`", "parameters of
    /// `redrive`".
    label: String,
    /// An item of a list: a mapping there is named by its struct's serde name ("a
    /// policy") in messages about its keys.
    item: bool,
    sink: &'a Sink,
}

impl<'a> De<'a> {
    fn new(src: Src<'a>, label: String, sink: &'a Sink) -> De<'a> {
        De { src, label, item: false, sink }
    }

    fn child(&self, node: &'a Node, label: String) -> De<'a> {
        De::new(Src::Node(node), label, self.sink)
    }

    fn mark(&self) -> Mark {
        match self.src {
            Src::Node(n) => n.mark,
            Src::Absent { parent, .. } => parent,
            Src::Empty(mark) => mark,
        }
    }

    fn kind(&self) -> &'static str {
        match self.src {
            Src::Node(n) => n.kind(),
            Src::Absent { .. } | Src::Empty(_) => "nothing",
        }
    }

    fn labelled(&self, message: &str) -> String {
        if self.label.is_empty() {
            message.to_string()
        } else {
            format!("{}: {message}", self.label)
        }
    }

    /// Records `e` at this value unless it was recorded deeper down.
    fn record(&self, mut e: Error) -> Error {
        if !e.recorded {
            let message = if e.unknown_variant {
                format!("unknown {} `{}`", self.label, e.message)
            } else {
                self.labelled(&e.message)
            };
            self.sink.push(self.mark(), message, e.hint.take());
            e.recorded = true;
        }
        e
    }

    fn check<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        result.map_err(|e| self.record(e))
    }

    /// The value is not what the type needs: records it (or "missing" for an absent field).
    fn wrong<T>(&self, expected: &str) -> Result<T, Error> {
        let e = match self.src {
            Src::Absent { field, .. } => {
                self.sink.push(self.mark(), format!("missing `{field}`"), None);
                Error::new(String::new(), None)
            }
            _ => {
                self.sink.push(self.mark(), self.labelled(&format!("must be {expected}, found {}", self.kind())), None);
                Error::new(String::new(), None)
            }
        };
        Err(Error { recorded: true, ..e })
    }

    fn number(&self) -> Option<f64> {
        match self.src {
            Src::Node(Node { value: Value::Number(n), .. }) => Some(*n),
            _ => None,
        }
    }

    /// Hands a number to the visitor as an integer where it is one, else as a float.
    fn visit_number<'de, V: Visitor<'de>>(&self, n: f64, visitor: V) -> Result<V::Value, Error> {
        // i64::MAX as f64 rounds up to 2^63, which does not fit: hence `<`.
        if n.fract() == 0.0 && n >= i64::MIN as f64 && n < i64::MAX as f64 {
            self.check(visitor.visit_i64(n as i64))
        } else {
            self.check(visitor.visit_f64(n))
        }
    }
}

macro_rules! numbers {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.number() {
                Some(n) => self.visit_number(n, visitor),
                None => self.wrong("a number"),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for De<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let node = match self.src {
            Src::Node(node) => node,
            Src::Empty(_) => return self.check(visitor.visit_map(MapAccess::new(&[], &self))),
            Src::Absent { .. } => return self.wrong("present"),
        };
        match &node.value {
            Value::Null => self.check(visitor.visit_unit()),
            Value::Bool(b) => self.check(visitor.visit_bool(*b)),
            Value::Number(n) => self.visit_number(*n, visitor),
            Value::String(s) => self.check(visitor.visit_str(s)),
            Value::Seq(items) => self.check(visitor.visit_seq(SeqAccess::new(items, &self))),
            Value::Map(entries) => self.check(visitor.visit_map(MapAccess::new(entries, &self))),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.src {
            Src::Node(Node { value: Value::Bool(b), .. }) => self.check(visitor.visit_bool(*b)),
            _ => self.wrong("true or false"),
        }
    }

    numbers!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_f32,
        deserialize_f64
    );

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.src {
            Src::Node(Node { value: Value::String(s), .. }) => self.check(visitor.visit_str(s)),
            _ => self.wrong("a string"),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        self.wrong("bytes")
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        self.wrong("bytes")
    }

    /// Absent is `None`; a key written as `null` is not (leave the key out instead).
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.src {
            Src::Absent { .. } => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.src {
            Src::Node(Node { value: Value::Null, .. }) | Src::Empty(_) => self.check(visitor.visit_unit()),
            _ => self.wrong("null"),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.src {
            Src::Node(Node { value: Value::Seq(items), .. }) => {
                self.check(visitor.visit_seq(SeqAccess::new(items, &self)))
            }
            _ => self.wrong("a list"),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.src {
            Src::Node(Node { value: Value::Map(entries), .. }) => {
                self.check(visitor.visit_map(MapAccess::new(entries, &self)))
            }
            Src::Empty(_) => self.check(visitor.visit_map(MapAccess::new(&[], &self))),
            _ => self.wrong("a mapping"),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let entries: &[(Node, Node)] = match self.src {
            Src::Node(Node { value: Value::Map(entries), .. }) => entries,
            Src::Empty(_) => &[],
            _ => return self.wrong("a mapping"),
        };
        let what = if self.item { format!("a {name}") } else { self.label.clone() };
        self.check(visitor.visit_map(StructAccess {
            what,
            entries: entries.iter(),
            fields,
            seen: Vec::new(),
            pending: None,
            de: &self,
        }))
    }

    /// An enum is written as its variant's name (`notify`), or as a one-key mapping of
    /// the name to its parameters (`notify: {severity: critical}`). `name` is how
    /// messages call it (`#[serde(rename = "action")]`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (variant, value) = match self.src {
            Src::Node(node @ Node { value: Value::String(_), .. }) => (node, None),
            Src::Node(Node { value: Value::Map(entries), .. }) if entries.len() == 1 => {
                (&entries[0].0, Some(&entries[0].1))
            }
            Src::Node(Node { value: Value::Map(entries), mark }) => {
                self.sink.push(
                    *mark,
                    self.labelled(&format!("must be a one-key mapping (one {name}), found {} keys", entries.len())),
                    Some(format!("write each {name} as its own list item")),
                );
                return Err(Error { recorded: true, ..Error::new(String::new(), None) });
            }
            _ => return self.wrong("a name, or a one-key mapping of a name to its parameters"),
        };
        let access = EnumAccess { variant, value, name, sink: self.sink };
        self.check(visitor.visit_enum(access))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct SeqAccess<'a, 'b> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    de: &'b De<'a>,
}

impl<'a, 'b> SeqAccess<'a, 'b> {
    fn new(items: &'a [Node], de: &'b De<'a>) -> Self {
        SeqAccess { items: items.iter().enumerate(), de }
    }
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        let Some((i, item)) = self.items.next() else { return Ok(None) };
        let label = format!("item {} of {}", i + 1, self.de.label);
        seed.deserialize(De { item: true, ..self.de.child(item, label) }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// A mapping read as a map (keys of any name).
struct MapAccess<'a, 'b> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    pending: Option<(&'a Node, String)>,
    de: &'b De<'a>,
}

impl<'a, 'b> MapAccess<'a, 'b> {
    fn new(entries: &'a [(Node, Node)], de: &'b De<'a>) -> Self {
        MapAccess { entries: entries.iter(), pending: None, de }
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some((k, v)) = self.entries.next() else { return Ok(None) };
        let name = key_text(k);
        self.pending = Some((v, format!("`{name}`")));
        let key = self.de.child(k, String::new());
        key.check(seed.deserialize(name.into_deserializer())).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let (node, label) = self.pending.take().expect("serde asks for a value after its key");
        seed.deserialize(self.de.child(node, label))
    }
}

/// A mapping read as a struct: unknown and repeated keys are recorded and skipped, and
/// after the keys written come the fields that are not, as absent values.
struct StructAccess<'a, 'b> {
    /// How messages name the mapping: "a policy", "`limits`".
    what: String,
    entries: std::slice::Iter<'a, (Node, Node)>,
    fields: &'static [&'static str],
    seen: Vec<&'static str>,
    pending: Option<Src<'a>>,
    de: &'b De<'a>,
}

impl<'de> de::MapAccess<'de> for StructAccess<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let what = &self.what;
        for (k, v) in self.entries.by_ref() {
            let name = key_text(k);
            match self.fields.iter().find(|f| **f == name) {
                Some(field) if self.seen.contains(field) => {
                    self.de.sink.push(k.mark, format!("`{name}` appears twice in {what}"), None);
                }
                Some(field) => {
                    self.seen.push(field);
                    self.pending = Some(Src::Node(v));
                    return seed.deserialize(field.into_deserializer()).map(Some);
                }
                None => {
                    let hint = match closest(&name, self.fields) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None if self.fields.is_empty() => {
                            "it takes no parameters: write the action's name alone".into()
                        }
                        None => format!("allowed: {}", self.fields.join(", ")),
                    };
                    self.de.sink.push(k.mark, format!("unknown key `{name}` in {what}"), Some(hint));
                }
            }
        }
        let Some(field) = self.fields.iter().find(|f| !self.seen.contains(f)) else { return Ok(None) };
        self.seen.push(field);
        self.pending = Some(Src::Absent { field, parent: self.de.mark() });
        seed.deserialize(field.into_deserializer()).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let src = self.pending.take().expect("serde asks for a value after its key");
        let field = self.seen.last().copied().unwrap_or_default();
        seed.deserialize(De::new(src, format!("`{field}`"), self.de.sink))
    }
}

struct EnumAccess<'a> {
    variant: &'a Node,
    value: Option<&'a Node>,
    name: &'static str,
    sink: &'a Sink,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumAccess<'a> {
    type Error = Error;
    type Variant = VariantAccess<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, VariantAccess<'a>), Error> {
        let key = De::new(Src::Node(self.variant), self.name.to_string(), self.sink);
        let text = key_text(self.variant);
        let value = key.check(seed.deserialize(text.clone().into_deserializer()))?;
        Ok((value, VariantAccess { variant: text, at: self.variant.mark, value: self.value, sink: self.sink }))
    }
}

struct VariantAccess<'a> {
    variant: String,
    at: Mark,
    value: Option<&'a Node>,
    sink: &'a Sink,
}

impl VariantAccess<'_> {
    /// The parameters, or none when the name stands alone or maps to null.
    fn params(&self) -> De<'_> {
        let label = format!("parameters of `{}`", self.variant);
        match self.value {
            Some(node) if node.value != Value::Null => De::new(Src::Node(node), label, self.sink),
            Some(node) => De::new(Src::Empty(node.mark), label, self.sink),
            None => De::new(Src::Empty(self.at), label, self.sink),
        }
    }
}

impl<'de> de::VariantAccess<'de> for VariantAccess<'_> {
    type Error = Error;

    /// A value without parameters is written by its name alone (`notify: always`).
    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            Some(_) => {
                self.sink.push(self.at, format!("`{}` is written alone, without a value", self.variant), None);
                Err(Error { recorded: true, ..Error::new(String::new(), None) })
            }
            None => Ok(()),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self.params())
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.params().deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        self.params().deserialize_struct("", fields, visitor)
    }
}

// ---------------------------------------------------------------------------------
// The value types of the policy format: each checks itself in its visitor (so the error
// is recorded at the value) and states the same check in its JSON Schema.

/// A value that may have failed: its error is in the sink, and the fields after it are
/// still read. The schema is `T`'s.
#[derive(Debug)]
pub struct Checked<T>(pub Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Checked(T::deserialize(d).ok()))
    }
}

impl<T: JsonSchema> JsonSchema for Checked<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// The value of a required field, `None` if it failed.
pub fn required<T>(field: Checked<T>) -> Option<T> {
    field.0
}

/// The value of an optional field: `default` when absent, `None` if it failed.
pub fn optional<T, U>(field: Option<Checked<T>>, default: U, into: impl FnOnce(T) -> U) -> Option<U> {
    match field {
        None => Some(default),
        Some(Checked(value)) => value.map(into),
    }
}

/// A whole number from `MIN` to `MAX`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounded<const MIN: i64, const MAX: i64>(pub i64);

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MIN: i64, const MAX: i64>;
        impl<const MIN: i64, const MAX: i64> V<MIN, MAX> {
            fn out_of_range<E: de::Error>(found: impl fmt::Display) -> E {
                E::custom(format!("must be a whole number from {MIN} to {MAX}, found {found}"))
            }
        }
        impl<const MIN: i64, const MAX: i64> Visitor<'_> for V<MIN, MAX> {
            type Value = Bounded<MIN, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a whole number from {MIN} to {MAX}")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                if (MIN..=MAX).contains(&v) {
                    Ok(Bounded(v))
                } else {
                    Err(Self::out_of_range(v))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                match i64::try_from(v) {
                    Ok(v) => self.visit_i64(v),
                    Err(_) => Err(Self::out_of_range(v)),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(Self::out_of_range(v))
            }
        }
        d.deserialize_i64(V::<MIN, MAX>)
    }
}

impl<const MIN: i64, const MAX: i64> JsonSchema for Bounded<MIN, MAX> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Bounded_{MIN}_{MAX}").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": MIN, "maximum": MAX})
    }
}

/// `factor` of the raise actions: above [`FACTOR_ABOVE`] (a factor of 1 changes nothing),
/// at most [`FACTOR_MAX`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Factor(pub f64);

/// A factor must be above this ...
pub const FACTOR_ABOVE: f64 = 1.0;
/// ... and at most this.
pub const FACTOR_MAX: f64 = 10.0;

impl<'de> Deserialize<'de> for Factor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Factor;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a number above {FACTOR_ABOVE} and at most {FACTOR_MAX}")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Factor, E> {
                if v > FACTOR_ABOVE && v <= FACTOR_MAX {
                    Ok(Factor(v))
                } else {
                    Err(E::custom(format!("must be above {FACTOR_ABOVE} and at most {FACTOR_MAX}, found {v}")))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Factor, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Factor, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_f64(V)
    }
}

impl JsonSchema for Factor {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Factor".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "number", "exclusiveMinimum": FACTOR_ABOVE, "maximum": FACTOR_MAX})
    }
}

/// A duration as policies write it: `90s`, `5m`, `1h30m` (or 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 90s, 5m, 24h")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                crate::duration::parse_duration(v)
                    .map(Dur)
                    .map_err(|m| E::custom(format!("{m} (use a number with a unit: 30s, 5m, 2h, 1d or 1h30m)")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                if v == 0 {
                    Ok(Dur(Duration::ZERO))
                } else {
                    Err(E::custom(format!("`{v}` has a number without a unit (use 30s, 5m, 2h, 1d or 1h30m)")))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: a number with a unit (ms, s, m, h, d), e.g. 90s, 5m, 1h30m; or 0.",
            "anyOf": [
                {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h|d))+$"},
                {"const": 0},
            ],
        })
    }
}

/// A duration that must be longer than zero (an attempt window of 0 would count nothing,
/// so the attempt limit would never stop anything).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Positive(pub Duration);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Positive;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration longer than 0s, such as 1h or 24h")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Positive, E> {
                match crate::duration::parse_duration(v) {
                    Ok(d) if d.is_zero() => Err(E::custom(format!("`{v}` is 0: use a duration longer than 0s"))),
                    Ok(d) => Ok(Positive(d)),
                    Err(m) => Err(E::custom(format!("{m} (use a number with a unit: 30s, 5m, 2h, 1d or 1h30m)"))),
                }
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for Positive {
    fn schema_name() -> Cow<'static, str> {
        "PositiveDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration longer than 0: a number with a unit (ms, s, m, h, d), e.g. 1h, 24h.",
            "type": "string",
            "pattern": r"^(?=.*[1-9])([0-9]+(ms|s|m|h|d))+$",
        })
    }
}

/// A policy's name: 1 to [`NAME_MAX_LEN`] of a-z, 0-9 and `-`.
#[derive(Clone, Debug, PartialEq)]
pub struct Name(pub String);

/// `name`: at most this many characters.
pub const NAME_MAX_LEN: usize = 64;

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name, E> {
                let valid = !v.is_empty()
                    && v.len() <= NAME_MAX_LEN
                    && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if valid {
                    Ok(Name(v.to_string()))
                } else {
                    Err(E::custom(format!("invalid name `{v}`: use 1 to {NAME_MAX_LEN} of a-z, 0-9 and -")))
                }
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for Name {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": format!("^[a-z0-9-]{{1,{NAME_MAX_LEN}}}$")})
    }
}

/// A list with at least one item.
#[derive(Debug)]
pub struct NonEmpty<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = NonEmpty<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<NonEmpty<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                if items.is_empty() {
                    return Err(de::Error::custom("must not be empty"));
                }
                Ok(NonEmpty(items))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for NonEmpty<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("NonEmpty_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "array", "items": generator.subschema_for::<T>(), "minItems": 1})
    }
}

/// The variant names serde accepts for the enum `T`, read from its derive.
pub fn variant_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe;
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl fmt::Display for Found {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Found(&[])
        }
    }
    impl<'de> Deserializer<'de> for Probe {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(variants))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Found(variants)) => variants,
        Ok(_) => &[],
    }
}
