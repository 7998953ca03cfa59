//! Convergence, replayable. A whole deployment runs in one process on one thread with a
//! simulated clock ([`hubsync_tests::simulation`]): several tenants push platform changes while
//! people edit the same contacts in HubSpot (both-ways fields included), create contacts and
//! convert them, scheduled pulls run, and every fault is injected: HubSpot answering 429, 5xx,
//! slowly or hanging up; webhooks delivered twice and out of order; workers crashing at any
//! step; concurrent workers on one record; the platform down for a while and refusing single
//! records; one portal revoking the app's access, then installing it again. Pushes also move
//! contacts between companies (`associations`), pushed at the start, so some links wait for
//! their company. Then the faults stop, parked work is redriven, a catch-up runs, and every
//! field of every record, on HubSpot and on the platform, is compared with the newest change
//! made to it on either side, and every contact's company link with the newest one pushed.
//!
//! Every random choice comes from the seed, so a seed replays exactly, and hours of retries
//! pass in moments:
//! - `HUBSYNC_CHAOS_SEED=<n> cargo test -p hubsync-tests --test chaos -- --nocapture` prints
//!   seed n's report (the same every time);
//! - `HUBSYNC_CHAOS_SEEDS=<k>` runs k seeds one after another (default 50) and names every
//!   failing one with the command that replays it;
//! - `HUBSYNC_CHAOS_OPS=<n>` sets the traffic per seed.

use std::collections::BTreeMap;
use std::time::Duration;

use hubspot_sim::{ALL_SCOPES, Fault, FaultKind, Subscription};
use hubsync::console::configs;
use hubsync::domain::{ConnectionId, SyncFlow, VersionedConfig};
use hubsync::inbound::plan_pulls;
use hubsync::ports::{Clock, OutgoingMessage, Queue};
use hubsync::work::redrive;
use hubsync_tests::bench::env;
use hubsync_tests::convergence::{Ledger, Platform, Report, config, parked_by_reason};
use hubsync_tests::simulation::{Conditions, Deployment, Dice, HUBSYNC_HOST, Lambdas, PLATFORM_HOST};
use hubsync_tests::world::{CLIENT_ID, DELIVERY_SIGNING_SECRET};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

const TENANTS: usize = 3;
const CONTACTS: u64 = 6;
/// Companies per portal, which contacts are moved between.
const COMPANIES: u64 = 3;
/// Lambda instances per worker function.
const INSTANCES: usize = 3;
/// Virtual time the deployment gets to settle before it is judged as stuck.
const SETTLE_LIMIT: Duration = Duration::from_secs(12 * 3600);
/// How long the platform's outage and a portal's revocation last: longer than the retry
/// schedule, so that work is parked on the way and has to be redriven.
const OUTAGE: Duration = Duration::from_secs(20 * 60);

#[test]
fn every_seed_converges_with_nothing_lost_doubled_or_echoed() {
    let ops = env("HUBSYNC_CHAOS_OPS", 240) as u64;
    let seeds: Vec<u64> = match std::env::var("HUBSYNC_CHAOS_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (1..=env("HUBSYNC_CHAOS_SEEDS", 50) as u64).collect(),
    };
    let mut failing = Vec::new();
    for &seed in &seeds {
        let report = run(seed, ops);
        if seeds.len() == 1 || !report.converged() {
            println!("{report}");
        }
        if report.converged() {
            println!("seed {seed}: converged");
        } else {
            println!("seed {seed} FAILED; replay it with: {}", replay(seed, ops));
            failing.push(seed);
        }
    }
    assert!(failing.is_empty(), "{} of {} seeds did not converge: {failing:?}", failing.len(), seeds.len());
}

#[test]
fn a_seed_replays_exactly() {
    let seed = 7;
    assert_eq!(run(seed, 120).to_string(), run(seed, 120).to_string(), "seed {seed} printed two reports");
}

