//! hubsync's HubSpot client against the simulator: OAuth, CRM records, batches, properties,
//! and every failure class the callers act on.

use std::collections::BTreeMap;
use std::time::Duration;

use hubspot_sim::{Fault, FaultKind, RunningSimulator, SimConfig};
use hubsync::domain::{ObjectType, Secret};
use hubsync::hubspot::{
    BATCH_LIMIT, ClientOptions, ErrorClass, HubSpotClient, HubSpotError, ItemError, PropertyCreate, PropertyOption,
    PropertyValues, UpdateInput, UpsertInput,
};
use serde_json::json;

const CLIENT_ID: &str = "sim-client-id";
const CLIENT_SECRET: &str = "sim-client-secret";
const REDIRECT_URI: &str = "https://hubsync.example.com/oauth/callback";
const PORTAL: u64 = 1000;
const SCOPES: &[&str] = &[
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
];

/// A simulator, a client pointed at it, and an access token for the default portal.
struct Setup {
    sim: RunningSimulator,
    client: HubSpotClient,
    token: Secret,
    refresh: Secret,
}

impl Setup {
    async fn new() -> Setup {
        Setup::with_options(|_| {}).await
    }

    async fn with_options(adjust: impl FnOnce(&mut ClientOptions)) -> Setup {
        let sim = hubspot_sim::start(SimConfig::default()).await.expect("the simulator starts");
        let mut options =
            ClientOptions { api_base_url: sim.base_url(), app_base_url: sim.base_url(), ..ClientOptions::default() };
        adjust(&mut options);
        let client = HubSpotClient::with_options(options).unwrap();
        let tokens = sim.issue_tokens(PORTAL, CLIENT_ID, SCOPES);
        Setup {
            token: Secret::new(tokens.access_token.clone()),
            refresh: Secret::new(tokens.refresh_token.clone()),
            sim,
            client,
        }
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.token.expose().to_string(), self.refresh.expose().to_string(), CLIENT_SECRET.to_string()]
    }
}

fn secret() -> Secret {
    Secret::new(CLIENT_SECRET)
}

fn props(pairs: &[(&str, &str)]) -> PropertyValues {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Everything an error can show: Display, Debug and its whole source chain.
fn shown(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{err} | {err:?}");
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(&format!(" | {inner} | {inner:?}"));
        source = inner.source();
    }
    text
}

/// Fails if any credential appears in how the error formats.
fn assert_clean(err: &HubSpotError, secrets: &[String]) {
    let text = shown(err);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!text.contains(secret.as_str()), "a credential leaked into: {text}");
    }
}

fn tier_property() -> PropertyCreate {
    PropertyCreate {
        name: "tier".into(),
        label: "Tier".into(),
        property_type: "enumeration".into(),
        field_type: "select".into(),
        group_name: "contactinformation".into(),
        description: Some("Customer tier".into()),
        options: ["gold", "silver"]
            .iter()
            .enumerate()
            .map(|(i, v)| PropertyOption {
                label: v.to_string(),
                value: v.to_string(),
                hidden: false,
                description: None,
                display_order: Some(i as i64),
            })
            .collect(),
        has_unique_value: false,
    }
}

/// The browser's trip through the consent page: returns the `code` (and checks `state`).
async fn consent(authorize_url: &str, state: &str) -> Secret {
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = browser.get(authorize_url).send().await.unwrap();
    assert!(response.status().is_redirection(), "authorize answered {}", response.status());
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT_URI), "{location}");
    let query: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some(state));
    Secret::new(query.get("code").expect("a code in the redirect").clone())
}

