//! The field catalogue a tenant maps from: its own when the platform team declared one for it,
//! else the deployment's. Without either, mappings are checked against HubSpot's schema only.

use serde::Serialize;

use crate::deps::Deps;
pub use crate::domain::catalogue::CatalogueSource;
use crate::domain::mapping::ConfigProblem;
use crate::domain::{ConnectionConfig, FieldCatalogue, TenantId};
use crate::http::ApiError;

#[derive(Debug, Serialize)]
pub struct TenantCatalogue {
    pub source: CatalogueSource,
    #[serde(flatten)]
    pub catalogue: FieldCatalogue,
}

pub async fn for_tenant(deps: &Deps, tenant: &TenantId) -> Result<TenantCatalogue, ApiError> {
    Ok(match deps.store.catalogue_for(tenant).await? {
        Some((source, catalogue)) => TenantCatalogue { source, catalogue },
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