fn replay(seed: u64, ops: u64) -> String {
    format!("HUBSYNC_CHAOS_SEED={seed} HUBSYNC_CHAOS_OPS={ops} cargo test -p hubsync-tests --test chaos -- --nocapture")
}

/// One seed's run, on a fresh single-threaded runtime whose time moves only when every task waits.
fn run(seed: u64, ops: u64) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    runtime.block_on(async { Chaos::start(seed).await.run(ops).await })
}

struct Chaos {
    seed: u64,
    deployment: Deployment,
    lambdas: std::sync::Arc<Lambdas>,
    platform: std::sync::Arc<Platform>,
    dice: Dice,
    tenants: Vec<(hubsync::domain::Secret, Ledger)>,
    inputs: BTreeMap<&'static str, u64>,
    /// When the platform's outage and the revocation end.
    platform_back: Option<tokio::time::Instant>,
    reinstall_at: Option<tokio::time::Instant>,
}

impl Chaos {
    async fn start(seed: u64) -> Chaos {
        let deployment = Deployment::start(seed, Conditions::default());
        let dice = deployment.dice.clone();
        let platform = Platform::new(DELIVERY_SIGNING_SECRET, dice.clone());
        deployment.network.serve(PLATFORM_HOST, platform.router());
        let hooks = format!("https://{HUBSYNC_HOST}/webhooks/hubspot");
        let subscriptions = ["firstname", "jobtitle", "lifecyclestage"]
            .map(|p| Subscription::property("contact.propertyChange", p))
            .into_iter()
            .chain([Subscription::new("contact.creation"), Subscription::new("contact.deletion")])
            .collect::<Vec<_>>();
        deployment.sim.subscribe_webhooks(CLIENT_ID, &hooks, &subscriptions);
        let ingest = format!("https://{PLATFORM_HOST}/ingest");
        let mut tenants = Vec::new();
        for index in 0..TENANTS {
            let portal = 2000 + index as u64;
            deployment.sim.add_portal(portal, ALL_SCOPES);
            let key = deployment.tenant(&format!("tenant{index}")).await;
            let connection = deployment.install(&key, portal).await;
            let stored = deployment.deps.store.get_connection(&connection).await.unwrap().unwrap();
            let mut config = config(&ingest);
            config["objects"]["contacts"]["relations"] = json!([{ "to": "companies" }]);
            config["objects"]["companies"] = json!({
                "match_key": { "kind": "company_domain" }, "write_mode": "upsert",
                "fields": [{ "platform_field": "name", "hubspot_property": "name", "direction": "out", "platform_type": "string" }]
            });
            let update: VersionedConfig = serde_json::from_value(json!({ "version": 0, "config": config })).unwrap();
            configs::save(&deployment.deps, &stored, &update).await.expect("the chaos config is valid");
            let ledger = Ledger { connection: connection.to_string(), portal, ..Ledger::default() };
            tenants.push((key, ledger));
        }
        let lambdas = Lambdas::start(&deployment, INSTANCES);
        Chaos {
            seed,
            deployment,
            lambdas,
            platform,
            dice,
            tenants,
            inputs: BTreeMap::new(),
            platform_back: None,
            reinstall_at: None,
        }
    }

    async fn run(mut self, ops: u64) -> Report {
        self.traffic(ops).await;
        self.finish(ops).await
    }

    fn count(&mut self, input: &'static str) {
        *self.inputs.entry(input).or_insert(0) += 1;
    }

