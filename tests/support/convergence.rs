//! What "nothing lost" means, checked field by field: a platform that keeps the delivery
//! contract (it applies a field only when its version is newer than the one it holds, its own
//! changes included), a ledger of every change made on either side, and the report that
//! compares HubSpot and the platform with what the ledger demands. Shared by the deterministic
//! chaos run and the wall-clock soak.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hubsync::domain::{ConnectionId, ConnectionStatus, RunCounts, RunKind, Secret};
use hubsync::inbound::verify;
use hubsync::ports::{Queue, Store};
use hubsync::work::ParkedMessage;
use serde_json::{Value, json};

use crate::simulation::Dice;

/// The config both runs sync: first names both ways, last names out, job titles and lifecycle
/// stages in, and a `conversion` event when a stage changes.
pub fn config(ingest_url: &str) -> Value {
    json!({
        "objects": { "contacts": {
            "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [
                { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" },
                { "platform_field": "last_name", "hubspot_property": "lastname", "direction": "out", "platform_type": "string" },
                { "platform_field": "job_title", "hubspot_property": "jobtitle", "direction": "in", "platform_type": "string" },
                { "platform_field": "stage", "hubspot_property": "lifecyclestage", "direction": "in",
                  "platform_type": "enumeration", "values": ["subscriber", "lead", "marketingqualifiedlead",
                  "salesqualifiedlead", "opportunity", "customer", "evangelist", "other"] }
            ] } },
        "triggers": [ { "name": "conversion", "object": "contacts", "on_change": ["lifecyclestage"],
            "fields": [ { "name": "contact_id", "source": { "kind": "record_id" } },
                        { "name": "stage", "source": { "kind": "property", "property": "lifecyclestage" } } ] } ],
        "options": { "webhooks_enabled": true, "data_in_enabled": true, "ingest_url": ingest_url }
    })
}

#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct PlatformCounts {
    pub deliveries: u64,
    pub refused_while_down: u64,
    pub refused_records: u64,
    pub redelivered_same_key: u64,
    pub fields_applied: u64,
    pub older_fields_ignored: u64,
    pub deleted: u64,
}

/// One platform record: field → value and the version it holds it at.
type Fields = BTreeMap<String, (Value, i64)>;

#[derive(Default)]
struct PlatformState {
    down: bool,
    /// Connection → how long its deliveries take to answer.
    slow: BTreeMap<String, std::time::Duration>,
    refusal_rate: f64,
    /// (connection, record key) → its fields.
    records: BTreeMap<(String, String), Fields>,
    /// (connection, record key, field) → every value the platform set itself.
    own: BTreeMap<(String, String, String), BTreeSet<String>>,
    seen_keys: BTreeSet<String>,
    /// (connection, HubSpot id) → conversion events applied.
    conversions: BTreeMap<(String, String), u32>,
    counts: PlatformCounts,
    echoes: Vec<String>,
}

/// The platform's ingest endpoint, keeping the delivery contract.
pub struct Platform {
    state: Mutex<PlatformState>,
    secret: Secret,
    dice: Dice,
}

impl Platform {
    pub fn new(secret: &str, dice: Dice) -> Arc<Platform> {
        Arc::new(Platform { state: Mutex::default(), secret: Secret::new(secret), dice })
    }

    /// `POST /ingest`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().route("/ingest", post(ingest)).with_state(self.clone())
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Answers this connection's deliveries only after `delay`.
    pub fn set_slow(&self, connection: &str, delay: std::time::Duration) {
        self.state.lock().unwrap().slow.insert(connection.to_string(), delay);
    }

    /// The chance that the platform answers `error` for one record (it could not save it now).
    pub fn set_refusal_rate(&self, rate: f64) {
        self.state.lock().unwrap().refusal_rate = rate;
    }

    /// The platform's own change of a field, before it pushes it.
    pub fn change(&self, connection: &str, key: &str, field: &str, value: &str, at_ms: i64) {
        let mut state = self.state.lock().unwrap();
        let id = (connection.to_string(), key.to_string());
        let own = (connection.to_string(), key.to_string(), field.to_string());
        state.own.entry(own).or_default().insert(value.to_string());
        let fields = state.records.entry(id).or_default();
        if fields.get(field).is_none_or(|(_, version)| at_ms > *version) {
            fields.insert(field.to_string(), (json!(value), at_ms));
        }
    }

