//! Deserialisers that take HubSpot bodies as they come: fields missing, `null`, or of a
//! slightly different JSON type than documented. A body that surprises us in one field should
//! not lose every other field.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `null` or absent becomes the type's default.
pub(crate) fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Any scalar as text: HubSpot sends ids and property values as strings, but not always.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) => Some(value.to_string()),
        other => Some(other.to_string()),
    }
}

/// An optional id or value that may be a string or a number.
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(text))
}

/// An optional unsigned integer that may also arrive as a numeric string.
pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A list of strings; a lone string counts as a list of one, anything else is dropped.
pub(crate) fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(string_list(&Option::<Value>::deserialize(d)?.unwrap_or(Value::Null)))
}

fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        Value::Null => Vec::new(),
        other => text(other).into_iter().collect(),
    }
}

/// HubSpot's `context`: `{key: [string]}` in the spec; single strings tolerated.
pub(crate) fn context<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), string_list(v))).collect(),
        _ => BTreeMap::new(),
    })
}

/// A record's `properties`: every value is a string or `null` in HubSpot's model.
pub(crate) fn property_values<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        _ => BTreeMap::new(),
    })
}

/// An ISO-8601 timestamp; unparseable values are dropped rather than failing the whole body.
pub(crate) fn opt_datetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| v.as_str().and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "or_default")]
        flag: bool,
        #[serde(default, deserialize_with = "opt_text")]
        id: Option<String>,
        #[serde(default, deserialize_with = "opt_u64")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "context")]
        ctx: BTreeMap<String, Vec<String>>,
        #[serde(default, deserialize_with = "property_values")]
        props: BTreeMap<String, Option<String>>,
        #[serde(default, deserialize_with = "opt_datetime")]
        at: Option<OffsetDateTime>,
    }

    #[test]
    fn accepts_nulls_numbers_and_single_strings() {
        let s: Sample = serde_json::from_str(
            r#"{"flag":null,"id":42,"n":"7","ctx":{"ids":"1","names":["a","b"]},"props":{"a":"x","b":null,"c":3},"at":"2019-10-30T03:30:17.883Z"}"#,
        )
        .unwrap();
        assert!(!s.flag);
        assert_eq!(s.id.as_deref(), Some("42"));
        assert_eq!(s.n, Some(7));
        assert_eq!(s.ctx["ids"], vec!["1"]);
        assert_eq!(s.ctx["names"], vec!["a", "b"]);
        assert_eq!(s.props["b"], None);
        assert_eq!(s.props["c"].as_deref(), Some("3"));
        assert_eq!(s.at.unwrap().unix_timestamp(), 1_572_406_217);
    }

    #[test]
    fn missing_fields_and_bad_dates_are_empty_not_errors() {
        let s: Sample = serde_json::from_str(r#"{"at":"yesterday"}"#).unwrap();
        assert!(s.id.is_none() && s.n.is_none() && s.ctx.is_empty() && s.props.is_empty() && s.at.is_none());
    }
}
