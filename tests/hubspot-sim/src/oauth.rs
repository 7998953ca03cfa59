//! OAuth 2.0 as HubSpot runs it: the authorize page (auto-approved here), the token endpoint
//! (v1, v3 and 2026-03 paths), introspection and revocation.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::state::{AuthCode, Portal, Sim, State as SimState};

/// Form or query parameters by name (the v1 token endpoint also reads some from the query).
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn redirect(redirect_uri: &str, pairs: &[(&str, Option<&str>)]) -> Response {
    let query: Vec<String> = pairs.iter().filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v)))).collect();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{}", query.join("&"));
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::FOUND, [(LOCATION, location)]).into_response(),
        Err(_) => error_page("redirect_uri is not a valid URL"),
    }
}

/// What HubSpot shows a person when the authorize link itself is broken: a page, no redirect.
fn error_page(reason: &str) -> Response {
    let body =
        format!("<!doctype html><title>Authorization failed</title><h1>Authorization failed</h1><p>{reason}</p>");
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

fn scopes(value: Option<&str>) -> Vec<String> {
    value.unwrap_or_default().split([' ', '+', ',']).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

pub async fn authorize(State(sim): State<Sim>, Query(query): Query<Vec<(String, String)>>) -> Response {
    authorize_on(&sim, None, &Params(query))
}

/// `/oauth/{portalId}/authorize`: the account-pinned variant.
pub async fn authorize_pinned(
    State(sim): State<Sim>,
    Path(portal): Path<u64>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    authorize_on(&sim, Some(portal), &Params(query))
}

/// Auto-approves the install on a portal: the pinned one, the `portal` parameter (a simulator
/// extra), or the portal added last.
fn authorize_on(sim: &Sim, pinned: Option<u64>, params: &Params) -> Response {
    let mut state = sim.lock();
    let Some(client_id) = params.get("client_id").filter(|c| state.apps.contains_key(*c)) else {
        return error_page("This app's client_id is missing or unknown.");
    };
    let Some(redirect_uri) =
        params.get("redirect_uri").filter(|r| r.starts_with("http://") || r.starts_with("https://"))
    else {
        return error_page("The redirect_uri is missing or not an http(s) URL.");
    };
    let state_param = params.get("state");
    let hub_id = match pinned.or_else(|| params.get("portal").and_then(|p| p.parse().ok())) {
        Some(hub_id) => hub_id,
        None => state.last_portal,
    };
    let Some(portal) = state.portals.get(&hub_id) else {
        return error_page(&format!("HubSpot account {hub_id} does not exist."));
    };
    if state.deny_authorize {
        return redirect(
            redirect_uri,
            &[
                ("error", Some("access_denied")),
                ("error_description", Some("The user declined to install the app")),
                ("state", state_param),
            ],
        );
    }
    let required = scopes(params.get("scope"));
    let missing: Vec<&String> = required.iter().filter(|s| !portal.scopes.contains(*s)).collect();
    if !missing.is_empty() && sim.config.refuse_missing_required_scopes {
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        let description = format!("The account does not have access to the required scopes: {}", names.join(" "));
        return redirect(
            redirect_uri,
            &[("error", Some("invalid_scope")), ("error_description", Some(&description)), ("state", state_param)],
        );
    }
    let mut granted: Vec<String> = required
        .into_iter()
        .chain(scopes(params.get("optional_scope")))
        .filter(|s| portal.scopes.contains(s))
        .collect();
    granted.sort();
    granted.dedup();
    let code = uuid::Uuid::new_v4().to_string();
    state.codes.insert(
        code.clone(),
        AuthCode {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            hub_id,
            scopes: granted,
            expires_at: sim.now_ms() + sim.config.auth_code_ttl.as_millis() as i64,
        },
    );
    redirect(redirect_uri, &[("code", Some(&code)), ("state", state_param)])
}

/// Merges query and form parameters; a body that is not a form is a bad request.
fn form_params(query: Vec<(String, String)>, form: Result<Form<Vec<(String, String)>>, FormRejection>) -> Params {
    let mut all = form.map(|Form(f)| f).unwrap_or_default();
    all.extend(query);
    Params(all)
}

fn check_client<'a>(state: &SimState, params: &'a Params) -> Result<&'a str, ApiError> {
    let client_id = params.get("client_id").unwrap_or_default();
    let Some(app) = state.apps.get(client_id) else {
        return Err(ApiError::oauth("BAD_CLIENT_ID", "missing or unknown client id", "invalid_client"));
    };
    if params.get("client_secret") != Some(app.client_secret.as_str()) {
        return Err(ApiError::oauth("BAD_CLIENT_ID", "missing or invalid client secret", "invalid_client"));
    }
    Ok(client_id)
}

