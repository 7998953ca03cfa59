//! The Lists API: creating lists, HubSpot's membership response (with its `recordsIdsAdded`
//! spelling), dynamic lists refusing hand-made changes, paging, scopes and the admin helpers.

mod common;

use common::{Sim, sim};
use hubspot_sim::{DEFAULT_CLIENT_ID, MEMBERSHIP_IDS_LIMIT};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const LISTS: &str = "/crm/v3/lists";

async fn create_list(s: &Sim, name: &str, processing: &str) -> String {
    let reply = s.post(LISTS, json!({ "name": name, "objectTypeId": "0-1", "processingType": processing })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["list"]["listId"].as_str().unwrap().to_string()
}

async fn put(s: &Sim, path: &str, body: Value) -> common::Reply {
    s.call(Method::PUT, path, Some(body)).await
}

fn contacts(s: &Sim, n: usize) -> Vec<String> {
    (0..n).map(|i| s.sim.seed(1000, "contacts", json!({ "email": format!("m{i}@example.com") }))).collect()
}

#[tokio::test]
async fn lists_are_created_and_read_back() {
    let s = sim().await;
    let created = s
        .post(
            LISTS,
            json!({ "name": "Customers", "objectTypeId": "0-1", "processingType": "MANUAL", "listFolderId": 0 }),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let list = &created.body["list"];
    let id = list["listId"].as_str().expect("listId is a string");
    assert!(id.parse::<u64>().is_ok(), "of a number: {id}");
    assert_eq!(list["name"], "Customers");
    assert_eq!(list["objectTypeId"], "0-1");
    assert_eq!(list["processingType"], "MANUAL");
    assert_eq!(list["processingStatus"], "COMPLETE");
    assert_eq!(list["size"], 0);
    assert!(list["listVersion"].is_u64());
    assert!(list["createdAt"].as_str().unwrap().ends_with('Z'));

    let got = s.get(&format!("{LISTS}/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["list"]["name"], "Customers");
    let dated = s.get(&format!("/crm/lists/2026-03/{id}")).await;
    assert_eq!(dated.body["list"]["listId"], id, "the date-versioned path serves the same lists");

    let missing = s.get(&format!("{LISTS}/424242")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["category"], "OBJECT_NOT_FOUND");

    let again = s.post(LISTS, json!({ "name": "Customers", "objectTypeId": "0-2", "processingType": "MANUAL" })).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["category"], "CONFLICT");
    assert_eq!(again.body["status"], "error");

    for bad in [
        json!({ "objectTypeId": "0-1", "processingType": "MANUAL" }),
        json!({ "name": "No type", "processingType": "MANUAL" }),
        json!({ "name": "Odd type", "objectTypeId": "0-53", "processingType": "MANUAL" }),
        json!({ "name": "Odd processing", "objectTypeId": "0-1", "processingType": "SOMETIMES" }),
        json!(["not", "an", "object"]),
    ] {
        let reply = s.post(LISTS, bad.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.body["category"], "VALIDATION_ERROR", "{bad}");
    }
}

#[tokio::test]
async fn memberships_answer_with_hubspots_field_names() {
    let s = sim().await;
    let list = create_list(&s, "Pushed", "MANUAL").await;
    let ids = contacts(&s, 3);
    let company = s.sim.seed(1000, "companies", json!({ "name": "Acme" }));
    let add = format!("{LISTS}/{list}/memberships/add");

    let first = put(&s, &add, json!([ids[0], ids[1], "999999", company])).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let keys: Vec<&String> = first.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["recordIdsMissing", "recordIdsRemoved", "recordsIdsAdded"], "HubSpot spells it recordsIdsAdded");
    assert_eq!(first.body["recordsIdsAdded"], json!([ids[0], ids[1]]));
    assert_eq!(first.body["recordIdsMissing"], json!(["999999", company]), "unknown ids and other types");
    assert_eq!(first.body["recordIdsRemoved"], json!([]));

    let second = put(&s, &add, json!([ids[1], ids[2]])).await;
    assert_eq!(second.body["recordsIdsAdded"], json!([ids[2]]), "members already in are not added again");
    assert_eq!(s.get(&format!("{LISTS}/{list}")).await.body["list"]["size"], 3);

    let removed = put(&s, &format!("{LISTS}/{list}/memberships/remove"), json!([ids[0], "999999"])).await;
    assert_eq!(removed.status, StatusCode::OK);
    assert_eq!(removed.body["recordIdsRemoved"], json!([ids[0]]));
    assert_eq!(removed.body["recordIdsMissing"], json!(["999999"]));
    assert_eq!(removed.body["recordsIdsAdded"], json!([]));

    let both = put(
        &s,
        &format!("{LISTS}/{list}/memberships/add-and-remove"),
        json!({ "recordIdsToAdd": [ids[0]], "recordIdsToRemove": [ids[2]] }),
    )
    .await;
    assert_eq!(both.status, StatusCode::OK);
    assert_eq!(both.body["recordsIdsAdded"], json!([ids[0]]));
    assert_eq!(both.body["recordIdsRemoved"], json!([ids[2]]));
    assert_eq!(s.sim.list_members(1000, &list), [ids[0].clone(), ids[1].clone()]);

    let unknown = put(&s, &format!("{LISTS}/424242/memberships/add"), json!([ids[0]])).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for not_an_array in [json!({ "ids": [ids[0]] }), Value::Null] {
        assert_eq!(put(&s, &add, not_an_array).await.status, StatusCode::BAD_REQUEST);
    }
    let too_many: Vec<String> = (0..=MEMBERSHIP_IDS_LIMIT).map(|i| i.to_string()).collect();
    let refused = put(&s, &add, json!(too_many)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn dynamic_lists_refuse_membership_changes_and_snapshots_take_them() {
    let s = sim().await;
    let ids = contacts(&s, 1);
    let dynamic = create_list(&s, "Active", "DYNAMIC").await;
    for (action, body) in [
        ("add", json!([ids[0]])),
        ("remove", json!([ids[0]])),
        ("add-and-remove", json!({ "recordIdsToAdd": [ids[0]], "recordIdsToRemove": [] })),
    ] {
        let reply = put(&s, &format!("{LISTS}/{dynamic}/memberships/{action}"), body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{action}");
        assert_eq!(reply.body["category"], "VALIDATION_ERROR");
        assert_eq!(reply.body["status"], "error");
        assert!(reply.body["correlationId"].is_string());
        let message = reply.body["message"].as_str().unwrap();
        assert!(message.contains("DYNAMIC") && message.contains("cannot be changed manually"), "{message}");
    }
    assert!(s.sim.list_members(1000, &dynamic).is_empty());

    let snapshot = create_list(&s, "Frozen", "SNAPSHOT").await;
    let added = put(&s, &format!("{LISTS}/{snapshot}/memberships/add"), json!([ids[0]])).await;
    assert_eq!(added.status, StatusCode::OK);
    assert_eq!(added.body["recordsIdsAdded"], json!([ids[0]]));
}

#[tokio::test]
async fn memberships_page_in_record_id_order() {
    let s = sim().await;
    let list = s.sim.create_list(1000, "Big", "contacts", "MANUAL");
    let ids = contacts(&s, 260);
    let added = put(&s, &format!("{LISTS}/{list}/memberships/add"), json!(ids)).await;
    assert_eq!(added.body["recordsIdsAdded"].as_array().unwrap().len(), 260);

    let first = s.get(&format!("{LISTS}/{list}/memberships")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 100, "default limit");
    assert_eq!(first.body["total"], 260);
    assert_eq!(first.body["results"][0]["recordId"], ids[0].as_str());
    assert!(first.body["results"][0]["membershipTimestamp"].as_str().unwrap().ends_with('Z'));

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after.as_deref().map(|a| format!("&after={a}")).unwrap_or_default();
        let page = s.get(&format!("{LISTS}/{list}/memberships?limit=1000{cursor}")).await;
        let results = page.body["results"].as_array().unwrap();
        assert!(results.len() <= 250, "pages hold at most 250");
        seen.extend(results.iter().map(|r| r["recordId"].as_str().unwrap().to_string()));
        match page.body["paging"]["next"]["after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn lists_need_the_lists_scopes() {
    let s = sim().await;
    let list = s.sim.create_list(1000, "Scoped", "0-1", "MANUAL");
    let reader = s.sim.issue_tokens(1000, DEFAULT_CLIENT_ID, &["oauth", "crm.lists.read"]).access_token;
    let nobody = s.sim.issue_tokens(1000, DEFAULT_CLIENT_ID, &["oauth", "crm.objects.contacts.read"]).access_token;

    assert_eq!(s.call_as(&reader, Method::GET, &format!("{LISTS}/{list}"), None).await.status, StatusCode::OK);
    let cases = [
        (&reader, Method::PUT, format!("{LISTS}/{list}/memberships/add"), json!(["1"]), "crm.lists.write"),
        (
            &reader,
            Method::POST,
            LISTS.to_string(),
            json!({ "name": "x", "objectTypeId": "0-1", "processingType": "MANUAL" }),
            "crm.lists.write",
        ),
        (&nobody, Method::GET, format!("{LISTS}/{list}/memberships"), Value::Null, "crm.lists.read"),
    ];
    for (token, method, path, body, scope) in cases {
        let reply = s.call_as(token, method, &path, Some(body)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(reply.body["category"], "MISSING_SCOPES");
        assert_eq!(reply.body["errors"][0]["context"]["requiredGranularScopes"], json!([scope]), "{path}");
        assert!(reply.header("x-hubspot-ratelimit-max").is_some(), "counted against the limit");
    }
    assert_eq!(s.sim.request_count("PUT", "/crm/v3/lists/{listId}/memberships/add"), 1);
}

#[tokio::test]
async fn lists_are_managed_over_http_too() {
    let s = sim().await;
    let ids = contacts(&s, 2);
    let created = s
        .post(
            "/_sim/portals/1000/lists",
            json!({ "name": "Seeded", "object_type": "contacts", "processing_type": "MANUAL" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let list = created.body["listId"].as_str().unwrap().to_string();
    put(&s, &format!("{LISTS}/{list}/memberships/add"), json!(ids)).await;
    let members = s.get(&format!("/_sim/portals/1000/lists/{list}/members")).await;
    assert_eq!(members.body["results"], json!(ids));
    assert_eq!(s.get("/_sim/portals/1000/lists/424242/members").await.status, StatusCode::NOT_FOUND);
    let duplicate = s
        .post(
            "/_sim/portals/1000/lists",
            json!({ "name": "Seeded", "object_type": "contacts", "processing_type": "MANUAL" }),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_dynamic_lists_filters_are_normalised_and_shown_only_when_asked_for() {
    let s = sim().await;
    let branch = json!({
        "filterBranchType": "OR",
        "filterBranches": [{
            "filterBranchType": "AND",
            "filterBranches": [],
            "filters": [{ "filterType": "PROPERTY", "property": "lifecyclestage",
                          "operation": { "operationType": "ENUMERATION", "operator": "IS_ANY_OF", "values": ["customer"] } }]
        }],
        "filters": []
    });
    let created = s
        .post(
            LISTS,
            json!({ "name": "Customers", "objectTypeId": "0-1", "processingType": "DYNAMIC", "filterBranch": branch }),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let list = &created.body["list"];
    assert_eq!(list["processingStatus"], "PROCESSING", "a new dynamic list is still processing its filters");
    let stored = &list["filterBranch"];
    assert_eq!(stored["filterBranchOperator"], "OR");
    let and = &stored["filterBranches"][0];
    assert_eq!(and["filterBranchOperator"], "AND");
    assert_eq!(and["filters"][0]["operation"]["includeObjectsWithNoValueSet"], false);
    assert_eq!(and["filters"][0]["operation"]["values"], json!(["customer"]), "the rest as sent");

    let id = list["listId"].as_str().unwrap();
    let read = s.call(Method::GET, &format!("{LISTS}/{id}"), None).await;
    assert_eq!(read.body["list"]["processingStatus"], "COMPLETE");
    assert!(read.body["list"].get("filterBranch").is_none(), "filters only with includeFilters=true");
    let with_filters = s.call(Method::GET, &format!("{LISTS}/{id}?includeFilters=true"), None).await;
    assert_eq!(&with_filters.body["list"]["filterBranch"], stored);
}
