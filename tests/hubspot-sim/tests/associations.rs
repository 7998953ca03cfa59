//! Associations (v4): batch reads with HubSpot's unlabeled type ids and 207s, one record's
//! associations page by page, links created and removed one at a time and in batches (with
//! each version's status codes), scopes, and associationChange events.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{Sim, sim};
use hubspot_sim::{DEFAULT_CLIENT_ID, Subscription};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(20);

async fn create(s: &Sim, object_type: &str, properties: Value) -> String {
    let reply = s.post(&format!("/crm/v3/objects/{object_type}"), json!({ "properties": properties })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_string()
}

async fn read(s: &Sim, from: &str, to: &str, ids: &[&str]) -> common::Reply {
    let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
    s.post(&format!("/crm/v4/associations/{from}/{to}/batch/read"), json!({ "inputs": inputs })).await
}

/// `from id → [(to id, type id)]` of a batch read's results.
fn linked(body: &Value) -> Vec<(String, Vec<(String, u64)>)> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| {
            let to = result["to"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let types = t["associationTypes"].as_array().unwrap();
                    assert_eq!(types.len(), 1);
                    assert_eq!(types[0]["category"], "HUBSPOT_DEFINED");
                    assert_eq!(types[0]["label"], Value::Null);
                    (t["toObjectId"].to_string(), types[0]["typeId"].as_u64().unwrap())
                })
                .collect();
            (result["from"]["id"].as_str().unwrap().to_string(), to)
        })
        .collect()
}

fn pair(id: &str, to: &[(&str, u64)]) -> (String, Vec<(String, u64)>) {
    (id.to_string(), to.iter().map(|(t, n)| (t.to_string(), *n)).collect())
}

#[tokio::test]
async fn batch_reads_answer_both_directions_with_default_types() {
    let s = sim().await;
    let contact = create(&s, "contacts", json!({ "email": "ada@example.com" })).await;
    let lonely = create(&s, "contacts", json!({ "email": "lonely@example.com" })).await;
    let acme = create(&s, "companies", json!({ "name": "Acme" })).await;
    let globex = create(&s, "companies", json!({ "name": "Globex" })).await;
    let deal = create(&s, "deals", json!({ "dealname": "Big" })).await;
    let widget = create(&s, "line_items", json!({ "name": "Widget" })).await;
    let gadget = create(&s, "line_items", json!({ "name": "Gadget" })).await;
    s.sim.associate(1000, "contacts", &contact, "companies", &acme);
    s.sim.associate(1000, "companies", &globex, "contacts", &contact);
    s.sim.associate(1000, "deals", &deal, "contacts", &contact);
    s.sim.associate(1000, "deals", &deal, "companies", &acme);
    s.sim.associate(1000, "deals", &deal, "line_items", &widget);
    s.sim.associate(1000, "line_items", &gadget, "deals", &deal);

    let companies = read(&s, "contacts", "companies", &[&contact]).await;
    assert_eq!(companies.status, StatusCode::OK, "{}", companies.body);
    assert_eq!(companies.body["status"], "COMPLETE");
    assert!(companies.body["startedAt"].is_string() && companies.body["completedAt"].is_string());
    assert_eq!(linked(&companies.body), [pair(&contact, &[(&acme, 279), (&globex, 279)])]);
    let contacts = read(&s, "companies", "contacts", &[&acme, &globex]).await;
    assert_eq!(linked(&contacts.body), [pair(&acme, &[(&contact, 280)]), pair(&globex, &[(&contact, 280)])]);
    let deals = read(&s, "0-1", "deals", &[&contact]).await;
    assert_eq!(linked(&deals.body), [pair(&contact, &[(&deal, 4)])]);
    let deal_contacts = read(&s, "deals", "contacts", &[&deal]).await;
    assert_eq!(linked(&deal_contacts.body), [pair(&deal, &[(&contact, 3)])]);
    let deal_companies = read(&s, "deals", "companies", &[&deal]).await;
    assert_eq!(linked(&deal_companies.body), [pair(&deal, &[(&acme, 341)])]);
    let company_deals = read(&s, "companies", "deals", &[&acme]).await;
    assert_eq!(linked(&company_deals.body), [pair(&acme, &[(&deal, 342)])]);
    let line_items = read(&s, "deals", "line_items", &[&deal]).await;
    assert_eq!(linked(&line_items.body), [pair(&deal, &[(&widget, 19), (&gadget, 19)])]);
    let line_item_deals = read(&s, "line_items", "deals", &[&gadget]).await;
    assert_eq!(linked(&line_item_deals.body), [pair(&gadget, &[(&deal, 20)])]);

    // Inputs without associations are per-input errors of a 207.
    let partial = read(&s, "contacts", "companies", &[&contact, &lonely, "424242"]).await;
    assert_eq!(partial.status, StatusCode::MULTI_STATUS);
    assert_eq!(linked(&partial.body).len(), 1);
    assert_eq!(partial.body["numErrors"], 2);
    let error = &partial.body["errors"][0];
    assert_eq!(error["status"], "error");
    assert_eq!(error["category"], "OBJECT_NOT_FOUND");
    assert_eq!(error["subCategory"], "crm.associations.NO_ASSOCIATIONS_FOUND");
    assert_eq!(error["message"], format!("No company is associated with contact {lonely}."));
    assert_eq!(error["context"]["fromObjectId"], json!([lonely]));
    let none = read(&s, "contacts", "companies", &[&lonely]).await;
    assert_eq!((none.status, none.body["results"].clone()), (StatusCode::MULTI_STATUS, json!([])));

    // Archived records drop out of reads and come back with a restore.
    s.call(Method::DELETE, &format!("/crm/v3/objects/companies/{globex}"), None).await;
    assert_eq!(s.sim.associations(1000, "contacts", &contact, "companies"), [acme.as_str()]);
    s.sim.restore(1000, "companies", &globex);
    assert_eq!(s.sim.associations(1000, "contacts", &contact, "companies"), [acme.as_str(), globex.as_str()]);

    // A merge moves the merged record's associations to the primary.
    s.sim.merge(1000, "companies", &globex, &acme);
    assert_eq!(s.sim.associations(1000, "contacts", &contact, "companies"), [globex.as_str()]);
    assert_eq!(s.sim.associations(1000, "deals", &deal, "companies"), [globex.as_str()]);
}

