//! Relations pushed from the platform: links between contacts, companies and deals, written to
//! the HubSpot simulator as associations by the push worker (through its Lambda handler, on
//! moto's SQS), whatever order the related records arrive in.

use std::time::Duration;

use hubsync::console::configs;
use hubsync::domain::{ObjectType, Secret, VersionedConfig};
use hubsync::hubspot::PropertyCreate;
use hubsync_tests::Function;
use hubsync_tests::push::{PORTAL, PushSetup};
use hubsync_tests::world::{CLIENT_ID, World};
use serde_json::{Value, json};

/// How long a message whose link waits for its other record stays away (the first wait).
const FIRST_WAIT: Duration = Duration::from_millis(5_500);

fn field(platform: &str, property: &str) -> Value {
    json!({ "platform_field": platform, "hubspot_property": property, "direction": "out", "platform_type": "string" })
}

/// Contacts by email, companies by domain, deals by the platform's own id; contacts link to
/// their companies and deals, companies to their people, deals to their contacts.
fn related_config() -> Value {
    json!({ "objects": {
        "contacts": {
            "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [field("first_name", "firstname")],
            "relations": [{ "to": "companies" }, { "to": "deals" }]
        },
        "companies": {
            "match_key": { "kind": "company_domain" }, "write_mode": "upsert",
            "fields": [field("name", "name")],
            "relations": [{ "to": "contacts" }]
        },
        "deals": {
            "match_key": { "kind": "unique_property", "property": "platform_deal_id" }, "write_mode": "upsert",
            "fields": [field("title", "dealname")],
            "relations": [{ "to": "contacts" }]
        }
    } })
}

/// A connected portal with deals' unique id property and the related config saved.
async fn setup() -> PushSetup {
    let setup = PushSetup::in_world(World::new().await, json!({ "objects": {} })).await;
    // The portal's admin adds the property (the app itself does not ask for schema writes).
    let admin = setup.world.sim.issue_tokens(PORTAL, CLIENT_ID, &["crm.schemas.deals.write"]);
    let token = Secret::new(admin.access_token);
    let property = PropertyCreate {
        name: "platform_deal_id".into(),
        label: "Platform deal id".into(),
        property_type: "string".into(),
        field_type: "text".into(),
        group_name: "dealinformation".into(),
        description: None,
        options: vec![],
        has_unique_value: true,
    };
    setup.world.deps.hubspot.create_property(&token, ObjectType::Deals, &property).await.unwrap();
    let update: VersionedConfig = serde_json::from_value(json!({ "version": 1, "config": related_config() })).unwrap();
    configs::save(&setup.world.function(Function::ConsoleApi).await, &setup.connection, &update)
        .await
        .expect("the related config is valid");
    setup
}

fn message(setup: &PushSetup, object: &str, key: &str, fields: Value, associations: Value, at: &str) -> Value {
    let mut message = setup.change(object, key, fields, at);
    message["associations"] = associations;
    message
}

fn id_of(setup: &PushSetup, object: &str, property: &str, value: &str) -> String {
    let records = setup.world.sim.records(PORTAL, object);
    let record = records.iter().find(|r| r["properties"][property] == value);
    record.unwrap_or_else(|| panic!("no {object} with {property} {value}"))["id"].as_str().unwrap().to_string()
}

/// The `to` records linked to one record, by `key_property`, as HubSpot has them.
fn linked(setup: &PushSetup, (from, from_id): (&str, &str), to: &str, key_property: &str) -> Vec<String> {
    let mut keys: Vec<String> = setup
        .world
        .sim
        .associations(PORTAL, from, from_id, to)
        .iter()
        .map(|id| setup.world.sim.record(PORTAL, to, id).unwrap()["properties"][key_property].as_str().unwrap().into())
        .collect();
    keys.sort();
    keys
}

fn link_calls(setup: &PushSetup) -> u64 {
    let sim = &setup.world.sim;
    ["contacts", "companies", "deals"]
        .iter()
        .flat_map(|from| ["contacts", "companies", "deals"].map(|to| (from.to_string(), to)))
        .flat_map(|(from, to)| {
            ["associate/default", "archive"]
                .map(|action| format!("/crm/associations/2026-09/{from}/{to}/batch/{action}"))
        })
        .map(|path| sim.request_count("POST", &path))
        .sum()
}

const T1: &str = "2026-02-01T00:00:00Z";
const T2: &str = "2026-02-02T00:00:00Z";
const T3: &str = "2026-02-03T00:00:00Z";

#[tokio::test]
async fn a_company_pushed_first_is_linked_to_its_contact_at_once_by_the_id_hubsync_keeps() {
    let setup = setup().await;
    setup.send(&[setup.change("company", "acme.com", json!({ "name": "Acme" }), T1)]).await;
    assert!(setup.drain().await.is_empty());
    let searches = setup.world.sim.request_count("POST", "/crm/objects/2026-09/companies/search");

    let ada = json!({ "companies": { "add": ["https://www.Acme.com"] } });
    setup.send(&[message(&setup, "contact", "ada@example.com", json!({ "first_name": "Ada" }), ada, T2)]).await;
    assert!(setup.drain().await.is_empty());
    let ada = id_of(&setup, "contacts", "email", "ada@example.com");
    assert_eq!(linked(&setup, ("contacts", &ada), "companies", "domain"), ["acme.com"]);
    let acme = id_of(&setup, "companies", "domain", "acme.com");
    assert_eq!(linked(&setup, ("companies", &acme), "contacts", "email"), ["ada@example.com"], "both directions");
    assert_eq!(
        setup.world.sim.request_count("POST", "/crm/objects/2026-09/companies/search"),
        searches,
        "the company's id came from its sync state, not a search"
    );
}

