//! One contract for every `Store`: the embedded store (in memory, and kept in a file) and
//! DynamoDB (on moto's server) must all keep each guarantee. Every case runs once per
//! implementation. The file-kept store must also give back, once opened again, everything
//! written before.

use std::collections::HashMap;
use std::sync::Arc;

use hubsync::adapters::MemoryStore;
use hubsync::domain::*;
use hubsync::ports::{Claimed, OutboundSave, Store, StoreError};
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn connection(id: &str, tenant: &str, portal: PortalId) -> Connection {
    Connection {
        id: ConnectionId::new(id),
        tenant_id: TenantId::new(tenant),
        portal_id: portal,
        status: ConnectionStatus::Active,
        scopes: vec!["crm.objects.contacts.write".into()],
        installed_by: Some("admin@example.com".into()),
        app_id: Some(54_321),
        created_at: now(),
        updated_at: now(),
        revision: 0,
    }
}

fn config_with_fields(fields: &[&str]) -> ConnectionConfig {
    let mut config = ConnectionConfig::default();
    config.objects.insert(
        ObjectType::Contacts,
        ObjectConfig {
            match_key: MatchKey::Email,
            write_mode: WriteMode::Upsert,
            fields: fields.iter().map(|f| FieldMapping::out(f, f, FieldType::String)).collect(),
            lists: vec![],
            relations: vec![],
        },
    );
    config
}

async fn config_saves_only_over_the_version_it_read(store: Arc<dyn Store>) {
    let id = ConnectionId::new("c1");
    assert_eq!(store.get_config(&id).await.unwrap(), None);
    assert_eq!(store.put_config(&id, &config_with_fields(&["firstname"]), 0).await.unwrap(), 1);

    // A second writer that also read "no config" loses.
    let err = store.put_config(&id, &config_with_fields(&["lastname"]), 0).await.unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { expected: 0, actual: 1 }), "{err:?}");

    assert_eq!(store.put_config(&id, &config_with_fields(&["lastname"]), 1).await.unwrap(), 2);
    let err = store.put_config(&id, &config_with_fields(&["phone"]), 1).await.unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { expected: 1, actual: 2 }), "{err:?}");

    let stored = store.get_config(&id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.config, config_with_fields(&["lastname"]));
}

async fn oauth_state_works_once(store: Arc<dyn Store>) {
    let state = OAuthState::issue(TenantId::new("t1"), "https://console.example.com/hubspot".into(), now());
    store.put_oauth_state(&state).await.unwrap();
    assert!(matches!(store.put_oauth_state(&state).await, Err(StoreError::AlreadyExists(_))));

    assert_eq!(store.take_oauth_state(&state.state, now()).await.unwrap(), state);
    assert!(matches!(store.take_oauth_state(&state.state, now()).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.take_oauth_state("never-issued", now()).await, Err(StoreError::NotFound(_))));
}

async fn oauth_state_expires_after_ten_minutes(store: Arc<dyn Store>) {
    let state = OAuthState::issue(TenantId::new("t1"), "https://console.example.com".into(), now());
    store.put_oauth_state(&state).await.unwrap();
    let late = now() + Duration::minutes(10);
    assert!(matches!(store.take_oauth_state(&state.state, late).await, Err(StoreError::Expired)));
    // An expired state is consumed too: it cannot be tried again.
    assert!(matches!(store.take_oauth_state(&state.state, now()).await, Err(StoreError::NotFound(_))));
}

async fn oauth_state_is_taken_by_one_of_many_concurrent_callers(store: Arc<dyn Store>) {
    let state = OAuthState::issue(TenantId::new("t1"), "https://console.example.com".into(), now());
    store.put_oauth_state(&state).await.unwrap();
    let attempts = (0..8).map(|_| {
        let store = store.clone();
        let state = state.state.clone();
        tokio::spawn(async move { store.take_oauth_state(&state, now()).await.is_ok() })
    });
    let winners = futures_count(attempts).await;
    assert_eq!(winners, 1);
}

