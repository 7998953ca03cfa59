//! CRM search (`POST /crm/v3/objects/{objectType}/search`): filter groups (OR of ANDs), one
//! sort rule, a text `query`, offset paging up to HubSpot's 10,000-result wall, and optionally
//! the lag of HubSpot's search index behind writes (`SimConfig::search_index_delay`).
//!
//! Portals may hold hundreds of thousands of records, so search does not look at each of them
//! when it need not: a filter group narrowing `hs_object_id` or the last-modified time reads a
//! range of the records by id or of the hub's last-modified index, and only the page asked for
//! is sorted. A group whose filters are nothing but such ranges, sorted along the index, is
//! answered from the index alone (the pull's queries: a time window sorted by time, or one
//! instant's records sorted by id).

use std::cmp::Ordering;
use std::ops::Bound;
use tokio::time::Instant;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::objects::{object_type, parse_json};
use crate::properties::PropertyDef;
use crate::records::{Hub, Record, Selection, View, as_number};
use crate::state::{ObjectType, Sim};

const MAX_LIMIT: usize = 200;
const MAX_RESULTS: usize = 10_000;
const MAX_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 6;
const MAX_FILTERS: usize = 18;
const ID_PROPERTY: &str = "hs_object_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    HasProperty,
    NotHasProperty,
    ContainsToken,
    NotContainsToken,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "EQ" => Op::Eq,
            "NEQ" => Op::Neq,
            "LT" => Op::Lt,
            "LTE" => Op::Lte,
            "GT" => Op::Gt,
            "GTE" => Op::Gte,
            "BETWEEN" => Op::Between,
            "IN" => Op::In,
            "NOT_IN" => Op::NotIn,
            "HAS_PROPERTY" => Op::HasProperty,
            "NOT_HAS_PROPERTY" => Op::NotHasProperty,
            "CONTAINS_TOKEN" => Op::ContainsToken,
            "NOT_CONTAINS_TOKEN" => Op::NotContainsToken,
            _ => return None,
        })
    }

    fn needs_value(self) -> bool {
        !matches!(self, Op::In | Op::NotIn | Op::HasProperty | Op::NotHasProperty)
    }
}

/// A value a filter compares with, prepared once per search rather than once per record.
struct Operand {
    lower: String,
    number: Option<f64>,
}

impl Operand {
    fn new(text: &str) -> Operand {
        Operand { lower: text.to_lowercase(), number: as_number(text) }
    }
}

struct Filter {
    property: String,
    op: Op,
    value: Option<Operand>,
    high_value: Option<Operand>,
    values: Vec<Operand>,
    /// Numbers, dates and datetimes compare as numbers (ms-epoch strings included).
    numeric: bool,
}

