//! The admin key: one per deployment, kept in the app secret (`admin_api_key`), never in the
//! table, and never a tenant's key.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::deps::Deps;
use crate::domain::hash_api_key;
use crate::http::{ApiError, bearer_key};

/// Whether the request carries the deployment's admin key (`Authorization: Bearer <key>`).
/// Without an admin key in the app secret every request is refused.
pub async fn authenticate(deps: &Deps, headers: &HeaderMap) -> Result<(), ApiError> {
    let offered = bearer_key(headers).ok_or(ApiError::Unauthorized)?;
    let secrets = deps.secrets.app_secrets().await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(admin_key) = secrets.admin_api_key.as_ref() else {
        tracing::warn!("an admin API request, but the app secret has no admin_api_key: refused");
        return Err(ApiError::Unauthorized);
    };
    // Hashes compare in constant time whatever the lengths: nothing is learnt from timing.
    let matches = hash_api_key(offered).as_bytes().ct_eq(hash_api_key(admin_key.expose()).as_bytes());
    if bool::from(matches) { Ok(()) } else { Err(ApiError::Unauthorized) }
}

/// An admin request, as an extractor: a handler that takes it cannot run without the admin key.
pub struct AuthAdmin;

impl axum::extract::FromRequestParts<Deps> for AuthAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, deps: &Deps) -> Result<Self, ApiError> {
        authenticate(deps, &parts.headers).await.map(|()| AuthAdmin)
    }
}