#[tokio::test]
async fn default_associations_are_created_and_removed_over_the_api() {
    let s = sim().await;
    let contact = create(&s, "contacts", json!({ "email": "ada@example.com" })).await;
    let company = create(&s, "companies", json!({ "name": "Acme" })).await;

    let path = format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}");
    let created = s.call(Method::PUT, &path, None).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["status"], "COMPLETE");
    assert_eq!(
        created.body["results"],
        json!([
            {
                "from": { "id": contact },
                "to": { "id": company },
                "associationSpec": { "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279 },
            },
            {
                "from": { "id": company },
                "to": { "id": contact },
                "associationSpec": { "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 280 },
            },
        ])
    );
    assert_eq!(s.sim.associations(1000, "companies", &company, "contacts"), [contact.as_str()]);
    assert_eq!(s.call(Method::PUT, &path, None).await.status, StatusCode::OK, "again is fine");

    let removed = s
        .call(Method::DELETE, &format!("/crm/v4/objects/companies/{company}/associations/contacts/{contact}"), None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert!(s.sim.associations(1000, "contacts", &contact, "companies").is_empty());
    assert_eq!(read(&s, "contacts", "companies", &[&contact]).await.status, StatusCode::MULTI_STATUS);

    // The date-versioned paths serve the same.
    let versioned = format!("/crm/objects/2026-03/contacts/{contact}/associations/default/companies/{company}");
    assert_eq!(s.call(Method::PUT, &versioned, None).await.status, StatusCode::OK);
    let read_versioned = s
        .post("/crm/associations/2026-03/contacts/companies/batch/read", json!({ "inputs": [{ "id": contact }] }))
        .await;
    assert_eq!(linked(&read_versioned.body), [pair(&contact, &[(&company, 279)])]);
    let versioned_delete = format!("/crm/objects/2026-03/contacts/{contact}/associations/companies/{company}");
    assert_eq!(s.call(Method::DELETE, &versioned_delete, None).await.status, StatusCode::NO_CONTENT);

    let missing = s
        .call(Method::PUT, &format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/424242"), None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["category"], "OBJECT_NOT_FOUND");
    let unsupported = read(&s, "line_items", "contacts", &["1"]).await;
    assert_eq!(unsupported.status, StatusCode::BAD_REQUEST);
    let inputs: Vec<Value> = (0..1001).map(|n| json!({ "id": n.to_string() })).collect();
    let too_many = s.post("/crm/v4/associations/contacts/companies/batch/read", json!({ "inputs": inputs })).await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn reads_need_the_read_scope_and_writes_the_write_scope_of_the_from_type() {
    let s = sim().await;
    let contact = create(&s, "contacts", json!({ "email": "ada@example.com" })).await;
    let company = create(&s, "companies", json!({ "name": "Acme" })).await;
    s.sim.associate(1000, "contacts", &contact, "companies", &company);
    let reader = s.sim.issue_tokens(1000, DEFAULT_CLIENT_ID, &["crm.objects.contacts.read"]).access_token;
    let body = json!({ "inputs": [{ "id": contact }] });

    let read = s
        .call_as(&reader, Method::POST, "/crm/v4/associations/contacts/companies/batch/read", Some(body.clone()))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let wrong_type =
        s.call_as(&reader, Method::POST, "/crm/v4/associations/companies/contacts/batch/read", Some(body)).await;
    assert_eq!(wrong_type.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong_type.body["category"], "MISSING_SCOPES");
    let write = s
        .call_as(
            &reader,
            Method::PUT,
            &format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}"),
            None,
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    let delete = s
        .call_as(
            &reader,
            Method::DELETE,
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            None,
        )
        .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    assert_eq!(s.sim.associations(1000, "contacts", &contact, "companies"), [company]);
}

#[tokio::test]
async fn association_changes_are_notified_from_both_sides() {
    let s = sim().await;
    let hook = Receiver::start().await;
    s.sim.subscribe_webhooks(
        DEFAULT_CLIENT_ID,
        &hook.url,
        &[
            Subscription::new("contact.associationChange"),
            Subscription::new("company.associationChange"),
            Subscription::new("deal.associationChange"),
            Subscription::new("line_item.associationChange"),
        ],
    );
    let contact = create(&s, "contacts", json!({ "email": "ada@example.com" })).await;
    let company = create(&s, "companies", json!({ "name": "Acme" })).await;
    let deal = create(&s, "deals", json!({ "dealname": "Big" })).await;
    let widget = create(&s, "line_items", json!({ "name": "Widget" })).await;

    let path = format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}");
    assert_eq!(s.call(Method::PUT, &path, None).await.status, StatusCode::OK);
    s.sim.dissociate(1000, "companies", &company, "contacts", &contact);
    let admin = s
        .call(
            Method::PUT,
            "/_sim/portals/1000/associations",
            Some(json!({ "from_type": "deals", "from_id": deal, "to_type": "line_items", "to_id": widget })),
        )
        .await;
    assert_eq!(admin.status, StatusCode::NO_CONTENT, "{}", admin.body);
    let removed = s
        .call(
            Method::PUT,
            "/_sim/portals/1000/associations",
            Some(json!({ "from_type": "deals", "from_id": deal, "to_type": "line_items", "to_id": widget, "remove": true })),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);

    let events = hook.events();
    let seen: Vec<(String, String, String, bool, String)> = events
        .iter()
        .map(|e| {
            assert_eq!(e["objectId"], e["fromObjectId"]);
            assert_eq!(e["isPrimaryAssociation"], false);
            (
                e["associationType"].as_str().unwrap().to_string(),
                e["fromObjectId"].to_string(),
                e["toObjectId"].to_string(),
                e["associationRemoved"].as_bool().unwrap(),
                e["changeSource"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let event = |kind: &str, from: &str, to: &str, removed: bool, source: &str| {
        (kind.to_string(), from.to_string(), to.to_string(), removed, source.to_string())
    };
    assert_eq!(
        seen,
        [
            event("CONTACT_TO_COMPANY", &contact, &company, false, "INTEGRATION"),
            event("COMPANY_TO_CONTACT", &company, &contact, false, "INTEGRATION"),
            event("COMPANY_TO_CONTACT", &company, &contact, true, "CRM_UI"),
            event("CONTACT_TO_COMPANY", &contact, &company, true, "CRM_UI"),
            event("DEAL_TO_LINE_ITEM", &deal, &widget, false, "CRM_UI"),
            event("LINE_ITEM_TO_DEAL", &widget, &deal, false, "CRM_UI"),
            event("DEAL_TO_LINE_ITEM", &deal, &widget, true, "CRM_UI"),
            event("LINE_ITEM_TO_DEAL", &widget, &deal, true, "CRM_UI"),
        ]
    );
    let subscription_types: Vec<&str> = events.iter().map(|e| e["subscriptionType"].as_str().unwrap()).collect();
    assert_eq!(&subscription_types[..2], ["contact.associationChange", "company.associationChange"]);
    assert_eq!(events[0]["sourceId"], s.sim.app_id(DEFAULT_CLIENT_ID).to_string());
}

#[tokio::test]
async fn links_are_made_and_removed_in_batches_with_each_versions_status_codes() {
    let s = sim().await;
    let ada = create(&s, "contacts", json!({ "email": "ada@example.com" })).await;
    let grace = create(&s, "contacts", json!({ "email": "grace@example.com" })).await;
    let acme = create(&s, "companies", json!({ "name": "Acme" })).await;
    let link = |from: &str, to: &str| json!({ "from": { "id": from }, "to": { "id": to } });

    let made = s
        .post(
            "/crm/v4/associations/contacts/companies/batch/associate/default",
            json!({ "inputs": [link(&ada, &acme), link(&grace, &acme), link(&grace, "424242")] }),
        )
        .await;
    assert_eq!(made.status, StatusCode::MULTI_STATUS, "{}", made.body);
    assert_eq!(made.body["results"].as_array().unwrap().len(), 4, "each link in both directions");
    assert_eq!(made.body["results"][0]["associationSpec"]["associationTypeId"], 279);
    let error = &made.body["errors"][0];
    assert_eq!(error["category"], "OBJECT_NOT_FOUND");
    assert_eq!(
        (error["context"]["fromObjectId"].clone(), error["context"]["toObjectId"].clone()),
        (json!([grace]), json!(["424242"]))
    );
    assert!(error["errors"].is_array() && error["links"].is_object(), "the spec's StandardError: {error}");
    assert_eq!(s.sim.associations(1000, "companies", &acme, "contacts"), [ada.as_str(), grace.as_str()]);

    let labelled = json!({ "inputs": [{
        "from": { "id": ada }, "to": { "id": acme },
        "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1 }],
    }] });
    let legacy = s.post("/crm/v4/associations/contacts/companies/batch/create", labelled.clone()).await;
    assert_eq!(legacy.status, StatusCode::CREATED, "{}", legacy.body);
    assert_eq!(legacy.body["results"][0]["labels"], json!(["Primary"]));
    let dated = s.post("/crm/associations/2026-03/contacts/companies/batch/create", labelled).await;
    assert_eq!(dated.status, StatusCode::OK, "{}", dated.body);
    let wrong_type = json!({ "inputs": [{
        "from": { "id": ada }, "to": { "id": acme },
        "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 280 }],
    }] });
    let refused = s.post("/crm/v4/associations/contacts/companies/batch/create", wrong_type).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "280 links companies to contacts, not the reverse");

    let unlink = json!({ "inputs": [{ "from": { "id": acme }, "to": [{ "id": ada }, { "id": "424242" }] }] });
    let removed = s.post("/crm/v4/associations/companies/contacts/batch/archive", unlink.clone()).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(s.sim.associations(1000, "contacts", &ada, "companies"), Vec::<String>::new());
    let dated = s.post("/crm/associations/2026-03/companies/contacts/batch/archive", unlink).await;
    assert_eq!((dated.status, dated.body["status"].clone()), (StatusCode::OK, json!("COMPLETE")));
}

#[tokio::test]
async fn one_records_associations_are_read_page_by_page() {
    let s = sim().await;
    let acme = create(&s, "companies", json!({ "name": "Acme" })).await;
    let mut people = Vec::new();
    for i in 0..5 {
        let person = create(&s, "contacts", json!({ "email": format!("p{i}@acme.com") })).await;
        s.sim.associate(1000, "companies", &acme, "contacts", &person);
        people.push(person);
    }
    let mut seen = Vec::new();
    let mut path = format!("/crm/v4/objects/companies/{acme}/associations/contacts?limit=2");
    loop {
        let page = s.call(Method::GET, &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for result in page.body["results"].as_array().unwrap() {
            assert_eq!(result["associationTypes"][0]["typeId"], 280);
            seen.push(result["toObjectId"].to_string());
        }
        match page.body["paging"]["next"]["after"].as_str() {
            Some(after) => {
                path = format!("/crm/v4/objects/companies/{acme}/associations/contacts?limit=2&after={after}")
            }
            None => break,
        }
    }
    assert_eq!(seen, people);
    let too_many =
        s.call(Method::GET, &format!("/crm/v4/objects/companies/{acme}/associations/contacts?limit=501"), None).await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn records_are_created_with_their_links_and_read_with_them_on_request() {
    let s = sim().await;
    let acme = create(&s, "companies", json!({ "name": "Acme" })).await;
    let unlabeled = |id: &str, type_id: u32| json!({ "to": { "id": id }, "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id }] });
    let ada = s
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": "ada@example.com" }, "associations": [unlabeled(&acme, 279)] }),
        )
        .await;
    assert_eq!(ada.status, StatusCode::CREATED, "{}", ada.body);
    let ada = ada.body["id"].as_str().unwrap().to_string();
    assert_eq!(s.sim.associations(1000, "companies", &acme, "contacts"), [ada.as_str()]);

    let batch = s
        .post(
            "/crm/v3/objects/deals/batch/create",
            json!({ "inputs": [
                { "properties": { "dealname": "Big" }, "associations": [unlabeled(&ada, 3), unlabeled(&acme, 5)], "objectWriteTraceId": "a" },
                { "properties": { "dealname": "Lost" }, "associations": [unlabeled("424242", 3)], "objectWriteTraceId": "b" },
                { "properties": { "dealname": "Odd" }, "associations": [unlabeled(&ada, 279)], "objectWriteTraceId": "c" },
            ] }),
        )
        .await;
    assert_eq!(batch.status, StatusCode::MULTI_STATUS, "{}", batch.body);
    assert_eq!(batch.body["numErrors"], 2, "a missing record and a type that does not start at deals");
    let deal = batch.body["results"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(s.sim.associations(1000, "deals", &deal, "companies"), [acme.as_str()], "a primary type links too");

    let got = s
        .call(Method::GET, &format!("/crm/v3/objects/contacts/{ada}?associations=companies,deals,tickets"), None)
        .await;
    assert_eq!(
        got.body["associations"]["companies"]["results"],
        json!([{ "id": acme, "type": "contact_to_company_unlabeled" }])
    );
    assert_eq!(got.body["associations"]["deals"]["results"], json!([{ "id": deal, "type": "contact_to_deal" }]));
    assert!(got.body["associations"].get("tickets").is_none(), "unknown types are ignored");
    let plain = s.call(Method::GET, &format!("/crm/v3/objects/contacts/{ada}"), None).await;
    assert!(plain.body.get("associations").is_none(), "only on request");
    let listed = s.call(Method::GET, "/crm/v3/objects/companies?associations=contacts", None).await;
    assert_eq!(listed.body["results"][0]["associations"]["contacts"]["results"][0]["id"], ada.as_str());
}