/// `POST /oauth/v1/token` (and the v3 / 2026-03 paths). Refreshing keeps the same refresh
/// token: HubSpot does not document rotation, and clients must store whatever comes back.
pub async fn token(
    State(sim): State<Sim>,
    Query(query): Query<Vec<(String, String)>>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, ApiError> {
    let params = form_params(query, form);
    let ttl = sim.config.access_token_ttl;
    let mut state = sim.lock();
    let grant_type = params.get("grant_type").unwrap_or_default();
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        return Err(ApiError::oauth(
            "BAD_GRANT_TYPE",
            "grant_type must be authorization_code or refresh_token",
            "unsupported_grant_type",
        ));
    }
    let client_id = check_client(&state, &params)?.to_string();
    let (hub_id, scopes, refresh_token) = if grant_type == "authorization_code" {
        let bad_code = || ApiError::oauth("BAD_AUTH_CODE", "missing or unknown auth code", "invalid_grant");
        let code_value = params.get("code").ok_or_else(bad_code)?;
        let code = state.codes.get(code_value).filter(|c| c.client_id == client_id).ok_or_else(bad_code)?;
        if code.expires_at <= sim.now_ms() {
            state.codes.remove(code_value);
            return Err(ApiError::oauth("EXPIRED_AUTH_CODE", "auth code is expired", "invalid_grant"));
        }
        if params.get("redirect_uri") != Some(code.redirect_uri.as_str()) {
            return Err(ApiError::oauth(
                "BAD_REDIRECT_URI",
                "redirect_uri does not match the redirect_uri used to authorize",
                "invalid_grant",
            ));
        }
        // Codes are single-use: a successful exchange consumes it.
        let code = state.codes.remove(code_value).expect("checked above");
        (code.hub_id, code.scopes, None)
    } else {
        let bad_refresh = || ApiError::oauth("BAD_REFRESH_TOKEN", "missing or invalid refresh token", "invalid_grant");
        let token = params.get("refresh_token").ok_or_else(bad_refresh)?;
        let stored = state.refresh_tokens.get(token).filter(|t| t.client_id == client_id).ok_or_else(bad_refresh)?;
        (stored.hub_id, stored.scopes.clone(), Some(token.to_string()))
    };
    let user_id = state.portals.get(&hub_id).map(|p| p.user_id).unwrap_or_default();
    let tokens = match refresh_token {
        None => state.mint_tokens(hub_id, &client_id, scopes.clone(), ttl),
        Some(refresh_token) => {
            let (access_token, expires_in) = state.mint_access_token(hub_id, &client_id, user_id, scopes.clone(), ttl);
            crate::state::Tokens { access_token, refresh_token, expires_in }
        }
    };
    Ok(axum::Json(json!({
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_in": tokens.expires_in,
        "token_type": "bearer",
        "token_use": "access_token",
        "hub_id": hub_id,
        "user_id": user_id,
        "scopes": scopes,
    }))
    .into_response())
}

fn user_of(state: &SimState, hub_id: u64) -> Option<String> {
    state.portals.get(&hub_id).map(|p| p.user_email.clone())
}

/// The access token's metadata, or `None` if it is unknown or expired.
fn access_info(state: &SimState, token: &str) -> Option<Value> {
    let info = state.access_tokens.get(token)?;
    let expires_in = (info.expires_at - state.clock.now_ms()) / 1000;
    if expires_in <= 0 {
        return None;
    }
    let app_id = state.app_id(&info.client_id);
    Some(json!({
        "token": token,
        "user": user_of(state, info.hub_id),
        "hub_domain": Portal::domain(info.hub_id),
        "scopes": info.scopes,
        "hub_id": info.hub_id,
        "app_id": app_id,
        "client_id": info.client_id,
        "expires_in": expires_in,
        "user_id": info.user_id,
        "token_type": "access",
        "is_private_distribution": false,
        "signed_access_token": signed_access_token(token, info, app_id),
    }))
}