#[tokio::test]
async fn a_contact_pushed_before_its_company_waits_for_it_and_is_linked_once_it_exists() {
    let setup = setup().await;
    let jimo_user = json!({ "companies": { "set": ["acme.com"] } });
    setup.send(&[message(&setup, "contact", "ada@example.com", json!({ "first_name": "Ada" }), jimo_user, T1)]).await;
    assert!(setup.drain().await.is_empty(), "a wait is not a failure");
    let ada = id_of(&setup, "contacts", "email", "ada@example.com");
    assert!(linked(&setup, ("contacts", &ada), "companies", "domain").is_empty());
    let counts = setup.counts().await;
    assert_eq!(counts.deferred["waiting for the related companies record to exist in HubSpot"], 1);

    setup.send(&[setup.change("company", "acme.com", json!({ "name": "Acme" }), T1)]).await;
    assert!(setup.drain().await.is_empty());
    tokio::time::sleep(FIRST_WAIT).await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(linked(&setup, ("contacts", &ada), "companies", "domain"), ["acme.com"]);
    assert_eq!(setup.world.sim.records(PORTAL, "contacts").len(), 1, "the contact was written once");
    let store = &setup.world.deps.store;
    let keys = ["ada@example.com".to_string()];
    let mut states = store.get_record_states(&setup.connection.id, ObjectType::Contacts, &keys).await.unwrap();
    let outbound = states.remove("ada@example.com").unwrap().outbound;
    assert!(outbound.waiting.is_empty(), "the link no longer waits: {outbound:?}");
}

#[tokio::test]
async fn a_contact_and_its_company_in_one_batch_end_linked_whichever_runs_first() {
    let setup = setup().await;
    let links = json!({ "companies": { "add": ["acme.com"] } });
    setup
        .send(&[
            message(&setup, "contact", "ada@example.com", json!({ "first_name": "Ada" }), links, T1),
            setup.change("company", "acme.com", json!({ "name": "Acme" }), T1),
        ])
        .await;
    assert!(setup.drain().await.is_empty());
    tokio::time::sleep(FIRST_WAIT).await;
    assert!(setup.drain().await.is_empty());
    let ada = id_of(&setup, "contacts", "email", "ada@example.com");
    assert_eq!(linked(&setup, ("contacts", &ada), "companies", "domain"), ["acme.com"]);
}

#[tokio::test]
async fn links_are_removed_replaced_by_a_set_and_cost_no_call_when_unchanged() {
    let setup = setup().await;
    let acme = setup.world.sim.seed(PORTAL, "companies", json!({ "name": "Acme", "domain": "acme.com" }));
    setup.world.sim.seed(PORTAL, "companies", json!({ "name": "Beta", "domain": "beta.com" }));
    let both = json!({ "companies": { "add": ["acme.com", "beta.com"] } });
    setup.send(&[message(&setup, "contact", "ada@example.com", json!({}), both, T1)]).await;
    assert!(setup.drain().await.is_empty());
    let ada = id_of(&setup, "contacts", "email", "ada@example.com");
    assert_eq!(linked(&setup, ("contacts", &ada), "companies", "domain"), ["acme.com", "beta.com"]);

    // A person links Ada to a third company in HubSpot: a `set` leaves that link alone.
    let gamma = setup.world.sim.seed(PORTAL, "companies", json!({ "name": "Gamma", "domain": "gamma.com" }));
    setup.world.sim.associate(PORTAL, "contacts", &ada, "companies", &gamma);

    let calls = link_calls(&setup);
    let again = json!({ "companies": { "add": ["beta.com", "acme.com"] } });
    setup.send(&[message(&setup, "contact", "ada@example.com", json!({}), again, T2)]).await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(link_calls(&setup), calls, "links as written cost no call");

    let only_beta = json!({ "companies": { "set": ["beta.com"] } });
    setup.send(&[message(&setup, "contact", "ada@example.com", json!({}), only_beta, T3)]).await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(linked(&setup, ("contacts", &ada), "companies", "domain"), ["beta.com", "gamma.com"]);
    assert!(setup.world.sim.associations(PORTAL, "companies", &acme, "contacts").is_empty());

    // An older change arriving late does not undo the newer set.
    let stale = json!({ "companies": { "add": ["acme.com"] } });
    setup.send(&[message(&setup, "contact", "ada@example.com", json!({}), stale, T2)]).await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(linked(&setup, ("contacts", &ada), "companies", "domain"), ["beta.com", "gamma.com"]);

    let remove = json!({ "companies": { "remove": ["beta.com", "gamma.com"] } });
    setup.send(&[message(&setup, "contact", "ada@example.com", json!({}), remove, "2026-02-04T00:00:00Z")]).await;
    assert!(setup.drain().await.is_empty());
    assert!(
        linked(&setup, ("contacts", &ada), "companies", "domain").is_empty(),
        "an explicit remove removes any link"
    );
}

