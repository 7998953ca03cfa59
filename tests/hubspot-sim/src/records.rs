//! A portal's CRM data: property definitions and records, with every value stamped with when
//! and by whom it was written (webhooks and `propertiesWithHistory` need `changeSource`/`sourceId`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::time::Duration;

use tokio::time::Instant;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::properties::{PropertyDef, default_properties};
use crate::state::{ObjectType, iso};

/// Who wrote a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Source {
    /// An app through the API (`sourceType: INTEGRATION`, `sourceId`: the app id).
    Integration { app_id: u64 },
    /// A person in HubSpot's UI (`sourceType: CRM_UI`, `sourceId: userId:N`).
    User { user_id: u64 },
    /// Data that was in the portal before the test started (`sourceType: IMPORT`).
    Import,
}

impl Source {
    pub fn source_type(self) -> &'static str {
        match self {
            Source::Integration { .. } => "INTEGRATION",
            Source::User { .. } => "CRM_UI",
            Source::Import => "IMPORT",
        }
    }

    pub fn source_id(self) -> Option<String> {
        match self {
            Source::Integration { app_id } => Some(app_id.to_string()),
            Source::User { user_id } => Some(format!("userId:{user_id}")),
            Source::Import => None,
        }
    }
}

/// One written value. An empty value is a clear.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Stamped {
    pub value: String,
    pub timestamp: i64,
    pub source: Source,
}

impl Stamped {
    fn to_json(&self) -> Value {
        let mut entry = json!({
            "value": self.value,
            "timestamp": iso(self.timestamp),
            "sourceType": self.source.source_type(),
        });
        if let Some(id) = self.source.source_id() {
            entry["sourceId"] = json!(id);
        }
        if let Source::User { user_id } = self.source {
            entry["updatedByUserId"] = json!(user_id);
        }
        entry
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub id: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived_at: Option<i64>,
    /// Current values (cleared properties are absent).
    pub values: BTreeMap<String, Stamped>,
    /// Every write per property, newest first (HubSpot's property history).
    pub history: BTreeMap<String, Vec<Stamped>>,
    /// Bumped by every write that changed something.
    pub version: u64,
    /// What search still sees while the last change is not indexed yet
    /// (`SimConfig::search_index_delay`); `None` without a delay or once it is. Not kept in a
    /// state file: a restarted simulator's index has caught up.
    #[serde(skip)]
    pub pending: Option<Pending>,
}

/// A change search has not caught up with.
#[derive(Debug, Clone)]
pub struct Pending {
    /// When the record last changed.
    pub since: Instant,
    /// The state search still has: `None` for a record created since.
    pub previous: Option<Box<Indexed>>,
}

/// A record's state as search's index holds it.
#[derive(Debug, Clone)]
pub struct Indexed {
    pub values: BTreeMap<String, Stamped>,
    pub updated_at: i64,
    pub archived_at: Option<i64>,
}

/// A record as search sees it: its current state or, within the index delay, its previous one.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub record: &'a Record,
    pub values: &'a BTreeMap<String, Stamped>,
    pub updated_at: i64,
}

impl<'a> View<'a> {
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.values.get(name).map(|s| s.value.as_str())
    }

    /// The `SimplePublicObject` JSON of what search sees.
    pub fn to_json(self, object_type: ObjectType, selection: Selection) -> Value {
        self.record.render(self.values, self.updated_at, None, object_type, selection, &[])
    }
}

/// A property value as a number, for comparisons: numbers, ms-epoch strings, ISO datetimes and
/// calendar dates (midnight UTC), the latter two in ms.
pub fn as_number(value: &str) -> Option<f64> {
    let value = value.trim();
    if let Ok(n) = value.parse::<f64>() {
        return Some(n);
    }
    if let Ok(t) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as f64);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &format).ok().map(|d| (d.midnight().assume_utc().unix_timestamp() * 1000) as f64)
}

/// A date or datetime value in ms since the epoch.
pub fn as_ms(value: &str) -> Option<i64> {
    match value.trim().parse::<i64>() {
        Ok(ms) => Some(ms),
        Err(_) => as_number(value).filter(|n| n.is_finite()).map(|n| n as i64),
    }
}

