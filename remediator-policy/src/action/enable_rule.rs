//! `enable-rule`: re-enable a disabled EventBridge rule, and optionally start the runs its
//! schedule missed while it was disabled. What it does, its IAM permissions and its undo
//! are in `remediator`'s `actions/enable_rule.rs`.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::Action;
use crate::de::{optional, Checked};

/// The most missed runs one catch-up starts.
pub const MAX_CATCH_UP: i64 = 10;

/// Enable the rule again.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "EnableRuleParams")]
pub struct Params {
    /// Default: the rule named by the event.
    rule: Option<Checked<String>>,
    /// Start the run(s) the rule's schedule missed while it was disabled, once each,
    /// with the input its target would have received: `true` for the newest missed run,
    /// a number for at most that many (the newest), `false` or absent for none.
    catch_up: Option<Checked<CatchUp>>,
}

impl Params {
    pub(crate) fn into_action(self) -> Option<Action> {
        Some(Action::EnableRule {
            rule: optional(self.rule, None, Some)?,
            catch_up: optional(self.catch_up, 0, |c| c.0)?,
        })
    }
}

/// `catch_up`: `true` (one run), `false` (none) or a number of runs from 0 to
/// [`MAX_CATCH_UP`].
#[derive(Debug)]
pub struct CatchUp(pub u32);

impl<'de> Deserialize<'de> for CatchUp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl V {
            fn wrong<E: de::Error>(found: impl fmt::Display) -> E {
                E::custom(format!("must be true, false or a whole number from 0 to {MAX_CATCH_UP}, found {found}"))
            }
        }
        impl Visitor<'_> for V {
            type Value = CatchUp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "true, false or a whole number from 0 to {MAX_CATCH_UP}")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<CatchUp, E> {
                Ok(CatchUp(u32::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CatchUp, E> {
                if (0..=MAX_CATCH_UP).contains(&v) {
                    Ok(CatchUp(v as u32))
                } else {
                    Err(Self::wrong(v))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CatchUp, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<CatchUp, E> {
                Err(Self::wrong(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CatchUp, E> {
                Err(Self::wrong(format!("`{v}`")))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for CatchUp {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "CatchUp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [{"type": "boolean"}, {"type": "integer", "minimum": 0, "maximum": MAX_CATCH_UP}]})
    }
}