#[tokio::test]
async fn oauth_code_exchange_introspection_refresh_and_revocation() {
    let s = Setup::new().await;
    let scopes: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
    let url = s.client.authorize_url(CLIENT_ID, REDIRECT_URI, &scopes, &["crm.lists.read".to_string()], "st-1");
    assert!(url.contains("scope=oauth%20crm.objects.contacts.read%20"), "{url}");
    let code = consent(&url, "st-1").await;

    let grant = s.client.exchange_code(CLIENT_ID, &secret(), REDIRECT_URI, &code).await.unwrap();
    assert!(!grant.access_token.expose().is_empty());
    assert!(grant.expires_in > 0);
    let mut secrets = s.secrets();
    secrets.extend([code.expose().into(), grant.access_token.expose().into(), grant.refresh_token.expose().into()]);

    // Codes are single use.
    let reused = s.client.exchange_code(CLIENT_ID, &secret(), REDIRECT_URI, &code).await.unwrap_err();
    assert!(matches!(reused, HubSpotError::BadRequest(_)), "{reused:?}");
    assert_eq!(reused.category(), Some("BAD_AUTH_CODE"));
    assert_eq!(reused.class(), ErrorClass::Permanent);
    assert_clean(&reused, &secrets);

    let info = s.client.introspect_access_token(CLIENT_ID, &secret(), &grant.access_token).await.unwrap();
    assert_eq!(info.hub_id, PORTAL);
    assert!(info.scopes.contains(&"crm.objects.contacts.write".to_string()), "{:?}", info.scopes);
    assert!(info.expires_in.is_some_and(|e| e > 0));

    // The refreshed token works for CRM calls and belongs to the same portal.
    let fresh = s.client.refresh_token(CLIENT_ID, &secret(), &grant.refresh_token).await.unwrap();
    secrets.extend([fresh.access_token.expose().into(), fresh.refresh_token.expose().into()]);
    assert!(fresh.expires_in > 0);
    s.client.objects(&fresh.access_token, ObjectType::Contacts).list_page(None, 10, &[]).await.unwrap();
    let info = s.client.introspect_access_token(CLIENT_ID, &secret(), &fresh.access_token).await.unwrap();
    assert_eq!(info.hub_id, PORTAL);

    // A wrong client secret is refused, and says so without the secret.
    let wrong = Secret::new("not-the-client-secret");
    let refused = s.client.refresh_token(CLIENT_ID, &wrong, &fresh.refresh_token).await.unwrap_err();
    assert_eq!(refused.class(), ErrorClass::Permanent);
    secrets.push(wrong.expose().into());
    assert_clean(&refused, &secrets);

    s.client.revoke_refresh_token(CLIENT_ID, &secret(), &fresh.refresh_token).await.unwrap();
    let after = s.client.refresh_token(CLIENT_ID, &secret(), &fresh.refresh_token).await.unwrap_err();
    assert_ne!(after.class(), ErrorClass::Retryable, "{after:?}");
    assert!(after.status().is_some_and(|s| (400..500).contains(&s)), "{after:?}");
    assert_clean(&after, &secrets);
}

#[tokio::test]
async fn crud_and_paging_through_more_than_a_hundred_records() {
    let s = Setup::new().await;
    let contacts = s.client.objects(&s.token, ObjectType::Contacts);
    let before = contacts.list_all(&[]).await.unwrap().len();

    let created = contacts.create(&props(&[("email", "ada@example.com"), ("firstname", "Ada")])).await.unwrap();
    let id = created.id().to_string();
    assert!(!id.is_empty());
    let got = contacts.get(&id, &["email", "firstname"]).await.unwrap();
    assert_eq!(got.property("firstname"), Some("Ada"));
    let by_email = contacts.get_by("email", "ada@example.com", &["firstname"]).await.unwrap();
    assert_eq!(by_email.id(), id);

    let updated = contacts.update(&id, &props(&[("firstname", "Augusta")])).await.unwrap();
    assert_eq!(updated.id(), id);
    assert_eq!(contacts.get(&id, &["firstname"]).await.unwrap().property("firstname"), Some("Augusta"));

    for i in 0..230 {
        s.sim.seed(
            PORTAL,
            "contacts",
            json!({ "email": format!("seed{i}@example.com"), "firstname": format!("S{i}") }),
        );
    }
    let first = contacts.list_page(None, 500, &["email"]).await.unwrap();
    assert_eq!(first.results.len(), 100, "the page size is capped at 100");
    let next = first.next_after.clone().expect("a next page");
    let second = contacts.list_page(Some(&next), 100, &["email"]).await.unwrap();
    assert!(second.results.iter().all(|r| first.results.iter().all(|f| f.id != r.id)), "pages do not overlap");

    let all = contacts.list_all(&["email"]).await.unwrap();
    assert_eq!(all.len(), before + 231);
    let distinct: std::collections::BTreeSet<_> = all.iter().map(|r| r.id().to_string()).collect();
    assert_eq!(distinct.len(), all.len());
    assert!(all.iter().any(|r| r.property("email") == Some("seed229@example.com")));
    let limit = contacts.last_rate_limit().expect("rate-limit headers on list responses");
    assert!(limit.max.is_some() && limit.remaining.is_some(), "{limit:?}");

    contacts.archive(&id).await.unwrap();
    let gone = contacts.get(&id, &[]).await.unwrap_err();
    assert!(matches!(gone, HubSpotError::NotFound(_)), "{gone:?}");
    assert_eq!(gone.class(), ErrorClass::Permanent);
    assert_eq!(contacts.list_all(&[]).await.unwrap().len(), before + 230);
    assert_clean(&gone, &s.secrets());
}

