//! The embedded store kept in a file (what the local runner keeps its state in): everything
//! written comes back when the file is opened again, and one process at a time owns the file.
//! The store's rules are the contract suite's (`store_contract.rs`, its `file` variant).

use hubsync::adapters::{MemoryStore, StoreFileError};
use hubsync::domain::*;
use hubsync::ports::{Claimed, OutboundSave, Store};
use hubsync_tests::scratch::ScratchDir;
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn connection() -> Connection {
    Connection {
        id: ConnectionId::new("c1"),
        tenant_id: TenantId::new("t1"),
        portal_id: 1000,
        status: ConnectionStatus::Active,
        scopes: vec!["crm.objects.contacts.write".into()],
        installed_by: Some("admin@example.com".into()),
        app_id: Some(54_321),
        created_at: now(),
        updated_at: now(),
        revision: 0,
    }
}

fn config() -> ConnectionConfig {
    let mut config = ConnectionConfig::default();
    config.objects.insert(
        ObjectType::Contacts,
        ObjectConfig {
            match_key: MatchKey::Email,
            write_mode: WriteMode::Upsert,
            fields: vec![FieldMapping::out("first_name", "firstname", FieldType::String)],
            lists: vec![],
            relations: vec![],
        },
    );
    config
}

fn catalogue() -> FieldCatalogue {
    FieldCatalogue {
        fields: vec![CatalogueField {
            object: ObjectType::Contacts,
            name: "first_name".into(),
            label: "First name".into(),
            field_type: FieldType::String,
            computed: false,
            identifies: None,
            values: vec![],
            description: None,
        }],
    }
}

fn schema() -> PropertySchema {
    PropertySchema {
        connection_id: ConnectionId::new("c1"),
        object_type: ObjectType::Contacts,
        properties: vec![PropertyDef {
            name: "firstname".into(),
            label: "First Name".into(),
            value_type: "string".into(),
            field_type: "text".into(),
            options: vec![],
            read_only: false,
            unique: false,
        }],
        fetched_at: now(),
    }
}

fn cursor() -> SyncCursor {
    SyncCursor {
        connection_id: ConnectionId::new("c1"),
        object_type: ObjectType::Contacts,
        flow: SyncFlow::Enrichment,
        position: CursorPosition { modified_at_ms: 1_000, object_id: 50 },
    }
}

fn ada() -> RecordKey {
    RecordKey::new(ConnectionId::new("c1"), ObjectType::Contacts, "ada@example.com")
}

fn written(value: &str) -> OutboundState {
    OutboundState {
        hubspot_id: Some("501".into()),
        written: [("firstname".to_string(), Stamped::new(value.to_string(), 10))].into(),
        writing: Default::default(),
        links: [(ObjectType::Companies, [("acme.com".to_string(), Stamped::new(Some("77".to_string()), 10))].into())]
            .into(),
        waiting: Default::default(),
        link_sets: Default::default(),
        linking: Default::default(),
    }
}

