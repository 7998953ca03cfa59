//! Everything the simulator remembers, behind one std `Mutex` (handlers lock, work, unlock;
//! nothing holds the lock across an `.await`). Releasing the lock turns the CRM changes made
//! under it into webhook events, so every write path notifies subscribers without knowing it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::faults::Fault;
use crate::lists::Lists;
use crate::records::Hub;
use crate::webhooks::Webhooks;

/// The app every simulator knows from the start.
pub const DEFAULT_CLIENT_ID: &str = "sim-client-id";
pub const DEFAULT_CLIENT_SECRET: &str = "sim-client-secret";
/// The portal every simulator knows from the start; it grants [`ALL_SCOPES`].
pub const DEFAULT_PORTAL: u64 = 1000;

/// The scopes the default portal grants: everything the CRM endpoints here can ask for.
pub const ALL_SCOPES: &[&str] = &[
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.line_items.read",
    "crm.objects.line_items.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.schemas.deals.read",
    "crm.schemas.deals.write",
    "crm.schemas.line_items.read",
    "crm.schemas.line_items.write",
    "crm.lists.read",
    "crm.lists.write",
];

/// How the simulator behaves where HubSpot's behaviour is a choice or unknown.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Requests per rolling 10 s per portal and app (HubSpot's public-app limit is 110).
    pub rate_limit_per_10s: u32,
    /// Lifetime of access tokens (`expires_in`); HubSpot issues 30-minute tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of authorization codes. HubSpot does not document it; a few minutes.
    pub auth_code_ttl: Duration,
    /// What an upsert keyed by `email` does to properties its input leaves out. HubSpot only
    /// says such upserts are "not partial"; the effect on omitted values is undocumented.
    pub email_upsert_omitted: OmittedOnUpsert,
    /// When the portal lacks a scope named in `scope`, the authorize step redirects with
    /// `error=invalid_scope` (HubSpot refuses such installs). Set to `false` to issue a code
    /// anyway with only the scopes the portal has, to test a client's own scope check.
    pub refuse_missing_required_scopes: bool,
    /// How long the oldest webhook event of an (app, portal) queue waits for others to share
    /// its POST; a queue holding 100 events is sent at once. HubSpot batches "up to 100" events.
    pub webhook_flush_delay: Duration,
    /// A webhook POST without an answer after this long is a failed attempt (HubSpot: 5 s).
    pub webhook_timeout: Duration,
    /// The wait before each retry of a failed webhook POST; its length is the number of retries.
    /// HubSpot retries 10 times, spread over 24 hours with jitter; the default keeps HubSpot's
    /// count and doubling but starts at 100 ms and caps at 1 s, so tests see retries quickly.
    pub webhook_retry_delays: Vec<Duration>,
    /// How long search lags behind writes, like HubSpot's eventually consistent index: a record
    /// created or changed less than this long ago is found by search as it was before (a new
    /// one not at all). Zero (the default): search sees every write at once.
    pub search_index_delay: Duration,
    /// Searches per second per portal (HubSpot: 5). Raise it to test search itself quickly.
    pub search_rate_limit_per_second: u32,
    /// The simulator's time at start, in epoch ms; `None`: the wall clock's. Its time then moves
    /// with tokio's clock, so a test runtime with paused time moves HubSpot's time too.
    pub start_ms: Option<i64>,
    /// Seeds the random choices (which requests an injected fault hits); `None`: from entropy.
    pub seed: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            rate_limit_per_10s: 110,
            access_token_ttl: Duration::from_secs(1800),
            auth_code_ttl: Duration::from_secs(600),
            email_upsert_omitted: OmittedOnUpsert::LeaveUnchanged,
            refuse_missing_required_scopes: true,
            webhook_flush_delay: Duration::from_millis(50),
            webhook_timeout: Duration::from_secs(5),
            webhook_retry_delays: (0..10).map(|n| Duration::from_millis((100 << n).min(1000))).collect(),
            search_index_delay: Duration::ZERO,
            search_rate_limit_per_second: crate::ratelimit::SEARCH_PER_SECOND,
            start_ms: None,
            seed: None,
        }
    }
}