struct Sort {
    property: String,
    descending: bool,
    numeric: bool,
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

fn is_numeric(definitions: &[PropertyDef], name: &str) -> bool {
    definitions
        .iter()
        .find(|d| d.name == name)
        .is_some_and(|d| matches!(d.property_type.as_str(), "number" | "date" | "datetime"))
}

/// Case-insensitive text order, without allocating.
fn cmp_text(left: &str, right: &str) -> Ordering {
    if left.is_ascii() && right.is_ascii() {
        left.bytes().map(|b| b.to_ascii_lowercase()).cmp(right.bytes().map(|b| b.to_ascii_lowercase()))
    } else {
        left.chars().flat_map(char::to_lowercase).cmp(right.chars().flat_map(char::to_lowercase))
    }
}

impl Filter {
    fn parse(value: &Value) -> Result<Filter, ApiError> {
        let property =
            text(value.get("propertyName")).ok_or_else(|| ApiError::bad_request("filters need a propertyName"))?;
        let operator = text(value.get("operator")).unwrap_or_else(|| "EQ".into());
        let op =
            Op::parse(&operator).ok_or_else(|| ApiError::bad_request(format!("Unknown filter operator {operator}")))?;
        let values: Vec<Operand> = value
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| text(Some(v))).map(|v| Operand::new(&v)).collect())
            .unwrap_or_default();
        let filter = Filter {
            property,
            op,
            value: text(value.get("value")).map(|v| Operand::new(&v)),
            high_value: text(value.get("highValue")).map(|v| Operand::new(&v)),
            values,
            numeric: false,
        };
        if op.needs_value() && filter.value.is_none() {
            return Err(ApiError::bad_request(format!("Filter on {} with {operator} needs a value", filter.property)));
        }
        if op == Op::Between && filter.high_value.is_none() {
            return Err(ApiError::bad_request("BETWEEN needs a highValue"));
        }
        Ok(filter)
    }

    fn compare(&self, actual: &str, against: &Operand) -> Ordering {
        if self.numeric
            && let Some(right) = against.number
            && let Some(left) = as_number(actual)
        {
            return left.partial_cmp(&right).unwrap_or(Ordering::Equal);
        }
        cmp_text(actual, &against.lower)
    }

    fn matches(&self, view: &View) -> bool {
        let actual = view.value(&self.property);
        let cmp = |against: Option<&Operand>| match (actual, against) {
            (Some(actual), Some(against)) => Some(self.compare(actual, against)),
            _ => None,
        };
        let value = self.value.as_ref();
        let equals = |against: &Operand| cmp(Some(against)) == Some(Ordering::Equal);
        let contains = || {
            let token = value.map_or("", |v| v.lower.trim_matches('*'));
            actual.is_some_and(|a| a.to_lowercase().contains(token))
        };
        match self.op {
            Op::Eq => value.is_some_and(equals),
            Op::Neq => !value.is_some_and(equals),
            Op::Lt => cmp(value) == Some(Ordering::Less),
            Op::Lte => matches!(cmp(value), Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => cmp(value) == Some(Ordering::Greater),
            Op::Gte => matches!(cmp(value), Some(Ordering::Greater | Ordering::Equal)),
            Op::Between => {
                matches!(cmp(value), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(self.high_value.as_ref()), Some(Ordering::Less | Ordering::Equal))
            }
            Op::In => self.values.iter().any(equals),
            Op::NotIn => !self.values.iter().any(equals),
            Op::HasProperty => actual.is_some(),
            Op::NotHasProperty => actual.is_none(),
            Op::ContainsToken => contains(),
            Op::NotContainsToken => !contains(),
        }
    }

    /// The inclusive bounds this filter puts on a numeric property, when it is a comparison
    /// with finite numbers (`None` otherwise).
    fn bounds(&self) -> Option<(f64, f64)> {
        let number = |operand: Option<&Operand>| operand.and_then(|o| o.number).filter(|n| n.is_finite());
        if !self.numeric {
            return None;
        }
        let v = number(self.value.as_ref());
        Some(match self.op {
            Op::Eq => (v?.ceil(), v?.floor()),
            Op::Gt => (v?.floor() + 1.0, f64::INFINITY),
            Op::Gte => (v?.ceil(), f64::INFINITY),
            Op::Lt => (f64::NEG_INFINITY, v?.ceil() - 1.0),
            Op::Lte => (f64::NEG_INFINITY, v?.floor()),
            Op::Between => (v?.ceil(), number(self.high_value.as_ref())?.floor()),
            _ => return None,
        })
    }
}

/// `sorts` comes as `["-createdate"]` (the spec) or `[{"propertyName","direction"}]` (the docs).
fn parse_sort(value: &Value) -> Option<Sort> {
    match value {
        Value::String(s) => match s.strip_prefix('-') {
            Some(name) => Some(Sort { property: name.to_string(), descending: true, numeric: false }),
            None => Some(Sort { property: s.clone(), descending: false, numeric: false }),
        },
        Value::Object(_) => Some(Sort {
            property: text(value.get("propertyName"))?,
            descending: text(value.get("direction")).is_some_and(|d| d.eq_ignore_ascii_case("DESCENDING")),
            numeric: false,
        }),
        _ => None,
    }
}

/// Where a filter group's records are, as far as ids and last-modified times tell.
enum Driver {
    /// A range of the last-modified index, from (time, id) to (time, id), both included; only
    /// ids within `ids` qualify.
    Modified { from: (i64, u64), to: (i64, u64), ids: (u64, u64) },
    /// Records with ids in this range, both included.
    Ids(u64, u64),
}

struct Plan {
    driver: Option<Driver>,
    /// The driver's records are exactly the group's matches (every filter is such a range).
    exact: bool,
}

