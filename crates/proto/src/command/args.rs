//! An action's arguments as JSON clients send them: `{"n": 30, "full":
//! true}` as well as `{"n": "30", "full": "true"}`. Numbers and booleans
//! become their canonical text here, so the one argument schema
//! ([`super::ArgType`]) checks both forms alike and the argv the agent
//! binds is the same; on the wire to the agent they stay strings.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, MapAccess, Visitor};

/// Deserializes `args`: an object of strings, numbers and booleans.
pub fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    deserializer.deserialize_map(ArgsVisitor)
}

struct ArgsVisitor;

impl<'de> Visitor<'de> for ArgsVisitor {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of strings, numbers and booleans")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let ArgValue(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(out)
    }
}

/// One argument's value as text.
struct ArgValue(String);

impl<'de> de::Deserialize<'de> for ArgValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(ArgValue)
    }
}

struct ValueVisitor;

impl Visitor<'_> for ValueVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, a number or a boolean")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    /// `30.0` is the integer 30 (JSON has one number type); other floats
    /// keep their digits, and an `int` argument refuses them.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(format!("{}", v as i64))
        } else {
            Ok(v.to_string())
        }
    }
}

/// The OpenAPI schema of `args`: an object whose values are strings,
/// numbers or booleans (what [`deserialize`] accepts).
#[cfg(feature = "openapi")]
pub fn openapi_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let value = Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .build(),
    );
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(value))
        .build()
}