/// One change to a portal's CRM, logged for webhooks (`{type}.{kind}` events).
#[derive(Debug, Clone)]
pub struct Change {
    pub object_type: ObjectType,
    pub object_id: u64,
    pub source: Source,
    pub at: i64,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone)]
pub enum ChangeKind {
    Created,
    /// A new value ("" when cleared).
    Property {
        name: String,
        value: String,
    },
    Deleted,
    Restored,
    /// `merged_id` was merged into the change's record, which kept its id.
    Merged {
        merged_id: u64,
        properties_moved: usize,
    },
    /// An association from the change's record, logged once per direction.
    Association {
        to_type: ObjectType,
        to_id: u64,
        removed: bool,
    },
}

/// Which properties a response shows.
#[derive(Clone, Copy)]
pub enum Selection<'a> {
    /// Every property with a value (write responses).
    All,
    /// The object type's defaults (reads that name none).
    Default,
    /// The named ones, `null` when unset, plus the identity and timestamp properties.
    Named(&'a [String]),
}

impl Record {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|s| s.value.as_str())
    }

    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    /// The `SimplePublicObject` JSON.
    pub fn to_json(&self, object_type: ObjectType, selection: Selection, with_history: &[String]) -> Value {
        self.render(&self.values, self.updated_at, self.archived_at, object_type, selection, with_history)
    }

    /// The `SimplePublicObject` JSON of this record with these values.
    fn render(
        &self,
        values: &BTreeMap<String, Stamped>,
        updated_at: i64,
        archived_at: Option<i64>,
        object_type: ObjectType,
        selection: Selection,
        with_history: &[String],
    ) -> Value {
        let value = |name: &str| values.get(name).map_or(Value::Null, |s| json!(s.value));
        let mut properties = Map::new();
        match selection {
            Selection::All => {
                for (name, stamped) in values {
                    properties.insert(name.clone(), json!(stamped.value));
                }
            }
            Selection::Default => {
                for name in object_type.default_properties() {
                    properties.insert(name.to_string(), value(name));
                }
            }
            Selection::Named(names) => {
                let always = ["createdate", "hs_object_id", object_type.modified_property()];
                for name in names.iter().map(String::as_str).chain(always) {
                    properties.insert(name.to_string(), value(name));
                }
            }
        }
        let mut object = json!({
            "id": self.id.to_string(),
            "properties": properties,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(updated_at),
            "archived": archived_at.is_some(),
        });
        if let Some(at) = archived_at {
            object["archivedAt"] = json!(iso(at));
        }
        if !with_history.is_empty() {
            let history: Map<String, Value> = with_history
                .iter()
                .map(|name| {
                    let entries =
                        self.history.get(name).map(|h| h.iter().map(Stamped::to_json).collect()).unwrap_or_default();
                    (name.clone(), Value::Array(entries))
                })
                .collect();
            object["propertiesWithHistory"] = Value::Object(history);
        }
        object
    }

    /// Everything stored, for tests (`RunningSimulator::record`).
    pub fn to_full_json(&self, object_type: ObjectType) -> Value {
        let names: Vec<String> = self.history.keys().cloned().collect();
        let mut object = self.to_json(object_type, Selection::All, &names);
        object["version"] = json!(self.version);
        object["objectType"] = json!(object_type.name());
        object["objectTypeId"] = json!(object_type.type_id());
        object
    }

    /// Applies writes; returns the properties that changed (with the modification time when
    /// anything did). Writing the current value again is not a change (HubSpot neither records
    /// nor notifies it).
    fn apply(
        &mut self,
        object_type: ObjectType,
        values: &BTreeMap<String, String>,
        source: Source,
        now: i64,
    ) -> Vec<String> {
        let mut changed = Vec::new();
        for (name, value) in values {
            let current = self.value(name).unwrap_or_default();
            if current == value {
                continue;
            }
            let stamped = Stamped { value: value.clone(), timestamp: now, source };
            push_history(&mut self.history, name, stamped.clone());
            if value.is_empty() {
                self.values.remove(name);
            } else {
                self.values.insert(name.clone(), stamped);
            }
            changed.push(name.clone());
        }
        if !changed.is_empty() {
            // A seed may set the modification time itself (to stage old data).
            let modified = object_type.modified_property();
            if !values.contains_key(modified) {
                let stamped = Stamped { value: now.to_string(), timestamp: now, source };
                push_history(&mut self.history, modified, stamped.clone());
                self.values.insert(modified.to_string(), stamped);
                changed.push(modified.to_string());
            }
            self.updated_at = self.value(modified).and_then(as_ms).unwrap_or(now);
            self.version += 1;
        }
        changed
    }
}

