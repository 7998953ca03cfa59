//! Installing the HubSpot app end to end: the oauth-callback handler invoked with API Gateway
//! events, DynamoDB and Secrets Manager on moto, HubSpot simulated. Then the token lifecycle.

use std::sync::Arc;

use axum::http::StatusCode;
use hubspot_sim::{Fault, FaultKind, SimConfig};
use hubsync::connect::tokens::{TokenError, TokenProvider};
use hubsync::domain::{ConnectionStatus, TenantId};
use hubsync_tests::Function;
use hubsync_tests::lambda::{Event, invoke};
use hubsync_tests::oauth::{callback, consent, install, query, start};
use hubsync_tests::world::{CLIENT_ID, CLIENT_SECRET, CONSOLE, REDIRECT_URI, World};
use time::Duration;

#[tokio::test]
async fn install_redirects_to_hubspot_with_a_single_use_state() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let authorize = start(&world, key.expose()).await;
    assert!(authorize.starts_with(&format!("{}/oauth/authorize?", world.sim.base_url())), "{authorize}");
    let params = query(&authorize);
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(params["redirect_uri"], REDIRECT_URI);
    assert!(params["scope"].split(' ').any(|s| s == "crm.objects.contacts.write"), "{}", params["scope"]);
    assert!(params["optional_scope"].contains("crm.lists.write"));
    assert!(params["state"].len() >= 32);
}

#[tokio::test]
async fn a_completed_install_stores_an_active_connection_with_sealed_tokens() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let authorize = start(&world, key.expose()).await;
    let back = callback(&world, &consent(&authorize).await).await;
    assert_eq!(back.status, StatusCode::FOUND);
    assert!(back.location().starts_with(&format!("{CONSOLE}/hubspot?")), "{}", back.location());
    let outcome = query(back.location());
    assert_eq!(outcome["portal_id"], "1000");

    let id = hubsync::domain::ConnectionId::new(&outcome["connection_id"]);
    let connection = world.deps.store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(connection.tenant_id, TenantId::new("acme"));
    assert_eq!(connection.status, ConnectionStatus::Active);
    assert!(connection.scopes.contains(&"crm.objects.deals.write".to_string()));

    let stored = world.deps.store.get_tokens(&id).await.unwrap().unwrap();
    let token = world.deps.tokens.access_token(&id).await.unwrap();
    assert!(!stored.sealed.contains(token.expose()), "tokens are encrypted at rest");
}