fn plan(group: &[Filter], modified_property: &str) -> Plan {
    let (mut ids, mut times) = ((0u64, u64::MAX), None::<(i64, i64)>);
    let mut has_ids = false;
    let mut exact = true;
    for filter in group {
        let bounds = filter.bounds();
        match bounds {
            Some((low, high)) if filter.property == ID_PROPERTY => {
                // `as` saturates: negative bounds become 0.
                ids = (ids.0.max(low as u64), ids.1.min(high as u64));
                has_ids = true;
            }
            Some((low, high)) if filter.property == modified_property => {
                let (from, to) = times.unwrap_or((i64::MIN, i64::MAX));
                times = Some((from.max(low as i64), to.min(high as i64)));
            }
            _ => exact = false,
        }
    }
    let driver = match times {
        Some((from, to)) => Some(Driver::Modified { from: (from, ids.0), to: (to, ids.1), ids }),
        None if has_ids => Some(Driver::Ids(ids.0, ids.1)),
        None => None,
    };
    Plan { driver, exact }
}

impl Driver {
    /// The ids of the live records in range, in the driver's order: by id, or by (time, id).
    fn ids<'a>(&self, hub: &'a Hub, object_type: ObjectType) -> Box<dyn DoubleEndedIterator<Item = u64> + 'a> {
        match *self {
            Driver::Modified { from, to, ids: (low, high) } => Box::new(
                hub.modified_in(object_type, from, to).map(|(_, id)| id).filter(move |id| (low..=high).contains(id)),
            ),
            Driver::Ids(low, high) if low <= high => Box::new(
                hub.records_in(object_type, (Bound::Included(low), Bound::Included(high)))
                    .filter(|r| !r.is_archived())
                    .map(|r| r.id),
            ),
            Driver::Ids(..) => Box::new(std::iter::empty()),
        }
    }

    /// Whether the driver's order is the order `sort` asks for (ties by id).
    fn sorts_as(&self, sort: &Sort, modified_property: &str) -> bool {
        match self {
            Driver::Modified { from, to, .. } => {
                sort.property == modified_property || (sort.property == ID_PROPERTY && from.0 == to.0)
            }
            Driver::Ids(..) => sort.property == ID_PROPERTY,
        }
    }
}

/// A sort value: numbers first (in order), then text (case-insensitive), then no value.
enum Key<'a> {
    Number(f64),
    Text(&'a str),
    Missing,
}

impl Key<'_> {
    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Number(a), Key::Number(b)) => a.total_cmp(b),
            (Key::Text(a), Key::Text(b)) => cmp_text(a, b),
            (Key::Number(_), _) | (Key::Text(_), Key::Missing) => Ordering::Less,
            (Key::Missing, Key::Missing) => Ordering::Equal,
            _ => Ordering::Greater,
        }
    }
}

