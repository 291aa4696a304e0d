//! The `serde` visitor that builds a `serde_json::Value` while enforcing depth and unique keys.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::JsonError;
use super::pointer::{Pointer, Segment};

/// The key under which `serde_json` (with `arbitrary_precision`) hands a number to a visitor as a
/// one-entry map. A real object using this key is rejected: it cannot be told apart from a number
/// by `serde_json::Value` either, so forwarding it would be ambiguous.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Parser state shared by all levels of the visitor: the path to the value being read, and the
/// first failure the visitor detected itself (serde only carries a message string).
pub(super) struct State {
    max_depth: usize,
    path: Vec<Segment>,
    failure: Option<JsonError>,
}

impl State {
    pub(super) fn new(max_depth: usize) -> Self {
        Self {
            max_depth,
            path: Vec::new(),
            failure: None,
        }
    }

    /// The seed for the top-level value.
    pub(super) fn seed(&mut self) -> ValueSeed<'_> {
        ValueSeed {
            state: self,
            depth: 0,
        }
    }

    pub(super) fn into_failure(self) -> Option<JsonError> {
        self.failure
    }

    fn fail<E: de::Error>(&mut self, failure: JsonError) -> E {
        let err = E::custom(&failure);
        self.failure.get_or_insert(failure);
        err
    }

    fn enter<E: de::Error>(&mut self, depth: usize) -> Result<(), E> {
        if depth > self.max_depth {
            let pointer = Pointer::from_segments(&self.path);
            return Err(self.fail(JsonError::TooDeep {
                limit: self.max_depth,
                pointer,
            }));
        }
        Ok(())
    }
}

/// Reads one value nested inside `depth` containers.
pub(super) struct ValueSeed<'s> {
    state: &'s mut State,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // Not reached with `arbitrary_precision` (non-integers arrive as text), kept total.
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth.saturating_add(1);
        self.state.enter(depth)?;
        let mut items = Vec::new();
        loop {
            self.state.path.push(Segment::Index(items.len()));
            let item = seq.next_element_seed(ValueSeed {
                state: &mut *self.state,
                depth,
            })?;
            self.state.path.pop();
            match item {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(first) = map.next_key_seed(KeySeed)? else {
            self.state.enter(self.depth.saturating_add(1))?;
            return Ok(Value::Object(Map::new()));
        };
        if first == NUMBER_TOKEN {
            return read_number(self.state, &mut map);
        }
        let depth = self.depth.saturating_add(1);
        self.state.enter(depth)?;
        let mut object = Map::new();
        let mut key = first;
        loop {
            if key == NUMBER_TOKEN || object.contains_key(&key) {
                let pointer = Pointer::from_segments(&self.state.path);
                let failure = if key == NUMBER_TOKEN {
                    JsonError::ReservedKey { key, pointer }
                } else {
                    JsonError::DuplicateKey { key, pointer }
                };
                return Err(self.state.fail(failure));
            }
            self.state.path.push(Segment::Key(key.clone()));
            let value = map.next_value_seed(ValueSeed {
                state: &mut *self.state,
                depth,
            })?;
            self.state.path.pop();
            object.insert(key, value);
            match map.next_key_seed(KeySeed)? {
                Some(next) => key = next,
                None => return Ok(Value::Object(object)),
            }
        }
    }
}

/// Reads the text of an arbitrary-precision number. `serde_json` delivers it as an owned
/// `String` (`visit_string`); a real object's string member arrives as `visit_str` or
/// `visit_borrowed_str`, so an object spelling the reserved key fails here.
fn read_number<'de, A: MapAccess<'de>>(state: &mut State, map: &mut A) -> Result<Value, A::Error> {
    let reserved = |state: &mut State| {
        let pointer = Pointer::from_segments(&state.path);
        state.fail::<A::Error>(JsonError::ReservedKey {
            key: NUMBER_TOKEN.to_owned(),
            pointer,
        })
    };
    let text = match map.next_value_seed(NumberText) {
        Ok(text) => text,
        Err(_) => return Err(reserved(state)),
    };
    if map.next_key_seed(KeySeed)?.is_some() {
        return Err(reserved(state));
    }
    Number::from_str(&text)
        .map(Value::Number)
        .map_err(de::Error::custom)
}

/// Reads an object key as an owned string.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

/// Accepts only the owned string `serde_json` uses for number text.
struct NumberText;

impl<'de> DeserializeSeed<'de> for NumberText {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

#[expect(
    clippy::serde_api_misuse,
    reason = "accepting only owned strings is how a number is told apart from an object"
)]
impl Visitor<'_> for NumberText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("number text")
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}