/// Adds a write to a property's history, newest first. Most properties are written once: their
/// history gets room for exactly one entry (a portal may hold hundreds of thousands of records).
fn push_history(history: &mut BTreeMap<String, Vec<Stamped>>, name: &str, stamped: Stamped) {
    let entries = match history.get_mut(name) {
        Some(entries) => entries,
        None => history.entry(name.to_string()).or_insert_with(|| Vec::with_capacity(1)),
    };
    entries.insert(0, stamped);
}

/// The live records holding each value of one property. Normally one per value, but a property
/// made unique after records existed may start with duplicates (`find` answers the lowest id).
type ValueIndex = HashMap<String, BTreeSet<u64>>;

/// An association in one direction: (from type, from id, to type, to id).
type Link = (ObjectType, u64, ObjectType, u64);

/// One portal's CRM.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Hub {
    properties: BTreeMap<ObjectType, Vec<PropertyDef>>,
    records: BTreeMap<ObjectType, BTreeMap<u64, Record>>,
    /// Per type and property name: the values of unique properties, so lookups by `idProperty`
    /// and uniqueness checks don't scan every record (a batch upsert by email checks each input).
    /// Live records only. A property stays indexed whatever later happens to its definition.
    indexes: BTreeMap<ObjectType, HashMap<String, ValueIndex>>,
    /// Associations, stored in both directions. Links of archived records stay (a restore
    /// brings them back) but reads skip them.
    links: BTreeSet<Link>,
    /// Changes not yet published as webhook events.
    #[serde(skip)]
    changes: Vec<Change>,
    next_id: u64,
    /// Per type: (last-modified time in ms, id) of every live record, so search finds a time
    /// window (and one instant's records in id order) without looking at every record.
    modified: BTreeMap<ObjectType, BTreeSet<(i64, u64)>>,
    /// How long search lags behind writes (`SimConfig::search_index_delay`): the running
    /// simulator's configuration, not kept in a state file.
    #[serde(skip)]
    search_delay: Duration,
    /// Per type: the records with a `pending` change (some may be indexed by now).
    #[serde(skip)]
    pending: BTreeMap<ObjectType, BTreeSet<u64>>,
}

impl Hub {
    pub fn new(search_delay: Duration) -> Hub {
        let properties = ObjectType::ALL.iter().map(|&t| (t, default_properties(t))).collect();
        let mut hub = Hub {
            properties,
            records: BTreeMap::new(),
            indexes: BTreeMap::new(),
            links: BTreeSet::new(),
            changes: Vec::new(),
            next_id: 101,
            modified: BTreeMap::new(),
            search_delay,
            pending: BTreeMap::new(),
        };
        for object_type in ObjectType::ALL {
            let unique: Vec<String> =
                hub.properties(object_type).iter().filter(|p| p.has_unique_value).map(|p| p.name.clone()).collect();
            for name in unique {
                hub.index_property(object_type, &name);
            }
        }
        hub
    }