async fn dedup_key_is_claimed_once_until_it_expires(store: Arc<dyn Store>) {
    let key = DedupKey { key: "62515:evt-1".into(), expires_at: now() + Duration::hours(25) };
    assert!(store.claim_dedup_key(&key, now()).await.unwrap());
    assert!(!store.claim_dedup_key(&key, now()).await.unwrap());
    assert!(!store.claim_dedup_key(&key, now() + Duration::hours(24)).await.unwrap());

    let other = DedupKey { key: "62515:evt-2".into(), expires_at: now() + Duration::hours(25) };
    assert!(store.claim_dedup_key(&other, now()).await.unwrap());

    // DynamoDB's TTL deletes lazily: an expired key must be claimable even while still stored.
    let renewed = DedupKey { key: key.key.clone(), expires_at: now() + Duration::hours(50) };
    assert!(store.claim_dedup_key(&renewed, now() + Duration::hours(25)).await.unwrap());
    assert!(!store.claim_dedup_key(&renewed, now() + Duration::hours(26)).await.unwrap());

    // Released (its work was not stored): the next delivery is processed.
    store.release_dedup_key(&renewed.key).await.unwrap();
    assert!(store.claim_dedup_key(&renewed, now() + Duration::hours(26)).await.unwrap());
}

async fn cursor_only_moves_forward(store: Arc<dyn Store>) {
    let id = ConnectionId::new("c1");
    let at = |modified_at_ms, object_id| SyncCursor {
        connection_id: id.clone(),
        object_type: ObjectType::Contacts,
        flow: SyncFlow::Enrichment,
        position: CursorPosition { modified_at_ms, object_id },
    };
    store.advance_cursor(&at(1_000, 50)).await.unwrap();
    store.advance_cursor(&at(1_000, 50)).await.unwrap(); // a replayed page
    assert!(matches!(store.advance_cursor(&at(1_000, 49)).await, Err(StoreError::CursorBehind)));
    assert!(matches!(store.advance_cursor(&at(999, 10_000)).await, Err(StoreError::CursorBehind)));
    store.advance_cursor(&at(1_000, 51)).await.unwrap();
    store.advance_cursor(&at(2_000, 1)).await.unwrap();
    let stored = store.get_cursor(&id, ObjectType::Contacts, SyncFlow::Enrichment).await.unwrap().unwrap();
    assert_eq!(stored.position, CursorPosition { modified_at_ms: 2_000, object_id: 1 });

    // Each object and flow has its own cursor.
    let mut catch_up = at(5, 5);
    catch_up.flow = SyncFlow::CatchUp;
    store.advance_cursor(&catch_up).await.unwrap();
    assert!(store.get_cursor(&id, ObjectType::Deals, SyncFlow::Enrichment).await.unwrap().is_none());
}

async fn refresh_lease_has_one_holder_at_a_time(store: Arc<dyn Store>) {
    let id = ConnectionId::new("c1");
    let ttl = Duration::seconds(30);
    assert!(store.acquire_refresh_lease(&id, "a", now(), ttl).await.unwrap());
    assert!(!store.acquire_refresh_lease(&id, "b", now(), ttl).await.unwrap());
    assert!(store.acquire_refresh_lease(&id, "a", now(), ttl).await.unwrap(), "the holder may extend");

    store.release_refresh_lease(&id, "b").await.unwrap(); // not b's to release
    assert!(!store.acquire_refresh_lease(&id, "b", now(), ttl).await.unwrap());
    store.release_refresh_lease(&id, "a").await.unwrap();
    assert!(store.acquire_refresh_lease(&id, "b", now(), ttl).await.unwrap());

    // A holder that died lets the lease lapse.
    assert!(!store.acquire_refresh_lease(&id, "c", now() + Duration::seconds(29), ttl).await.unwrap());
    assert!(store.acquire_refresh_lease(&id, "c", now() + Duration::seconds(30), ttl).await.unwrap());

    // Leases are per connection.
    assert!(store.acquire_refresh_lease(&ConnectionId::new("c2"), "a", now(), ttl).await.unwrap());
}

async fn refresh_lease_goes_to_one_of_many_concurrent_callers(store: Arc<dyn Store>) {
    let id = ConnectionId::new("c-race");
    let attempts = (0..10).map(|i| {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            store.acquire_refresh_lease(&id, &format!("lambda-{i}"), now(), Duration::seconds(30)).await.unwrap()
        })
    });
    assert_eq!(futures_count(attempts).await, 1);
}

