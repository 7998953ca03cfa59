//! CRM search as large pulls use it: every operator, OR'ed groups of AND'ed filters, numeric
//! sorts on ids and modification times, `limit` and `after` up to the 10,000-result wall, its
//! own rate limit, the index delay, and bulk seeding of large portals.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::receiver::Receiver;
use common::{Sim, sim_with};
use hubspot_sim::{ALL_SCOPES, DEFAULT_CLIENT_ID, SEED_MANY_LIMIT, SimConfig, Subscription};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SEARCH: &str = "/crm/v3/objects/contacts/search";
/// An instant many records share, as after an import.
const T: i64 = 1_700_000_000_000;

/// Search's own limit raised, so tests can search as often as they like.
fn unthrottled() -> SimConfig {
    SimConfig { search_rate_limit_per_second: 100_000, ..SimConfig::default() }
}

/// One search page: total, the ids shown, the whole body.
struct Page {
    total: u64,
    ids: Vec<u64>,
    body: Value,
}

impl Page {
    fn emails(&self) -> Vec<&str> {
        self.body["results"].as_array().unwrap().iter().map(|r| r["properties"]["email"].as_str().unwrap()).collect()
    }

    fn next(&self) -> Option<&str> {
        self.body["paging"]["next"]["after"].as_str()
    }
}