#[tokio::test]
async fn a_state_works_once() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let hubspot_reply = consent(&start(&world, key.expose()).await).await;
    assert_eq!(callback(&world, &hubspot_reply).await.status, StatusCode::FOUND);

    let replay = callback(&world, &hubspot_reply).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.body.contains("unknown or was already used"), "{}", replay.body);
    assert_eq!(world.deps.store.list_connections(&TenantId::new("acme")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn forged_missing_and_expired_states_are_refused_without_redirecting() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    for forged in ["code=abc&state=forged", "code=abc"] {
        let reply = callback(&world, forged).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.headers.get("location").is_none());
    }

    let hubspot_reply = consent(&start(&world, key.expose()).await).await;
    world.clock.advance(Duration::minutes(11));
    let late = callback(&world, &hubspot_reply).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert!(late.body.contains("expired"), "{}", late.body);
    assert!(world.deps.store.list_connections(&TenantId::new("acme")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_denied_consent_returns_to_the_console_with_the_reason() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    world.sim.authorize_denies(true);
    let back = callback(&world, &consent(&start(&world, key.expose()).await).await).await;
    let outcome = query(back.location());
    assert_eq!(outcome["hubsync_status"], "error");
    assert_eq!(outcome["hubsync_error"], "access_denied");
    assert!(world.deps.store.list_connections(&TenantId::new("acme")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_reused_code_is_refused_and_says_to_install_again() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let first = consent(&start(&world, key.expose()).await).await;
    assert_eq!(query(callback(&world, &first).await.location())["hubsync_status"], "connected");

    // The same code with a fresh, valid state.
    let code = query(&format!("http://x/?{first}"))["code"].clone();
    let fresh_state = query(&start(&world, key.expose()).await)["state"].clone();
    let back = callback(&world, &format!("code={code}&state={fresh_state}")).await;
    let outcome = query(back.location());
    assert_eq!(outcome["hubsync_error"], "code_rejected");
    assert!(outcome["hubsync_message"].contains("Install the app again"));
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let config = SimConfig { auth_code_ttl: std::time::Duration::from_millis(300), ..SimConfig::default() };
    let world = World::with(config, |_| {}).await;
    let key = world.tenant("acme").await;
    let hubspot_reply = consent(&start(&world, key.expose()).await).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let outcome = query(callback(&world, &hubspot_reply).await.location());
    assert_eq!(outcome["hubsync_error"], "code_rejected");
}

#[tokio::test]
async fn hubspot_being_down_leaves_nothing_behind() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let hubspot_reply = consent(&start(&world, key.expose()).await).await;
    world.sim.inject_fault(Fault {
        kind: FaultKind::ServerError(503),
        rate: 1.0,
        path_prefix: Some("/oauth".into()),
        remaining: None,
    });
    let outcome = query(callback(&world, &hubspot_reply).await.location());
    assert_eq!(outcome["hubsync_error"], "hubspot_unavailable");
    assert!(world.deps.store.list_connections(&TenantId::new("acme")).await.unwrap().is_empty());
}

#[tokio::test]
async fn missing_required_scopes_are_refused_and_the_grant_revoked() {
    // HubSpot itself refuses at consent by default; this portal's admin got past it (the simulator
    // lets the grant through), so hubsync must check the granted scopes itself.
    let world = World::with(SimConfig { refuse_missing_required_scopes: false, ..SimConfig::default() }, |_| {}).await;
    let key = world.tenant("acme").await;
    world.sim.add_portal(2000, &["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write"]);
    let authorize = format!("{}&portal=2000", start(&world, key.expose()).await);
    let back = callback(&world, &consent(&authorize).await).await;
    let outcome = query(back.location());
    assert_eq!(outcome["hubsync_error"], "missing_scopes", "{outcome:?}");
    assert!(outcome["hubsync_message"].contains("crm.objects.deals.write"));
    assert!(world.deps.store.connections_for_portal(2000).await.unwrap().is_empty());
    assert_eq!(world.sim.request_count("POST", "/oauth/2026-09/token/revoke"), 1, "the grant is revoked");
}

#[tokio::test]
async fn reinstalling_updates_the_same_connection() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let first = install(&world, key.expose()).await;
    let second = install(&world, key.expose()).await;
    assert_eq!(first, second);
    assert_eq!(world.deps.store.list_connections(&TenantId::new("acme")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_portal_connected_by_another_tenant_is_refused_unless_sharing_is_allowed() {
    let world = World::new().await;
    let acme = world.tenant("acme").await;
    let globex = world.tenant("globex").await;
    install(&world, acme.expose()).await;
    let back = callback(&world, &consent(&start(&world, globex.expose()).await).await).await;
    assert_eq!(query(back.location())["hubsync_error"], "portal_claimed");
    assert!(world.deps.store.list_connections(&TenantId::new("globex")).await.unwrap().is_empty());

    let sharing = World::with(SimConfig::default(), |s| s.allow_shared_portals = true).await;
    let acme = sharing.tenant("acme").await;
    let globex = sharing.tenant("globex").await;
    assert_ne!(install(&sharing, acme.expose()).await, install(&sharing, globex.expose()).await);
}

#[tokio::test]
async fn install_needs_a_key_and_an_allowed_return_address() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let handler = oauth_callback::router(world.function(Function::OAuthCallback).await);
    let reply = invoke(&handler, Event::get(&format!("/oauth/install?return_to={CONSOLE}/x"))).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = invoke(&handler, Event::get(&format!("/oauth/install?return_to={CONSOLE}/x")).bearer("hsk_nope")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    for target in ["https://evil.example.com/x", "https://console.example.com.evil.com/", "javascript:alert(1)", ""] {
        let reply =
            invoke(&handler, Event::get(&format!("/oauth/install?return_to={target}")).bearer(key.expose())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{target}: {}", reply.body);
        assert_eq!(reply.json()["error"]["code"], "bad_request");
    }
}

#[tokio::test]
async fn concurrent_callers_on_many_instances_cause_one_refresh() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let id = hubsync::domain::ConnectionId::new(install(&world, key.expose()).await);
    let before = world.deps.tokens.access_token(&id).await.unwrap();

    world.clock.advance(Duration::minutes(26)); // inside the 5-minute refresh window of a 30-minute token
    let calls_before = world.token_calls();
    let mut instances: Vec<Arc<TokenProvider>> = Vec::new();
    for _ in 0..10 {
        instances.push(world.function(Function::PushWorker).await.tokens);
    }
    let handles: Vec<_> = instances
        .into_iter()
        .map(|tokens| {
            let id = id.clone();
            tokio::spawn(async move { tokens.access_token(&id).await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for handle in handles {
        tokens.push(handle.await.unwrap());
    }
    assert_eq!(world.token_calls() - calls_before, 1, "exactly one refresh");
    assert!(tokens.iter().all(|t| t == &tokens[0]), "everyone got the refreshed token");
    assert_ne!(tokens[0], before);
}

#[tokio::test]
async fn a_refused_refresh_token_marks_the_connection_needs_reauth() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let id = hubsync::domain::ConnectionId::new(install(&world, key.expose()).await);
    let refresh = world.deps.tokens.refresh_token(&id).await.unwrap();
    world.deps.hubspot.revoke_refresh_token(CLIENT_ID, &CLIENT_SECRET.into(), &refresh).await.unwrap();

    world.clock.advance(Duration::minutes(40));
    let err = world.function(Function::PushWorker).await.tokens.access_token(&id).await.unwrap_err();
    assert!(matches!(err, TokenError::NeedsReauth(_)), "{err:?}");
    let connection = world.deps.store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(connection.status, ConnectionStatus::NeedsReauth);
}

#[tokio::test]
async fn a_401_refreshes_once_and_the_call_succeeds() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let id = hubsync::domain::ConnectionId::new(install(&world, key.expose()).await);
    let token = world.deps.tokens.access_token(&id).await.unwrap();
    world.sim.expire_access_token(token.expose());
    let calls_before = world.token_calls();

    let connection = world.deps.store.get_connection(&id).await.unwrap().unwrap();
    let schemas =
        hubsync::console::schemas::refresh(&world.deps, &connection, &[hubsync::domain::ObjectType::Contacts])
            .await
            .unwrap();
    assert!(schemas[&hubsync::domain::ObjectType::Contacts].properties.iter().any(|p| p.name == "email"));
    assert_eq!(world.token_calls() - calls_before, 1);
}

#[tokio::test]
async fn rotating_the_client_secret_while_workers_are_warm_needs_no_reauthorisation() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let id = hubsync::domain::ConnectionId::new(install(&world, key.expose()).await);
    let worker = world.function(Function::PushWorker).await;
    worker.tokens.access_token(&id).await.expect("a warm worker holds a token");
    let held = worker.secrets.app_secrets().await.unwrap();
    assert_eq!(held.client_secret.expose(), CLIENT_SECRET, "and the app secret as it was");

    // The operator rotates the app's secret at HubSpot, then in Secrets Manager.
    world.sim.add_app(CLIENT_ID, "sim-client-secret-rotated");
    world.rotate_client_secret("sim-client-secret-rotated").await;
    world.clock.advance(Duration::minutes(40));
    let calls_before = world.token_calls();
    worker.tokens.access_token(&id).await.expect("refreshed with the secret read again");
    assert_eq!(world.token_calls() - calls_before, 2, "refused with the old secret, then refreshed with the new");
    let connection = world.deps.store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(connection.status, ConnectionStatus::Active);
}

#[tokio::test]
async fn a_refused_client_secret_or_a_down_token_endpoint_is_retried_and_never_marks_a_connection() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let id = hubsync::domain::ConnectionId::new(install(&world, key.expose()).await);
    let worker = world.function(Function::PushWorker).await;
    world.clock.advance(Duration::minutes(40));

    // HubSpot has the new secret; Secrets Manager not yet.
    world.sim.add_app(CLIENT_ID, "sim-client-secret-rotated");
    let err = worker.tokens.access_token(&id).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
    // HubSpot's token endpoint failing.
    world.sim.add_app(CLIENT_ID, CLIENT_SECRET);
    world.sim.inject_fault(Fault {
        kind: FaultKind::ServerError(503),
        rate: 1.0,
        path_prefix: Some("/oauth".into()),
        remaining: Some(1),
    });
    let err = worker.tokens.access_token(&id).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
    let connection = world.deps.store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(connection.status, ConnectionStatus::Active, "neither is the connection's fault");

    worker.tokens.access_token(&id).await.expect("once the endpoint answers, the refresh goes through");
}