/// The simulator's clock: epoch milliseconds that move with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    start_ms: i64,
    start: Instant,
}

impl SimClock {
    pub fn starting_at(start_ms: Option<i64>) -> SimClock {
        let wall = || SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
        SimClock { start_ms: start_ms.unwrap_or_else(wall), start: Instant::now() }
    }

    pub fn now_ms(&self) -> i64 {
        self.start_ms + self.start.elapsed().as_millis() as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OmittedOnUpsert {
    /// Properties missing from the input keep their values (a partial update).
    #[default]
    LeaveUnchanged,
    /// Writable properties missing from the input are cleared.
    Clear,
}

/// A token pair, as the token endpoint would hand it out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// Every token the simulator has handed out, revoked ones included: what a client must never
/// show in its logs.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IssuedTokens {
    pub access: Vec<String>,
    pub refresh: Vec<String>,
}

/// The CRM object types the simulator knows. Paths accept the plural name, the singular name
/// and the type id (`contacts`, `contact`, `0-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum ObjectType {
    Contacts,
    Companies,
    Deals,
    LineItems,
}

impl ObjectType {
    pub const ALL: [ObjectType; 4] =
        [ObjectType::Contacts, ObjectType::Companies, ObjectType::Deals, ObjectType::LineItems];

    pub fn parse(name: &str) -> Option<ObjectType> {
        match name.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(ObjectType::Contacts),
            "companies" | "company" | "0-2" => Some(ObjectType::Companies),
            "deals" | "deal" | "0-3" => Some(ObjectType::Deals),
            "line_items" | "line_item" | "0-8" => Some(ObjectType::LineItems),
            _ => None,
        }
    }

    /// The name used in scopes and routes.
    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
            ObjectType::Deals => "deals",
            ObjectType::LineItems => "line_items",
        }
    }

    pub fn type_id(self) -> &'static str {
        match self {
            ObjectType::Contacts => "0-1",
            ObjectType::Companies => "0-2",
            ObjectType::Deals => "0-3",
            ObjectType::LineItems => "0-8",
        }
    }

    /// How webhooks and association messages name the type (`contact.creation`).
    pub fn singular(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contact",
            ObjectType::Companies => "company",
            ObjectType::Deals => "deal",
            ObjectType::LineItems => "line_item",
        }
    }

    /// How HubSpot names the type in messages ("Could not get some CONTACT objects").
    pub fn upper_singular(self) -> &'static str {
        match self {
            ObjectType::Contacts => "CONTACT",
            ObjectType::Companies => "COMPANY",
            ObjectType::Deals => "DEAL",
            ObjectType::LineItems => "LINE_ITEM",
        }
    }

    /// Contacts keep their modification time in `lastmodifieddate`, the others in `hs_lastmodifieddate`.
    pub fn modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    /// What list and get return when the request names no properties.
    pub fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contacts => {
                &["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"]
            }
            ObjectType::Companies => &["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
            ObjectType::Deals => &[
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
            ObjectType::LineItems => {
                &["createdate", "hs_lastmodifieddate", "hs_object_id", "name", "price", "quantity"]
            }
        }
    }

    pub fn read_scope(self) -> String {
        format!("crm.objects.{}.read", self.name())
    }

    pub fn write_scope(self) -> String {
        format!("crm.objects.{}.write", self.name())
    }
}