async fn search_at(s: &Sim, path: &str, body: Value) -> Page {
    let reply = s.post(path, body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{body} → {}", reply.body);
    let ids = reply.body["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().parse().unwrap());
    Page { total: reply.body["total"].as_u64().unwrap(), ids: ids.collect(), body: reply.body }
}

async fn search(s: &Sim, body: Value) -> Page {
    search_at(s, SEARCH, body).await
}

fn filter(property: &str, operator: &str, value: impl Into<Value>) -> Value {
    json!({ "propertyName": property, "operator": operator, "value": value.into() })
}

fn between(property: &str, low: impl Into<Value>, high: impl Into<Value>) -> Value {
    json!({ "propertyName": property, "operator": "BETWEEN", "value": low.into(), "highValue": high.into() })
}

fn group(filters: Vec<Value>) -> Value {
    json!({ "filters": filters })
}

fn sorted(property: &str, descending: bool) -> Value {
    json!([{ "propertyName": property, "direction": if descending { "DESCENDING" } else { "ASCENDING" } }])
}

#[tokio::test]
async fn every_operator_filters_and_groups_or_while_filters_and() {
    let s = sim_with(unthrottled()).await;
    // (email, firstname, num_employees, lifecyclestage)
    let people = [
        ("a@example.com", Some("Ada"), Some("9"), Some("lead")),
        ("b@example.com", Some("Bob"), Some("10"), Some("customer")),
        ("c@example.com", Some("Cy"), Some("100"), Some("lead")),
        ("d@example.com", Some("ada"), None, Some("subscriber")),
        ("e@example.com", None, Some("25"), None),
    ];
    for (email, first, employees, stage) in people {
        let mut properties = json!({ "email": email });
        if let Some(first) = first {
            properties["firstname"] = json!(first);
        }
        if let Some(employees) = employees {
            properties["num_employees"] = json!(employees);
        }
        if let Some(stage) = stage {
            properties["lifecyclestage"] = json!(stage);
        }
        s.sim.seed(1000, "contacts", properties);
    }
    let emails = |filters: Vec<Value>| {
        let s = &s;
        async move {
            let page = search(
                s,
                json!({ "filterGroups": [group(filters)], "properties": ["email"], "limit": 200,
                "sorts": ["email"] }),
            )
            .await;
            page.emails().iter().map(|e| e.chars().next().unwrap()).collect::<String>()
        }
    };
    // Text compares case-insensitively; numbers as numbers ("9" < "10" < "100").
    assert_eq!(emails(vec![filter("firstname", "EQ", "ADA")]).await, "ad");
    assert_eq!(emails(vec![filter("firstname", "NEQ", "ada")]).await, "bce", "no value is not equal either");
    assert_eq!(emails(vec![filter("num_employees", "LT", "10")]).await, "a");
    assert_eq!(emails(vec![filter("num_employees", "LTE", "10")]).await, "ab");
    assert_eq!(emails(vec![filter("num_employees", "GT", "10")]).await, "ce");
    assert_eq!(emails(vec![filter("num_employees", "GTE", "10")]).await, "bce");
    assert_eq!(emails(vec![filter("num_employees", "EQ", 25)]).await, "e", "numbers may come as JSON numbers");
    assert_eq!(emails(vec![between("num_employees", "10", "25")]).await, "be", "both ends included");
    let one_of = |operator: &str, values: Value| json!({ "propertyName": "lifecyclestage", "operator": operator, "values": values });
    assert_eq!(emails(vec![one_of("IN", json!(["lead", "subscriber"]))]).await, "acd");
    assert_eq!(emails(vec![one_of("NOT_IN", json!(["lead", "subscriber"]))]).await, "be");
    let has = |operator: &str| json!({ "propertyName": "num_employees", "operator": operator });
    assert_eq!(emails(vec![has("HAS_PROPERTY")]).await, "abce");
    assert_eq!(emails(vec![has("NOT_HAS_PROPERTY")]).await, "d");

    // Filters of a group all apply; groups are alternatives.
    assert_eq!(emails(vec![filter("lifecyclestage", "EQ", "lead"), filter("num_employees", "GT", "50")]).await, "c");
    let either = search(
        &s,
        json!({ "filterGroups": [
            group(vec![filter("lifecyclestage", "EQ", "lead"), filter("num_employees", "GT", "50")]),
            group(vec![filter("firstname", "EQ", "bob")]),
            group(vec![filter("email", "EQ", "C@example.com")]),
        ], "properties": ["email"], "sorts": ["email"] }),
    )
    .await;
    assert_eq!(either.emails(), ["b@example.com", "c@example.com"], "a record matching two groups comes once");
    assert_eq!(either.total, 2);

    let unknown = s.post(SEARCH, json!({ "filterGroups": [group(vec![filter("email", "LIKE", "a")])] })).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    let no_high = json!({ "propertyName": "num_employees", "operator": "BETWEEN", "value": "1" });
    assert_eq!(s.post(SEARCH, json!({ "filterGroups": [group(vec![no_high])] })).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn ids_and_modification_times_sort_as_numbers_in_both_directions() {
    let s = sim_with(unthrottled()).await;
    // Ids run from 102 past 1,000, so text order would put "1000" before "999".
    let ids = s.sim.seed_many(
        1000,
        "contacts",
        (0..950).map(|i| json!({ "email": format!("n{i}@example.com"), "lastmodifieddate": (T + i).to_string() })),
    );
    assert_eq!(ids.len(), 950);
    assert!(ids.iter().any(|id| id.len() == 3) && ids.iter().any(|id| id.len() == 4));
    // Modification times of different lengths: 999999999999 is before 1000000000000.
    let early =
        s.sim.seed(1000, "contacts", json!({ "email": "early@example.com", "lastmodifieddate": "999999999999" }));

    for descending in [false, true] {
        for property in ["hs_object_id", "lastmodifieddate"] {
            // Without filters (every record is looked at) and with range filters (an index answers).
            let ranged = match property {
                "hs_object_id" => vec![filter("hs_object_id", "GTE", "0")],
                _ => vec![filter("lastmodifieddate", "GTE", "0")],
            };
            for groups in [json!([]), json!([group(ranged)])] {
                let mut seen = Vec::new();
                let mut after = "0".to_string();
                loop {
                    let page = search(
                        &s,
                        json!({ "filterGroups": groups, "sorts": sorted(property, descending), "limit": 200,
                            "after": after, "properties": ["lastmodifieddate"] }),
                    )
                    .await;
                    assert_eq!(page.total, 951);
                    seen.extend(page.body["results"].as_array().unwrap().iter().map(|r| {
                        let value = r["properties"][property].as_str().unwrap();
                        (value.parse::<i64>().unwrap(), r["id"].as_str().unwrap().parse::<u64>().unwrap())
                    }));
                    match page.next() {
                        Some(next) => after = next.to_string(),
                        None => break,
                    }
                }
                let mut expected = seen.clone();
                expected.sort();
                if descending {
                    expected.reverse();
                }
                assert_eq!(seen, expected, "{property} descending={descending} {groups}");
                assert_eq!(seen.len(), 951, "every record once");
                let first = if descending { seen.last() } else { seen.first() };
                if property == "lastmodifieddate" {
                    assert_eq!(first.unwrap().1.to_string(), early);
                }
            }
        }
    }

    // Companies keep the time in hs_lastmodifieddate.
    for (i, name) in ["Later", "Earlier"].iter().enumerate() {
        let at = if i == 0 { "1000000000000" } else { "999999999999" };
        s.sim.seed(1000, "companies", json!({ "name": name, "hs_lastmodifieddate": at }));
    }
    let companies = search_at(
        &s,
        "/crm/v3/objects/companies/search",
        json!({ "filterGroups": [group(vec![filter("hs_lastmodifieddate", "LTE", "1000000000000")])],
            "sorts": sorted("hs_lastmodifieddate", false), "properties": ["name"] }),
    )
    .await;
    let names: Vec<&str> = companies.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Earlier", "Later"]);

    let two =
        s.post(SEARCH, json!({ "sorts": [ { "propertyName": "email" }, { "propertyName": "hs_object_id" } ] })).await;
    assert_eq!(two.status, StatusCode::BAD_REQUEST);
    assert_eq!(two.body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn limit_and_after_page_up_to_the_ten_thousand_result_wall() {
    let s = sim_with(unthrottled()).await;
    s.sim.seed_many(
        1000,
        "contacts",
        (0..10_050).map(|i| json!({ "email": format!("w{i}@example.com"), "lastmodifieddate": (T + i).to_string() })),
    );
    assert_eq!(search(&s, json!({})).await.ids.len(), 10, "10 by default");
    let over = s.post(SEARCH, json!({ "limit": 201 })).await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST);
    assert_eq!(over.body["category"], "VALIDATION_ERROR");
    assert_eq!(search(&s, json!({ "limit": 200 })).await.ids.len(), 200);
    assert_eq!(s.post(SEARCH, json!({ "after": "ten" })).await.status, StatusCode::BAD_REQUEST);

    let window = |after: &str, limit: u64| {
        json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "GTE", T.to_string())])],
            "sorts": sorted("lastmodifieddate", false), "limit": limit, "after": after })
    };
    // Pages follow each other without gaps or repeats.
    let first = search(&s, window("0", 200)).await;
    let second = search(&s, window(first.next().unwrap(), 200)).await;
    assert_eq!(first.next(), Some("200"));
    assert_eq!(second.ids.first().copied(), Some(first.ids[199] + 1), "ids follow the seeding order");

    // The last page within the wall; it still offers the next one, which HubSpot refuses.
    let last = search(&s, window("9800", 200)).await;
    assert_eq!(last.total, 10_050, "total counts every match");
    assert_eq!(last.ids.len(), 200);
    assert_eq!(last.next(), Some("10000"));
    assert_eq!(search(&s, window("9900", 100)).await.ids.len(), 100);
    for (after, limit) in [("10000", 10), ("9801", 200), ("9901", 100), ("20000", 1)] {
        let refused = s.post(SEARCH, window(after, limit)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "after {after} limit {limit}");
        assert_eq!(refused.body["category"], "VALIDATION_ERROR");
        assert!(refused.body["message"].as_str().unwrap().contains("10000"), "{}", refused.body);
    }
    // A narrower query reaches the rest.
    let rest = search(
        &s,
        json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "GTE", (T + 10_000).to_string())])],
            "sorts": sorted("lastmodifieddate", false), "limit": 200 }),
    )
    .await;
    assert_eq!((rest.total, rest.ids.len(), rest.next()), (50, 50, None));
}