#[tokio::test]
async fn batch_upsert_of_250_inputs_takes_three_calls() {
    let s = Setup::new().await;
    let contacts = s.client.objects(&s.token, ObjectType::Contacts);
    let inputs: Vec<UpsertInput> = (0..250)
        .map(|i| UpsertInput {
            id: format!("user{i}@example.com"),
            properties: props(&[("email", &format!("user{i}@example.com")), ("firstname", &format!("U{i}"))]),
        })
        .collect();

    let outcome = contacts.batch_upsert("email", &inputs).await;
    assert_eq!(outcome.calls, 3);
    assert_eq!(s.sim.request_count("POST", "/crm/objects/2026-09/contacts/batch/upsert"), 3);
    assert_eq!(outcome.items.len(), 250);
    assert!(outcome.all_succeeded(), "{:?}", outcome.items.iter().find(|i| i.is_err()));
    for (input, item) in inputs.iter().zip(&outcome.items) {
        let record = item.as_ref().unwrap();
        assert_eq!(record.new, Some(true));
        assert_eq!(record.property("firstname"), input.properties.get("firstname").map(String::as_str));
    }
    assert!(outcome.rate_limit.is_some());

    // Again: the same records are updated, not duplicated, and each answer lands on its input.
    let again: Vec<UpsertInput> = inputs[..120]
        .iter()
        .rev()
        .map(|i| UpsertInput { id: i.id.clone(), properties: props(&[("email", &i.id), ("firstname", "Again")]) })
        .collect();
    let second = contacts.batch_upsert("email", &again).await;
    assert_eq!(second.calls, 2);
    for (input, item) in again.iter().zip(&second.items) {
        let record = item.as_ref().unwrap();
        assert_eq!(record.new, Some(false));
        let original = inputs.iter().position(|i| i.id == input.id).unwrap();
        assert_eq!(record.id(), outcome.items[original].as_ref().unwrap().id());
    }
    assert_eq!(contacts.list_all(&[]).await.unwrap().len(), 250);
}