/// ISO-8601 with milliseconds, as HubSpot writes `createdAt`/`updatedAt`.
pub fn iso(ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct App {
    pub client_secret: String,
    pub app_id: u64,
    /// The developer account's API key (`hapikey`) that manages the app's webhook settings.
    pub developer_api_key: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Portal {
    /// Scopes an install on this portal can be granted.
    pub scopes: BTreeSet<String>,
    /// Overrides the configured rate limit for this portal.
    pub rate_limit: Option<u32>,
    /// The user who installs apps here (one per portal is enough for a connector).
    pub user_id: u64,
    pub user_email: String,
    pub hub: Hub,
    pub lists: Lists,
}

impl Portal {
    pub fn domain(hub_id: u64) -> String {
        format!("portal-{hub_id}.sim.hubspot.test")
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub hub_id: u64,
    pub scopes: Vec<String>,
    pub expires_at: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct AccessToken {
    pub client_id: String,
    pub hub_id: u64,
    pub user_id: u64,
    pub scopes: Vec<String>,
    pub expires_at: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct RefreshToken {
    pub client_id: String,
    pub hub_id: u64,
    pub user_id: u64,
    pub scopes: Vec<String>,
}

pub struct State {
    /// By client id.
    pub apps: BTreeMap<String, App>,
    /// By hub id.
    pub portals: BTreeMap<u64, Portal>,
    /// Where an authorize request without a portal lands: the portal added last.
    pub last_portal: u64,
    pub codes: HashMap<String, AuthCode>,
    pub access_tokens: HashMap<String, AccessToken>,
    /// Revoked refresh tokens are removed.
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub issued_tokens: IssuedTokens,
    /// Request times per (portal, app) in the current rolling window.
    pub windows: HashMap<(u64, String), VecDeque<Instant>>,
    pub faults: Vec<Fault>,
    /// Requests per (method, route pattern) and per (method, concrete path).
    pub request_counts: HashMap<(String, String), u64>,
    pub deny_authorize: bool,
    /// (client id, hub id) of every app that has been issued tokens for a portal: where its
    /// webhooks fire.
    pub installs: BTreeSet<(String, u64)>,
    pub webhooks: Webhooks,
    pub(crate) next_app_id: u64,
    /// `SimConfig::search_index_delay`, for the portals added later.
    pub(crate) search_index_delay: Duration,
    pub clock: SimClock,
    /// Every random choice, so that one seed replays the same faults.
    pub rng: StdRng,
}

impl State {
    fn new(config: &SimConfig) -> State {
        let mut state = State {
            apps: BTreeMap::new(),
            portals: BTreeMap::new(),
            last_portal: DEFAULT_PORTAL,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            issued_tokens: IssuedTokens::default(),
            windows: HashMap::new(),
            faults: Vec::new(),
            request_counts: HashMap::new(),
            deny_authorize: false,
            installs: BTreeSet::new(),
            webhooks: Webhooks::default(),
            // The default app gets 54321, the app id of HubSpot's documentation examples.
            next_app_id: 54_320,
            search_index_delay: config.search_index_delay,
            clock: SimClock::starting_at(config.start_ms),
            rng: config.seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64),
        };
        state.add_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
        state.add_portal(DEFAULT_PORTAL, ALL_SCOPES.iter().map(|s| s.to_string()));
        state
    }

    pub fn add_app(&mut self, client_id: &str, client_secret: &str) {
        let app_id = match self.apps.get(client_id) {
            Some(existing) => existing.app_id,
            None => {
                self.next_app_id += 1;
                self.next_app_id
            }
        };
        let developer_api_key = format!("sim-developer-key-{app_id}");
        self.apps
            .insert(client_id.to_string(), App { client_secret: client_secret.to_string(), app_id, developer_api_key });
    }

    /// Adds a portal, or replaces the scopes of a known one (its records stay).
    pub fn add_portal(&mut self, hub_id: u64, scopes: impl IntoIterator<Item = String>) {
        let scopes: BTreeSet<String> = scopes.into_iter().collect();
        self.last_portal = hub_id;
        match self.portals.get_mut(&hub_id) {
            Some(portal) => portal.scopes = scopes,
            None => {
                let portal = Portal {
                    scopes,
                    rate_limit: None,
                    user_id: 9_000_000 + hub_id,
                    user_email: format!("admin@portal-{hub_id}.example.com"),
                    hub: Hub::new(self.search_index_delay),
                    lists: Lists::default(),
                };
                self.portals.insert(hub_id, portal);
            }
        }
    }

    /// Sets how long search lags behind writes, on every portal and those added later.
    pub fn set_search_index_delay(&mut self, delay: Duration) {
        self.search_index_delay = delay;
        for portal in self.portals.values_mut() {
            portal.hub.set_search_delay(delay);
        }
    }

    pub fn app_id(&self, client_id: &str) -> u64 {
        self.apps.get(client_id).map(|a| a.app_id).unwrap_or_default()
    }

    /// Mints a token pair for an install; the caller has checked app and portal.
    pub fn mint_tokens(&mut self, hub_id: u64, client_id: &str, scopes: Vec<String>, ttl: Duration) -> Tokens {
        let user_id = self.portals.get(&hub_id).map(|p| p.user_id).unwrap_or_default();
        let refresh_token = format!("na1-{}", uuid::Uuid::new_v4());
        self.issued_tokens.refresh.push(refresh_token.clone());
        self.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshToken { client_id: client_id.to_string(), hub_id, user_id, scopes: scopes.clone() },
        );
        let (access_token, expires_in) = self.mint_access_token(hub_id, client_id, user_id, scopes, ttl);
        Tokens { access_token, refresh_token, expires_in }
    }

    pub fn mint_access_token(
        &mut self,
        hub_id: u64,
        client_id: &str,
        user_id: u64,
        scopes: Vec<String>,
        ttl: Duration,
    ) -> (String, u64) {
        // Real access tokens are long opaque strings of varying length.
        let token = format!("CKsim{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let expires_at = self.clock.now_ms() + ttl.as_millis() as i64;
        self.installs.insert((client_id.to_string(), hub_id));
        self.issued_tokens.access.push(token.clone());
        self.access_tokens.insert(
            token.clone(),
            AccessToken { client_id: client_id.to_string(), hub_id, user_id, scopes, expires_at },
        );
        (token, ttl.as_secs())
    }

    /// Turns the CRM changes every portal logged into webhook events for the apps subscribed
    /// to them; returns whether any event was queued.
    fn publish_changes(&mut self) -> bool {
        let mut queued = false;
        for (&hub_id, portal) in &mut self.portals {
            let changes = portal.hub.take_changes();
            if !changes.is_empty() {
                queued |= self.webhooks.publish(hub_id, &changes, &self.apps, &self.installs);
            }
        }
        queued
    }

    pub fn count_request(&mut self, method: &str, pattern: Option<&str>, path: &str) {
        *self.request_counts.entry((method.to_string(), path.to_string())).or_default() += 1;
        if let Some(pattern) = pattern.filter(|p| *p != path) {
            *self.request_counts.entry((method.to_string(), pattern.to_string())).or_default() += 1;
        }
    }
}

/// The shared simulator: its configuration and its state.
pub struct Shared {
    pub config: SimConfig,
    /// The same clock as the state's, readable without the lock.
    pub clock: SimClock,
    state: Mutex<State>,
    /// Wakes the webhook sender: events were queued or a delivery finished.
    pub webhook_wake: Notify,
    /// Wakes those waiting for webhook deliveries to settle.
    pub webhook_settled: Notify,
    /// Wakes the state file's writer (`state_file::keep`): the state may have changed.
    pub state_changed: Notify,
}

pub type Sim = Arc<Shared>;

impl Shared {
    pub fn new(config: SimConfig) -> Sim {
        let state = State::new(&config);
        Arc::new(Shared {
            clock: state.clock,
            state: Mutex::new(state),
            config,
            webhook_wake: Notify::new(),
            webhook_settled: Notify::new(),
            state_changed: Notify::new(),
        })
    }

    /// HubSpot's time now, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A panicking handler must not take the whole simulator down with a poisoned lock.
    pub fn lock(&self) -> Locked<'_> {
        Locked { shared: self, state: self.state.lock().unwrap_or_else(PoisonError::into_inner), changed: false }
    }
}

/// The locked state. Dropping it publishes the changes made meanwhile as webhook events, before
/// the lock is released: events queue in the order their changes happened.
pub struct Locked<'a> {
    shared: &'a Shared,
    state: MutexGuard<'a, State>,
    /// The state was borrowed to change.
    changed: bool,
}

impl Deref for Locked<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.changed = true;
        &mut self.state
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.state.publish_changes() {
            self.shared.webhook_wake.notify_one();
        }
        if self.changed {
            self.shared.state_changed.notify_one();
        }
    }
}
