//! OAuth: authorize, code exchange, refresh, introspection and revocation.

mod common;

use std::time::Duration;

use common::{REDIRECT_URI, param, sim, sim_with};
use hubspot_sim::{DEFAULT_CLIENT_ID as CLIENT_ID, DEFAULT_CLIENT_SECRET as SECRET, SimConfig};
use reqwest::StatusCode;

const SCOPES: &str = "oauth%20crm.objects.contacts.read%20crm.objects.contacts.write";

fn authorize_query(extra: &str) -> String {
    format!("client_id={CLIENT_ID}&redirect_uri={REDIRECT_URI}&scope={SCOPES}&state=st-1{extra}")
}

async fn code(s: &common::Sim, extra: &str) -> String {
    let (status, query) = s.authorize(&authorize_query(extra)).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(param(&query, "state"), Some("st-1"));
    param(&query, "code").expect("a code").to_string()
}

fn exchange(code: &str) -> [(&str, &str); 5] {
    [
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("redirect_uri", REDIRECT_URI),
        ("code", code),
    ]
}

#[tokio::test]
async fn a_code_is_exchanged_once_for_tokens_that_work() {
    let s = sim().await;
    let code = code(&s, "").await;
    let grant = s.form("/oauth/v1/token", &exchange(&code)).await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.body);
    assert_eq!(grant.body["token_type"], "bearer");
    assert_eq!(grant.body["token_use"], "access_token");
    assert_eq!(grant.body["expires_in"], 1800);
    assert_eq!(grant.body["hub_id"], 1000);
    assert!(grant.body["user_id"].as_u64().is_some());
    let scopes = grant.body["scopes"].as_array().unwrap();
    assert!(scopes.iter().any(|s| s == "crm.objects.contacts.write"));
    assert!(!scopes.iter().any(|s| s == "crm.objects.deals.read"), "only what was asked for");

    let access = grant.body["access_token"].as_str().unwrap();
    let listed = s.call_as(access, reqwest::Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(listed.status, StatusCode::OK);

    let again = s.form("/oauth/v3/token", &exchange(&code)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.body["status"], "BAD_AUTH_CODE");
    assert_eq!(again.body["message"], "missing or unknown auth code");
    assert_eq!(again.body["error"], "invalid_grant");
    assert!(again.body["correlationId"].is_string());
    assert!(again.header("x-hubspot-correlation-id").is_some());
}

#[tokio::test]
async fn codes_expire_and_must_match_the_redirect_uri_and_secret() {
    let s = sim_with(SimConfig { auth_code_ttl: Duration::from_millis(150), ..SimConfig::default() }).await;
    let late = code(&s, "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expired = s.form("/oauth/v1/token", &exchange(&late)).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
    assert_eq!(expired.body["status"], "EXPIRED_AUTH_CODE");

    let code = code(&s, "").await;
    let mut wrong_uri = exchange(&code);
    wrong_uri[3].1 = "https://elsewhere.example.com/cb";
    assert_eq!(s.form("/oauth/v1/token", &wrong_uri).await.body["status"], "BAD_REDIRECT_URI");
    let mut wrong_secret = exchange(&code);
    wrong_secret[2].1 = "not-it";
    let refused = s.form("/oauth/v1/token", &wrong_secret).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.body["status"], "BAD_CLIENT_ID");
    assert_eq!(refused.body["error"], "invalid_client");
    // Failed attempts do not use the code up.
    assert_eq!(s.form("/oauth/2026-03/token", &exchange(&code)).await.status, StatusCode::OK);

    let bad_grant = s.form("/oauth/v1/token", &[("grant_type", "password"), ("client_id", CLIENT_ID)]).await;
    assert_eq!(bad_grant.body["status"], "BAD_GRANT_TYPE");
}