    pub fn value(&self, connection: &str, key: &str, field: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        let fields = state.records.get(&(connection.to_string(), key.to_string()))?;
        fields.get(field)?.0.as_str().map(str::to_string)
    }

    pub fn conversions(&self, connection: &str, hubspot_id: &str) -> u32 {
        let state = self.state.lock().unwrap();
        state.conversions.get(&(connection.to_string(), hubspot_id.to_string())).copied().unwrap_or(0)
    }

    pub fn counts(&self) -> PlatformCounts {
        self.state.lock().unwrap().counts.clone()
    }

    pub fn echoes(&self) -> Vec<String> {
        self.state.lock().unwrap().echoes.clone()
    }

    fn apply(&self, state: &mut PlatformState, connection: &str, record: &Value) -> &'static str {
        let key = record["idempotency_key"].as_str().unwrap_or_default().to_string();
        if state.seen_keys.contains(&key) {
            state.counts.redelivered_same_key += 1;
            return "applied";
        }
        if self.dice.chance(state.refusal_rate) {
            state.counts.refused_records += 1;
            return "error";
        }
        state.seen_keys.insert(key);
        match record["event"].as_str().unwrap_or_default() {
            "trigger" => {
                let id = record["hubspot_id"].as_str().unwrap_or_default().to_string();
                *state.conversions.entry((connection.to_string(), id)).or_insert(0) += 1;
            }
            "deleted" => state.counts.deleted += 1,
            _ => {
                let Some(email) = record["record_key"].as_str() else { return "not_found" };
                let version = record["version_ms"].as_i64().unwrap_or_default();
                for (field, value) in record["fields"].as_object().into_iter().flatten() {
                    let own = (connection.to_string(), email.to_string(), field.clone());
                    if value.as_str().is_some_and(|v| state.own.get(&own).is_some_and(|values| values.contains(v))) {
                        state.echoes.push(format!("{connection} {email} {field}: {value}"));
                    }
                    let at = record["field_versions_ms"][field].as_i64().unwrap_or(version);
                    let fields = state.records.entry((connection.to_string(), email.to_string())).or_default();
                    if fields.get(field).is_none_or(|(_, held)| at > *held) {
                        fields.insert(field.clone(), (value.clone(), at));
                        state.counts.fields_applied += 1;
                    } else {
                        state.counts.older_fields_ignored += 1;
                    }
                }
            }
        }
        "applied"
    }
}

async fn ingest(
    State(platform): State<Arc<Platform>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !verify(&platform.secret, header("x-hubsync-timestamp"), body.as_bytes(), header("x-hubsync-signature")) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "bad signature" })));
    }
    let delivery: Value = serde_json::from_str(&body).expect("a delivery is JSON");
    let connection = delivery["connection_id"].as_str().unwrap_or_default().to_string();
    let delay = platform.state.lock().unwrap().slow.get(&connection).copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut state = platform.state.lock().unwrap();
    state.counts.deliveries += 1;
    if state.down {
        state.counts.refused_while_down += 1;
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "error": "down for maintenance" })));
    }
    let results: Vec<Value> = delivery["records"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|record| {
            let status = platform.apply(&mut state, &connection, record);
            json!({ "idempotency_key": record["idempotency_key"], "status": status })
        })
        .collect();
    (StatusCode::OK, axum::Json(json!({ "results": results })))
}

/// Every change one tenant's run made, on either side, with when it was made (epoch ms).
#[derive(Default)]
pub struct Ledger {
    pub connection: String,
    pub portal: u64,
    /// email → platform field → the platform's newest value.
    pub pushed: BTreeMap<String, BTreeMap<String, (String, i64)>>,
    /// email → HubSpot property → a person's newest value.
    pub edited: BTreeMap<String, BTreeMap<String, (String, i64)>>,
    /// Contacts a person converted (the `conversion` trigger fires once each).
    pub converted: BTreeSet<String>,
    /// email → the company domain the platform's newest change linked the contact to.
    pub company: BTreeMap<String, (String, i64)>,
}

impl Ledger {
    pub fn push(&mut self, email: &str, field: &str, value: &str, at_ms: i64) {
        self.pushed.entry(email.to_string()).or_default().insert(field.to_string(), (value.to_string(), at_ms));
    }

    pub fn link(&mut self, email: &str, domain: &str, at_ms: i64) {
        self.company.insert(email.to_string(), (domain.to_string(), at_ms));
    }