async fn connections_are_indexed_by_tenant_and_portal(store: Arc<dyn Store>) {
    store.put_connection(&connection("c1", "tenant-a", 100)).await.unwrap();
    store.put_connection(&connection("c2", "tenant-a", 200)).await.unwrap();
    store.put_connection(&connection("c3", "tenant-b", 100)).await.unwrap();

    let mut ids: Vec<_> =
        store.list_connections(&TenantId::new("tenant-a")).await.unwrap().into_iter().map(|c| c.id).collect();
    ids.sort();
    assert_eq!(ids, vec![ConnectionId::new("c1"), ConnectionId::new("c2")]);
    let b = store.list_connections(&TenantId::new("tenant-b")).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].tenant_id, TenantId::new("tenant-b"));

    let mut routed: Vec<_> = store.connections_for_portal(100).await.unwrap().into_iter().map(|c| c.id).collect();
    routed.sort();
    assert_eq!(routed, vec![ConnectionId::new("c1"), ConnectionId::new("c3")]);
    assert!(store.connections_for_portal(999).await.unwrap().is_empty());

    // An update replaces the connection; it is not listed twice.
    let mut updated = connection("c1", "tenant-a", 100);
    updated.status = ConnectionStatus::NeedsReauth;
    store.put_connection(&updated).await.unwrap();
    let routed = store.connections_for_portal(100).await.unwrap();
    assert_eq!(routed.len(), 2);
    let mut active: Vec<_> = store.active_connections().await.unwrap().into_iter().map(|c| c.id).collect();
    active.sort();
    assert_eq!(active, vec![ConnectionId::new("c2"), ConnectionId::new("c3")], "only active ones are listed");
    assert_eq!(
        store.get_connection(&ConnectionId::new("c1")).await.unwrap(),
        Some(Connection { revision: 1, ..updated })
    );
    assert_eq!(store.get_connection(&ConnectionId::new("nope")).await.unwrap(), None);
}

async fn a_connection_update_over_a_stale_read_is_refused(store: Arc<dyn Store>) {
    store.put_connection(&connection("c1", "tenant-a", 100)).await.unwrap();
    let read = store.get_connection(&ConnectionId::new("c1")).await.unwrap().unwrap();
    // A reinstall saves it meanwhile: a worker's change made from the older read is refused.
    store.put_connection(&read).await.unwrap();
    let mut marked = read.clone();
    marked.status = ConnectionStatus::NeedsReauth;
    assert!(matches!(store.update_connection(&marked).await, Err(StoreError::RevisionConflict)));
    let current = store.get_connection(&ConnectionId::new("c1")).await.unwrap().unwrap();
    assert_eq!(current.status, ConnectionStatus::Active);
    let mut marked = current;
    marked.status = ConnectionStatus::NeedsReauth;
    store.update_connection(&marked).await.unwrap();
    assert!(store.active_connections().await.unwrap().is_empty(), "no longer listed as active");
}

async fn tenants_tokens_and_schemas_round_trip(store: Arc<dyn Store>) {
    let tenant = Tenant { id: TenantId::new("t1"), name: "Acme".into(), created_at: now() };
    store.put_tenant(&tenant).await.unwrap();
    assert_eq!(store.get_tenant(&tenant.id).await.unwrap(), Some(tenant));

    let id = ConnectionId::new("c1");
    let tokens =
        TokenRecord { connection_id: id.clone(), sealed: "v1.nonce.ciphertext".into(), access_expires_at: now() };
    store.put_tokens(&tokens).await.unwrap();
    assert_eq!(store.get_tokens(&id).await.unwrap(), Some(tokens));
    store.delete_tokens(&id).await.unwrap();
    assert_eq!(store.get_tokens(&id).await.unwrap(), None);

    let schema = PropertySchema {
        connection_id: id.clone(),
        object_type: ObjectType::Deals,
        properties: vec![PropertyDef {
            name: "dealstage".into(),
            label: "Deal Stage".into(),
            value_type: "enumeration".into(),
            field_type: "select".into(),
            options: vec!["appointmentscheduled".into(), "closedwon".into()],
            read_only: false,
            unique: false,
        }],
        fetched_at: now(),
    };
    store.put_schema(&schema).await.unwrap();
    assert_eq!(store.get_schema(&id, ObjectType::Deals).await.unwrap(), Some(schema));
    assert_eq!(store.get_schema(&id, ObjectType::Contacts).await.unwrap(), None);
}

