//! The platform team declares the fields tenants may map: once for the deployment, and where a
//! tenant differs, for that tenant.

use crate::deps::Deps;
use crate::domain::{FieldCatalogue, TenantId};
use crate::http::ApiError;

/// Replaces the deployment's catalogue (`tenant` None) or a tenant's, after checking it.
pub async fn declare(
    deps: &Deps,
    tenant: Option<&TenantId>,
    catalogue: FieldCatalogue,
) -> Result<FieldCatalogue, ApiError> {
    let problems = catalogue.problems();
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(format!("the catalogue is not valid: {}", problems.join("; "))));
    }
    deps.store.put_catalogue(tenant, &catalogue).await?;
    tracing::info!(tenant = ?tenant.map(TenantId::as_str), fields = catalogue.fields.len(), "field catalogue declared");
    Ok(catalogue)
}

/// The catalogue as declared (an empty one when none is).
pub async fn declared(deps: &Deps, tenant: Option<&TenantId>) -> Result<FieldCatalogue, ApiError> {
    Ok(deps.store.get_catalogue(tenant).await?.unwrap_or_default())
}