/// HubSpot's `SignedAccessToken`, with every field its OAuth spec requires. The signatures are
/// opaque text derived from the token (clients only pass them on), the installing user is the
/// portal's user, the hublet is `na1`, and the scope-group fields, which HubSpot documents
/// only as strings, are empty lists.
fn signed_access_token(token: &str, info: &crate::state::AccessToken, app_id: u64) -> Value {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let signature = |salt: &str| {
        let digest = Sha256::digest(format!("{salt}:{token}").as_bytes());
        base64::engine::general_purpose::STANDARD.encode(digest)
    };
    json!({
        "appId": app_id,
        "appInstallId": format!("{app_id}-{}", info.hub_id),
        "audience": info.client_id,
        "expiresAt": info.expires_at,
        "hubId": info.hub_id,
        "hublet": "na1",
        "installingUserId": info.user_id,
        "isPrivateDistribution": false,
        "isServiceAccount": false,
        "isUserLevel": false,
        "newSignature": signature("new"),
        "scopeToScopeGroupPks": "[]",
        "scopes": info.scopes.join(" "),
        "signature": signature("v1"),
        "trialScopeToScopeGroupPks": "[]",
        "trialScopes": "",
        "userId": info.user_id,
    })
}

fn refresh_info(state: &SimState, token: &str) -> Option<Value> {
    let info = state.refresh_tokens.get(token)?;
    Some(json!({
        "token": token,
        "user": user_of(state, info.hub_id),
        "hub_domain": Portal::domain(info.hub_id),
        "scopes": info.scopes,
        "hub_id": info.hub_id,
        "app_id": state.app_id(&info.client_id),
        "client_id": info.client_id,
        "user_id": info.user_id,
        "token_type": "refresh",
    }))
}

fn token_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "Token not found or expired")
}

/// `GET /oauth/v1/access-tokens/{token}`.
pub async fn access_token_v1(State(sim): State<Sim>, Path(token): Path<String>) -> Result<Response, ApiError> {
    let state = sim.lock();
    let mut info = access_info(&state, &token).ok_or_else(token_not_found)?;
    if let Some(map) = info.as_object_mut() {
        map.remove("client_id");
    }
    Ok(axum::Json(info).into_response())
}

/// `GET /oauth/v1/refresh-tokens/{token}`.
pub async fn refresh_token_v1(State(sim): State<Sim>, Path(token): Path<String>) -> Result<Response, ApiError> {
    let state = sim.lock();
    let mut info = refresh_info(&state, &token).ok_or_else(token_not_found)?;
    if let Some(map) = info.as_object_mut() {
        map.remove("app_id");
    }
    Ok(axum::Json(info).into_response())
}

/// `DELETE /oauth/v1/refresh-tokens/{token}`: the refresh token stops working; access tokens
/// minted from it live on until they expire (as HubSpot documents).
pub async fn revoke_refresh_token_v1(State(sim): State<Sim>, Path(token): Path<String>) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    state.refresh_tokens.remove(&token).ok_or_else(token_not_found)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /oauth/v3/token/introspect`: RFC 7662 style, `{"active": false}` for anything unknown.
pub async fn introspect(
    State(sim): State<Sim>,
    Query(query): Query<Vec<(String, String)>>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, ApiError> {
    let params = form_params(query, form);
    let state = sim.lock();
    let client_id = check_client(&state, &params)?;
    let token = params.get("token").unwrap_or_default();
    let as_access = || {
        access_info(&state, token).map(|mut i| {
            i["token_use"] = json!("access_token");
            i
        })
    };
    let as_refresh = || {
        refresh_info(&state, token).map(|mut i| {
            i["token_use"] = json!("refresh_token");
            i
        })
    };
    let found = if params.get("token_type_hint") == Some("refresh_token") {
        as_refresh().or_else(as_access)
    } else {
        as_access().or_else(as_refresh)
    };
    let body = match found.filter(|i| i["client_id"] == json!(client_id)) {
        Some(mut info) => {
            info["active"] = json!(true);
            info
        }
        None => json!({ "active": false }),
    };
    Ok(axum::Json(body).into_response())
}

/// `POST /oauth/v3/token/revoke`: revokes a refresh (or access) token of the calling app;
/// unknown tokens are not an error (RFC 7009).
pub async fn revoke(
    State(sim): State<Sim>,
    Query(query): Query<Vec<(String, String)>>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, ApiError> {
    let params = form_params(query, form);
    let mut state = sim.lock();
    let client_id = check_client(&state, &params)?.to_string();
    let token = params.get("token").unwrap_or_default().to_string();
    if state.refresh_tokens.get(&token).is_some_and(|t| t.client_id == client_id) {
        state.refresh_tokens.remove(&token);
    }
    if state.access_tokens.get(&token).is_some_and(|t| t.client_id == client_id) {
        state.access_tokens.remove(&token);
    }
    Ok(StatusCode::OK.into_response())
}
