//! hubsync's lists client against the simulator: creating and reading lists, membership
//! changes with HubSpot's added/removed/missing report, dynamic lists refusing them, scopes,
//! and how many calls a large change takes.

use hubspot_sim::{DEFAULT_CLIENT_ID, DEFAULT_PORTAL, RunningSimulator, SimConfig};
use hubsync::domain::{ObjectType, Secret};
use hubsync::hubspot::{ErrorClass, HubSpotClient, HubSpotError, ListProcessing, MEMBERSHIP_CHUNK};
use serde_json::json;

const SCOPES: &[&str] = &["oauth", "crm.objects.contacts.read", "crm.lists.read", "crm.lists.write"];
const ADD_ROUTE: &str = "/crm/lists/2026-09/{listId}/memberships/add";

struct Setup {
    sim: RunningSimulator,
    client: HubSpotClient,
    token: Secret,
}

impl Setup {
    async fn new() -> Setup {
        let sim = hubspot_sim::start(SimConfig::default()).await.expect("the simulator starts");
        let client = HubSpotClient::new(&sim.base_url(), &sim.base_url()).unwrap();
        let token = Secret::new(sim.issue_tokens(DEFAULT_PORTAL, DEFAULT_CLIENT_ID, SCOPES).access_token);
        Setup { sim, client, token }
    }

    fn token_with(&self, scopes: &[&str]) -> Secret {
        Secret::new(self.sim.issue_tokens(DEFAULT_PORTAL, DEFAULT_CLIENT_ID, scopes).access_token)
    }

    /// Contacts already in the portal; their ids, ascending.
    fn contacts(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| self.sim.seed(DEFAULT_PORTAL, "contacts", json!({ "email": format!("list{i}@example.com") })))
            .collect()
    }
}

#[tokio::test]
async fn a_manual_list_reports_added_removed_and_missing_records() {
    let s = Setup::new().await;
    let lists = s.client.lists(&s.token);
    let list = lists.create("Pushed by hubsync", ObjectType::Contacts, ListProcessing::Manual).await.unwrap();
    assert_eq!(list.name, "Pushed by hubsync");
    assert_eq!(list.object_type_id, "0-1");
    assert!(list.holds(ObjectType::Contacts));
    assert_eq!(list.processing_type, ListProcessing::Manual);
    assert!(list.processing_type.accepts_manual_changes());
    assert_eq!(list.size, Some(0));

    let ids = s.contacts(3);
    let first = lists.add(&list.list_id, &[ids[0].clone(), ids[1].clone(), "999999".into()]).await.unwrap();
    assert_eq!(first.added, [ids[0].clone(), ids[1].clone()]);
    assert_eq!(first.missing, ["999999"], "ids that are no contact are reported, not added");
    assert!(first.removed.is_empty());
    assert_eq!(first.calls, 1);
    let budget = first.rate_limit.expect("rate-limit headers are read");
    assert_eq!(budget.max, Some(110));
    assert!(budget.remaining.is_some());

    let second = lists.add(&list.list_id, &[ids[1].clone(), ids[2].clone()]).await.unwrap();
    assert_eq!(second.added, [ids[2].clone()], "a record already in is not added again");
    assert!(second.missing.is_empty());

    let removed = lists.remove(&list.list_id, &[ids[0].clone(), "999999".into()]).await.unwrap();
    assert_eq!(removed.removed, [ids[0].clone()]);
    assert_eq!(removed.missing, ["999999"], "not a member");
    assert!(removed.added.is_empty());

    let read = lists.get(&list.list_id).await.unwrap();
    assert_eq!(read.size, Some(2));
    assert_eq!(read.list_id, list.list_id);
    assert_eq!(s.sim.list_members(DEFAULT_PORTAL, &list.list_id), [ids[1].clone(), ids[2].clone()]);

    let nothing = lists.add(&list.list_id, &[]).await.unwrap();
    assert_eq!((nothing.calls, nothing.added.len()), (0, 0), "no ids, no call");
}