#[tokio::test]
async fn search_has_its_own_limit_of_five_a_second_per_portal() {
    let s = common::sim().await;
    // Other calls don't use it up, and it uses up nothing of theirs.
    let listed = s.get("/crm/v3/objects/contacts").await;
    assert_eq!(listed.header("x-hubspot-ratelimit-remaining"), Some("109"));
    let replies = futures_join(&s, 12).await;
    let ok = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    assert!(ok <= 5, "{ok} searches passed at once");
    let limited = replies.iter().find(|r| r.status == StatusCode::TOO_MANY_REQUESTS).expect("the limit hit");
    assert_eq!(limited.body["status"], "error");
    assert_eq!(limited.body["message"], "You have reached your secondly limit.");
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert_eq!(limited.body["policyName"], "SECONDLY");
    assert!(limited.body["correlationId"].is_string() && limited.body["requestId"].is_string());
    assert!(limited.header("x-hubspot-ratelimit-max").is_none(), "search answers carry no burst headers");
    let listed = s.get("/crm/v3/objects/contacts").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.header("x-hubspot-ratelimit-remaining"), Some("108"));

    // Another portal searches on its own budget.
    let other = s.sim.issue_tokens(2000, DEFAULT_CLIENT_ID, ALL_SCOPES).access_token;
    let elsewhere = s.call_as(&other, reqwest::Method::POST, SEARCH, Some(json!({}))).await;
    assert_eq!(elsewhere.status, StatusCode::OK);
}