fn record(conn: &str, object: ObjectType, key: &str) -> RecordKey {
    RecordKey::new(ConnectionId::new(conn), object, key)
}

fn outbound(value: &str, at_ms: i64) -> OutboundState {
    OutboundState {
        hubspot_id: Some("501".into()),
        written: [("firstname".to_string(), Stamped::new(value.to_string(), at_ms))].into(),
        writing: [("lastname".to_string(), Stamped::new("Lovelace".to_string(), at_ms))].into(),
        // Links to related records and the ones waiting for theirs survive the round trip too.
        links: [(
            ObjectType::Companies,
            [("acme.com".to_string(), Stamped::new(Some("77".to_string()), at_ms))].into(),
        )]
        .into(),
        waiting: [(ObjectType::Deals, [("order-17".to_string(), at_ms)].into())].into(),
        link_sets: [(ObjectType::Companies, at_ms)].into(),
        linking: [(ObjectType::Contacts, [("ada@example.com".to_string(), Stamped::new(true, at_ms))].into())].into(),
    }
}

fn save(key: &RecordKey, outbound: OutboundState, release: bool) -> Vec<OutboundSave> {
    vec![OutboundSave { key: key.clone(), outbound, release }]
}

fn granted(claimed: Vec<Claimed>) -> Vec<RecordSyncState> {
    claimed
        .into_iter()
        .map(|c| match c {
            Claimed::Granted(state) => *state,
            Claimed::Held => panic!("the claim was refused"),
        })
        .collect()
}

async fn record_state_belongs_to_one_connection(store: Arc<dyn Store>) {
    let ada = record("c1", ObjectType::Contacts, "ada@example.com");
    let bob = record("c2", ObjectType::Contacts, "bob@example.com");
    let until = now() + Duration::minutes(2);
    granted(store.claim_records(&[ada.clone(), bob.clone()], "w1", now(), until).await.unwrap());
    let saves = [save(&ada, outbound("Ada", 7), true), save(&bob, outbound("Bob", 7), true)].concat();
    assert_eq!(store.save_outbound(&saves, "w1", now()).await.unwrap(), vec![true, true]);
    // Every remembered value survives the round trip, typed platform values included.
    let mut inbound = InboundState::default();
    inbound.merge_delivered(9, &[("seats".to_string(), Stamped::new(serde_json::json!(12), 9))].into());
    assert_eq!(store.save_inbound(&[(ada.clone(), inbound.clone())]).await.unwrap(), vec![true]);

    let keys = vec!["ada@example.com".to_string(), "bob@example.com".to_string()];
    let read = |conn: &'static str, object| {
        let (store, keys) = (store.clone(), keys.clone());
        async move { store.get_record_states(&ConnectionId::new(conn), object, &keys).await.unwrap() }
    };
    let expected = RecordSyncState {
        key: ada.clone(),
        outbound: outbound("Ada", 7),
        inbound: InboundState { revision: 1, ..inbound },
    };
    assert_eq!(read("c1", ObjectType::Contacts).await, HashMap::from([("ada@example.com".to_string(), expected)]));
    assert_eq!(read("c2", ObjectType::Contacts).await.len(), 1);
    assert!(read("c1", ObjectType::Companies).await.is_empty());
}

