//! CRM search (`POST /crm/v3/objects/{objectType}/search`): filter groups (OR of ANDs), one
//! sort rule, a text `query`, offset paging up to HubSpot's 10,000-result wall.

use std::cmp::Ordering;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::objects::{object_type, parse_json};
use crate::properties::PropertyDef;
use crate::records::{Record, Selection};
use crate::state::{ObjectType, Sim};

const MAX_LIMIT: usize = 200;
const MAX_RESULTS: usize = 10_000;
const MAX_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 6;
const MAX_FILTERS: usize = 18;

struct Filter {
    property: String,
    operator: String,
    value: Option<String>,
    high_value: Option<String>,
    values: Vec<String>,
}

struct Sort {
    property: String,
    descending: bool,
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The properties a `query` looks in.
fn searchable(object_type: ObjectType) -> &'static [&'static str] {
    match object_type {
        ObjectType::Contacts => &["firstname", "lastname", "email", "phone", "mobilephone", "company"],
        ObjectType::Companies => &["website", "phone", "name", "domain"],
        ObjectType::Deals => &["dealname", "pipeline", "dealstage", "dealtype"],
        ObjectType::LineItems => &["name"],
    }
}

/// Numbers, ms-epoch strings and ISO dates compare as instants/numbers; the rest as
/// case-insensitive text.
fn as_number(value: &str) -> Option<f64> {
    if let Ok(n) = value.trim().parse::<f64>() {
        return Some(n);
    }
    if let Ok(t) = OffsetDateTime::parse(value.trim(), &Rfc3339) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as f64);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value.trim(), &format).ok().map(|d| (d.midnight().assume_utc().unix_timestamp() * 1000) as f64)
}

fn compare(left: &str, right: &str, definition: Option<&PropertyDef>) -> Ordering {
    let numeric = definition.is_some_and(|d| matches!(d.property_type.as_str(), "number" | "date" | "datetime"));
    if numeric && let (Some(l), Some(r)) = (as_number(left), as_number(right)) {
        return l.partial_cmp(&r).unwrap_or(Ordering::Equal);
    }
    left.to_lowercase().cmp(&right.to_lowercase())
}

impl Filter {
    fn parse(value: &Value) -> Result<Filter, ApiError> {
        let property =
            text(value.get("propertyName")).ok_or_else(|| ApiError::bad_request("filters need a propertyName"))?;
        let operator = text(value.get("operator")).unwrap_or_else(|| "EQ".into());
        let values =
            value.get("values").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| text(Some(v))).collect());
        let filter = Filter {
            property,
            operator,
            value: text(value.get("value")),
            high_value: text(value.get("highValue")),
            values: values.unwrap_or_default(),
        };
        let needs_value = matches!(
            filter.operator.as_str(),
            "EQ" | "NEQ" | "LT" | "LTE" | "GT" | "GTE" | "BETWEEN" | "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN"
        );
        let known =
            needs_value || matches!(filter.operator.as_str(), "IN" | "NOT_IN" | "HAS_PROPERTY" | "NOT_HAS_PROPERTY");
        if !known {
            return Err(ApiError::bad_request(format!("Unknown filter operator {}", filter.operator)));
        }
        if needs_value && filter.value.is_none() {
            return Err(ApiError::bad_request(format!(
                "Filter on {} with {} needs a value",
                filter.property, filter.operator
            )));
        }
        if filter.operator == "BETWEEN" && filter.high_value.is_none() {
            return Err(ApiError::bad_request("BETWEEN needs a highValue"));
        }
        Ok(filter)
    }

    fn matches(&self, record: &Record, definitions: &[PropertyDef]) -> bool {
        let definition = definitions.iter().find(|d| d.name == self.property);
        let actual = record.value(&self.property);
        let cmp = |against: &str| actual.map(|a| compare(a, against, definition));
        let value = self.value.as_deref().unwrap_or_default();
        let token = value.trim_matches('*').to_lowercase();
        let equals = |candidate: &str| cmp(candidate) == Some(Ordering::Equal);
        match self.operator.as_str() {
            "EQ" => equals(value),
            "NEQ" => !equals(value),
            "LT" => cmp(value) == Some(Ordering::Less),
            "LTE" => matches!(cmp(value), Some(Ordering::Less | Ordering::Equal)),
            "GT" => cmp(value) == Some(Ordering::Greater),
            "GTE" => matches!(cmp(value), Some(Ordering::Greater | Ordering::Equal)),
            "BETWEEN" => {
                let high = self.high_value.as_deref().unwrap_or_default();
                matches!(cmp(value), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(high), Some(Ordering::Less | Ordering::Equal))
            }
            "IN" => self.values.iter().any(|v| equals(v)),
            "NOT_IN" => !self.values.iter().any(|v| equals(v)),
            "HAS_PROPERTY" => actual.is_some(),
            "NOT_HAS_PROPERTY" => actual.is_none(),
            "CONTAINS_TOKEN" => actual.is_some_and(|a| a.to_lowercase().contains(&token)),
            "NOT_CONTAINS_TOKEN" => !actual.is_some_and(|a| a.to_lowercase().contains(&token)),
            _ => false,
        }
    }
}