/// `n` searches at once.
async fn futures_join(s: &Sim, n: usize) -> Vec<common::Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let request = s.http.post(s.url(SEARCH)).bearer_auth(&s.token).json(&json!({}));
        tasks.spawn(async move { common::reply(request.send().await.unwrap()).await });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn modification_times_and_ids_filter_including_one_instant() {
    let s = sim_with(unthrottled()).await;
    let before =
        s.sim.seed(1000, "contacts", json!({ "email": "before@example.com", "lastmodifieddate": (T - 1).to_string() }));
    // 20,000 records changed at one instant, as an import leaves them.
    let same = s.sim.seed_many(
        1000,
        "contacts",
        (0..20_000).map(|i| json!({ "email": format!("i{i}@example.com"), "lastmodifieddate": T.to_string() })),
    );
    let after =
        s.sim.seed(1000, "contacts", json!({ "email": "after@example.com", "lastmodifieddate": (T + 1).to_string() }));
    let record = s.sim.record(1000, "contacts", &same[0]).unwrap();
    assert_eq!(record["properties"]["lastmodifieddate"], T.to_string());
    assert_eq!(record["updatedAt"], "2023-11-14T22:13:20.000Z");

    // EQ on a timestamp, as ms or as an ISO datetime.
    for at in [json!(T.to_string()), json!(T), json!("2023-11-14T22:13:20Z")] {
        let page =
            search(&s, json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "EQ", at.clone())])] })).await;
        assert_eq!(page.total, 20_000, "{at}");
    }
    let ids = |v: &str| v.parse::<u64>().unwrap();
    // The pull's walk of one instant: by id, from where the last page ended.
    let mut walked: Vec<u64> = Vec::new();
    let mut last = 0u64;
    loop {
        let page = search(
            &s,
            json!({ "filterGroups": [group(vec![
                filter("lastmodifieddate", "EQ", T.to_string()),
                filter("hs_object_id", "GT", last.to_string()),
            ])], "sorts": sorted("hs_object_id", false), "limit": 200 }),
        )
        .await;
        assert_eq!(page.total as usize, 20_000 - walked.len());
        walked.extend(&page.ids);
        match page.ids.last() {
            Some(&id) if page.ids.len() == 200 => last = id,
            _ => break,
        }
    }
    assert_eq!(walked, same.iter().map(|id| ids(id)).collect::<Vec<_>>());

    // The pull's forward window: by time, both ends included.
    let window = search(
        &s,
        json!({ "filterGroups": [group(vec![
            filter("lastmodifieddate", "GTE", (T - 1).to_string()),
            filter("lastmodifieddate", "LTE", (T + 1).to_string()),
        ])], "sorts": sorted("lastmodifieddate", false), "limit": 200 }),
    )
    .await;
    assert_eq!(window.total, 20_002);
    assert_eq!(window.ids[0], ids(&before));
    let newest = search(
        &s,
        json!({ "filterGroups": [group(vec![between("lastmodifieddate", (T - 1).to_string(), (T + 1).to_string())])],
            "sorts": sorted("lastmodifieddate", true), "limit": 1 }),
    )
    .await;
    assert_eq!((newest.total, newest.ids[0]), (20_002, ids(&after)));
    let strictly =
        search(&s, json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "GT", T.to_string())])] })).await;
    assert_eq!((strictly.total, strictly.ids.clone()), (1, vec![ids(&after)]));
    let below =
        search(&s, json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "LT", T.to_string())])] })).await;
    assert_eq!(below.ids, [ids(&before)]);

    // Ids filter too.
    let one = search(&s, json!({ "filterGroups": [group(vec![filter("hs_object_id", "EQ", same[5].clone())])] })).await;
    assert_eq!(one.ids, [ids(&same[5])]);
    let in_ids = json!({ "propertyName": "hs_object_id", "operator": "IN", "values": [before.clone(), after.clone()] });
    assert_eq!(search(&s, json!({ "filterGroups": [group(vec![in_ids])] })).await.ids, [ids(&before), ids(&after)]);
    let range = search(
        &s,
        json!({ "filterGroups": [group(vec![filter("hs_object_id", "GTE", same[10].clone()), filter("hs_object_id", "LT", same[20].clone())])],
            "sorts": sorted("hs_object_id", true) }),
    )
    .await;
    assert_eq!(range.total, 10);
    assert_eq!(range.ids[0], ids(&same[19]));

    // An archived record drops out of every kind of query.
    let gone = same[0].clone();
    s.call(reqwest::Method::DELETE, &format!("/crm/v3/objects/contacts/{gone}"), None).await;
    let at_t = search(
        &s,
        json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "EQ", T.to_string())])],
        "sorts": sorted("hs_object_id", false) }),
    )
    .await;
    assert_eq!(at_t.total, 19_999);
    assert_eq!(at_t.ids[0], ids(&same[1]));
    let by_id = search(&s, json!({ "filterGroups": [group(vec![filter("hs_object_id", "EQ", gone)])] })).await;
    assert_eq!(by_id.total, 0);
}