#[tokio::test]
async fn everything_written_is_read_back_after_the_store_is_opened_again() {
    let dir = ScratchDir::new("store-file");
    let path = dir.join("hubsync.redb");
    let id = ConnectionId::new("c1");
    let tenant = Tenant { id: TenantId::new("t1"), name: "Acme".into(), created_at: now() };
    let tokens =
        TokenRecord { connection_id: id.clone(), sealed: "v1.nonce.ciphertext".into(), access_expires_at: now() };
    let (_, api_key) = ApiKeyRecord::generate(tenant.id.clone(), "console".into(), now());
    let (_, revoked_key) = ApiKeyRecord::generate(tenant.id.clone(), "old".into(), now());
    let oauth_state = OAuthState::issue(tenant.id.clone(), "https://console.example.com".into(), now());
    let dedup = DedupKey { key: "event-1".into(), expires_at: now() + Duration::days(1) };
    let run = SyncRun::start(id.clone(), RunKind::Push, now(), "run-1");
    let mut inbound = InboundState::default();
    inbound.merge_delivered(20, &[("job_title".to_string(), Stamped::new(serde_json::json!("CTO"), 20))].into());
    let claim_until = now() + Duration::minutes(2);
    let slot_interval = Duration::milliseconds(100);
    {
        let store = MemoryStore::open(&path).unwrap();
        store.put_tenant(&tenant).await.unwrap();
        store.put_connection(&connection()).await.unwrap();
        assert_eq!(store.put_config(&id, &config(), 0).await.unwrap(), 1);
        store.put_tokens(&tokens).await.unwrap();
        assert!(store.acquire_refresh_lease(&id, "refresher", now(), Duration::minutes(1)).await.unwrap());
        store.put_schema(&schema()).await.unwrap();
        store.advance_cursor(&cursor()).await.unwrap();
        // Ada: written out and released; Grace: still claimed by w1.
        let grace = RecordKey::new(id.clone(), ObjectType::Contacts, "grace@example.com");
        let claimed = store.claim_records(&[ada(), grace], "w1", now(), claim_until).await.unwrap();
        assert!(claimed.iter().all(|c| matches!(c, Claimed::Granted(_))));
        let save = OutboundSave { key: ada(), outbound: written("Ada"), release: true };
        assert_eq!(store.save_outbound(&[save], "w1", now()).await.unwrap(), vec![true]);
        assert_eq!(store.save_inbound(&[(ada(), inbound.clone())]).await.unwrap(), vec![true]);
        assert!(
            store
                .begin_pull(&id, ObjectType::Contacts, SyncFlow::CatchUp, "pull-1", now(), Duration::days(1))
                .await
                .unwrap()
        );
        store.put_run(&run).await.unwrap();
        store.put_oauth_state(&oauth_state).await.unwrap();
        assert!(store.claim_dedup_key(&dedup, now()).await.unwrap());
        store.put_api_key(&api_key).await.unwrap();
        store.put_api_key(&revoked_key).await.unwrap();
        store.delete_api_key(&revoked_key.key_hash).await.unwrap();
        store.put_catalogue(None, &catalogue()).await.unwrap();
        store.put_catalogue(Some(&tenant.id), &catalogue()).await.unwrap();
        assert_eq!(store.reserve_rate_slot("portal:1000", now(), slot_interval).await.unwrap(), now());
    }

    let store = MemoryStore::open(&path).unwrap();
    assert_eq!(store.get_tenant(&tenant.id).await.unwrap(), Some(tenant.clone()));
    assert_eq!(store.list_tenants().await.unwrap(), vec![tenant.clone()]);
    let stored = store.get_connection(&id).await.unwrap().expect("the connection");
    assert_eq!(stored, Connection { revision: 1, ..connection() });
    assert_eq!(store.connections_for_portal(1000).await.unwrap(), vec![stored.clone()]);
    assert_eq!(store.list_connections(&tenant.id).await.unwrap(), vec![stored]);
    assert_eq!(store.get_config(&id).await.unwrap(), Some(VersionedConfig { version: 1, config: config() }));
    assert_eq!(store.get_tokens(&id).await.unwrap(), Some(tokens));
    assert!(!store.acquire_refresh_lease(&id, "another", now(), Duration::minutes(1)).await.unwrap(), "lease kept");
    assert_eq!(store.get_schema(&id, ObjectType::Contacts).await.unwrap(), Some(schema()));
    assert_eq!(store.get_cursor(&id, ObjectType::Contacts, SyncFlow::Enrichment).await.unwrap(), Some(cursor()));

    let keys = ["ada@example.com".to_string(), "grace@example.com".to_string()];
    let states = store.get_record_states(&id, ObjectType::Contacts, &keys).await.unwrap();
    assert_eq!(states["ada@example.com"].outbound, written("Ada"));
    assert_eq!(states["ada@example.com"].inbound, InboundState { revision: 1, ..inbound });
    let grace = RecordKey::new(id.clone(), ObjectType::Contacts, "grace@example.com");
    let claims = store.claim_records(&[ada(), grace.clone()], "w2", now(), claim_until).await.unwrap();
    assert!(matches!(claims[0], Claimed::Granted(_)), "Ada's claim was released before");
    assert_eq!(claims[1], Claimed::Held, "Grace's claim is still w1's");
    let save = OutboundSave { key: grace, outbound: written("Grace"), release: true };
    assert_eq!(store.save_outbound(&[save], "w1", now()).await.unwrap(), vec![true], "w1 still holds it");

    assert!(
        !store
            .begin_pull(&id, ObjectType::Contacts, SyncFlow::CatchUp, "pull-2", now(), Duration::days(1))
            .await
            .unwrap()
    );
    assert_eq!(store.get_run(&id, &run.run_id).await.unwrap(), Some(run));
    assert_eq!(store.take_oauth_state(&oauth_state.state, now()).await.unwrap(), oauth_state);
    assert!(!store.claim_dedup_key(&dedup, now()).await.unwrap(), "the key is still claimed");
    assert_eq!(store.find_api_key(&api_key.key_hash).await.unwrap(), Some(api_key.clone()));
    assert_eq!(store.find_api_key(&revoked_key.key_hash).await.unwrap(), None, "still revoked");
    assert_eq!(store.list_api_keys(&tenant.id).await.unwrap(), vec![api_key]);
    assert_eq!(store.get_catalogue(None).await.unwrap(), Some(catalogue()));
    assert_eq!(store.get_catalogue(Some(&tenant.id)).await.unwrap(), Some(catalogue()));
    assert_eq!(store.reserve_rate_slot("portal:1000", now(), slot_interval).await.unwrap(), now() + slot_interval);
}

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_is_gone() {
    let dir = ScratchDir::new("store-file");
    let path = dir.join("hubsync.redb");
    let first = MemoryStore::open(&path).unwrap();
    first.put_tenant(&Tenant { id: TenantId::new("t1"), name: "Acme".into(), created_at: now() }).await.unwrap();

    let Err(err) = MemoryStore::open(&path) else { panic!("two stores opened one file") };
    assert!(matches!(err, StoreFileError::InUse { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");

    drop(first);
    let second = MemoryStore::open(&path).unwrap();
    assert_eq!(second.list_tenants().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_file_that_is_not_a_store_is_refused_with_its_path() {
    let dir = ScratchDir::new("store-file");
    let path = dir.join("hubsync.redb");
    std::fs::write(&path, "not a database, but long enough to be mistaken for a header of one").unwrap();
    let Err(err) = MemoryStore::open(&path) else { panic!("opened a file that is not a store") };
    assert!(matches!(err, StoreFileError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_closed_store_releases_its_file_and_refuses_changes_without_making_them() {
    let dir = ScratchDir::new("store-file");
    let path = dir.join("hubsync.redb");
    let acme = Tenant { id: TenantId::new("t1"), name: "Acme".into(), created_at: now() };
    let first = MemoryStore::open(&path).unwrap();
    first.put_tenant(&acme).await.unwrap();
    first.close_file();

    // Still held (as by a task winding down), it no longer holds the file.
    let second = MemoryStore::open(&path).unwrap();
    let renamed = Tenant { name: "Acme Inc.".into(), ..acme.clone() };
    let refused = first.put_tenant(&renamed).await;
    assert!(matches!(refused, Err(hubsync::ports::StoreError::Unavailable(_))), "{refused:?}");
    assert_eq!(first.get_tenant(&acme.id).await.unwrap(), Some(acme.clone()), "the refused change was undone");
    assert_eq!(second.get_tenant(&acme.id).await.unwrap(), Some(acme));
}