#[tokio::test]
async fn snapshot_lists_take_changes_and_dynamic_lists_refuse_them() {
    let s = Setup::new().await;
    let lists = s.client.lists(&s.token);
    let ids = s.contacts(1);

    let snapshot = lists.create("Frozen", ObjectType::Contacts, ListProcessing::Snapshot).await.unwrap();
    assert!(snapshot.processing_type.accepts_manual_changes());
    assert_eq!(lists.add(&snapshot.list_id, &ids).await.unwrap().added, ids);

    let dynamic_id = s.sim.create_list(DEFAULT_PORTAL, "Active customers", "contacts", "DYNAMIC");
    let dynamic = lists.get(&dynamic_id).await.unwrap();
    assert_eq!(dynamic.processing_type, ListProcessing::Dynamic);
    assert!(!dynamic.processing_type.accepts_manual_changes());
    for result in [lists.add(&dynamic_id, &ids).await, lists.remove(&dynamic_id, &ids).await] {
        let err = result.expect_err("a dynamic list refuses membership changes");
        assert!(matches!(err, HubSpotError::BadRequest(_)), "{err}");
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert_eq!(err.category(), Some("VALIDATION_ERROR"));
        assert!(err.message().unwrap().to_lowercase().contains("dynamic"), "{err}");
    }
    assert!(s.sim.list_members(DEFAULT_PORTAL, &dynamic_id).is_empty());
}

#[tokio::test]
async fn unknown_lists_taken_names_and_missing_scopes_are_permanent() {
    let s = Setup::new().await;
    let lists = s.client.lists(&s.token);
    let missing = lists.get("424242").await.unwrap_err();
    assert!(matches!(missing, HubSpotError::NotFound(_)), "{missing}");
    assert_eq!(missing.class(), ErrorClass::Permanent);

    lists.create("Customers", ObjectType::Contacts, ListProcessing::Manual).await.unwrap();
    let taken = lists.create("Customers", ObjectType::Companies, ListProcessing::Manual).await.unwrap_err();
    assert!(matches!(taken, HubSpotError::Conflict(_)), "{taken}");
    assert_eq!(taken.class(), ErrorClass::Permanent);

    let list = s.sim.create_list(DEFAULT_PORTAL, "Read only", "contacts", "MANUAL");
    let reader = s.token_with(&["oauth", "crm.lists.read"]);
    let read_only = s.client.lists(&reader);
    assert_eq!(read_only.get(&list).await.unwrap().name, "Read only");
    let ids = s.contacts(1);
    let refused = read_only.add(&list, &ids).await.unwrap_err();
    assert!(matches!(refused, HubSpotError::Forbidden(_)), "{refused}");
    assert_eq!(refused.class(), ErrorClass::Permanent);
    assert_eq!(refused.category(), Some("MISSING_SCOPES"));
    assert_eq!(refused.response().unwrap().body.required_scopes(), ["crm.lists.write"]);
    let create = read_only.create("Nope", ObjectType::Contacts, ListProcessing::Manual).await.unwrap_err();
    assert_eq!(create.category(), Some("MISSING_SCOPES"));
    assert!(s.sim.list_members(DEFAULT_PORTAL, &list).is_empty());
}

#[tokio::test]
async fn large_changes_are_sent_in_chunks() {
    let s = Setup::new().await;
    let lists = s.client.lists(&s.token);
    let list = lists.create("Everyone", ObjectType::Contacts, ListProcessing::Manual).await.unwrap();
    let n = MEMBERSHIP_CHUNK * 2 + 100;
    let ids = s.contacts(n);

    let added = lists.add(&list.list_id, &ids).await.unwrap();
    assert_eq!(added.calls, 3);
    assert_eq!(s.sim.request_count("PUT", ADD_ROUTE), 3, "one call per {MEMBERSHIP_CHUNK} ids");
    assert_eq!(added.added, ids, "in input order");
    assert_eq!(lists.get(&list.list_id).await.unwrap().size, Some(n as u64));

    let exactly = lists.remove(&list.list_id, &ids[..MEMBERSHIP_CHUNK]).await.unwrap();
    assert_eq!(exactly.calls, 1);
    assert_eq!(exactly.removed.len(), MEMBERSHIP_CHUNK);
    assert_eq!(s.sim.request_count("PUT", "/crm/lists/2026-09/{listId}/memberships/remove"), 1);
    assert_eq!(s.sim.list_members(DEFAULT_PORTAL, &list.list_id), ids[MEMBERSHIP_CHUNK..]);
}
