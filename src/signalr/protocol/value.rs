//! The hub-layer value: what hub arguments, results, stream items and client results are.
//!
//! A JSON value cannot tell bytes from an array of numbers, nor an instant from a string, but
//! ASP.NET's MessagePack protocol sends .NET `byte[]` as MessagePack `bin` and `DateTime` as the
//! timestamp extension (-1), and the official JS client turns them into `Uint8Array` and `Date`.
//! [`Value`] keeps both kinds end to end; the JSON protocol writes them as ASP.NET's JSON protocol
//! does (base64 and ISO-8601 UTC strings), the MessagePack protocol as `bin` and timestamps.
//!
//! Hubs build values from `serde_json::json!` (`json!(..).into()`, or any `From` below) and read
//! typed arguments with serde: `Value` is a self-describing serde [`Deserializer`](serde::Deserializer).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize, Serializer};

pub use serde_json::Number;

/// Error of a typed read ([`Value`] as a serde `Deserializer`).
pub type DecodeError = serde::de::value::Error;

/// A hub argument, result or stream item, in either protocol.
///
/// Objects are string-keyed maps (sorted; clients do not depend on member order), numbers are
/// `serde_json::Number`s (integers of either sign up to 64 bits, or finite floats).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    /// Bytes: MessagePack `bin`, base64 in JSON (a .NET `byte[]`).
    Binary(Vec<u8>),
    /// An instant: the MessagePack timestamp extension, an ISO-8601 UTC string in JSON (a .NET `DateTime`).
    Timestamp(DateTime<Utc>),
    Array(Vec<Value>),
    Object(BTreeMap<String, Value>),
}

impl Value {
    /// Bytes that MessagePack clients receive as binary (`Uint8Array` in JS).
    pub fn binary(bytes: impl Into<Vec<u8>>) -> Self {
        Value::Binary(bytes.into())
    }

    /// An object from name/value pairs, e.g. a .NET object's members in declaration order.
    pub fn object<K: Into<String>, V: Into<Value>>(members: impl IntoIterator<Item = (K, V)>) -> Self {
        Value::Object(members.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// The value as the JSON protocol shows it: bytes as base64, instants as ISO-8601 UTC strings.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Binary(b) => serde_json::Value::String(base64_encode(b)),
            Value::Timestamp(t) => serde_json::Value::String(iso8601(t)),
            Value::Array(a) => serde_json::Value::Array(a.iter().map(Value::to_json).collect()),
            Value::Object(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Name of the kind, for error texts (JSON's token names, plus `Binary` and `Timestamp`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "Null",
            Value::Bool(true) => "True",
            Value::Bool(false) => "False",
            Value::Number(_) => "Number",
            Value::String(_) => "String",
            Value::Binary(_) => "Binary",
            Value::Timestamp(_) => "Timestamp",
            Value::Array(_) => "Array",
            Value::Object(_) => "Object",
        }
    }

    /// Decodes the value as `T` (a typed hub argument).
    pub fn decode<T: de::DeserializeOwned>(self) -> Result<T, DecodeError> {
        T::deserialize(self)
    }
}

/// A .NET `byte[]` as a typed argument or member: reads MessagePack `bin`, the base64 string JSON
/// clients send, or an array of byte numbers; becomes [`Value::Binary`] again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Binary(b.0)
    }
}

impl<'de> de::Deserialize<'de> for Bytes {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes, a base64 string or an array of bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(Bytes)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(65536));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        d.deserialize_byte_buf(BytesVisitor)
    }
}

/// Standard base64 with padding, as .NET writes `byte[]` in JSON.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An instant as System.Text.Json writes a UTC `DateTime`: seconds always, the fraction only as far
/// as it is not zero (`2000-01-01T00:00:00Z`, `2002-04-01T10:20:15.1Z`).
pub fn iso8601(t: &DateTime<Utc>) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos() % 1_000_000_000;
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Reads an ISO-8601 date-time: with an offset (converted to UTC) or without one (taken as UTC).
pub fn parse_iso8601(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, Value::from(v))).collect()),
        }
    }
}

impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Self {
        Value::from(v.clone())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                Value::Number(Number::from(n))
            }
        }
    )*};
}
from_integer!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl From<f64> for Value {
    /// NaN and infinities have no JSON form: they become null, as with `serde_json::Value`.
    fn from(f: f64) -> Self {
        Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
    }
}

impl From<DateTime<Utc>> for Value {
    fn from(t: DateTime<Utc>) -> Self {
        Value::Timestamp(t)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(m: BTreeMap<String, Value>) -> Self {
        Value::Object(m)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl fmt::Display for Value {
    /// The JSON text, as the JSON protocol would write the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl Serialize for Value {
    /// The JSON shape: bytes as base64, instants as ISO-8601 strings. Non-human-readable
    /// serializers get the bytes as bytes.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => n.serialize(s),
            Value::String(v) => s.serialize_str(v),
            Value::Binary(b) if s.is_human_readable() => s.serialize_str(&base64_encode(b)),
            Value::Binary(b) => s.serialize_bytes(b),
            Value::Timestamp(t) => s.serialize_str(&iso8601(t)),
            Value::Array(a) => s.collect_seq(a),
            Value::Object(m) => {
                use ser::SerializeMap;
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> de::Deserialize<'de> for Value {
    /// From any self-describing format; bytes become [`Value::Binary`].
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any hub value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("NaN and infinities are not supported"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Binary(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Binary(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        de::Deserialize::deserialize(d)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        de::Deserialize::deserialize(d)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

impl<'de> IntoDeserializer<'de, DecodeError> for Value {
    type Deserializer = Value;
    fn into_deserializer(self) -> Value {
        self
    }
}

fn visit_array<'de, V: Visitor<'de>>(items: Vec<Value>, visitor: V) -> Result<V::Value, DecodeError> {
    let mut seq = SeqDeserializer::new(items.into_iter());
    let out = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(out)
}

fn visit_object<'de, V: Visitor<'de>>(m: BTreeMap<String, Value>, visitor: V) -> Result<V::Value, DecodeError> {
    let mut map = MapDeserializer::new(m.into_iter());
    let out = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(out)
}

/// Typed reads. Self-describing: bytes are offered as bytes (and as a sequence to types that ask
/// for one, like `Vec<u8>`), instants as their ISO-8601 string (what `chrono` and .NET parse), and
/// a base64 string to types that ask for bytes, since that is how JSON clients send `byte[]`.
impl<'de> de::Deserializer<'de> for Value {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Binary(b) => visitor.visit_byte_buf(b),
            Value::Timestamp(t) => visitor.visit_string(iso8601(&t)),
            Value::Array(a) => visit_array(a, visitor),
            Value::Object(m) => visit_object(m, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Object(m) if m.len() == 1 => {
                visitor.visit_enum(MapAccessDeserializer::new(MapDeserializer::new(m.into_iter())))
            }
            other => Err(de::Error::invalid_type(unexpected(&other), &"a string or a single-member object")),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::String(s) => match base64::engine::general_purpose::STANDARD.decode(&s) {
                Ok(bytes) => visitor.visit_byte_buf(bytes),
                Err(_) => visitor.visit_string(s),
            },
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Binary(b) => visitor.visit_seq(SeqDeserializer::new(b.into_iter())),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct tuple tuple_struct map struct identifier
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => de::Unexpected::Unsigned(u),
            (None, Some(i)) => de::Unexpected::Signed(i),
            _ => de::Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => de::Unexpected::Str(s),
        Value::Binary(b) => de::Unexpected::Bytes(b),
        Value::Timestamp(_) => de::Unexpected::Other("a timestamp"),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde::Deserialize;
    use serde_json::json;

    fn y2k() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn json_shape_of_binary_and_timestamps() {
        let v = Value::object([
            ("ByteArray", Value::binary([1u8, 2, 3])),
            ("DateTime", Value::from(y2k())),
            ("Ms", Value::from(y2k() + chrono::Duration::milliseconds(100))),
            ("Ns", Value::from(y2k() + chrono::Duration::nanoseconds(1_234_500))),
        ]);
        let expected = json!({
            "ByteArray": "AQID",
            "DateTime": "2000-01-01T00:00:00Z",
            "Ms": "2000-01-01T00:00:00.1Z",
            "Ns": "2000-01-01T00:00:00.0012345Z",
        });
        assert_eq!(v.to_json(), expected);
        assert_eq!(serde_json::to_value(&v).unwrap(), expected);
        assert_eq!(v.to_string(), expected.to_string());
    }

    #[test]
    fn from_json_and_back() {
        let j = json!({"a": [1, -2, 2.5, "x", null, true, {"b": {}}], "": u64::MAX});
        let v = Value::from(j.clone());
        assert_eq!(v.to_json(), j);
        assert_eq!(serde_json::from_value::<Value>(j.clone()).unwrap(), v);
        assert_eq!(v.clone().decode::<serde_json::Value>().unwrap(), j);
        assert_eq!(v.clone().decode::<Value>().unwrap(), v);
    }

    #[test]
    fn iso8601_parsing() {
        assert_eq!(parse_iso8601("2000-01-01T00:00:00Z"), Some(y2k()));
        assert_eq!(parse_iso8601("2000-01-01T01:00:00+01:00"), Some(y2k()));
        assert_eq!(parse_iso8601("2000-01-01T00:00:00"), Some(y2k()));
        assert_eq!(parse_iso8601("2000-01-01T00:00:00.5Z"), Some(y2k() + chrono::Duration::milliseconds(500)));
        assert_eq!(parse_iso8601("yesterday"), None);
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Typed {
        name: String,
        count: Option<i32>,
        bytes: Vec<u8>,
        #[serde(with = "serde_bytes_like")]
        buf: Vec<u8>,
        blob: Option<Bytes>,
        when: DateTime<Utc>,
        id: uuid::Uuid,
        kind: Kind,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    enum Kind {
        A,
        B(u8),
    }

    /// Asks for bytes the way `serde_bytes` does.
    mod serde_bytes_like {
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                    Ok(v)
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    #[test]
    fn typed_decoding() {
        let id = "00010203-0405-0607-0706-050403020100";
        let msgpack_shaped = Value::object([
            ("Name", Value::from("n")),
            ("Count", Value::Null),
            ("Bytes", Value::binary([1u8, 2])),
            ("Buf", Value::binary([3u8])),
            ("Blob", Value::binary([4u8])),
            ("When", Value::from(y2k())),
            ("Id", Value::from(id)),
            ("Kind", Value::from("A")),
        ]);
        let typed: Typed = msgpack_shaped.decode().unwrap();
        let expected = Typed {
            name: "n".into(),
            count: None,
            bytes: vec![1, 2],
            buf: vec![3],
            blob: Some(Bytes(vec![4])),
            when: y2k(),
            id: uuid::Uuid::parse_str(id).unwrap(),
            kind: Kind::A,
        };
        assert_eq!(typed, expected);
        // The JSON shape of the same object: numbers for Vec<u8>, base64 where bytes are asked for.
        let json_shaped = Value::from(json!({
            "Name": "n", "Count": 4, "Bytes": [1, 2], "Buf": "Aw==", "Blob": "BA==", "When": "2000-01-01T00:00:00Z", "Id": id,
            "Kind": {"B": 7}
        }));
        let typed: Typed = json_shaped.decode().unwrap();
        assert_eq!(typed, Typed { count: Some(4), kind: Kind::B(7), ..expected });
        // Mismatches are errors, not panics.
        assert!(Value::from("x").decode::<i32>().is_err());
        assert!(Value::from(json!([1, 2, 3])).decode::<(u8, u8)>().is_err());
        assert!(Value::from(-1).decode::<u8>().is_err());
        assert!(Value::binary([0xffu8]).decode::<String>().is_err());
        assert!(Value::from("not base64!").decode::<Bytes>().is_err());
        assert_eq!(Value::from(json!([5, 6])).decode::<Bytes>().unwrap(), Bytes(vec![5, 6]));
        assert!(Value::from(json!([256])).decode::<Bytes>().is_err());
        assert_eq!(Value::from(Some(Bytes(vec![7]))), Value::binary([7u8]));
    }
}