    pub fn properties(&self, object_type: ObjectType) -> &[PropertyDef] {
        self.properties.get(&object_type).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn property(&self, object_type: ObjectType, name: &str) -> Option<&PropertyDef> {
        self.properties(object_type).iter().find(|p| p.name == name && !p.archived)
    }

    /// For changes that leave `has_unique_value` alone; new properties go through `add_property`.
    pub fn properties_mut(&mut self, object_type: ObjectType) -> &mut Vec<PropertyDef> {
        self.properties.entry(object_type).or_default()
    }

    /// Adds a property definition (replacing an archived one of the same name); a unique one gets
    /// indexed from the records there are.
    pub fn add_property(&mut self, object_type: ObjectType, property: PropertyDef) {
        if property.has_unique_value {
            self.index_property(object_type, &property.name);
        }
        let properties = self.properties_mut(object_type);
        properties.retain(|p| p.name != property.name);
        properties.push(property);
    }

    /// Starts keeping an index of a property's values; a no-op if it has one already (indexes
    /// are kept up to date on every write, whatever the property's definition).
    fn index_property(&mut self, object_type: ObjectType, name: &str) {
        let indexes = self.indexes.entry(object_type).or_default();
        if indexes.contains_key(name) {
            return;
        }
        let mut index = ValueIndex::new();
        for record in self.records.get(&object_type).into_iter().flat_map(|m| m.values()) {
            if let Some(value) = record.value(name).filter(|_| !record.is_archived()) {
                index.entry(value.to_string()).or_default().insert(record.id);
            }
        }
        indexes.insert(name.to_string(), index);
    }

    /// Any record, archived or not.
    pub fn record(&self, object_type: ObjectType, id: u64) -> Option<&Record> {
        self.records.get(&object_type)?.get(&id)
    }

    /// A record that is not archived.
    pub fn live(&self, object_type: ObjectType, id: u64) -> Option<&Record> {
        self.record(object_type, id).filter(|r| !r.is_archived())
    }

    /// Records in id order (the order HubSpot pages in).
    pub fn records(&self, object_type: ObjectType) -> impl Iterator<Item = &Record> {
        self.records.get(&object_type).into_iter().flat_map(|m| m.values())
    }

    /// Records with ids from `first` on, in id order: a list page starts at its cursor without
    /// walking every record before it.
    pub fn records_from(&self, object_type: ObjectType, first: u64) -> impl Iterator<Item = &Record> {
        self.records.get(&object_type).into_iter().flat_map(move |m| m.range(first..).map(|(_, r)| r))
    }

    /// How many records of a type there are, archived ones included.
    pub fn record_count(&self, object_type: ObjectType) -> usize {
        self.records.get(&object_type).map_or(0, BTreeMap::len)
    }

    /// Records with ids in `range`, archived ones included, in id order.
    pub fn records_in(
        &self,
        object_type: ObjectType,
        range: (Bound<u64>, Bound<u64>),
    ) -> impl DoubleEndedIterator<Item = &Record> {
        self.records.get(&object_type).into_iter().flat_map(move |m| m.range(range).map(|(_, r)| r))
    }

    /// (last-modified ms, id) of the live records in `range` of that order; ranges that hold
    /// nothing (start after end) are fine.
    pub fn modified_in(
        &self,
        object_type: ObjectType,
        from: (i64, u64),
        to: (i64, u64),
    ) -> impl DoubleEndedIterator<Item = (i64, u64)> + '_ {
        let range = (from <= to).then_some(from..=to);
        self.modified.get(&object_type).zip(range).into_iter().flat_map(|(index, range)| index.range(range).copied())
    }

    /// Changes how long search lags behind writes, from the next write on (changes pending
    /// already are judged by the new delay too).
    pub fn set_search_delay(&mut self, delay: Duration) {
        self.search_delay = delay;
    }

    /// Forgets the pending changes of a type that search has indexed by `now`; returns the ids
    /// of those it has not.
    pub fn settle_search(&mut self, object_type: ObjectType, now: Instant) -> Vec<u64> {
        let delay = self.search_delay;
        let (Some(ids), Some(records)) = (self.pending.get_mut(&object_type), self.records.get_mut(&object_type))
        else {
            return Vec::new();
        };
        ids.retain(|id| {
            let Some(record) = records.get_mut(id) else { return false };
            let fresh = record.pending.as_ref().is_some_and(|p| now.saturating_duration_since(p.since) < delay);
            if !fresh {
                record.pending = None;
            }
            fresh
        });
        ids.iter().copied().collect()
    }