    /// The mixed traffic, with its faults: the platform goes down at 30% of it, and one portal's
    /// access is revoked at 50%, each for [`OUTAGE`] (installed again then); another portal's
    /// access is revoked at 70% and the app installed again at 80%, mid-traffic.
    async fn traffic(&mut self, ops: u64) {
        let sim = &self.deployment.sim;
        for (kind, rate) in [
            (FaultKind::TooManyRequests, 0.05),
            (FaultKind::ServerError(502), 0.04),
            (FaultKind::DropConnection, 0.03),
            (FaultKind::Latency(Duration::from_millis(5_500)), 0.01),
        ] {
            sim.inject_fault(Fault { kind, rate, path_prefix: Some("/crm".into()), remaining: None });
        }
        self.lambdas.set_crash_rate(0.08);
        self.deployment.gateway.set_keep_rate(0.15);
        self.platform.set_refusal_rate(0.03);
        for tenant in 0..TENANTS {
            self.push_companies(tenant).await;
        }
        // The companies exist before contacts link to them: a link waits for its company only
        // 15 minutes, less than the outages below (`tests/relations.rs` covers the waits).
        self.settle().await;
        for step in 0..ops {
            let progress = step as f64 / ops as f64;
            let now = tokio::time::Instant::now();
            if progress >= 0.30 && self.platform_back.is_none() {
                self.platform.set_down(true);
                self.platform_back = Some(now + OUTAGE);
                self.count("platform outages");
            }
            if self.platform_back.is_some_and(|back| now >= back) {
                self.platform.set_down(false);
            }
            if progress >= 0.50 && self.reinstall_at.is_none() {
                self.deployment.sim.revoke_portal_grants(self.tenants[1].1.portal);
                self.reinstall_at = Some(now + OUTAGE);
                self.count("revocations");
            }
            // Another portal takes its access away and gives it back while work is in flight.
            if step == ops * 7 / 10 {
                self.deployment.sim.revoke_portal_grants(self.tenants[2].1.portal);
                self.count("revocations");
            }
            if step == ops * 8 / 10 {
                let (key, ledger) = &self.tenants[2];
                self.deployment.install(key, ledger.portal).await;
                self.count("reinstalls");
            }
            if step % 40 == 20 {
                plan_pulls(&self.deployment.deps, SyncFlow::Enrichment).await.expect("planning works");
                self.count("pull plans");
            }
            let tenant = self.dice.index(TENANTS);
            let contact = format!("c{}", self.dice.between(0..=CONTACTS - 1));
            match self.dice.between(0..=99) {
                0..=39 => self.push(tenant, &contact, step).await,
                // Two changes of one record at once: concurrent workers on one record.
                40..=47 => {
                    self.push(tenant, &contact, step).await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    self.push(tenant, &contact, step + 1_000_000).await;
                }
                48..=62 => self.edit(tenant, &contact, "firstname", &format!("u{step}f")),
                63..=77 => self.edit(tenant, &contact, "jobtitle", &format!("h{step}")),
                78..=85 => self.create_in_hubspot(tenant, step),
                86..=91 => self.edit(tenant, &contact, "lifecyclestage", "customer"),
                _ => self.deployment.gateway.replay_one(1.0).await,
            }
            tokio::time::sleep(self.dice.millis(20..=250)).await;
        }
    }

    /// The platform changes a contact's first or last name (or both) and sends the change.
    async fn push(&mut self, tenant: usize, contact: &str, sequence: u64) {
        let at = self.deployment.clock.now_ms();
        let (_, ledger) = &mut self.tenants[tenant];
        let email = format!("{contact}@portal{}.example.com", ledger.portal);
        let mut fields = serde_json::Map::new();
        for field in ["first_name", "last_name"] {
            if fields.is_empty() || self.dice.chance(0.5) {
                let value = format!("p{sequence}{}", &field[..1]);
                self.platform.change(&ledger.connection, &email, field, &value, at);
                ledger.push(&email, field, &value, at);
                fields.insert(field.to_string(), json!(value));
            }
        }
        let changed_at = self.deployment.clock.now().format(&Rfc3339).unwrap();
        let mut message = json!({
            "version": 1, "connection_id": ledger.connection, "object": "contact", "record_key": email,
            "fields": fields, "changed_at": changed_at
        });
        if self.dice.chance(0.4) {
            let domain = format!("co{}.portal{}.example.com", self.dice.between(0..=COMPANIES - 1), ledger.portal);
            ledger.link(&email, &domain, at);
            message["associations"] = json!({ "companies": { "set": [domain] } });
            *self.inputs.entry("company moves").or_insert(0) += 1;
        }
        self.deployment.deps.push.work.send(vec![OutgoingMessage::new(message.to_string())]).await.unwrap();
        self.count("platform changes");
    }

