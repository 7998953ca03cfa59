//! Console API keys: every request names its tenant by key, and sees only that tenant's data.

use axum::http::HeaderMap;

use crate::deps::Deps;
use crate::domain::{Connection, ConnectionId, TenantId, hash_api_key};
use crate::http::{ApiError, bearer_key};

/// The tenant whose key the request carries (`Authorization: Bearer <key>`).
pub async fn authenticate(deps: &Deps, headers: &HeaderMap) -> Result<TenantId, ApiError> {
    let key = bearer_key(headers).ok_or(ApiError::Unauthorized)?;
    let record = deps.store.find_api_key(&hash_api_key(key)).await?.ok_or(ApiError::Unauthorized)?;
    if record.is_expired(deps.clock.now()) {
        return Err(ApiError::Unauthorized);
    }
    Ok(record.tenant_id)
}

/// The connection, if it belongs to `tenant`. Another tenant's connection is "not found", exactly
/// like a missing one, so ids of other tenants cannot even be probed.
pub async fn owned_connection(deps: &Deps, tenant: &TenantId, id: &str) -> Result<Connection, ApiError> {
    let not_found = || ApiError::NotFound(format!("connection `{id}`"));
    if id.is_empty() || id.len() > 128 {
        return Err(not_found());
    }
    match deps.store.get_connection(&ConnectionId::new(id)).await? {
        Some(connection) if &connection.tenant_id == tenant => Ok(connection),
        _ => Err(not_found()),
    }
}

/// The authenticated tenant of a console request, as an extractor: a handler that takes it
/// cannot run without a valid key.
pub struct AuthTenant(pub TenantId);

impl axum::extract::FromRequestParts<Deps> for AuthTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, deps: &Deps) -> Result<Self, ApiError> {
        authenticate(deps, &parts.headers).await.map(AuthTenant)
    }
}
