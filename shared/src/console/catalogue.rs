//! The field catalogue a tenant maps from: its own when the platform team declared one for it,
//! else the deployment's. Without either, mappings are checked against HubSpot's schema only.

use serde::Serialize;

use crate::deps::Deps;
use crate::domain::mapping::ConfigProblem;
use crate::domain::{ConnectionConfig, FieldCatalogue, TenantId};
use crate::http::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogueSource {
    /// Declared for this tenant.
    Tenant,
    /// The deployment's, shared by every tenant without its own.
    Deployment,
    /// None declared: any platform field may be mapped.
    None,
}

#[derive(Debug, Serialize)]
pub struct TenantCatalogue {
    pub source: CatalogueSource,
    #[serde(flatten)]
    pub catalogue: FieldCatalogue,
}

pub async fn for_tenant(deps: &Deps, tenant: &TenantId) -> Result<TenantCatalogue, ApiError> {
    if let Some(catalogue) = deps.store.get_catalogue(Some(tenant)).await? {
        return Ok(TenantCatalogue { source: CatalogueSource::Tenant, catalogue });
    }
    Ok(match deps.store.get_catalogue(None).await? {
        Some(catalogue) => TenantCatalogue { source: CatalogueSource::Deployment, catalogue },
        None => TenantCatalogue { source: CatalogueSource::None, catalogue: FieldCatalogue::default() },
    })
}

/// The problems of `config` against the tenant's catalogue (none without a catalogue).
pub async fn check(deps: &Deps, tenant: &TenantId, config: &ConnectionConfig) -> Result<Vec<ConfigProblem>, ApiError> {
    let found = for_tenant(deps, tenant).await?;
    Ok(match found.source {
        CatalogueSource::None => vec![],
        _ => found.catalogue.check(config),
    })
}
