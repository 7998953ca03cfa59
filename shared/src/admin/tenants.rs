//! Onboarding: tenants, and their console API keys (shown once, stored hashed, listed by prefix,
//! rotated, revoked, optionally expiring).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::deps::Deps;
use crate::domain::{ApiKeyRecord, Tenant, TenantId};
use crate::http::ApiError;

const MAX_TENANT_ID_LEN: usize = 64;
const MAX_NAME_LEN: usize = 200;
const MAX_LABEL_LEN: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The platform's own id of its customer: letters, digits, `-` and `_`.
    pub id: String,
    /// How people call it; the id when left out.
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for ("console embed", "CI"); shown when keys are listed.
    pub label: Option<String>,
    /// When the key stops working; it works until revoked when left out.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A key as listed: never its plaintext nor its hash.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub key_id: String,
    /// The plaintext's start, to tell keys apart.
    pub prefix: String,
    pub label: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A key just made: its plaintext is in this answer and nowhere else, ever.
#[derive(Debug, Serialize)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub view: KeyView,
    pub key: String,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(record: &ApiKeyRecord) -> Self {
        KeyView {
            key_id: record.key_id.clone(),
            prefix: record.prefix(),
            label: record.label.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
        }
    }
}

pub async fn create_tenant(deps: &Deps, request: NewTenant) -> Result<Tenant, ApiError> {
    let id = request.id.trim();
    let valid = !id.is_empty()
        && id.len() <= MAX_TENANT_ID_LEN
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(ApiError::BadRequest(format!(
            "`id` must be 1 to {MAX_TENANT_ID_LEN} letters, digits, `-` or `_` (your platform's id of the customer)"
        )));
    }
    let name = request.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(id);
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::BadRequest(format!("`name` must be at most {MAX_NAME_LEN} characters")));
    }
    let tenant = Tenant { id: TenantId::new(id), name: name.to_string(), created_at: deps.clock.now() };
    if !deps.store.create_tenant(&tenant).await? {
        return Err(ApiError::Conflict(format!("tenant `{id}` exists already: issue it a key instead")));
    }
    tracing::info!(tenant = %tenant.id, "tenant created");
    Ok(tenant)
}

pub async fn list_tenants(deps: &Deps) -> Result<Vec<Tenant>, ApiError> {
    Ok(deps.store.list_tenants().await?)
}

/// The tenant named in the path, or "not found".
pub async fn existing_tenant(deps: &Deps, id: &str) -> Result<Tenant, ApiError> {
    let not_found = || ApiError::NotFound(format!("tenant `{id}`"));
    if id.is_empty() || id.len() > MAX_TENANT_ID_LEN {
        return Err(not_found());
    }
    deps.store.get_tenant(&TenantId::new(id)).await?.ok_or_else(not_found)
}

pub async fn issue_key(deps: &Deps, tenant: &Tenant, request: NewKey) -> Result<IssuedKey, ApiError> {
    let now = deps.clock.now();
    let label = request.label.as_deref().map(str::trim).filter(|l| !l.is_empty()).unwrap_or("console");
    if label.chars().count() > MAX_LABEL_LEN {
        return Err(ApiError::BadRequest(format!("`label` must be at most {MAX_LABEL_LEN} characters")));
    }
    if request.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::BadRequest("`expires_at` must be in the future".into()));
    }
    let (plaintext, mut record) = ApiKeyRecord::generate(tenant.id.clone(), label.to_string(), now);
    record.expires_at = request.expires_at;
    deps.store.put_api_key(&record).await?;
    tracing::info!(tenant = %tenant.id, key_id = %record.key_id, "console API key issued");
    Ok(IssuedKey { view: KeyView::from(&record), key: plaintext.expose().to_string() })
}

pub async fn list_keys(deps: &Deps, tenant: &Tenant) -> Result<Vec<KeyView>, ApiError> {
    Ok(deps.store.list_api_keys(&tenant.id).await?.iter().map(KeyView::from).collect())
}

async fn stored_key(deps: &Deps, tenant: &Tenant, key_id: &str) -> Result<ApiKeyRecord, ApiError> {
    let keys = deps.store.list_api_keys(&tenant.id).await?;
    keys.into_iter()
        .find(|key| key.key_id == key_id)
        .ok_or_else(|| ApiError::NotFound(format!("key `{key_id}` of tenant `{}`", tenant.id)))
}

/// A new key in place of `key_id`, with its label and expiry; the old one stops working at once.
/// The new key is stored before the old one goes, so the tenant always has one that works.
pub async fn rotate_key(deps: &Deps, tenant: &Tenant, key_id: &str) -> Result<IssuedKey, ApiError> {
    let old = stored_key(deps, tenant, key_id).await?;
    let now = deps.clock.now();
    let expires_at = old.expires_at.filter(|at| *at > now);
    let issued = issue_key(deps, tenant, NewKey { label: Some(old.label.clone()), expires_at }).await?;
    deps.store.delete_api_key(&old.key_hash).await?;
    tracing::info!(tenant = %tenant.id, old = %old.key_id, new = %issued.view.key_id, "console API key rotated");
    Ok(issued)
}

pub async fn revoke_key(deps: &Deps, tenant: &Tenant, key_id: &str) -> Result<KeyView, ApiError> {
    let key = stored_key(deps, tenant, key_id).await?;
    deps.store.delete_api_key(&key.key_hash).await?;
    tracing::info!(tenant = %tenant.id, key_id = %key.key_id, "console API key revoked");
    Ok(KeyView::from(&key))
}