#[tokio::test]
async fn refresh_keeps_the_refresh_token_until_it_is_revoked() {
    let s = sim().await;
    let tokens = s.sim.issue_tokens(1000, CLIENT_ID, &["oauth", "crm.objects.contacts.read"]);
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("refresh_token", tokens.refresh_token.as_str()),
    ];
    let fresh = s.form("/oauth/v1/token", &refresh).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_ne!(fresh.body["access_token"], tokens.access_token.as_str());
    assert_eq!(fresh.body["refresh_token"], tokens.refresh_token.as_str());
    assert_eq!(fresh.body["scopes"], serde_json::json!(["oauth", "crm.objects.contacts.read"]));

    // v1 revocation.
    let url = s.url(&format!("/oauth/v1/refresh-tokens/{}", tokens.refresh_token));
    assert_eq!(s.http.get(&url).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(s.http.delete(&url).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let refused = s.form("/oauth/v1/token", &refresh).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.body["status"], "BAD_REFRESH_TOKEN");
    assert_eq!(refused.body["error"], "invalid_grant");

    // v3 revocation.
    let other = s.sim.issue_tokens(1000, CLIENT_ID, &["oauth"]);
    let revoke = [("client_id", CLIENT_ID), ("client_secret", SECRET), ("token", other.refresh_token.as_str())];
    assert_eq!(s.form("/oauth/v3/token/revoke", &revoke).await.status, StatusCode::OK);
    let refresh_other = [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("refresh_token", other.refresh_token.as_str()),
    ];
    assert_eq!(s.form("/oauth/v3/token", &refresh_other).await.body["status"], "BAD_REFRESH_TOKEN");
}