#[tokio::test]
async fn a_change_whose_fields_were_superseded_still_links() {
    let setup = setup().await;
    setup.send(&[setup.change("company", "acme.com", json!({ "name": "Acme" }), T1)]).await;
    setup.send(&[setup.change("contact", "ada@example.com", json!({ "first_name": "Newer" }), T3)]).await;
    assert!(setup.drain().await.is_empty());
    // Sent earlier, arriving later: its name is older than the one written, its link is news.
    let link = json!({ "companies": { "add": ["acme.com"] } });
    setup.send(&[message(&setup, "contact", "ada@example.com", json!({ "first_name": "Older" }), link, T2)]).await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.contact("ada@example.com").unwrap()["firstname"], "Newer");
    let ada = id_of(&setup, "contacts", "email", "ada@example.com");
    assert_eq!(linked(&setup, ("contacts", &ada), "companies", "domain"), ["acme.com"]);
}

#[tokio::test]
async fn a_link_to_a_record_that_never_appears_is_skipped_with_its_reason_after_the_wait() {
    let setup = setup().await;
    let links = json!({ "companies": { "add": ["nowhere.com"] } });
    setup.send(&[message(&setup, "contact", "ada@example.com", json!({ "first_name": "Ada" }), links, T1)]).await;
    assert!(setup.drain().await.is_empty());
    setup.world.clock.advance(time::Duration::minutes(16));
    tokio::time::sleep(FIRST_WAIT).await;
    assert!(setup.drain().await.is_empty());
    let counts = setup.counts().await;
    let reason = "not linked: the related companies record was not in HubSpot after 15 minutes \
                  (send the link again once it exists)";
    assert_eq!(counts.skipped.get(reason), Some(&1), "{counts:?}");
    assert!(setup.parked().await.is_empty());
    assert_eq!(setup.receive(10).await.len(), 0, "nothing is left waiting");
    assert_eq!(setup.contact("ada@example.com").unwrap()["firstname"], "Ada", "the contact itself was written");
}

#[tokio::test]
async fn an_organization_synced_with_all_its_members_is_linked_to_each_and_its_members_listed() {
    let setup = setup().await;
    let list = setup.world.sim.create_list(PORTAL, "Acme members", "contacts", "MANUAL");
    let members = ["ada@acme.com", "grace@acme.com", "linus@acme.com"];
    let mut messages = vec![message(
        &setup,
        "company",
        "acme.com",
        json!({ "name": "Acme" }),
        json!({ "contacts": { "set": members } }),
        T1,
    )];
    for member in members {
        let mut contact = setup.change("contact", member, json!({ "first_name": member }), T1);
        contact["lists"] = json!({ "add": [list] });
        messages.push(contact);
    }
    setup.send(&messages).await;
    assert!(setup.drain().await.is_empty());
    tokio::time::sleep(FIRST_WAIT).await;
    assert!(setup.drain().await.is_empty());

    let acme = id_of(&setup, "companies", "domain", "acme.com");
    assert_eq!(linked(&setup, ("companies", &acme), "contacts", "email"), members);
    assert_eq!(setup.world.sim.list_members(PORTAL, &list).len(), 3);
    assert!(setup.parked().await.is_empty());
}

#[tokio::test]
async fn a_deal_is_linked_to_its_contact_by_the_deals_own_platform_id() {
    let setup = setup().await;
    setup.send(&[setup.change("contact", "ada@example.com", json!({ "first_name": "Ada" }), T1)]).await;
    let order = json!({ "contacts": { "add": ["ADA@example.com"] } });
    setup.send(&[message(&setup, "deal", "order-17", json!({ "title": "Ada's order" }), order, T1)]).await;
    assert!(setup.drain().await.is_empty());
    tokio::time::sleep(FIRST_WAIT).await;
    assert!(setup.drain().await.is_empty());
    let deal = id_of(&setup, "deals", "platform_deal_id", "order-17");
    assert_eq!(linked(&setup, ("deals", &deal), "contacts", "email"), ["ada@example.com"]);
    let ada = id_of(&setup, "contacts", "email", "ada@example.com");
    assert_eq!(linked(&setup, ("contacts", &ada), "deals", "platform_deal_id"), ["order-17"]);
}

#[tokio::test]
async fn relations_a_config_does_not_let_out_are_ignored_and_counted() {
    let setup = setup().await;
    let to_deal = json!({ "deals": { "add": ["order-1"] } });
    setup.send(&[message(&setup, "company", "acme.com", json!({ "name": "Acme" }), to_deal, T1)]).await;
    assert!(setup.drain().await.is_empty());
    let counts = setup.counts().await;
    assert_eq!(counts.ignored_fields.get("associations.deals"), Some(&1), "{counts:?}");
    assert_eq!(counts.created, 1);
}