/// Queries an index can answer alone give what checking every record gives: the same query
/// with a filter that changes nothing (but needs a look at each record) must agree.
#[tokio::test]
async fn index_answers_agree_with_looking_at_every_record() {
    let s = sim_with(unthrottled()).await;
    let ids = s.sim.seed_many(
        1000,
        "contacts",
        (0..3_000).map(|i| json!({ "email": format!("x{i}@example.com"), "lastmodifieddate": (T + (i % 7) * 1_000 + i / 500).to_string() })),
    );
    // Changes move records in the index.
    for id in ids.iter().step_by(97) {
        s.sim.edit_as_user(1000, "contacts", id, json!({ "firstname": "Moved" }));
    }
    let middle = &ids[1_500];
    let queries = [
        (
            vec![
                filter("lastmodifieddate", "GTE", (T + 2_000).to_string()),
                filter("lastmodifieddate", "LTE", (T + 4_003).to_string()),
            ],
            "lastmodifieddate",
        ),
        (
            vec![
                filter("lastmodifieddate", "EQ", (T + 3_003).to_string()),
                filter("hs_object_id", "GT", middle.clone()),
            ],
            "hs_object_id",
        ),
        (vec![filter("lastmodifieddate", "GT", (T + 5_000).to_string())], "lastmodifieddate"),
        (vec![filter("lastmodifieddate", "GTE", T.to_string())], "lastmodifieddate"),
        (vec![filter("hs_object_id", "LTE", middle.clone())], "hs_object_id"),
        (vec![between("hs_object_id", ids[100].clone(), ids[2_000].clone())], "hs_object_id"),
    ];
    for (filters, property) in queries {
        for descending in [false, true] {
            for after in ["0", "400"] {
                let body = |filters: Vec<Value>| json!({ "filterGroups": [group(filters)], "sorts": sorted(property, descending), "limit": 200, "after": after });
                let mut checked = filters.clone();
                checked.push(json!({ "propertyName": "email", "operator": "HAS_PROPERTY" }));
                let (indexed, scanned) = (search(&s, body(filters.clone())).await, search(&s, body(checked)).await);
                assert_eq!(indexed.total, scanned.total, "{}", body(filters.clone()));
                assert_eq!(indexed.ids, scanned.ids, "{}", body(filters.clone()));
                assert!(indexed.total > 0, "{}", body(filters.clone()));
            }
        }
    }
}