async fn record_states_are_read_in_bulk(store: Arc<dyn Store>) {
    // More than one DynamoDB batch of reads (100 per call), with a repeated key.
    let keys: Vec<RecordKey> = (0..230).map(|i| record("c1", ObjectType::Deals, &format!("deal-{i}"))).collect();
    let until = now() + Duration::minutes(2);
    granted(store.claim_records(&keys, "w1", now(), until).await.unwrap());
    let saves: Vec<OutboundSave> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| OutboundSave {
            key: key.clone(),
            outbound: OutboundState { hubspot_id: Some(i.to_string()), ..OutboundState::default() },
            release: true,
        })
        .collect();
    assert!(store.save_outbound(&saves, "w1", now()).await.unwrap().iter().all(|saved| *saved));
    let mut wanted: Vec<String> = (0..250).map(|i| format!("deal-{i}")).collect();
    wanted.push("deal-7".into());
    let found = store.get_record_states(&ConnectionId::new("c1"), ObjectType::Deals, &wanted).await.unwrap();
    assert_eq!(found.len(), 230);
    assert_eq!(found["deal-229"].outbound.hubspot_id.as_deref(), Some("229"));
}

async fn a_record_has_one_claim_holder_until_the_claim_expires(store: Arc<dyn Store>) {
    let ada = record("c1", ObjectType::Contacts, "ada@example.com");
    let until = now() + Duration::minutes(2);
    assert!(matches!(
        store.claim_records(std::slice::from_ref(&ada), "w1", now(), until).await.unwrap()[..],
        [Claimed::Granted(_)]
    ));
    assert_eq!(store.claim_records(std::slice::from_ref(&ada), "w2", now(), until).await.unwrap(), vec![Claimed::Held]);
    // Its holder may claim it again (extending it); the other saves nothing under it.
    assert!(matches!(
        store.claim_records(std::slice::from_ref(&ada), "w1", now(), until).await.unwrap()[..],
        [Claimed::Granted(_)]
    ));
    let refused = store.save_outbound(&save(&ada, outbound("Bob", 9), false), "w2", now()).await.unwrap();
    assert_eq!(refused, vec![false], "only the holder saves");
    // Expired, it goes to the next worker, and the former holder can no longer save.
    let later = until + Duration::seconds(1);
    assert!(matches!(
        store.claim_records(std::slice::from_ref(&ada), "w2", later, later + Duration::minutes(2)).await.unwrap()[..],
        [Claimed::Granted(_)]
    ));
    let late = store.save_outbound(&save(&ada, outbound("Ada", 8), false), "w1", later).await.unwrap();
    assert_eq!(late, vec![false], "an expired claim saves nothing");
    // Released, it is free; someone else's release leaves a claim alone.
    store.release_records(std::slice::from_ref(&ada), "w1").await.unwrap();
    assert_eq!(store.claim_records(std::slice::from_ref(&ada), "w3", later, later).await.unwrap(), vec![Claimed::Held]);
    store.release_records(std::slice::from_ref(&ada), "w2").await.unwrap();
    assert!(matches!(store.claim_records(&[ada], "w3", later, later).await.unwrap()[..], [Claimed::Granted(_)]));
}

async fn a_record_goes_to_one_of_many_concurrent_claimers(store: Arc<dyn Store>) {
    let ada = record("c1", ObjectType::Contacts, "ada@example.com");
    let until = now() + Duration::minutes(2);
    let mut claims = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (store, ada) = (store.clone(), ada.clone());
        claims.spawn(async move { store.claim_records(&[ada], &format!("w{worker}"), now(), until).await.unwrap() });
    }
    let mut granted = 0;
    while let Some(claimed) = claims.join_next().await {
        granted += claimed.unwrap().iter().filter(|c| matches!(c, Claimed::Granted(_))).count();
    }
    assert_eq!(granted, 1);
}

async fn outbound_and_inbound_parts_never_overwrite_each_other(store: Arc<dyn Store>) {
    let ada = record("c1", ObjectType::Contacts, "ada@example.com");
    let until = now() + Duration::minutes(2);
    let claimed = granted(store.claim_records(std::slice::from_ref(&ada), "w1", now(), until).await.unwrap());
    // The inbound side saves while the outbound side holds the claim, from what it read before.
    let mut inbound = claimed[0].inbound.clone();
    inbound.merge_delivered(20, &[("job_title".to_string(), Stamped::new(serde_json::json!("CTO"), 20))].into());
    assert_eq!(store.save_inbound(&[(ada.clone(), inbound)]).await.unwrap(), vec![true]);
    assert_eq!(store.save_outbound(&save(&ada, outbound("Ada", 10), true), "w1", now()).await.unwrap(), vec![true]);
    let state = store
        .get_record_states(&ada.connection_id, ada.object_type, std::slice::from_ref(&ada.record_key))
        .await
        .unwrap();
    let state = &state["ada@example.com"];
    assert_eq!(state.outbound, outbound("Ada", 10));
    assert_eq!(state.inbound.delivered["job_title"].value, serde_json::json!("CTO"));
}

