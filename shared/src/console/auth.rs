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
    match any_connection(deps, id).await {
        Ok(connection) if &connection.tenant_id == tenant => Ok(connection),
        _ => Err(connection_not_found(id)),
    }
}

/// The connection, whichever tenant it belongs to (the admin API's view).
pub async fn any_connection(deps: &Deps, id: &str) -> Result<Connection, ApiError> {
    if id.is_empty() || id.len() > 128 {
        return Err(connection_not_found(id));
    }
    deps.store.get_connection(&ConnectionId::new(id)).await?.ok_or_else(|| connection_not_found(id))
}

fn connection_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("connection `{id}`"))
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