#[tokio::test]
async fn within_the_index_delay_search_sees_the_previous_state() {
    let s = sim_with(unthrottled()).await;
    let kept = s.sim.seed(
        1000,
        "contacts",
        json!({ "email": "kept@example.com", "firstname": "Old", "lastmodifieddate": T.to_string() }),
    );
    let dropped = s.sim.seed(1000, "contacts", json!({ "email": "dropped@example.com", "firstname": "Old" }));
    // Everything so far is indexed; from now on search lags an hour behind.
    s.sim.set_search_index_delay(Duration::from_secs(3600));
    let by_name = |name: &str| json!({ "filterGroups": [group(vec![filter("firstname", "EQ", name)])], "properties": ["firstname"], "sorts": ["hs_object_id"] });

    s.sim.edit_as_user(1000, "contacts", &kept, json!({ "firstname": "New" }));
    s.sim.edit_as_user(1000, "contacts", &kept, json!({ "firstname": "Newer" }));
    s.call(reqwest::Method::DELETE, &format!("/crm/v3/objects/contacts/{dropped}"), None).await;
    let created = s
        .post("/crm/v3/objects/contacts", json!({ "properties": { "email": "new@example.com", "firstname": "Old" } }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let fresh = s.sim.seed(1000, "contacts", json!({ "email": "seeded@example.com", "firstname": "Old" }));

    // Found as they were: the changed record with its old values, the archived one still, the
    // new ones not at all.
    let old = search(&s, by_name("old")).await;
    assert_eq!(old.ids, [kept.parse::<u64>().unwrap(), dropped.parse().unwrap()]);
    assert_eq!(old.body["results"][0]["properties"]["firstname"], "Old");
    assert_eq!(old.body["results"][0]["properties"]["lastmodifieddate"], T.to_string());
    assert_eq!(old.body["results"][0]["updatedAt"], "2023-11-14T22:13:20.000Z");
    assert_eq!(search(&s, by_name("newer")).await.total, 0);
    assert_eq!(search(&s, json!({})).await.total, 2);
    // By its old modification time, not its new one.
    let at_t = search(
        &s,
        json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "EQ", T.to_string())])],
        "sorts": sorted("lastmodifieddate", false) }),
    )
    .await;
    assert_eq!(at_t.total, 1);
    let since_t = search(
        &s,
        json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "GT", T.to_string())])],
        "sorts": sorted("lastmodifieddate", false) }),
    )
    .await;
    assert_eq!(since_t.ids, [dropped.parse::<u64>().unwrap()], "the dropped record's seed time is after T");
    // Reads by id are not search: they see every write at once.
    let read = s.get(&format!("/crm/v3/objects/contacts/{kept}?properties=firstname")).await;
    assert_eq!(read.body["properties"]["firstname"], "Newer");

    // Once indexed, search sees the writes.
    s.sim.set_search_index_delay(Duration::ZERO);
    let newer = search(&s, by_name("newer")).await;
    assert_eq!(newer.ids, [kept.parse::<u64>().unwrap()]);
    assert_eq!(newer.body["results"][0]["properties"]["firstname"], "Newer");
    let old = search(&s, by_name("old")).await;
    let expected: Vec<u64> = vec![created.body["id"].as_str().unwrap().parse().unwrap(), fresh.parse().unwrap()];
    assert_eq!(old.ids, expected);
    let at_t = search(
        &s,
        json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "EQ", T.to_string())])],
        "sorts": sorted("lastmodifieddate", false) }),
    )
    .await;
    assert_eq!(at_t.total, 0);
}