#[tokio::test]
async fn a_207_fails_only_the_bad_record() {
    let s = Setup::new().await;
    s.client.create_property(&s.token, ObjectType::Contacts, &tier_property()).await.unwrap();
    let contacts = s.client.objects(&s.token, ObjectType::Contacts);
    let tiers = ["gold", "silver", "platinum", "gold", "silver"];
    let inputs: Vec<UpsertInput> = tiers
        .iter()
        .enumerate()
        .map(|(i, tier)| UpsertInput {
            id: format!("c{i}@example.com"),
            properties: props(&[("email", &format!("c{i}@example.com")), ("tier", tier)]),
        })
        .collect();

    let outcome = contacts.batch_upsert("email", &inputs).await;
    assert_eq!(outcome.calls, 1);
    assert_eq!(outcome.succeeded(), 4);
    for (i, item) in outcome.items.iter().enumerate() {
        if i == 2 {
            let Err(ItemError::Rejected(error)) = item else { panic!("input 2 should be rejected: {item:?}") };
            assert_eq!(error.category.as_deref(), Some("VALIDATION_ERROR"));
            assert!(error.invalid_properties().contains(&"tier".to_string()), "{error:?}");
            assert_eq!(item.as_ref().unwrap_err().class(), ErrorClass::Permanent);
        } else {
            assert_eq!(item.as_ref().unwrap().property("tier"), Some(tiers[i]));
        }
    }

    // Batch update and read by id: an unknown id fails alone.
    let ids: Vec<String> = [0, 1, 3].iter().map(|&i| outcome.items[i].as_ref().unwrap().id().to_string()).collect();
    let updates: Vec<UpdateInput> =
        ids.iter().map(|id| UpdateInput { id: id.clone(), properties: props(&[("firstname", "Updated")]) }).collect();
    let updated = contacts.batch_update(&updates, None).await;
    assert!(updated.all_succeeded(), "{:?}", updated.items);
    let mut wanted = ids.clone();
    wanted.insert(1, "999999999".into());
    let read = contacts.batch_read(&wanted, None, &["firstname", "tier"]).await;
    assert_eq!(read.items.len(), 4);
    assert_eq!(read.succeeded(), 3);
    assert_eq!(read.items[1].as_ref().unwrap_err().category(), Some("OBJECT_NOT_FOUND"));
    assert_eq!(read.items[2].as_ref().unwrap().id(), ids[1]);
    assert_eq!(read.items[2].as_ref().unwrap().property("firstname"), Some("Updated"));

    // Read by email, create, archive.
    let by_email = contacts.batch_read(&["C4@example.com".to_string()], Some("email"), &["tier"]).await;
    assert_eq!(by_email.items[0].as_ref().unwrap().property("tier"), Some("silver"));
    let created =
        contacts.batch_create(&[props(&[("email", "n1@example.com")]), props(&[("email", "n2@example.com")])]).await;
    assert!(created.all_succeeded(), "{:?}", created.items);
    let new_ids: Vec<String> = created.items.iter().map(|i| i.as_ref().unwrap().id().to_string()).collect();
    let archived = contacts.batch_archive(&new_ids).await;
    assert!(archived.all_succeeded());
    let after = contacts.batch_read(&new_ids, None, &[]).await;
    assert!(after.items.iter().all(|i| i.as_ref().is_err_and(|e| e.class() == ErrorClass::Permanent)), "{after:?}");
}

#[tokio::test]
async fn an_expired_token_asks_for_reauth() {
    let s = Setup::new().await;
    let contacts = s.client.objects(&s.token, ObjectType::Contacts);
    contacts.list_page(None, 1, &[]).await.unwrap();
    s.sim.expire_access_token(s.token.expose());
    let err = contacts.list_page(None, 1, &[]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Unauthorized(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Reauth);
    assert!(err.correlation_id().is_some());
    assert_clean(&err, &s.secrets());

    // A batch stops at the first call: the rest would fail the same way.
    let inputs: Vec<UpsertInput> = (0..150)
        .map(|i| UpsertInput {
            id: format!("x{i}@example.com"),
            properties: props(&[("email", &format!("x{i}@example.com"))]),
        })
        .collect();
    let outcome = contacts.batch_upsert("email", &inputs).await;
    assert_eq!(outcome.calls, 1);
    assert!(outcome.items[..BATCH_LIMIT].iter().all(|i| i.as_ref().is_err_and(|e| e.class() == ErrorClass::Reauth)));
    assert!(outcome.items[BATCH_LIMIT..].iter().all(|i| matches!(i, Err(ItemError::NotSent))));
}

#[tokio::test]
async fn a_missing_scope_is_permanent() {
    let s = Setup::new().await;
    let scopes = ["oauth", "crm.objects.contacts.read"];
    s.sim.add_portal(2000, &scopes);
    let tokens = s.sim.issue_tokens(2000, CLIENT_ID, &scopes);
    let token = Secret::new(tokens.access_token.clone());
    s.client.objects(&token, ObjectType::Contacts).list_page(None, 1, &[]).await.unwrap();

    let err = s.client.objects(&token, ObjectType::Deals).list_page(None, 1, &[]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Forbidden(_)), "{err:?}");
    assert_eq!(err.category(), Some("MISSING_SCOPES"));
    assert_eq!(err.class(), ErrorClass::Permanent);
    let required = err.response().unwrap().body.required_scopes();
    assert!(required.iter().any(|s| s.starts_with("crm.objects.deals")), "{required:?}");
    assert_clean(&err, &[token.expose().to_string()]);
}

