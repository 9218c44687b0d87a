//! Reading a [`Change`] without buffering it.
//!
//! The derived reader of an internally tagged enum with a flattened,
//! adjacently tagged item buffers every change into serde's generic
//! `Content` tree (twice over) before it knows what to build: at 10,000
//! agents that was most of the hub's decoding time and a large share of its
//! allocations. This reader takes the fields as they come and builds the
//! value at once when its type is known from `op` (and `collection`) read
//! before it — the order every encoder of ours writes — and keeps a value
//! that came earlier as JSON, to read once the rest is known. What it
//! accepts and refuses is the derived reader's (tested in `diff.rs`).

use std::fmt;

use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{Change, Collection, Item};
use crate::model::{
    Container, DiskHealth, HostInfo, Interface, Mount, Port, Process, Route, SourceStatus, Unit,
    WatchedFile,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Host,
    Upsert,
    Remove,
}

/// A change's `value`: read, or kept as JSON until its type is known.
enum Value {
    Host(HostInfo),
    Item(Item),
    Later(serde_json::Value),
}

/// Reads a `value` as the item of `collection`.
struct ItemOf(Collection);

impl<'de> DeserializeSeed<'de> for ItemOf {
    type Value = Item;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        Ok(match self.0 {
            Collection::Containers => Item::Containers(Box::new(Container::deserialize(d)?)),
            Collection::Units => Item::Units(Box::new(Unit::deserialize(d)?)),
            Collection::Ports => Item::Ports(Port::deserialize(d)?),
            Collection::Sources => Item::Sources(SourceStatus::deserialize(d)?),
            Collection::Interfaces => Item::Interfaces(Interface::deserialize(d)?),
            Collection::Mounts => Item::Mounts(Mount::deserialize(d)?),
            Collection::Processes => Item::Processes(Process::deserialize(d)?),
            Collection::DiskHealth => Item::DiskHealth(DiskHealth::deserialize(d)?),
            Collection::Files => Item::Files(WatchedFile::deserialize(d)?),
            Collection::Routes => Item::Routes(Route::deserialize(d)?),
        })
    }
}

struct ChangeVisitor;

impl<'de> Visitor<'de> for ChangeVisitor {
    type Value = Change;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a change: {\"op\":\"host\"|\"upsert\"|\"remove\", …}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Change, A::Error> {
        let mut op: Option<Op> = None;
        let mut key: Option<String> = None;
        let mut collection: Option<Collection> = None;
        let mut value: Option<Value> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Op => {
                    if op.is_some() {
                        return Err(de::Error::duplicate_field("op"));
                    }
                    op = Some(map.next_value()?);
                }
                Field::Key => {
                    if key.is_some() {
                        return Err(de::Error::duplicate_field("key"));
                    }
                    key = Some(map.next_value()?);
                }
                Field::Collection => {
                    if collection.is_some() {
                        return Err(de::Error::duplicate_field("collection"));
                    }
                    collection = Some(map.next_value()?);
                }
                Field::Value => {
                    if value.is_some() {
                        return Err(de::Error::duplicate_field("value"));
                    }
                    value = Some(match (op, collection) {
                        (Some(Op::Host), _) => Value::Host(map.next_value()?),
                        (Some(Op::Upsert), Some(c)) => Value::Item(map.next_value_seed(ItemOf(c))?),
                        (Some(Op::Remove), _) => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                        _ => Value::Later(map.next_value()?),
                    });
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let op = op.ok_or_else(|| de::Error::missing_field("op"))?;
        let later = |v: serde_json::Value, seed: Option<Collection>| -> Result<Value, A::Error> {
            match seed {
                None => HostInfo::deserialize(v).map(Value::Host),
                Some(c) => ItemOf(c).deserialize(v).map(Value::Item),
            }
            .map_err(de::Error::custom)
        };
        match op {
            Op::Host => match value {
                Some(Value::Host(value)) => Ok(Change::Host { value }),
                Some(Value::Later(v)) => match later(v, None)? {
                    Value::Host(value) => Ok(Change::Host { value }),
                    _ => unreachable!("read as a host"),
                },
                Some(Value::Item(_)) => unreachable!("a host's value is read as one"),
                None => Err(de::Error::missing_field("value")),
            },
            Op::Upsert => {
                let key = key.ok_or_else(|| de::Error::missing_field("key"))?;
                let collection =
                    collection.ok_or_else(|| de::Error::missing_field("collection"))?;
                let item = match value {
                    Some(Value::Item(item)) => item,
                    Some(Value::Later(v)) => match later(v, Some(collection))? {
                        Value::Item(item) => item,
                        _ => unreachable!("read as an item"),
                    },
                    Some(Value::Host(_)) => unreachable!("an upsert's value is read as an item"),
                    None => return Err(de::Error::missing_field("value")),
                };
                Ok(Change::Upsert { key, item })
            }
            Op::Remove => Ok(Change::Remove {
                collection: collection.ok_or_else(|| de::Error::missing_field("collection"))?,
                key: key.ok_or_else(|| de::Error::missing_field("key"))?,
            }),
        }
    }
}

enum Field {
    Op,
    Key,
    Collection,
    Value,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "op" => Field::Op,
                    "key" => Field::Key,
                    "collection" => Field::Collection,
                    "value" => Field::Value,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Change, D::Error> {
        d.deserialize_map(ChangeVisitor)
    }
}

/// The derived reader, kept to check this one against (tests only).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Derived {
    Host {
        value: HostInfo,
    },
    Upsert {
        key: String,
        #[serde(flatten)]
        item: Item,
    },
    Remove {
        collection: Collection,
        key: String,
    },
}

#[cfg(test)]
impl From<Derived> for Change {
    fn from(d: Derived) -> Change {
        match d {
            Derived::Host { value } => Change::Host { value },
            Derived::Upsert { key, item } => Change::Upsert { key, item },
            Derived::Remove { collection, key } => Change::Remove { collection, key },
        }
    }
}