    /// A record as search sees it at `now`, `None` if it does not see it.
    pub fn search_view<'a>(&self, record: &'a Record, now: Instant) -> Option<View<'a>> {
        match &record.pending {
            Some(pending) if now.saturating_duration_since(pending.since) < self.search_delay => {
                let previous = pending.previous.as_deref().filter(|p| p.archived_at.is_none())?;
                Some(View { record, values: &previous.values, updated_at: previous.updated_at })
            }
            _ => (!record.is_archived()).then_some(View {
                record,
                values: &record.values,
                updated_at: record.updated_at,
            }),
        }
    }

    /// Looks a live record up by id (`hs_object_id`) or by a property's value. Emails compare
    /// case-insensitively, as HubSpot stores them lower-cased.
    pub fn find(&self, object_type: ObjectType, id_property: Option<&str>, key: &str) -> Option<&Record> {
        match id_property {
            None | Some("hs_object_id") => key.trim().parse().ok().and_then(|id| self.live(object_type, id)),
            Some(name) => {
                let key = if name == "email" { key.trim().to_lowercase() } else { key.to_string() };
                match self.indexes.get(&object_type).and_then(|i| i.get(name)) {
                    // The lowest id: the one a scan in id order would find first.
                    Some(index) => {
                        index.get(&key).and_then(|ids| ids.first()).and_then(|&id| self.live(object_type, id))
                    }
                    // Only properties that never were unique are not indexed.
                    None => self.records(object_type).find(|r| !r.is_archived() && r.value(name) == Some(key.as_str())),
                }
            }
        }
    }

    /// The first unique property whose new value another live record already holds.
    pub fn unique_conflict(
        &self,
        object_type: ObjectType,
        values: &BTreeMap<String, String>,
        except: Option<u64>,
    ) -> Option<(String, u64)> {
        self.properties(object_type).iter().filter(|p| p.has_unique_value && !p.archived).find_map(|p| {
            let value = values.get(&p.name).filter(|v| !v.is_empty())?;
            let holder = self.find(object_type, Some(&p.name), value)?;
            (Some(holder.id) != except).then(|| (p.name.clone(), holder.id))
        })
    }

    pub fn create(
        &mut self,
        object_type: ObjectType,
        values: &BTreeMap<String, String>,
        source: Source,
        now: i64,
    ) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let created_at = values.get("createdate").and_then(|v| as_ms(v)).unwrap_or(now);
        let mut record = Record {
            id,
            created_at,
            updated_at: created_at,
            archived_at: None,
            values: BTreeMap::new(),
            history: BTreeMap::new(),
            version: 0,
            pending: None,
        };
        let mut all = values.clone();
        all.insert("hs_object_id".into(), id.to_string());
        all.entry("createdate".into()).or_insert_with(|| now.to_string());
        let changed = record.apply(object_type, &all, source, now);
        index_record(self.indexes.entry(object_type).or_default(), &record, true);
        if let Some(key) = modified_key(object_type, &record) {
            self.modified.entry(object_type).or_default().insert(key);
        }
        if !self.search_delay.is_zero() {
            // Not in search's index yet.
            record.pending = Some(Pending { since: Instant::now(), previous: None });
            self.pending.entry(object_type).or_default().insert(id);
        }
        // Values set at creation are property changes too: propertyChange subscribers hear of them.
        self.log(object_type, id, source, now, ChangeKind::Created);
        self.changes.extend(property_changes(object_type, &record, &changed, source, now));
        self.records.entry(object_type).or_default().insert(id, record);
        id
    }

    /// Writes to a live record; returns whether it changed, `None` if there is no such record.
    pub fn update(
        &mut self,
        object_type: ObjectType,
        id: u64,
        values: &BTreeMap<String, String>,
        source: Source,
        now: i64,
    ) -> Option<bool> {
        let record = self.records.get_mut(&object_type)?.get_mut(&id).filter(|r| !r.is_archived())?;
        let indexes = self.indexes.entry(object_type).or_default();
        let modified = self.modified.entry(object_type).or_default();
        let stale = indexed_state(record, self.search_delay);
        index_record(indexes, record, false);
        let old_key = modified_key(object_type, record);
        let changed = record.apply(object_type, values, source, now);
        index_record(indexes, record, true);
        let new_key = modified_key(object_type, record);
        if old_key != new_key {
            if let Some(key) = old_key {
                modified.remove(&key);
            }
            if let Some(key) = new_key {
                modified.insert(key);
            }
        }
        if !changed.is_empty() && mark_pending(record, stale, self.search_delay) {
            self.pending.entry(object_type).or_default().insert(id);
        }
        self.changes.extend(property_changes(object_type, record, &changed, source, now));
        Some(!changed.is_empty())
    }

    /// Archives a live record; unknown or already archived ids are fine (HubSpot answers 204).
    pub fn archive(&mut self, object_type: ObjectType, id: u64, source: Source, now: i64) {
        if self.archive_quietly(object_type, id, now) {
            self.log(object_type, id, source, now, ChangeKind::Deleted);
        }
    }

    /// Archives without a deletion event (a merge reports the merged record its own way).
    fn archive_quietly(&mut self, object_type: ObjectType, id: u64, now: i64) -> bool {
        let Some(record) = self.records.get_mut(&object_type).and_then(|m| m.get_mut(&id)) else { return false };
        if record.is_archived() {
            return false;
        }
        let stale = indexed_state(record, self.search_delay);
        // Archived records free their unique values.
        index_record(self.indexes.entry(object_type).or_default(), record, false);
        if let Some(key) = modified_key(object_type, record) {
            self.modified.entry(object_type).or_default().remove(&key);
        }
        record.archived_at = Some(now);
        record.updated_at = now;
        record.version += 1;
        if mark_pending(record, stale, self.search_delay) {
            self.pending.entry(object_type).or_default().insert(id);
        }
        true
    }

    /// Brings an archived record back, unless another live record took one of its unique values.
    pub fn restore(&mut self, object_type: ObjectType, id: u64, source: Source, now: i64) -> Result<(), String> {
        let record = self.record(object_type, id).ok_or_else(|| format!("no {} {id}", object_type.singular()))?;
        if !record.is_archived() {
            return Ok(());
        }
        let values = record.values.iter().map(|(name, stamped)| (name.clone(), stamped.value.clone())).collect();
        if let Some((name, holder)) = self.unique_conflict(object_type, &values, Some(id)) {
            return Err(format!("{name} now belongs to record {holder}"));
        }
        let record = self.records.get_mut(&object_type).and_then(|m| m.get_mut(&id)).expect("found above");
        let stale = indexed_state(record, self.search_delay);
        record.archived_at = None;
        record.updated_at = now;
        record.version += 1;
        index_record(self.indexes.entry(object_type).or_default(), record, true);
        if let Some(key) = modified_key(object_type, record) {
            self.modified.entry(object_type).or_default().insert(key);
        }
        if mark_pending(record, stale, self.search_delay) {
            self.pending.entry(object_type).or_default().insert(id);
        }
        self.log(object_type, id, source, now, ChangeKind::Restored);
        Ok(())
    }

    /// Merges `merged_id` into `primary_id`: the primary keeps its id and takes the merged
    /// record's values for writable properties it has none for, and its associations; the
    /// merged record is archived. Returns how many properties moved.
    pub fn merge(
        &mut self,
        object_type: ObjectType,
        primary_id: u64,
        merged_id: u64,
        source: Source,
        now: i64,
    ) -> Result<usize, String> {
        let live = |id| self.live(object_type, id).ok_or_else(|| format!("no live {} {id}", object_type.singular()));
        let (primary, merged) = (live(primary_id)?, live(merged_id)?);
        if primary_id == merged_id {
            return Err("a record cannot be merged into itself".into());
        }
        let moved: BTreeMap<String, String> = merged
            .values
            .iter()
            .filter(|(name, _)| {
                primary.value(name).is_none() && self.property(object_type, name).is_some_and(|p| p.is_writable())
            })
            .map(|(name, stamped)| (name.clone(), stamped.value.clone()))
            .collect();
        let links = self.links_from(object_type, merged_id);
        self.log(object_type, primary_id, source, now, ChangeKind::Merged { merged_id, properties_moved: moved.len() });
        // Archived first, so its unique values are free for the primary to take.
        self.archive_quietly(object_type, merged_id, now);
        self.update(object_type, primary_id, &moved, source, now);
        for (_, _, to_type, to_id) in links {
            self.dissociate(object_type, merged_id, to_type, to_id, source, now);
            self.associate(object_type, primary_id, to_type, to_id, source, now);
        }
        Ok(moved.len())
    }

    /// Associates two records (both directions); returns whether they were not already. The
    /// caller has checked that both exist and that the pair of types can be associated.
    pub fn associate(
        &mut self,
        from_type: ObjectType,
        from_id: u64,
        to_type: ObjectType,
        to_id: u64,
        source: Source,
        now: i64,
    ) -> bool {
        if !self.links.insert((from_type, from_id, to_type, to_id)) {
            return false;
        }
        self.links.insert((to_type, to_id, from_type, from_id));
        self.log_association((from_type, from_id, to_type, to_id), false, source, now);
        true
    }

    /// Removes the association between two records (both directions); returns whether there was one.
    pub fn dissociate(
        &mut self,
        from_type: ObjectType,
        from_id: u64,
        to_type: ObjectType,
        to_id: u64,
        source: Source,
        now: i64,
    ) -> bool {
        if !self.links.remove(&(from_type, from_id, to_type, to_id)) {
            return false;
        }
        self.links.remove(&(to_type, to_id, from_type, from_id));
        self.log_association((from_type, from_id, to_type, to_id), true, source, now);
        true
    }

    /// The live records of `to_type` a live record is associated with, in id order.
    pub fn associated(&self, from_type: ObjectType, from_id: u64, to_type: ObjectType) -> Vec<u64> {
        if self.live(from_type, from_id).is_none() {
            return Vec::new();
        }
        self.links
            .range((from_type, from_id, to_type, 0)..=(from_type, from_id, to_type, u64::MAX))
            .map(|&(_, _, _, to_id)| to_id)
            .filter(|&to_id| self.live(to_type, to_id).is_some())
            .collect()
    }

    /// Every link from one record, to any type, archived ends included.
    fn links_from(&self, from_type: ObjectType, from_id: u64) -> Vec<Link> {
        let first = (from_type, from_id, ObjectType::ALL[0], 0);
        let last = (from_type, from_id, ObjectType::ALL[ObjectType::ALL.len() - 1], u64::MAX);
        self.links.range(first..=last).copied().collect()
    }

    /// The changes logged since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    fn log(&mut self, object_type: ObjectType, object_id: u64, source: Source, at: i64, kind: ChangeKind) {
        self.changes.push(Change { object_type, object_id, source, at, kind });
    }

    /// An association is logged from each side, as each record sees it.
    fn log_association(&mut self, link: Link, removed: bool, source: Source, at: i64) {
        let (from_type, from_id, to_type, to_id) = link;
        self.log(from_type, from_id, source, at, ChangeKind::Association { to_type, to_id, removed });
        self.log(to_type, to_id, source, at, ChangeKind::Association { to_type: from_type, to_id: from_id, removed });
    }
}