#[tokio::test]
async fn a_configured_index_delay_passes() {
    let s = sim_with(SimConfig { search_index_delay: Duration::from_millis(200), ..unthrottled() }).await;
    let id: u64 = s.sim.seed(1000, "contacts", json!({ "email": "late@example.com" })).parse().unwrap();
    let mut waited = Duration::ZERO;
    loop {
        let page =
            search(&s, json!({ "filterGroups": [group(vec![filter("email", "EQ", "late@example.com")])] })).await;
        if page.ids == [id] {
            break;
        }
        assert!(waited < Duration::from_secs(30), "never indexed");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
}

#[tokio::test]
async fn seed_many_seeds_like_seed_and_over_http() {
    let s = sim_with(unthrottled()).await;
    let hook = Receiver::start().await;
    s.sim.subscribe_webhooks(DEFAULT_CLIENT_ID, &hook.url, &[Subscription::new("contact.creation")]);
    let ids = s.sim.seed_many(
        1000,
        "contacts",
        (0..3).map(
            |i| json!({ "email": format!("S{i}@Example.com"), "firstname": "Seed", "createdate": "1600000000000" }),
        ),
    );
    assert_eq!(ids.len(), 3);
    let record = s.sim.record(1000, "contacts", &ids[2]).unwrap();
    assert_eq!(record["properties"]["email"], "s2@example.com", "validated and normalised as seed does");
    assert_eq!(record["createdAt"], "2020-09-13T12:26:40.000Z");
    assert_eq!(record["propertiesWithHistory"]["firstname"][0]["sourceType"], "IMPORT");
    assert!(s.sim.wait_webhooks_idle(Duration::from_secs(20)).await);
    let created: BTreeSet<String> = hook.events().iter().map(|e| e["objectId"].to_string()).collect();
    assert_eq!(created, ids.iter().cloned().collect(), "a creation event each, as seed fires");

    let bulk = format!("{}/_sim/portals/1000/objects/contacts/bulk", s.sim.base_url());
    let post = |body: Value| {
        let request = s.http.post(&bulk).json(&body);
        async move { common::reply(request.send().await.unwrap()).await }
    };
    // Bodies far above the usual 2 MB limit are fine.
    let many: Vec<Value> = (0..30_000)
        .map(|i| json!({ "email": format!("bulk{i}@example.com"), "firstname": "Bulk", "lastmodifieddate": T.to_string() }))
        .collect();
    let seeded = post(json!({ "records": many })).await;
    assert_eq!(seeded.status, StatusCode::CREATED, "{}", seeded.body);
    assert_eq!(seeded.body["ids"].as_array().unwrap().len(), 30_000);
    let at_t =
        search(&s, json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "EQ", T.to_string())])] })).await;
    assert_eq!(at_t.total, 30_000);

    // All or nothing.
    let before = s.sim.records(1000, "contacts").len();
    let twice = post(json!({ "records": [ { "email": "twin@example.com" }, { "email": "TWIN@example.com" } ] })).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);
    let taken = post(json!({ "records": [ { "email": "fresh@example.com" }, { "email": "s0@example.com" } ] })).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let invalid = post(json!({ "records": [ { "email": "ok@example.com" }, { "num_employees": "many" } ] })).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.body["context"]["record"], json!(["1"]));
    let too_many: Vec<Value> = (0..=SEED_MANY_LIMIT).map(|_| json!({})).collect();
    assert_eq!(post(json!({ "records": too_many })).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(post(json!({ "records": {} })).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.sim.records(1000, "contacts").len(), before, "nothing seeded by refused calls");
}

/// Not a test of correctness: how long seeding and searching a large portal take. Run with
/// `cargo test -p hubspot-sim --test search -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn large_portal_timings() {
    let s = sim_with(unthrottled()).await;
    let started = std::time::Instant::now();
    let ids = s.sim.seed_many(
        1000,
        "contacts",
        (0..200_000).map(|i| {
            json!({ "email": format!("big{i}@example.com"), "firstname": "Big", "lastname": format!("N{i}"),
                "lastmodifieddate": (T + (i / 20_000) * 1_000).to_string() })
        }),
    );
    eprintln!("seeded {} contacts in {:?}", ids.len(), started.elapsed());
    let queries = [
        (
            "forward window",
            json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "GTE", T.to_string()), filter("lastmodifieddate", "LTE", (T + 1_000_000).to_string())])],
            "sorts": sorted("lastmodifieddate", false), "limit": 200, "after": "9600" }),
        ),
        (
            "one instant by id",
            json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "EQ", (T + 5_000).to_string()), filter("hs_object_id", "GT", ids[100_500].clone())])],
            "sorts": sorted("hs_object_id", false), "limit": 200 }),
        ),
        (
            "window, every record checked",
            json!({ "filterGroups": [group(vec![filter("lastmodifieddate", "GTE", T.to_string()), filter("firstname", "EQ", "big")])],
            "sorts": sorted("lastmodifieddate", false), "limit": 200, "after": "9600" }),
        ),
        ("no filter, default order", json!({ "limit": 200 })),
        (
            "text filter, sorted by email",
            json!({ "filterGroups": [group(vec![filter("lastname", "NEQ", "x")])], "sorts": ["email"], "limit": 200 }),
        ),
    ];
    for (name, body) in queries {
        let started = std::time::Instant::now();
        let page = search(&s, body).await;
        eprintln!("{name}: {} of {} in {:?}", page.ids.len(), page.total, started.elapsed());
    }
}