#[tokio::test]
async fn a_429_is_retryable_and_names_its_policy() {
    let s = Setup::new().await;
    s.sim.set_rate_limit(PORTAL, 3);
    let contacts = s.client.objects(&s.token, ObjectType::Contacts);
    let mut remaining = Vec::new();
    let err = loop {
        match contacts.list_page(None, 1, &[]).await {
            Ok(_) => remaining.push(contacts.last_rate_limit().and_then(|l| l.remaining)),
            Err(err) => break err,
        }
        assert!(remaining.len() <= 3, "the simulator never limited");
    };
    assert_eq!(remaining.len(), 3);
    assert!(remaining.windows(2).all(|w| w[0] > w[1]), "remaining counts down: {remaining:?}");

    assert!(matches!(err, HubSpotError::RateLimited(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(err.policy_name(), Some("TEN_SECONDLY_ROLLING"));
    let limit = err.rate_limit().expect("rate-limit headers on the 429");
    assert_eq!(limit.max, Some(3));
    assert_eq!(limit.remaining, Some(0));
    assert_eq!(limit.interval, Some(Duration::from_secs(10)));
    assert!(limit.is_exhausted());
    assert_eq!(contacts.last_rate_limit(), Some(limit));
    assert_clean(&err, &s.secrets());
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let s = Setup::new().await;
    s.sim.inject_fault(Fault {
        kind: FaultKind::ServerError(502),
        rate: 1.0,
        path_prefix: Some("/crm".into()),
        remaining: Some(1),
    });
    let contacts = s.client.objects(&s.token, ObjectType::Contacts);
    let err = contacts.list_page(None, 1, &[]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Unavailable(_)), "{err:?}");
    assert_eq!(err.status(), Some(502));
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_clean(&err, &s.secrets());
    // The fault is spent: the client keeps working (it does not retry on its own).
    contacts.list_page(None, 1, &[]).await.unwrap();

    s.sim.inject_fault(Fault {
        kind: FaultKind::ServerError(503),
        rate: 1.0,
        path_prefix: Some("/crm/objects/2026-09/contacts/batch".into()),
        remaining: None,
    });
    let inputs: Vec<UpsertInput> = (0..150)
        .map(|i| UpsertInput {
            id: format!("y{i}@example.com"),
            properties: props(&[("email", &format!("y{i}@example.com"))]),
        })
        .collect();
    let outcome = contacts.batch_upsert("email", &inputs).await;
    assert_eq!(outcome.calls, 1);
    assert!(outcome.items.iter().all(|i| i.as_ref().is_err_and(|e| e.class() == ErrorClass::Retryable)));
    s.sim.clear_faults();
    assert!(contacts.batch_upsert("email", &inputs).await.all_succeeded());
}

#[tokio::test]
async fn dropped_connections_and_timeouts_are_retryable() {
    let s = Setup::with_options(|o| o.timeout = Duration::from_millis(500)).await;
    let contacts = s.client.objects(&s.token, ObjectType::Contacts);
    s.sim.inject_fault(Fault {
        kind: FaultKind::DropConnection,
        rate: 1.0,
        path_prefix: Some("/crm".into()),
        remaining: None,
    });
    let err = contacts.list_page(None, 1, &[]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Connection { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_clean(&err, &s.secrets());

    s.sim.clear_faults();
    s.sim.inject_fault(Fault {
        kind: FaultKind::Latency(Duration::from_secs(3)),
        rate: 1.0,
        path_prefix: Some("/crm".into()),
        remaining: None,
    });
    let err = contacts.list_page(None, 1, &[]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable);
}

#[tokio::test]
async fn properties_are_listed_created_and_conflicts_typed() {
    let s = Setup::new().await;
    let properties = s.client.properties(&s.token, ObjectType::Contacts);
    let listed = properties.list().await.unwrap();
    let email = listed.iter().find(|p| p.name == "email").expect("contacts have an email property");
    assert_eq!(email.property_type, "string");
    assert!(!email.is_read_only());
    assert!(listed.iter().all(|p| p.name != "tier"));

    let created = properties.create(&tier_property()).await.unwrap();
    assert_eq!(created.name, "tier");
    assert_eq!(created.property_type, "enumeration");
    assert_eq!(created.options.iter().map(|o| o.value.as_str()).collect::<Vec<_>>(), ["gold", "silver"]);
    let tier = s.client.list_properties(&s.token, ObjectType::Contacts).await.unwrap();
    let tier = tier.iter().find(|p| p.name == "tier").expect("the new property is listed");
    assert_eq!(tier.field_type, "select");
    assert!(!tier.hubspot_defined);

    let again = properties.create(&tier_property()).await.unwrap_err();
    assert!(matches!(again, HubSpotError::Conflict(_)), "{again:?}");
    assert_eq!(again.status(), Some(409));
    assert_eq!(again.class(), ErrorClass::Permanent);
    assert_clean(&again, &s.secrets());
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let s = Setup::with_options(|o| o.max_response_bytes = 1024).await;
    let err = s.client.list_properties(&s.token, ObjectType::Contacts).await.unwrap_err();
    assert!(matches!(err, HubSpotError::ResponseTooLarge { limit: 1024, .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
}

/// Produces every kind of error the tests above see and checks that none shows a credential
/// in `Display`, `Debug` or its source chain.
#[tokio::test]
async fn no_error_shows_a_token_code_or_secret() {
    let s = Setup::new().await;
    let mut secrets = s.secrets();
    let mut errors: Vec<HubSpotError> = Vec::new();
    let contacts = s.client.objects(&s.token, ObjectType::Contacts);

    // OAuth: a reused code, a refused refresh token, a wrong client secret.
    let scopes: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
    let code = consent(&s.client.authorize_url(CLIENT_ID, REDIRECT_URI, &scopes, &[], "st"), "st").await;
    secrets.push(code.expose().into());
    let grant = s.client.exchange_code(CLIENT_ID, &secret(), REDIRECT_URI, &code).await.unwrap();
    secrets.extend([grant.access_token.expose().into(), grant.refresh_token.expose().into()]);
    errors.push(s.client.exchange_code(CLIENT_ID, &secret(), REDIRECT_URI, &code).await.unwrap_err());
    errors.push(
        s.client.refresh_token(CLIENT_ID, &Secret::new("wrong-secret-value"), &grant.refresh_token).await.unwrap_err(),
    );
    s.client.revoke_refresh_token(CLIENT_ID, &secret(), &grant.refresh_token).await.unwrap();
    errors.push(s.client.refresh_token(CLIENT_ID, &secret(), &grant.refresh_token).await.unwrap_err());
    secrets.push("wrong-secret-value".into());

    // CRM: validation, not found, conflict, 5xx, dropped connection, 401, 429.
    s.client.create_property(&s.token, ObjectType::Contacts, &tier_property()).await.unwrap();
    errors.push(s.client.create_property(&s.token, ObjectType::Contacts, &tier_property()).await.unwrap_err());
    errors.push(contacts.create(&props(&[("tier", "platinum")])).await.unwrap_err());
    errors.push(contacts.get("424242424", &[]).await.unwrap_err());
    let bad =
        UpsertInput { id: "v@example.com".into(), properties: props(&[("email", "v@example.com"), ("tier", "x")]) };
    let outcome = contacts.batch_upsert("email", &[bad]).await;
    let item_error = outcome.items[0].as_ref().unwrap_err().clone();
    for fault in [FaultKind::ServerError(500), FaultKind::DropConnection] {
        s.sim.inject_fault(Fault { kind: fault, rate: 1.0, path_prefix: Some("/crm".into()), remaining: Some(1) });
        errors.push(contacts.list_page(None, 1, &[]).await.unwrap_err());
    }
    s.sim.set_rate_limit(PORTAL, 1);
    let _ = contacts.list_page(None, 1, &[]).await;
    errors.push(contacts.list_page(None, 1, &[]).await.unwrap_err());
    s.sim.expire_access_token(s.token.expose());
    errors.push(contacts.list_page(None, 1, &[]).await.unwrap_err());

    let classes: Vec<ErrorClass> = errors.iter().map(HubSpotError::class).collect();
    for class in [ErrorClass::Permanent, ErrorClass::Retryable, ErrorClass::Reauth] {
        assert!(classes.contains(&class), "{class:?} missing from {classes:?}");
    }
    for err in &errors {
        assert_clean(err, &secrets);
    }
    let item_text = format!("{item_error} | {item_error:?}");
    assert!(secrets.iter().all(|s| !item_text.contains(s.as_str())), "{item_text}");
}