#[tokio::test]
async fn introspection_describes_live_tokens_and_not_dead_ones() {
    let s = sim().await;
    let tokens = s.sim.issue_tokens(1000, CLIENT_ID, &["oauth", "crm.objects.deals.read"]);
    let v1 = common::reply(
        s.http.get(s.url(&format!("/oauth/v1/access-tokens/{}", tokens.access_token))).send().await.unwrap(),
    )
    .await;
    assert_eq!(v1.status, StatusCode::OK);
    assert_eq!(v1.body["hub_id"], 1000);
    assert_eq!(v1.body["token"], tokens.access_token.as_str());
    assert!(v1.body["app_id"].as_u64().unwrap() > 0);
    assert!(v1.body["expires_in"].as_i64().unwrap() > 1700);
    assert!(v1.body["user"].as_str().unwrap().contains('@'));
    assert!(v1.body["hub_domain"].is_string());
    // Every field HubSpot's OAuth spec requires of `SignedAccessToken`.
    let signed = v1.body["signed_access_token"].as_object().unwrap();
    for field in [
        "appId",
        "appInstallId",
        "audience",
        "expiresAt",
        "hubId",
        "hublet",
        "installingUserId",
        "isPrivateDistribution",
        "isServiceAccount",
        "isUserLevel",
        "newSignature",
        "scopeToScopeGroupPks",
        "scopes",
        "signature",
        "trialScopeToScopeGroupPks",
        "trialScopes",
        "userId",
    ] {
        assert!(signed.get(field).is_some_and(|v| !v.is_null()), "signed_access_token.{field} is missing: {signed:?}");
    }
    assert_eq!(signed.len(), 17);

    let ask = |token: &str| {
        [("client_id", CLIENT_ID), ("client_secret", SECRET), ("token", token), ("token_type_hint", "access_token")]
            .map(|(k, v)| (k, v.to_string()))
    };
    let introspect = |token: &str| {
        let form = ask(token);
        let s = &s;
        async move {
            s.form("/oauth/v3/token/introspect", &form.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await
        }
    };
    let live = introspect(&tokens.access_token).await;
    assert_eq!(live.body["active"], true);
    assert_eq!(live.body["token_use"], "access_token");
    assert_eq!(live.body["client_id"], CLIENT_ID);
    assert_eq!(live.body["scopes"], serde_json::json!(["oauth", "crm.objects.deals.read"]));
    let refresh = introspect(&tokens.refresh_token).await;
    assert_eq!(refresh.body["active"], true);
    assert_eq!(refresh.body["token_use"], "refresh_token");

    s.sim.expire_access_token(&tokens.access_token);
    assert_eq!(introspect(&tokens.access_token).await.body, serde_json::json!({ "active": false }));
    assert_eq!(introspect("made-up").await.body["active"], false);
    let gone = s.http.get(s.url(&format!("/oauth/v1/access-tokens/{}", tokens.access_token))).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn authorize_checks_the_app_and_the_portal_scopes() {
    let s = sim().await;
    let (status, _) = s.authorize(&format!("client_id=unknown&redirect_uri={REDIRECT_URI}&scope=oauth")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s.authorize(&format!("client_id={CLIENT_ID}&scope=oauth")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A portal without deals: a required deals scope is refused, an optional one dropped.
    s.sim.add_portal(2000, &["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write"]);
    let (status, query) = s
        .authorize(&format!(
            "client_id={CLIENT_ID}&redirect_uri={REDIRECT_URI}&scope=oauth%20crm.objects.deals.read&state=st-1"
        ))
        .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(param(&query, "error"), Some("invalid_scope"));
    assert!(param(&query, "error_description").unwrap().contains("crm.objects.deals.read"));
    assert_eq!(param(&query, "state"), Some("st-1"));

    let granted = code(&s, "&optional_scope=crm.objects.deals.read%20crm.lists.read").await;
    let grant = s.form("/oauth/v1/token", &exchange(&granted)).await;
    assert_eq!(grant.body["hub_id"], 2000, "the portal added last");
    let scopes = grant.body["scopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 3, "{scopes:?}");

    // Pinned portals, by path or by the simulator's `portal` parameter.
    let pinned = s.http.get(s.url(&format!("/oauth/1000/authorize?{}", authorize_query("")))).send().await.unwrap();
    let location = pinned.headers()["location"].to_str().unwrap().to_string();
    let pinned_code = location.split("code=").nth(1).unwrap().split('&').next().unwrap().to_string();
    assert_eq!(s.form("/oauth/v1/token", &exchange(&pinned_code)).await.body["hub_id"], 1000);
    let by_param = code(&s, "&portal=1000").await;
    assert_eq!(s.form("/oauth/v1/token", &exchange(&by_param)).await.body["hub_id"], 1000);

    s.sim.authorize_denies(true);
    let (_, query) = s.authorize(&authorize_query("")).await;
    assert_eq!(param(&query, "error"), Some("access_denied"));
    assert_eq!(param(&query, "code"), None);
    s.sim.authorize_denies(false);
    code(&s, "").await;
}

#[tokio::test]
async fn a_lenient_portal_grants_what_it_has() {
    let config = SimConfig { refuse_missing_required_scopes: false, ..SimConfig::default() };
    let s = sim_with(config).await;
    s.sim.add_portal(2000, &["oauth", "crm.objects.contacts.read"]);
    let code = code(&s, "").await;
    let grant = s.form("/oauth/v1/token", &exchange(&code)).await;
    assert_eq!(grant.body["scopes"], serde_json::json!(["crm.objects.contacts.read", "oauth"]));
}

#[tokio::test]
async fn several_apps_keep_their_tokens_apart() {
    let s = sim().await;
    s.sim.add_app("other-app", "other-secret");
    let theirs = s.sim.issue_tokens(1000, "other-app", &["oauth"]);
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("refresh_token", theirs.refresh_token.as_str()),
    ];
    assert_eq!(s.form("/oauth/v1/token", &refresh).await.body["status"], "BAD_REFRESH_TOKEN");
    let own = [
        ("grant_type", "refresh_token"),
        ("client_id", "other-app"),
        ("client_secret", "other-secret"),
        ("refresh_token", theirs.refresh_token.as_str()),
    ];
    assert_eq!(s.form("/oauth/v1/token", &own).await.status, StatusCode::OK);
}