    pub fn edit(&mut self, email: &str, property: &str, value: &str, at_ms: i64) {
        self.edited.entry(email.to_string()).or_default().insert(property.to_string(), (value.to_string(), at_ms));
    }
}

/// What a run found, in the form it is printed.
#[derive(Default)]
pub struct Report {
    pub header: Vec<(String, String)>,
    pub applied_pushes: u64,
    pub applied_edits: u64,
    pub conversions: u64,
    pub platform: PlatformCounts,
    /// Run counts by kind and reason.
    pub outcomes: BTreeMap<String, u64>,
    pub parked_on_the_way: BTreeMap<String, u64>,
    pub still_parked: BTreeMap<String, u64>,
    pub lost: Vec<String>,
    pub applied_twice: Vec<String>,
    pub echoes: Vec<String>,
}

impl Report {
    pub fn converged(&self) -> bool {
        self.lost.is_empty() && self.applied_twice.is_empty() && self.echoes.is_empty() && self.still_parked.is_empty()
    }

    /// Adds what the store holds of a tenant's connection: it must end active, and its runs'
    /// counts join the report's.
    pub async fn count_connection(&mut self, store: &dyn Store, connection: &ConnectionId) {
        let status = store.get_connection(connection).await.unwrap().unwrap().status;
        if status != ConnectionStatus::Active {
            self.lost.push(format!("{connection}: the connection ends {status:?}"));
        }
        for run in store.list_runs(connection, 100_000).await.unwrap() {
            let kind = match run.kind {
                RunKind::Push => "push",
                RunKind::Inbound => "inbound",
                _ => "pull",
            };
            self.count_run(kind, &run.counts);
        }
    }

    /// Adds one run's counts, by run kind and reason.
    pub fn count_run(&mut self, kind: &str, counts: &RunCounts) {
        let mut add = |what: &str, reason: &str, n: u64| {
            *self.outcomes.entry(format!("{kind} {what}: {}", normalise(reason))).or_insert(0) += n;
        };
        add("created", "", counts.created);
        add("updated", "", counts.updated);
        add("unchanged", "", counts.unchanged);
        counts.skipped.iter().for_each(|(reason, n)| add("skipped", reason, *n));
        counts.deferred.iter().for_each(|(reason, n)| add("deferred", reason, *n));
        counts.retried.iter().for_each(|(reason, n)| add("retried", reason, *n));
        counts.failed.iter().for_each(|(reason, n)| add("failed", reason, *n));
        self.outcomes.retain(|_, n| *n > 0);
    }

    /// Compares one tenant's HubSpot contacts and the platform with its ledger.
    /// Each contact's companies in HubSpot (`linked`: email → domains) against the platform's
    /// newest `set` of them: exactly that one company.
    pub fn check_links(&mut self, ledger: &Ledger, linked: &BTreeMap<String, Vec<String>>) {
        for (email, (domain, _)) in &ledger.company {
            let found = linked.get(email).cloned().unwrap_or_default();
            if found == [domain.clone()] {
                self.applied_pushes += 1;
            } else {
                let connection = &ledger.connection;
                self.lost.push(format!(
                    "{connection} {email}: HubSpot links it to {found:?}, the newest change says {domain}"
                ));
            }
        }
    }