/// `sorts` comes as `["-createdate"]` (the spec) or `[{"propertyName","direction"}]` (the docs).
fn parse_sort(value: &Value) -> Option<Sort> {
    match value {
        Value::String(s) => match s.strip_prefix('-') {
            Some(name) => Some(Sort { property: name.to_string(), descending: true }),
            None => Some(Sort { property: s.clone(), descending: false }),
        },
        Value::Object(_) => Some(Sort {
            property: text(value.get("propertyName"))?,
            descending: text(value.get("direction")).is_some_and(|d| d.eq_ignore_ascii_case("DESCENDING")),
        }),
        _ => None,
    }
}

pub async fn search(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.read_scope()])?;
    let body = if body.is_empty() { json!({}) } else { parse_json(&body)? };

    let groups = body.get("filterGroups").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut filters: Vec<Vec<Filter>> = Vec::new();
    for group in &groups {
        let parsed: Result<Vec<Filter>, ApiError> =
            group.get("filters").and_then(Value::as_array).into_iter().flatten().map(Filter::parse).collect();
        filters.push(parsed?);
    }
    let total_filters: usize = filters.iter().map(Vec::len).sum();
    if filters.len() > MAX_GROUPS
        || filters.iter().any(|g| g.len() > MAX_FILTERS_PER_GROUP)
        || total_filters > MAX_FILTERS
    {
        return Err(ApiError::bad_request(format!(
            "Too many filters: at most {MAX_GROUPS} filterGroups, {MAX_FILTERS_PER_GROUP} filters per group and \
             {MAX_FILTERS} filters in total"
        )));
    }
    let sorts: Vec<Sort> =
        body.get("sorts").and_then(Value::as_array).into_iter().flatten().filter_map(parse_sort).collect();
    if sorts.len() > 1 {
        return Err(ApiError::bad_request("Search supports only one sort rule"));
    }
    let limit = match body.get("limit").and_then(Value::as_u64) {
        None => 10,
        Some(l) if l as usize > MAX_LIMIT => {
            return Err(ApiError::bad_request(format!("limit must be at most {MAX_LIMIT}")));
        }
        Some(l) => (l as usize).max(1),
    };
    let after = match text(body.get("after")).filter(|a| !a.is_empty()) {
        None => 0,
        Some(a) => a.parse::<usize>().map_err(|_| ApiError::bad_request(format!("after must be an integer: {a}")))?,
    };
    if after >= MAX_RESULTS {
        return Err(ApiError::bad_request(format!("Cannot page beyond {MAX_RESULTS} results")));
    }
    let query = text(body.get("query")).map(|q| q.to_lowercase()).filter(|q| !q.is_empty());
    let names: Vec<String> =
        body.get("properties").and_then(Value::as_array).into_iter().flatten().filter_map(|v| text(Some(v))).collect();

    let state = sim.lock();
    let hub = &state.portals[&caller.hub_id].hub;
    let definitions = hub.properties(object_type);
    let mut found: Vec<&Record> = hub
        .records(object_type)
        .filter(|r| !r.is_archived())
        .filter(|r| filters.is_empty() || filters.iter().any(|group| group.iter().all(|f| f.matches(r, definitions))))
        .filter(|r| {
            query.as_ref().is_none_or(|q| {
                searchable(object_type)
                    .iter()
                    .any(|p| r.value(p).is_some_and(|v| v.to_lowercase().contains(q.as_str())))
            })
        })
        .collect();
    // Default order: creation, oldest first.
    found.sort_by_key(|r| (r.created_at, r.id));
    if let Some(sort) = sorts.first() {
        let definition = definitions.iter().find(|d| d.name == sort.property);
        found.sort_by(|a, b| {
            let order = match (a.value(&sort.property), b.value(&sort.property)) {
                (Some(x), Some(y)) => compare(x, y, definition),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            if sort.descending { order.reverse() } else { order }
        });
    }
    let total = found.len();
    let selection = if names.is_empty() { Selection::Default } else { Selection::Named(&names) };
    let results: Vec<Value> =
        found.iter().skip(after).take(limit).map(|r| r.to_json(object_type, selection, &[])).collect();
    let mut body = json!({ "total": total, "results": results });
    let next = after + limit;
    if next < total && next < MAX_RESULTS {
        body["paging"] = json!({ "next": { "after": next.to_string() } });
    }
    Ok(axum::Json(body).into_response())
}