    /// The platform sends its companies, while the first contacts linked to them are on the way.
    async fn push_companies(&mut self, tenant: usize) {
        let (_, ledger) = &self.tenants[tenant];
        let changed_at = self.deployment.clock.now().format(&Rfc3339).unwrap();
        let messages = (0..COMPANIES)
            .map(|k| {
                let message = json!({
                    "version": 1, "connection_id": ledger.connection, "object": "company",
                    "record_key": format!("co{k}.portal{}.example.com", ledger.portal),
                    "fields": { "name": format!("Company {k}") }, "changed_at": changed_at
                });
                OutgoingMessage::new(message.to_string())
            })
            .collect();
        self.deployment.deps.push.work.send(messages).await.unwrap();
    }

    /// A person edits a contact in HubSpot, if it exists there yet.
    fn edit(&mut self, tenant: usize, contact: &str, property: &str, value: &str) {
        let (_, ledger) = &mut self.tenants[tenant];
        let email = format!("{contact}@portal{}.example.com", ledger.portal);
        let Some(id) = contact_id(&self.deployment, ledger.portal, &email) else { return };
        if property == "lifecyclestage" && !ledger.converted.insert(email.clone()) {
            return;
        }
        let at = self.deployment.sim.now_ms();
        self.deployment.sim.edit_as_user(ledger.portal, "contacts", &id, json!({ property: value }));
        ledger.edit(&email, property, value, at);
        let input = match property {
            "firstname" => "HubSpot edits of a both-ways field",
            "lifecyclestage" => "conversions",
            _ => "HubSpot edits of an inbound field",
        };
        self.count(input);
    }

    /// A person adds a contact in HubSpot: the platform hears of it as a new record.
    fn create_in_hubspot(&mut self, tenant: usize, sequence: u64) {
        let (_, ledger) = &mut self.tenants[tenant];
        let email = format!("u{sequence}@portal{}.example.com", ledger.portal);
        let title = format!("h{sequence}");
        let at = self.deployment.sim.now_ms();
        self.deployment.sim.seed(ledger.portal, "contacts", json!({ "email": email, "jobtitle": title }));
        ledger.edit(&email, "jobtitle", &title, at);
        self.count("contacts created in HubSpot");
    }

    /// The outage ends and the portal installs the app again (the work meanwhile goes on, and
    /// some is parked); then faults off, parked work redriven, a catch-up pull; then the comparison.
    async fn finish(mut self, ops: u64) -> Report {
        let started = self.deployment.clock.now_ms();
        if let Some(back) = self.platform_back {
            tokio::time::sleep_until(back).await;
            self.platform.set_down(false);
        }
        if let Some(at) = self.reinstall_at {
            tokio::time::sleep_until(at).await;
            let (key, ledger) = &self.tenants[1];
            self.deployment.install(key, ledger.portal).await;
            self.count("reinstalls");
        }
        self.deployment.sim.clear_faults();
        self.lambdas.set_crash_rate(0.0);
        self.deployment.gateway.set_keep_rate(0.0);
        self.platform.set_refusal_rate(0.0);
        self.platform.set_down(false);
        self.deployment.gateway.replay_all().await;
        let mut settled = self.settle().await;
        let parked_on_the_way = self.take_parked().await;
        let deps = &self.deployment.deps;
        for pair in [&deps.push, &deps.inbound, &deps.bulk] {
            redrive(&*pair.parked, &*pair.work, None).await.unwrap();
        }
        settled &= self.settle().await;
        plan_pulls(deps, SyncFlow::CatchUp).await.unwrap();
        settled &= self.settle().await;
        let still_parked = self.take_parked().await;
        self.lambdas.stop();
        self.report(ops, started, settled, parked_on_the_way, still_parked).await
    }

