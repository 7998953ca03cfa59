//! CRM records and properties: CRUD, paging, batches with 207s, validation and uniqueness.

mod common;

use common::{sim, sim_with};
use hubspot_sim::{OmittedOnUpsert, SimConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONTACTS: &str = "/crm/v3/objects/contacts";

fn ids(values: &Value) -> Vec<String> {
    values.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn records_are_created_read_updated_and_archived() {
    let s = sim().await;
    let created = s.post(CONTACTS, json!({ "properties": { "email": "Ada@Example.com", "num_employees": 12 } })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let props = &created.body["properties"];
    assert_eq!(props["email"], "ada@example.com");
    assert_eq!(props["num_employees"], "12", "values are strings");
    assert_eq!(props["hs_object_id"], id.as_str());
    assert_eq!(props["createdate"], props["lastmodifieddate"]);
    assert!(props["createdate"].as_str().unwrap().parse::<i64>().is_ok(), "ms-epoch strings");
    assert!(created.body["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(created.body["archived"], false);

    let got = s.get(&format!("{CONTACTS}/{id}")).await;
    let defaults: Vec<&String> = got.body["properties"].as_object().unwrap().keys().collect();
    assert_eq!(defaults, ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"]);
    assert_eq!(got.body["properties"]["firstname"], Value::Null);
    let by_email = s.get(&format!("{CONTACTS}/ADA@example.com?idProperty=email&properties=num_employees")).await;
    assert_eq!(by_email.body["id"], id.as_str());
    assert_eq!(by_email.body["properties"]["num_employees"], "12");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let updated = s
        .call(Method::PATCH, &format!("{CONTACTS}/{id}"), Some(json!({ "properties": { "num_employees": "" } })))
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert!(updated.body["properties"].get("num_employees").is_none(), "\"\" clears");
    assert!(updated.body["updatedAt"].as_str() > created.body["updatedAt"].as_str());
    let record = s.sim.record(1000, "contacts", &id).unwrap();
    assert_eq!(record["version"], 2);
    let history = record["propertiesWithHistory"]["num_employees"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["value"], "");
    assert_eq!(history[0]["sourceType"], "INTEGRATION");

    assert_eq!(s.call(Method::DELETE, &format!("{CONTACTS}/{id}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.call(Method::DELETE, &format!("{CONTACTS}/424242"), None).await.status, StatusCode::NO_CONTENT);
    let gone = s.get(&format!("{CONTACTS}/{id}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["category"], "OBJECT_NOT_FOUND");
    let archived = s.get(&format!("{CONTACTS}/{id}?archived=true")).await;
    assert_eq!(archived.body["archived"], true);
    assert!(archived.body["archivedAt"].is_string());
}

#[tokio::test]
async fn lists_page_by_record_id() {
    let s = sim().await;
    for i in 0..25 {
        s.sim.seed(1000, "contacts", json!({ "email": format!("p{i}@example.com") }));
    }
    let first = s.get(&format!("{CONTACTS}?properties=email")).await;
    assert_eq!(first.body["results"].as_array().unwrap().len(), 10, "default limit");
    let after = first.body["paging"]["next"]["after"].as_str().unwrap().to_string();
    assert!(first.body["paging"]["next"]["link"].as_str().unwrap().contains(&format!("after={after}")));
    let second = s.get(&format!("{CONTACTS}?limit=10&after={after}&properties=email,firstname")).await;
    assert_eq!(ids(&second.body["results"])[0], after);
    assert_eq!(second.body["results"][0]["properties"]["firstname"], Value::Null);
    let last =
        s.get(&format!("{CONTACTS}?limit=10&after={}", second.body["paging"]["next"]["after"].as_str().unwrap())).await;
    assert_eq!(last.body["results"].as_array().unwrap().len(), 5);
    assert!(last.body.get("paging").is_none(), "no paging on the last page");
    let capped = s.get(&format!("{CONTACTS}?limit=500")).await;
    assert_eq!(capped.body["results"].as_array().unwrap().len(), 25);

    // Type ids, singular names and the date-versioned paths reach the same records.
    for path in [
        "/crm/v3/objects/0-1?limit=100",
        "/crm/v3/objects/contact?limit=100",
        "/crm/objects/2026-03/contacts?limit=100",
    ] {
        assert_eq!(s.get(path).await.body["results"].as_array().unwrap().len(), 25, "{path}");
    }
    assert_eq!(s.get("/crm/v3/objects/widgets").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn invalid_values_are_refused_the_hubspot_way() {
    let s = sim().await;
    let cases = [
        ("shoe_size", json!("9"), "PROPERTY_DOESNT_EXIST"),
        ("hs_object_id", json!("1"), "READ_ONLY_VALUE"),
        ("hs_analytics_num_visits", json!("1"), "READ_ONLY_VALUE"),
        ("lifecyclestage", json!("prospect"), "INVALID_OPTION"),
        ("hs_buying_role", json!("CHAMPION;ASTRONAUT"), "INVALID_OPTION"),
        ("num_employees", json!("many"), "INVALID_INTEGER"),
        ("hs_email_optout", json!("yes"), "INVALID_BOOLEAN"),
        ("renewal_date", json!("1700000000001"), "INVALID_DATE"),
        ("email", json!("not-an-email"), "INVALID_EMAIL"),
    ];
    for (name, value, code) in cases {
        let reply = s.post(CONTACTS, json!({ "properties": { name: value } })).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(reply.body["status"], "error");
        assert_eq!(reply.body["category"], "VALIDATION_ERROR");
        assert_eq!(reply.body["errors"][0]["code"], code, "{name}: {}", reply.body);
        assert_eq!(reply.body["errors"][0]["context"]["propertyName"], json!([name]));
        let message = reply.body["message"].as_str().unwrap();
        let embedded: Value = serde_json::from_str(&message["Property values were not valid: ".len()..]).unwrap();
        assert_eq!(embedded[0]["error"], code);
        assert_eq!(embedded[0]["name"], name);
    }
    let fine = json!({ "properties": {
        "hs_buying_role": "CHAMPION;END_USER", "hs_email_optout": "TRUE", "renewal_date": "2026-01-01",
        "num_employees": 3.5, "lifecyclestage": "customer" } });
    let ok = s.post(CONTACTS, fine).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["properties"]["hs_email_optout"], "true");

    let deal = s.post("/crm/v3/objects/deals", json!({ "properties": { "days_to_close": "3" } })).await;
    assert_eq!(deal.body["errors"][0]["code"], "READ_ONLY_VALUE");
    let deal = s
        .post(
            "/crm/v3/objects/0-3",
            json!({ "properties": { "dealname": "Big", "closedate": "2026-12-01T10:00:00Z" } }),
        )
        .await;
    assert_eq!(deal.status, StatusCode::CREATED);
    assert!(deal.body["properties"]["hs_lastmodifieddate"].is_string());
    assert!(deal.body["properties"].get("lastmodifieddate").is_none());
}

#[tokio::test]
async fn emails_are_unique() {
    let s = sim().await;
    let first = s.post(CONTACTS, json!({ "properties": { "email": "one@example.com" } })).await;
    let id = first.body["id"].as_str().unwrap();
    let again = s.post(CONTACTS, json!({ "properties": { "email": "ONE@example.com" } })).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["category"], "CONFLICT");
    assert_eq!(again.body["message"], format!("Contact already exists. Existing ID: {id}"));

    let second = s.post(CONTACTS, json!({ "properties": { "email": "two@example.com" } })).await;
    let path = format!("{CONTACTS}/{}", second.body["id"].as_str().unwrap());
    let clash = s.call(Method::PATCH, &path, Some(json!({ "properties": { "email": "one@example.com" } }))).await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    let own = s.call(Method::PATCH, &path, Some(json!({ "properties": { "email": "two@example.com" } }))).await;
    assert_eq!(own.status, StatusCode::OK);
}

#[tokio::test]
async fn batches_report_per_input_errors_with_207() {
    let s = sim().await;
    let traced = s
        .post(
            &format!("{CONTACTS}/batch/create"),
            json!({ "inputs": [
                { "properties": { "email": "a@example.com" }, "objectWriteTraceId": "0" },
                { "properties": { "email": "b@example.com", "nope": "1" }, "objectWriteTraceId": "1" },
                { "properties": { "email": "a@example.com" }, "objectWriteTraceId": "2" },
            ] }),
        )
        .await;
    assert_eq!(traced.status, StatusCode::MULTI_STATUS);
    assert_eq!(traced.body["status"], "COMPLETE");
    assert_eq!(traced.body["numErrors"], 2);
    assert_eq!(traced.body["results"][0]["objectWriteTraceId"], "0");
    let errors = traced.body["errors"].as_array().unwrap();
    assert_eq!(errors[0]["status"], "error");
    assert_eq!(errors[0]["category"], "VALIDATION_ERROR");
    assert_eq!(errors[0]["context"]["objectWriteTraceId"], json!(["1"]));
    assert_eq!(errors[1]["category"], "CONFLICT");
    assert_eq!(errors[1]["context"]["objectWriteTraceId"], json!(["2"]));
    for key in ["startedAt", "completedAt"] {
        assert!(traced.body[key].is_string());
    }

    // Without trace ids: all or nothing.
    let atomic = s
        .post(
            &format!("{CONTACTS}/batch/create"),
            json!({ "inputs": [ { "properties": { "email": "c@example.com" } }, { "properties": { "email": "a@example.com" } } ] }),
        )
        .await;
    assert_eq!(atomic.status, StatusCode::CONFLICT);
    assert_eq!(s.sim.records(1000, "contacts").len(), 1);
    let fine = s
        .post(
            &format!("{CONTACTS}/batch/create"),
            json!({ "inputs": [ { "properties": { "email": "c@example.com" } } ] }),
        )
        .await;
    assert_eq!(fine.status, StatusCode::CREATED);
    let a = traced.body["results"][0]["id"].as_str().unwrap().to_string();
    let c = fine.body["results"][0]["id"].as_str().unwrap().to_string();

    let update = s
        .post(
            &format!("{CONTACTS}/batch/update"),
            json!({ "inputs": [
                { "id": a, "properties": { "firstname": "A" } },
                { "id": "777777", "properties": { "firstname": "X" } },
                { "id": c, "properties": { "lifecyclestage": "bogus" } },
            ] }),
        )
        .await;
    assert_eq!(update.status, StatusCode::MULTI_STATUS);
    assert_eq!(update.body["results"][0]["properties"]["firstname"], "A");
    assert_eq!(update.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(update.body["errors"][0]["context"]["ids"], json!(["777777"]));
    assert_eq!(update.body["errors"][1]["context"]["ids"], json!([c.clone()]));
    let all_good = s
        .post(
            &format!("{CONTACTS}/batch/update"),
            json!({ "inputs": [ { "id": c, "properties": { "firstname": "C" } } ] }),
        )
        .await;
    assert_eq!(all_good.status, StatusCode::OK);
    let duplicate = s
        .post(
            &format!("{CONTACTS}/batch/update"),
            json!({ "inputs": [ { "id": c, "properties": {} }, { "id": c, "properties": {} } ] }),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::BAD_REQUEST);

    let read = s
        .post(
            &format!("{CONTACTS}/batch/read"),
            json!({ "inputs": [ { "id": a }, { "id": "1" }, { "id": "2" } ], "properties": ["firstname"], "propertiesWithHistory": ["firstname"] }),
        )
        .await;
    assert_eq!(read.status, StatusCode::MULTI_STATUS);
    assert_eq!(read.body["errors"][0]["context"]["ids"], json!(["1", "2"]));
    assert_eq!(read.body["results"][0]["propertiesWithHistory"]["firstname"][0]["value"], "A");
    let by_email = s
        .post(
            &format!("{CONTACTS}/batch/read"),
            json!({ "idProperty": "email", "inputs": [ { "id": "C@example.com" } ] }),
        )
        .await;
    assert_eq!(by_email.status, StatusCode::OK);
    assert_eq!(ids(&by_email.body["results"]), vec![c.clone()]);
    let none = s.post(&format!("{CONTACTS}/batch/read"), json!({ "inputs": [ { "id": "5" } ] })).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);

    let archive =
        s.post(&format!("{CONTACTS}/batch/archive"), json!({ "inputs": [ { "id": a }, { "id": "5" } ] })).await;
    assert_eq!(archive.status, StatusCode::NO_CONTENT);
    assert_eq!(s.get(&format!("{CONTACTS}/{a}")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn batches_take_at_most_a_hundred_inputs() {
    let s = sim().await;
    for op in ["read", "create", "update", "upsert", "archive"] {
        let inputs: Vec<Value> = (0..101).map(|i| json!({ "id": i.to_string(), "properties": {} })).collect();
        let reply = s.post(&format!("{CONTACTS}/batch/{op}"), json!({ "inputs": inputs })).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{op}");
        assert_eq!(reply.body["category"], "VALIDATION_ERROR");
        let inputs: Vec<Value> = (0..100)
            .map(|i| json!({ "id": format!("u{i}@example.com"), "idProperty": "email", "properties": {} }))
            .collect();
        let reply = s.post(&format!("{CONTACTS}/batch/{op}"), json!({ "inputs": inputs })).await;
        assert_ne!(reply.status, StatusCode::BAD_REQUEST, "{op}: {}", reply.body);
    }
}

#[tokio::test]
async fn upserts_create_or_update_by_a_unique_property() {
    let s = sim().await;
    let existing =
        s.sim.seed(1000, "contacts", json!({ "email": "old@example.com", "firstname": "Old", "jobtitle": "CTO" }));
    let upsert = s
        .post(
            &format!("{CONTACTS}/batch/upsert"),
            json!({ "inputs": [
                { "id": "OLD@example.com", "idProperty": "email", "properties": { "firstname": "Renewed" } },
                { "id": "new@example.com", "idProperty": "email", "properties": { "firstname": "New" }, "objectWriteTraceId": "t" },
                { "id": "bad@example.com", "idProperty": "email", "properties": { "lifecyclestage": "x" } },
            ] }),
        )
        .await;
    assert_eq!(upsert.status, StatusCode::MULTI_STATUS, "{}", upsert.body);
    let results = upsert.body["results"].as_array().unwrap();
    assert_eq!(results[0]["id"], existing.as_str());
    assert_eq!(results[0]["new"], false);
    assert_eq!(results[0]["properties"]["jobtitle"], "CTO", "omitted properties stay by default");
    assert_eq!(results[1]["new"], true);
    assert_eq!(results[1]["properties"]["email"], "new@example.com");
    assert_eq!(results[1]["objectWriteTraceId"], "t");
    assert_eq!(upsert.body["errors"][0]["context"]["ids"], json!(["bad@example.com"]));

    let not_unique = s
        .post(
            &format!("{CONTACTS}/batch/upsert"),
            json!({ "inputs": [ { "id": "x", "idProperty": "firstname", "properties": {} } ] }),
        )
        .await;
    assert_eq!(not_unique.status, StatusCode::BAD_REQUEST);

    // A custom unique property works for any object type.
    let property = json!({ "name": "external_id", "label": "External id", "type": "string", "fieldType": "text",
        "groupName": "companyinformation", "hasUniqueValue": true });
    assert_eq!(s.post("/crm/v3/properties/companies", property).await.status, StatusCode::CREATED);
    let body =
        json!({ "inputs": [ { "id": "ext-1", "idProperty": "external_id", "properties": { "name": "Acme" } } ] });
    let first = s.post("/crm/v3/objects/companies/batch/upsert", body.clone()).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["results"][0]["new"], true);
    let second = s.post("/crm/v3/objects/companies/batch/upsert", body).await;
    assert_eq!(second.body["results"][0]["new"], false);
    assert_eq!(second.body["results"][0]["id"], first.body["results"][0]["id"]);

    let clearing = sim_with(SimConfig { email_upsert_omitted: OmittedOnUpsert::Clear, ..SimConfig::default() }).await;
    clearing.sim.seed(1000, "contacts", json!({ "email": "old@example.com", "firstname": "Old", "jobtitle": "CTO" }));
    let upsert = clearing
        .post(
            &format!("{CONTACTS}/batch/upsert"),
            json!({ "inputs": [ { "id": "old@example.com", "idProperty": "email", "properties": { "firstname": "Renewed" } } ] }),
        )
        .await;
    assert!(upsert.body["results"][0]["properties"].get("jobtitle").is_none(), "{}", upsert.body);
}

#[tokio::test]
async fn user_edits_and_seeds_are_stamped_with_their_source() {
    let s = sim().await;
    let id = s.sim.seed(
        1000,
        "contacts",
        json!({ "email": "s@example.com", "createdate": "1600000000000", "lastmodifieddate": "1600000000000" }),
    );
    let seeded = s.sim.record(1000, "contacts", &id).unwrap();
    assert_eq!(seeded["createdAt"], "2020-09-13T12:26:40.000Z");
    assert_eq!(seeded["propertiesWithHistory"]["email"][0]["sourceType"], "IMPORT");

    s.sim.edit_as_user(1000, "contacts", &id, json!({ "firstname": "Sam" }));
    let edited = s.sim.record(1000, "contacts", &id).unwrap();
    let entry = &edited["propertiesWithHistory"]["firstname"][0];
    assert_eq!(entry["sourceType"], "CRM_UI");
    assert!(entry["sourceId"].as_str().unwrap().starts_with("userId:"));
    assert!(edited["properties"]["lastmodifieddate"].as_str().unwrap() > "1600000000000");

    s.call(Method::PATCH, &format!("{CONTACTS}/{id}"), Some(json!({ "properties": { "firstname": "Samantha" } })))
        .await;
    let written = s.sim.record(1000, "contacts", &id).unwrap();
    let entry = &written["propertiesWithHistory"]["firstname"][0];
    assert_eq!(entry["sourceType"], "INTEGRATION");
    assert_eq!(entry["value"], "Samantha");
    assert_eq!(written["propertiesWithHistory"]["firstname"].as_array().unwrap().len(), 2);
    let history = s.get(&format!("{CONTACTS}/{id}?propertiesWithHistory=firstname")).await;
    assert_eq!(history.body["propertiesWithHistory"]["firstname"][1]["sourceType"], "CRM_UI");
}

#[tokio::test]
async fn properties_are_listed_created_and_protected() {
    let s = sim().await;
    let all = s.get("/crm/v3/properties/contacts").await;
    assert!(all.body.get("paging").is_none());
    let list = all.body["results"].as_array().unwrap();
    let find = |name: &str| list.iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!(find("email")["hasUniqueValue"], true);
    assert_eq!(find("hs_lead_status")["fieldType"], "select");
    assert_eq!(find("hs_buying_role")["fieldType"], "checkbox");
    assert_eq!(find("hs_email_optout")["type"], "bool");
    assert_eq!(find("createdate")["modificationMetadata"]["readOnlyValue"], true);
    assert_eq!(find("renewal_date")["type"], "date");
    let days = s.get("/crm/v3/properties/deals/days_to_close").await;
    assert_eq!(days.body["calculated"], true);
    assert_eq!(days.body["modificationMetadata"]["readOnlyValue"], true);
    assert_eq!(s.get("/crm/v3/properties/companies/hs_lastmodifieddate").await.status, StatusCode::OK);

    let missing = json!({ "name": "tier", "label": "Tier", "type": "enumeration", "fieldType": "select" });
    assert_eq!(s.post("/crm/v3/properties/contacts", missing).await.status, StatusCode::BAD_REQUEST);
    let no_options = json!({ "name": "tier", "label": "Tier", "type": "enumeration", "fieldType": "select", "groupName": "contactinformation" });
    assert_eq!(s.post("/crm/v3/properties/contacts", no_options).await.status, StatusCode::BAD_REQUEST);
    let tier = json!({ "name": "tier", "label": "Tier", "type": "enumeration", "fieldType": "select",
        "groupName": "contactinformation", "options": [ { "label": "Gold", "value": "gold" } ] });
    let created = s.post("/crm/v3/properties/contacts", tier.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["options"][0]["hidden"], false);
    assert_eq!(created.body["hubspotDefined"], false);
    let again = s.post("/crm/v3/properties/contacts", tier).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["category"], "CONFLICT");
    assert_eq!(s.get("/crm/v3/properties/contacts/nothing").await.status, StatusCode::NOT_FOUND);

    let patched = s
        .call(
            Method::PATCH,
            "/crm/v3/properties/contacts/tier",
            Some(json!({ "options": [ { "label": "Gold", "value": "gold" }, { "label": "Silver", "value": "silver" } ] })),
        )
        .await;
    assert_eq!(patched.body["options"].as_array().unwrap().len(), 2);
    assert_eq!(s.post(CONTACTS, json!({ "properties": { "tier": "silver" } })).await.status, StatusCode::CREATED);
    assert_eq!(s.call(Method::DELETE, "/crm/v3/properties/contacts/email", None).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.call(Method::DELETE, "/crm/v3/properties/contacts/tier", None).await.status, StatusCode::NO_CONTENT);
    let after = s.post(CONTACTS, json!({ "properties": { "tier": "gold" } })).await;
    assert_eq!(after.body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
}

#[tokio::test]
async fn search_filters_sorts_and_pages() {
    let s = sim().await;
    for i in 0..30 {
        let modified = (1_700_000_000_000i64 + i * 60_000).to_string();
        s.sim.seed(
            1000,
            "contacts",
            json!({ "email": format!("s{i}@example.com"), "firstname": if i % 2 == 0 { "Even" } else { "Odd" },
                    "lastmodifieddate": modified }),
        );
    }
    let search = |body: Value| s.post("/crm/v3/objects/contacts/search", body);
    let even = search(json!({ "filterGroups": [ { "filters": [ { "propertyName": "firstname", "operator": "EQ", "value": "even" } ] } ],
        "properties": ["email"], "limit": 10 }))
    .await;
    assert_eq!(even.status, StatusCode::OK);
    assert_eq!(even.body["total"], 15);
    assert_eq!(even.body["paging"]["next"]["after"], "10");
    assert!(even.headers.get("x-hubspot-ratelimit-max").is_none(), "search has no burst headers");

    let window = search(json!({
        "filterGroups": [ { "filters": [ { "propertyName": "lastmodifieddate", "operator": "BETWEEN",
            "value": "1700000060000", "highValue": "2023-11-14T22:16:20Z" } ] } ],
        "sorts": [ { "propertyName": "lastmodifieddate", "direction": "DESCENDING" } ] }))
    .await;
    assert_eq!(window.body["total"], 3, "{}", window.body);
    assert_eq!(window.body["results"][0]["properties"]["email"], "s3@example.com");
    let ascending = search(json!({ "sorts": ["-createdate"], "query": "s2", "limit": 200 })).await;
    assert_eq!(ascending.body["total"], 11, "s2 and s20..s29");

    let either = search(json!({ "filterGroups": [
        { "filters": [ { "propertyName": "email", "operator": "IN", "values": ["s1@example.com", "s2@example.com"] } ] },
        { "filters": [ { "propertyName": "email", "operator": "EQ", "value": "S29@example.com" } ] } ] }))
    .await;
    assert_eq!(either.body["total"], 3);

    // Searches are limited to five a second per portal: wait out the window between rounds.
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(1100));
    pause().await;
    assert_eq!(search(json!({ "limit": 201 })).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(search(json!({ "after": "10000" })).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(search(json!({ "sorts": ["email", "firstname"] })).await.status, StatusCode::BAD_REQUEST);
    let filters: Vec<Value> = (0..7).map(|_| json!({ "propertyName": "email", "operator": "HAS_PROPERTY" })).collect();
    assert_eq!(search(json!({ "filterGroups": [ { "filters": filters } ] })).await.status, StatusCode::BAD_REQUEST);

    pause().await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(search(json!({})).await);
    }
    let limited = statuses.iter().find(|r| r.status == StatusCode::TOO_MANY_REQUESTS).expect("the search limit hit");
    assert_eq!(limited.body["policyName"], "SECONDLY");
}

/// Lookups by unique value go through an index; it must follow every write, archive and new
/// unique property.
#[tokio::test]
async fn unique_values_follow_writes_archives_and_new_unique_properties() {
    let s = sim().await;
    let upsert_path = format!("{CONTACTS}/batch/upsert");
    let upsert = |email: &str| {
        let body = json!({ "inputs": [ { "id": email, "idProperty": "email", "properties": { "firstname": "X" } } ] });
        s.post(&upsert_path, body)
    };
    let by_email = |email: &str| {
        let path = format!("{CONTACTS}/{email}?idProperty=email");
        let s = &s;
        async move { s.get(&path).await }
    };

    // An email change frees the old email for a new record.
    let first = upsert("a@example.com").await;
    assert_eq!(first.body["results"][0]["new"], true, "{}", first.body);
    let first_id = first.body["results"][0]["id"].as_str().unwrap().to_string();
    let moved = s
        .call(
            Method::PATCH,
            &format!("{CONTACTS}/{first_id}"),
            Some(json!({ "properties": { "email": "b@example.com" } })),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(by_email("b@example.com").await.body["id"], first_id.as_str());
    let taken = upsert("A@Example.com").await;
    assert_eq!(taken.body["results"][0]["new"], true, "the old email is free");
    let second_id = taken.body["results"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(second_id, first_id);
    assert_eq!(upsert("b@example.com").await.body["results"][0]["id"], first_id.as_str(), "the new email finds it");

    // Clearing an email frees it too; so does a change by a person in HubSpot.
    let cleared =
        s.call(Method::PATCH, &format!("{CONTACTS}/{second_id}"), Some(json!({ "properties": { "email": "" } }))).await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert_eq!(by_email("a@example.com").await.status, StatusCode::NOT_FOUND);
    let third = s.post(CONTACTS, json!({ "properties": { "email": "a@example.com" } })).await;
    assert_eq!(third.status, StatusCode::CREATED, "{}", third.body);
    let third_id = third.body["id"].as_str().unwrap().to_string();
    s.sim.edit_as_user(1000, "contacts", &third_id, json!({ "email": "c@example.com" }));
    assert_eq!(by_email("c@example.com").await.body["id"], third_id.as_str());
    assert_eq!(by_email("a@example.com").await.status, StatusCode::NOT_FOUND);
    let clash = s
        .call(
            Method::PATCH,
            &format!("{CONTACTS}/{second_id}"),
            Some(json!({ "properties": { "email": "c@example.com" } })),
        )
        .await;
    assert_eq!(clash.body["message"], format!("Contact already exists. Existing ID: {third_id}"));

    // Batch update keyed by email, changing the email.
    let renamed = s
        .post(
            &format!("{CONTACTS}/batch/update"),
            json!({ "inputs": [ { "id": "c@example.com", "idProperty": "email", "properties": { "email": "d@example.com" } } ] }),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(by_email("d@example.com").await.body["id"], third_id.as_str());
    assert_eq!(by_email("c@example.com").await.status, StatusCode::NOT_FOUND);

    // Archived records' emails are free; the archived record keeps its value.
    assert_eq!(s.call(Method::DELETE, &format!("{CONTACTS}/{first_id}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(by_email("b@example.com").await.status, StatusCode::NOT_FOUND);
    let reborn = upsert("b@example.com").await;
    assert_eq!(reborn.body["results"][0]["new"], true);
    let reborn_id = reborn.body["results"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(reborn_id, first_id);
    assert_eq!(by_email("b@example.com").await.body["id"], reborn_id.as_str());
    let archived = s.get(&format!("{CONTACTS}/{first_id}?archived=true&properties=email")).await;
    assert_eq!(archived.body["properties"]["email"], "b@example.com");
    let seeded = s.sim.seed(1000, "contacts", json!({ "email": "d2@example.com" }));
    assert_eq!(by_email("d2@example.com").await.body["id"], seeded.as_str());

    // Lookups by a property that is not unique still work (by scan).
    let by_name = s.get(&format!("{CONTACTS}/X?idProperty=firstname")).await;
    assert_eq!(by_name.body["id"], second_id.as_str(), "the lowest id holding the value");

    // A unique property created after records hold values (left by an archived property of the
    // same name) is found at once; duplicates from before answer the lowest id, as a scan would.
    let code = |unique: bool| {
        json!({ "name": "code", "label": "Code", "type": "string", "fieldType": "text",
            "groupName": "companyinformation", "hasUniqueValue": unique })
    };
    const COMPANIES: &str = "/crm/v3/objects/companies";
    assert_eq!(s.post("/crm/v3/properties/companies", code(false)).await.status, StatusCode::CREATED);
    let mut companies = Vec::new();
    for value in ["k1", "k2", "k1", "k3"] {
        let created = s.post(COMPANIES, json!({ "properties": { "code": value } })).await;
        companies.push(created.body["id"].as_str().unwrap().to_string());
    }
    s.call(Method::DELETE, &format!("{COMPANIES}/{}", companies[3]), None).await;
    assert_eq!(s.call(Method::DELETE, "/crm/v3/properties/companies/code", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.post("/crm/v3/properties/companies", code(true)).await.status, StatusCode::CREATED);
    let read = |keys: &[&str]| {
        let inputs: Vec<Value> = keys.iter().map(|k| json!({ "id": k })).collect();
        let s = &s;
        async move {
            let body = json!({ "idProperty": "code", "properties": ["code"], "inputs": inputs });
            s.post(&format!("{COMPANIES}/batch/read"), body).await
        }
    };
    let found = read(&["k1", "k2", "k3"]).await;
    assert_eq!(found.status, StatusCode::MULTI_STATUS, "{}", found.body);
    assert_eq!(ids(&found.body["results"]), [companies[0].clone(), companies[1].clone()]);
    assert_eq!(found.body["errors"][0]["context"]["ids"], json!(["k3"]), "k3 is on an archived record");
    let conflict = s.post(COMPANIES, json!({ "properties": { "code": "k2" } })).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert!(conflict.body["message"].as_str().unwrap().ends_with(&format!("Existing ID: {}", companies[1])));

    // Writes after the property exists keep it current.
    let recoded = s
        .call(Method::PATCH, &format!("{COMPANIES}/{}", companies[1]), Some(json!({ "properties": { "code": "k4" } })))
        .await;
    assert_eq!(recoded.status, StatusCode::OK);
    let upserted = s
        .post(
            &format!("{COMPANIES}/batch/upsert"),
            json!({ "inputs": [ { "id": "k5", "idProperty": "code", "properties": { "name": "Five" } } ] }),
        )
        .await;
    let five = upserted.body["results"][0]["id"].as_str().unwrap().to_string();
    let found = read(&["k4", "k5", "k2"]).await;
    assert_eq!(ids(&found.body["results"]), [companies[1].clone(), five]);
    assert_eq!(found.body["errors"][0]["context"]["ids"], json!(["k2"]));
}

#[tokio::test]
async fn records_are_merged_through_the_public_api() {
    let s = sim().await;
    let keep = s.post(CONTACTS, json!({ "properties": { "email": "ada@example.com" } })).await.body["id"].clone();
    let twin = s.post(CONTACTS, json!({ "properties": { "email": "ada@work.example.com", "firstname": "Ada" } })).await;
    let twin = twin.body["id"].clone();
    let merged =
        s.post(&format!("{CONTACTS}/merge"), json!({ "primaryObjectId": keep, "objectIdToMerge": twin })).await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    assert_eq!(merged.body["id"], keep, "the primary keeps its id");
    assert_eq!(merged.body["properties"]["firstname"], "Ada", "values it lacked come from the merged record");
    let gone = s.get(&format!("{CONTACTS}/{}", twin.as_str().unwrap())).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let again = s.post(&format!("{CONTACTS}/merge"), json!({ "primaryObjectId": keep, "objectIdToMerge": twin })).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "the merged record is no longer live");
}

#[tokio::test]
async fn an_unknown_route_is_a_404_in_hubspots_shape_and_the_connection_stays_usable() {
    let s = sim().await;
    let big = "x".repeat(200_000);
    let reply = s.post("/crm/v3/no-such-api", json!({ "padding": big })).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        (reply.body["status"].clone(), reply.body["category"].clone()),
        (json!("error"), json!("OBJECT_NOT_FOUND"))
    );
    let next = s.post(CONTACTS, json!({ "properties": { "email": "after@example.com" } })).await;
    assert_eq!(next.status, StatusCode::CREATED, "the same client goes on");
}