    pub fn check(&mut self, ledger: &Ledger, contacts: &[Value], platform: &Platform) {
        let connection = ledger.connection.as_str();
        let mut by_email: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for contact in contacts {
            if let Some(email) = contact["properties"]["email"].as_str() {
                by_email.entry(email.to_string()).or_default().push(contact);
            }
        }
        for (email, records) in &by_email {
            if records.len() > 1 {
                self.applied_twice.push(format!("{connection}: {} HubSpot contacts for {email}", records.len()));
            }
        }
        let emails: BTreeSet<&String> = ledger.pushed.keys().chain(ledger.edited.keys()).collect();
        for email in emails {
            let hubspot = by_email.get(email.as_str()).and_then(|r| r.first()).map(|c| &c["properties"]);
            let in_hubspot = |property: &str| hubspot.and_then(|p| p[property].as_str()).map(str::to_string);
            let pushed = ledger.pushed.get(email);
            let edited = ledger.edited.get(email);
            let mut expect = |side: &str, found: Option<String>, wanted: &str, what: &str| {
                if found.as_deref() == Some(wanted) {
                    if side == "HubSpot" { self.applied_pushes += 1 } else { self.applied_edits += 1 }
                } else {
                    self.lost.push(format!(
                        "{connection} {email}: {side}'s {what} is {found:?}, the newest change says {wanted}"
                    ));
                }
            };
            if let Some((value, _)) = pushed.and_then(|p| p.get("last_name")) {
                expect("HubSpot", in_hubspot("lastname"), value, "lastname");
            }
            // The field both sides hold: both end on the newest change from either side.
            let newest = [pushed.and_then(|p| p.get("first_name")), edited.and_then(|e| e.get("firstname"))]
                .into_iter()
                .flatten()
                .max_by_key(|(_, at)| *at);
            if let Some((value, _)) = newest {
                expect("HubSpot", in_hubspot("firstname"), value, "firstname");
                expect("the platform", platform.value(connection, email, "first_name"), value, "first_name");
            }
            for (property, field) in [("jobtitle", "job_title"), ("lifecyclestage", "stage")] {
                if let Some((value, _)) = edited.and_then(|e| e.get(property)) {
                    expect("HubSpot", in_hubspot(property), value, property);
                    expect("the platform", platform.value(connection, email, field), value, field);
                }
            }
            if ledger.converted.contains(email) {
                let Some(id) = by_email.get(email.as_str()).and_then(|r| r.first()).and_then(|c| c["id"].as_str())
                else {
                    continue;
                };
                match platform.conversions(connection, id) {
                    0 => self.lost.push(format!("{connection} {email}: no conversion event")),
                    1 => self.conversions += 1,
                    n => self.applied_twice.push(format!("{connection} {email}: {n} conversion events")),
                }
            }
        }
    }
}

/// Every dead-lettered message of these queues (named), counted by queue and reason, and left
/// where it was (visible again) for a redrive. `wait`: how long a receive waits for more.
pub async fn parked_by_reason(queues: &[(&str, &dyn Queue)], wait: Duration) -> BTreeMap<String, u64> {
    let mut reasons = BTreeMap::new();
    for (name, queue) in queues {
        let mut taken = Vec::new();
        loop {
            let batch = queue.receive(10, wait).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for message in batch {
                let parked = ParkedMessage::read(&message.body);
                *reasons.entry(format!("{name}: {}", normalise(&parked.parked.reason))).or_insert(0) += 1;
                taken.push(message.receipt_handle);
            }
        }
        for handle in taken {
            queue.change_visibility(&handle, Duration::ZERO).await.unwrap();
        }
    }
    reasons
}

/// A reason with what differs between runs (HubSpot's correlation ids) taken out.
pub fn normalise(reason: &str) -> String {
    let mut text = reason.to_string();
    while let Some(start) = text.find(" [correlationId ") {
        let end = text[start..].find(']').map_or(text.len(), |e| start + e + 1);
        text.replace_range(start..end, "");
    }
    text
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, title: &str, items: &[String]| -> fmt::Result {
            writeln!(f, "{title:<32} {}", items.len())?;
            items.iter().take(20).try_for_each(|item| writeln!(f, "    {item}"))
        };
        let counts = |f: &mut fmt::Formatter<'_>, title: &str, items: &BTreeMap<String, u64>| -> fmt::Result {
            writeln!(f, "{title:<32} {}", items.values().sum::<u64>())?;
            items.iter().try_for_each(|(reason, n)| writeln!(f, "    {n:>6}  {reason}"))
        };
        writeln!(f, "== chaos report ==")?;
        for (name, value) in &self.header {
            writeln!(f, "{name:<32} {value}")?;
        }
        writeln!(
            f,
            "{:<32} {} HubSpot values, {} platform values, {} conversions",
            "converged", self.applied_pushes, self.applied_edits, self.conversions
        )?;
        writeln!(f, "{:<32} {:?}", "platform saw", self.platform)?;
        counts(f, "outcomes, by run kind and reason", &self.outcomes)?;
        counts(f, "parked in DLQ, by reason", &self.parked_on_the_way)?;
        counts(f, "still parked after redrive", &self.still_parked)?;
        list(f, "lost (must be 0)", &self.lost)?;
        list(f, "applied twice (must be 0)", &self.applied_twice)?;
        list(f, "loop echoes (must be 0)", &self.echoes)
    }
}