async fn an_inbound_save_over_a_stale_read_is_refused(store: Arc<dyn Store>) {
    let ada = record("c1", ObjectType::Contacts, "ada@example.com");
    let read = InboundState::default();
    let mut first = read.clone();
    first.merge_delivered(30, &[("job_title".to_string(), Stamped::new(serde_json::json!("CEO"), 30))].into());
    assert_eq!(store.save_inbound(&[(ada.clone(), first)]).await.unwrap(), vec![true]);
    let mut second = read;
    second.merge_delivered(20, &[("job_title".to_string(), Stamped::new(serde_json::json!("CTO"), 20))].into());
    // In one call with a record whose save holds: only the stale one is refused.
    let bob = record("c1", ObjectType::Contacts, "bob@example.com");
    let saved = store.save_inbound(&[(ada.clone(), second), (bob.clone(), InboundState::default())]).await.unwrap();
    assert_eq!(saved, vec![false, true], "a save over a stale read is refused, alone");
    let state = store
        .get_record_states(&ada.connection_id, ada.object_type, std::slice::from_ref(&ada.record_key))
        .await
        .unwrap();
    assert_eq!(state["ada@example.com"].inbound.delivered["job_title"].value, serde_json::json!("CEO"));
    assert_eq!(state["ada@example.com"].inbound.revision, 1);
}

async fn a_pull_runs_once_until_it_ends_or_goes_stale(store: Arc<dyn Store>) {
    let id = ConnectionId::new("c1");
    let stale = Duration::hours(24);
    let begin = |run: &'static str, at: OffsetDateTime| {
        let (store, id) = (store.clone(), id.clone());
        async move { store.begin_pull(&id, ObjectType::Contacts, SyncFlow::Enrichment, run, at, stale).await.unwrap() }
    };
    assert!(begin("r1", now()).await);
    assert!(!begin("r2", now()).await, "one pull at a time");
    assert!(store.begin_pull(&id, ObjectType::Companies, SyncFlow::Enrichment, "r3", now(), stale).await.unwrap());
    assert!(store.begin_pull(&id, ObjectType::Contacts, SyncFlow::CatchUp, "r4", now(), stale).await.unwrap());
    store.end_pull(&id, ObjectType::Contacts, SyncFlow::Enrichment, "r2").await.unwrap();
    assert!(!begin("r2", now()).await, "only the running pull ends its mark");
    store.end_pull(&id, ObjectType::Contacts, SyncFlow::Enrichment, "r1").await.unwrap();
    assert!(begin("r2", now()).await);
    assert!(begin("r5", now() + stale + Duration::seconds(1)).await, "an abandoned pull ages out");
}

async fn a_run_update_over_a_stale_read_is_refused(store: Arc<dyn Store>) {
    let run = SyncRun::start(ConnectionId::new("c1"), RunKind::Enrichment, now(), "0000aaaa");
    store.put_run(&run).await.unwrap();
    let mut first = store.get_run(&run.connection_id, &run.run_id).await.unwrap().unwrap();
    let mut second = first.clone();
    first.counts.received = 200;
    store.update_run(&first).await.unwrap();
    second.counts.received = 100;
    assert!(matches!(store.update_run(&second).await, Err(StoreError::RevisionConflict)));
    let stored = store.get_run(&run.connection_id, &run.run_id).await.unwrap().unwrap();
    assert_eq!((stored.counts.received, stored.revision), (200, 1));
}