/// One property change per changed property, with the record's new value.
fn property_changes(
    object_type: ObjectType,
    record: &Record,
    names: &[String],
    source: Source,
    at: i64,
) -> impl Iterator<Item = Change> {
    names.iter().map(move |name| {
        let value = record.value(name).unwrap_or_default().to_string();
        Change {
            object_type,
            object_id: record.id,
            source,
            at,
            kind: ChangeKind::Property { name: name.clone(), value },
        }
    })
}

/// Where a record sorts by modification time, if it has one.
fn modified_key(object_type: ObjectType, record: &Record) -> Option<(i64, u64)> {
    record.value(object_type.modified_property()).and_then(as_ms).map(|ms| (ms, record.id))
}

/// Before a change: the state search has for the record if the change is the first it has not
/// indexed (`None` without a delay, or while an earlier change is still pending).
fn indexed_state(record: &Record, delay: Duration) -> Option<Indexed> {
    let pending = record.pending.as_ref().is_some_and(|p| p.since.elapsed() < delay);
    (!delay.is_zero() && !pending).then(|| Indexed {
        values: record.values.clone(),
        updated_at: record.updated_at,
        archived_at: record.archived_at,
    })
}

/// After a change: search keeps seeing the state it has for another `delay`. Returns whether
/// the record has a pending change now.
fn mark_pending(record: &mut Record, stale: Option<Indexed>, delay: Duration) -> bool {
    if delay.is_zero() {
        return false;
    }
    let since = Instant::now();
    match (&mut record.pending, stale) {
        // A change on top of one not indexed yet: search still has the state before both.
        (Some(pending), None) => pending.since = since,
        (_, stale) => record.pending = Some(Pending { since, previous: stale.map(Box::new) }),
    }
    true
}

/// Adds a live record's values to its type's indexes, or takes them out (`add: false`).
fn index_record(indexes: &mut HashMap<String, ValueIndex>, record: &Record, add: bool) {
    for (name, index) in indexes.iter_mut() {
        let Some(value) = record.value(name) else { continue };
        if add {
            index.entry(value.to_string()).or_default().insert(record.id);
        } else if let Some(ids) = index.get_mut(value) {
            ids.remove(&record.id);
            if ids.is_empty() {
                index.remove(value);
            }
        }
    }
}