/// Puts the page `[after, after + limit)` of `items`, in `cmp`'s order, at `items[after..]`
/// without sorting everything; returns it.
fn page<T>(items: &mut [T], after: usize, limit: usize, cmp: impl Fn(&T, &T) -> Ordering) -> &[T] {
    let end = (after + limit).min(items.len());
    if after >= end {
        return &[];
    }
    if end < items.len() {
        items.select_nth_unstable_by(end, &cmp);
    }
    items[..end].sort_unstable_by(&cmp);
    &items[after..end]
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
    let mut sorts: Vec<Sort> =
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
    // HubSpot: "The search endpoints are limited to 10,000 total results for any given query.
    // Attempting to page beyond 10,000 will result in a 400 error."
    if after.saturating_add(limit) > MAX_RESULTS {
        return Err(ApiError::bad_request(format!(
            "Search results are limited to {MAX_RESULTS} per query: after ({after}) + limit ({limit}) goes past \
             result {MAX_RESULTS}. Narrow the filters instead of paging further."
        )));
    }
    let query = text(body.get("query")).map(|q| q.to_lowercase()).filter(|q| !q.is_empty());
    let names: Vec<String> =
        body.get("properties").and_then(Value::as_array).into_iter().flatten().filter_map(|v| text(Some(v))).collect();
    let selection = if names.is_empty() { Selection::Default } else { Selection::Named(&names) };

    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("the caller's portal").hub;
    let now = Instant::now();
    let pending = hub.settle_search(object_type, now);
    let hub = &*hub;
    let definitions = hub.properties(object_type);
    for filter in filters.iter_mut().flatten() {
        filter.numeric = is_numeric(definitions, &filter.property);
    }
    for sort in &mut sorts {
        sort.numeric = is_numeric(definitions, &sort.property);
    }
    let modified_property = object_type.modified_property();
    let plans: Vec<Plan> = filters.iter().map(|group| plan(group, modified_property)).collect();

    let matches = |view: &View| {
        (filters.is_empty() || filters.iter().any(|group| group.iter().all(|f| f.matches(view))))
            && query.as_ref().is_none_or(|q| {
                searchable(object_type)
                    .iter()
                    .any(|p| view.value(p).is_some_and(|value| value.to_lowercase().contains(q.as_str())))
            })
    };

    // Looking records up by id costs more than visiting every record in a walk of them all,
    // once a range holds more than a quarter of them.
    let few = hub.record_count(object_type) / 4;

    // One group whose range is in the order asked for: walk it in that order. When the range
    // holds exactly the matches, counting it is all there is to do.
    if let ([Plan { driver: Some(driver), exact }], [sort], true) =
        (plans.as_slice(), sorts.as_slice(), pending.is_empty())
        && driver.sorts_as(sort, modified_property)
    {
        let ordered = || {
            let ids = driver.ids(hub, object_type);
            if sort.descending { Box::new(ids.rev()) as Box<dyn Iterator<Item = u64>> } else { Box::new(ids) }
        };
        let view = |id| hub.record(object_type, id).and_then(|r| hub.search_view(r, now));
        let walked: Option<(usize, Vec<View>)> = if *exact && query.is_none() {
            Some((ordered().count(), ordered().skip(after).take(limit).filter_map(view).collect()))
        } else if ordered().take(few + 1).count() <= few {
            let mut total = 0;
            let mut shown = Vec::new();
            for view in ordered().filter_map(view).filter(|v| matches(v)) {
                if (after..after + limit).contains(&total) {
                    shown.push(view);
                }
                total += 1;
            }
            Some((total, shown))
        } else {
            None
        };
        if let Some((total, shown)) = walked {
            let results = shown.iter().map(|view| view.to_json(object_type, selection)).collect();
            return Ok(answer(total, results, after, limit));
        }
    }

    // Otherwise: the records the groups' ranges hold (and those search has an older state
    // of), or every record when a group has no range or the ranges hold many; then each is
    // checked.
    let mut candidates: Box<dyn Iterator<Item = &Record>> = Box::new(hub.records(object_type));
    if !plans.is_empty() && plans.iter().all(|p| p.driver.is_some()) {
        let mut ids: Vec<u64> = plans
            .iter()
            .filter_map(|p| p.driver.as_ref())
            .flat_map(|d| d.ids(hub, object_type))
            .chain(pending.iter().copied())
            .collect();
        if ids.len() <= few {
            ids.sort_unstable();
            ids.dedup();
            candidates = Box::new(ids.into_iter().filter_map(|id| hub.record(object_type, id)));
        }
    }
    let mut found: Vec<View> = candidates.filter_map(|r| hub.search_view(r, now)).filter(|v| matches(v)).collect();
    let total = found.len();
    let shown: Vec<View> = match sorts.first() {
        // Default order: creation, oldest first.
        None => page(&mut found, after, limit, |a, b| {
            (a.record.created_at, a.record.id).cmp(&(b.record.created_at, b.record.id))
        })
        .to_vec(),
        Some(sort) => {
            let mut keyed: Vec<(Key, View)> = found
                .into_iter()
                .map(|view| {
                    let key = match view.value(&sort.property) {
                        None => Key::Missing,
                        Some(value) => match sort.numeric.then(|| as_number(value)).flatten() {
                            Some(number) => Key::Number(number),
                            None => Key::Text(value),
                        },
                    };
                    (key, view)
                })
                .collect();
            let page = page(&mut keyed, after, limit, |(ka, a), (kb, b)| {
                let order = ka.cmp(kb).then(a.record.id.cmp(&b.record.id));
                if sort.descending { order.reverse() } else { order }
            });
            page.iter().map(|(_, view)| *view).collect()
        }
    };
    let results: Vec<Value> = shown.iter().map(|view| view.to_json(object_type, selection)).collect();
    Ok(answer(total, results, after, limit))
}

/// `{total, results, paging?}`. Like HubSpot, the next page is offered whenever there are more
/// results, also when asking for it would go past the 10,000-result wall.
fn answer(total: usize, results: Vec<Value>, after: usize, limit: usize) -> Response {
    let mut body = json!({ "total": total, "results": results });
    let next = after + limit;
    if next < total {
        body["paging"] = json!({ "next": { "after": next.to_string() } });
    }
    axum::Json(body).into_response()
}