    /// Waits (in virtual time) until queues, workers and HubSpot's webhook sender are idle;
    /// `false` if they never were within [`SETTLE_LIMIT`].
    async fn settle(&self) -> bool {
        let limit = tokio::time::Instant::now() + SETTLE_LIMIT;
        let mut quiet = 0;
        while tokio::time::Instant::now() < limit {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (work, _) = self.deployment.queued();
            let idle = work == 0 && self.lambdas.idle() && self.deployment.sim.webhooks_idle();
            quiet = if idle { quiet + 1 } else { 0 };
            if quiet >= 3 {
                return true;
            }
        }
        false
    }

    /// Every dead-lettered message, counted by reason, left in place for the redrive.
    async fn take_parked(&self) -> BTreeMap<String, u64> {
        let [push, inbound, bulk] = &self.deployment.queues;
        let queues: [(&str, &dyn Queue); 3] =
            [("push", push.parked.as_ref()), ("inbound", inbound.parked.as_ref()), ("bulk", bulk.parked.as_ref())];
        parked_by_reason(&queues, Duration::ZERO).await
    }

    async fn report(
        &self,
        ops: u64,
        started_ms: i64,
        settled: bool,
        parked_on_the_way: BTreeMap<String, u64>,
        still_parked: BTreeMap<String, u64>,
    ) -> Report {
        let deps = &self.deployment.deps;
        let mut report = Report { parked_on_the_way, still_parked, ..Report::default() };
        let inputs: Vec<String> = self.inputs.iter().map(|(name, n)| format!("{n} {name}")).collect();
        report.header = vec![
            ("seed".into(), self.seed.to_string()),
            (
                "traffic".into(),
                format!(
                    "{ops} steps over {} s of simulated time",
                    started_ms / 1000 - hubsync_tests::simulation::START_MS / 1000
                ),
            ),
            ("inputs".into(), inputs.join(", ")),
            (
                "injected".into(),
                format!(
                    "{} worker crashes of {} invocations, {} webhook requests replayed",
                    self.lambdas.crashes.load(std::sync::atomic::Ordering::Relaxed),
                    self.lambdas.invocations.load(std::sync::atomic::Ordering::Relaxed),
                    self.deployment.gateway.replayed.load(std::sync::atomic::Ordering::Relaxed)
                ),
            ),
            ("settled".into(), format!("{} s after the traffic", (self.deployment.clock.now_ms() - started_ms) / 1000)),
        ];
        if !settled {
            report.lost.push("the deployment never settled: work was still moving after 12 simulated hours".into());
        }
        for (_, ledger) in &self.tenants {
            report.count_connection(deps.store.as_ref(), &ConnectionId::new(&ledger.connection)).await;
        }
        report.platform = self.platform.counts();
        report.echoes = self.platform.echoes();
        for (_, ledger) in &self.tenants {
            let contacts = self.deployment.sim.records(ledger.portal, "contacts");
            report.check(ledger, &contacts, &self.platform);
            report.check_links(ledger, &self.company_links(ledger.portal, &contacts));
        }
        report
    }

    /// email → the domains of the companies HubSpot links the contact to.
    fn company_links(&self, portal: u64, contacts: &[Value]) -> BTreeMap<String, Vec<String>> {
        let sim = &self.deployment.sim;
        let mut linked = BTreeMap::new();
        for contact in contacts {
            let (Some(email), Some(id)) = (contact["properties"]["email"].as_str(), contact["id"].as_str()) else {
                continue;
            };
            let companies = sim.associations(portal, "contacts", id, "companies");
            let domains = companies.iter().filter_map(|company| {
                sim.record(portal, "companies", company)?["properties"]["domain"].as_str().map(str::to_string)
            });
            linked.insert(email.to_string(), domains.collect());
        }
        linked
    }
}

fn contact_id(deployment: &Deployment, portal: u64, email: &str) -> Option<String> {
    let contacts: Vec<Value> = deployment.sim.records(portal, "contacts");
    contacts.into_iter().find(|c| c["properties"]["email"] == email).and_then(|c| c["id"].as_str().map(str::to_string))
}