async fn runs_are_listed_newest_first(store: Arc<dyn Store>) {
    let id = ConnectionId::new("c1");
    let mut runs = Vec::new();
    for i in 0..5 {
        let mut run = SyncRun::start(id.clone(), RunKind::Push, now() + Duration::seconds(i), &format!("{i:08}"));
        run.counts.received = i as u64;
        run.counts.skip("contact has no email");
        store.put_run(&run).await.unwrap();
        runs.push(run);
    }
    store.put_run(&SyncRun::start(ConnectionId::new("c2"), RunKind::Push, now(), "c2run")).await.unwrap();

    let listed = store.list_runs(&id, 3).await.unwrap();
    let received: Vec<_> = listed.iter().map(|r| r.counts.received).collect();
    assert_eq!(received, vec![4, 3, 2]);
    assert_eq!(store.list_runs(&id, 100).await.unwrap().len(), 5);

    let mut finished = runs[0].clone();
    finished.status = RunStatus::Succeeded;
    finished.finished_at = Some(now() + Duration::minutes(1));
    store.put_run(&finished).await.unwrap();
    assert_eq!(store.get_run(&id, &finished.run_id).await.unwrap(), Some(finished));
    assert_eq!(store.list_runs(&id, 100).await.unwrap().len(), 5);
}

async fn api_keys_are_found_by_hash_only(store: Arc<dyn Store>) {
    let (plaintext, record) = ApiKeyRecord::generate(TenantId::new("t1"), "console".into(), now());
    store.put_api_key(&record).await.unwrap();
    assert_eq!(store.find_api_key(&hash_api_key(plaintext.expose())).await.unwrap(), Some(record));
    assert_eq!(store.find_api_key(&hash_api_key("hsk_wrong")).await.unwrap(), None);
    assert_eq!(store.find_api_key(plaintext.expose()).await.unwrap(), None);
}

async fn a_tenants_keys_are_listed_and_revoked(store: Arc<dyn Store>) {
    let (first, one) = ApiKeyRecord::generate(TenantId::new("t1"), "console".into(), now());
    let (_, two) = ApiKeyRecord::generate(TenantId::new("t1"), "ci".into(), now());
    let (_, other) = ApiKeyRecord::generate(TenantId::new("t2"), "console".into(), now());
    for key in [&one, &two, &other] {
        store.put_api_key(key).await.unwrap();
    }
    let mut expected = vec![one.clone(), two.clone()];
    expected.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    assert_eq!(store.list_api_keys(&TenantId::new("t1")).await.unwrap(), expected, "by key id, the tenant's only");
    store.delete_api_key(&one.key_hash).await.unwrap();
    assert_eq!(store.find_api_key(&hash_api_key(first.expose())).await.unwrap(), None, "revoked");
    assert_eq!(store.list_api_keys(&TenantId::new("t1")).await.unwrap(), vec![two]);
}

async fn a_tenant_is_created_once_and_listed(store: Arc<dyn Store>) {
    let tenant = |id: &str, name: &str| Tenant { id: TenantId::new(id), name: name.into(), created_at: now() };
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let candidate = tenant("acme", &format!("Acme {i}"));
            tokio::spawn(async move { store.create_tenant(&candidate).await.unwrap() })
        })
        .collect();
    assert_eq!(futures_count(attempts.into_iter()).await, 1, "one of concurrent creations wins");
    let winner = store.get_tenant(&TenantId::new("acme")).await.unwrap().unwrap();
    assert!(!store.create_tenant(&tenant("acme", "Acme again")).await.unwrap());
    assert_eq!(store.get_tenant(&TenantId::new("acme")).await.unwrap(), Some(winner.clone()), "unchanged");
    store.put_tenant(&tenant("beta", "Beta")).await.unwrap();
    let ids: Vec<String> = store.list_tenants().await.unwrap().iter().map(|t| t.id.to_string()).collect();
    assert_eq!(ids, ["acme", "beta"]);
}

async fn catalogues_are_kept_per_deployment_and_per_tenant(store: Arc<dyn Store>) {
    let tenant = TenantId::new("t1");
    assert_eq!(store.get_catalogue(None).await.unwrap(), None);
    let catalogue = |name: &str| FieldCatalogue {
        fields: vec![CatalogueField {
            object: ObjectType::Contacts,
            name: name.into(),
            label: name.into(),
            field_type: FieldType::String,
            computed: false,
            identifies: None,
            values: vec![],
            description: None,
        }],
    };
    store.put_catalogue(None, &catalogue("shared")).await.unwrap();
    store.put_catalogue(Some(&tenant), &catalogue("own")).await.unwrap();
    assert_eq!(store.get_catalogue(None).await.unwrap(), Some(catalogue("shared")));
    assert_eq!(store.get_catalogue(Some(&tenant)).await.unwrap(), Some(catalogue("own")));
    assert_eq!(store.get_catalogue(Some(&TenantId::new("t2"))).await.unwrap(), None);
    store.put_catalogue(None, &catalogue("replaced")).await.unwrap();
    assert_eq!(store.get_catalogue(None).await.unwrap(), Some(catalogue("replaced")));
}

async fn rate_slots_are_spaced_across_concurrent_callers(store: Arc<dyn Store>) {
    let interval = Duration::milliseconds(100);
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.reserve_rate_slot("portal:100", now(), interval).await.unwrap() })
        })
        .collect();
    let mut slots = Vec::new();
    for attempt in attempts {
        slots.push(attempt.await.unwrap());
    }
    slots.sort();
    let expected: Vec<_> = (0..12).map(|i| now() + interval * i).collect();
    assert_eq!(slots, expected, "twelve distinct slots, 100 ms apart, starting now");

    // Another portal has its own budget; an idle budget starts again from the caller's now.
    assert_eq!(store.reserve_rate_slot("portal:200", now(), interval).await.unwrap(), now());
    let later = now() + Duration::minutes(1);
    assert_eq!(store.reserve_rate_slot("portal:100", later, interval).await.unwrap(), later);
}

async fn a_held_budget_hands_out_no_slot_before_the_hold(store: Arc<dyn Store>) {
    let interval = Duration::milliseconds(100);
    let until = now() + Duration::seconds(10);
    store.hold_rate_budget("portal:100", until).await.unwrap();
    store.hold_rate_budget("portal:100", now() + Duration::seconds(5)).await.unwrap(); // never shortens
    assert_eq!(store.reserve_rate_slot("portal:100", now(), interval).await.unwrap(), until);
    assert_eq!(store.reserve_rate_slot("portal:100", now(), interval).await.unwrap(), until + interval);
}

/// How many of the spawned attempts returned `true`.
async fn futures_count(attempts: impl Iterator<Item = tokio::task::JoinHandle<bool>>) -> usize {
    let mut count = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        count += usize::from(attempt.await.unwrap());
    }
    count
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(std::sync::Arc::new(super::MemoryStore::new())).await;
                }
            )*
        }
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let dir = hubsync_tests::scratch::ScratchDir::new("store-contract");
                    let store = super::MemoryStore::open(dir.join("hubsync.redb")).expect("a new store file");
                    super::$case(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(std::sync::Arc::new(hubsync_tests::dynamo_store().await)).await;
                }
            )*
        }
    };
}

contract!(
    config_saves_only_over_the_version_it_read,
    oauth_state_works_once,
    oauth_state_expires_after_ten_minutes,
    oauth_state_is_taken_by_one_of_many_concurrent_callers,
    dedup_key_is_claimed_once_until_it_expires,
    cursor_only_moves_forward,
    refresh_lease_has_one_holder_at_a_time,
    refresh_lease_goes_to_one_of_many_concurrent_callers,
    connections_are_indexed_by_tenant_and_portal,
    a_connection_update_over_a_stale_read_is_refused,
    tenants_tokens_and_schemas_round_trip,
    record_state_belongs_to_one_connection,
    record_states_are_read_in_bulk,
    a_record_has_one_claim_holder_until_the_claim_expires,
    a_record_goes_to_one_of_many_concurrent_claimers,
    outbound_and_inbound_parts_never_overwrite_each_other,
    an_inbound_save_over_a_stale_read_is_refused,
    a_pull_runs_once_until_it_ends_or_goes_stale,
    a_run_update_over_a_stale_read_is_refused,
    runs_are_listed_newest_first,
    api_keys_are_found_by_hash_only,
    a_tenants_keys_are_listed_and_revoked,
    a_tenant_is_created_once_and_listed,
    catalogues_are_kept_per_deployment_and_per_tenant,
    rate_slots_are_spaced_across_concurrent_callers,
    a_held_budget_hands_out_no_slot_before_the_hold,
);
