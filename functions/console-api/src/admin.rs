//! The platform team's admin API under `/admin`: tenants, their console keys, every
//! connection's health, redrives. Every route takes [`AuthAdmin`] first, so nothing runs
//! without the deployment's admin key; the work itself is in `hubsync::admin`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use hubsync::admin::auth::AuthAdmin;
use hubsync::admin::catalogue;
use hubsync::admin::health::{self, ConnectionHealth};
use hubsync::admin::tenants::{self, IssuedKey, KeyView, NewKey, NewTenant};
use hubsync::console::auth::any_connection;
use hubsync::console::sync::{self, ParkedWork, Redriven};
use hubsync::deps::Deps;
use hubsync::domain::{FieldCatalogue, Tenant};
use hubsync::http::{ApiError, ApiJson, PathParams};
use hubsync::webhooks::subscriptions::{self, SubscriptionReport};
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<Deps> {
    Router::new()
        .route("/admin/tenants", get(list_tenants).post(create_tenant))
        .route("/admin/tenants/{tenant_id}/keys", get(list_keys).post(issue_key))
        .route("/admin/tenants/{tenant_id}/keys/{key_id}", delete(revoke_key))
        .route("/admin/tenants/{tenant_id}/keys/{key_id}/rotate", post(rotate_key))
        .route("/admin/catalogue", get(deployment_catalogue).put(declare_deployment_catalogue))
        .route("/admin/tenants/{tenant_id}/catalogue", get(tenant_catalogue).put(declare_tenant_catalogue))
        .route("/admin/connections", get(connections_health))
        .route("/admin/connections/{connection_id}/redrive", post(redrive))
        .route("/admin/webhook-subscriptions", get(webhook_subscriptions).post(put_webhook_subscriptions_in_place))
}

#[derive(Serialize)]
struct TenantList {
    tenants: Vec<Tenant>,
}

async fn list_tenants(_: AuthAdmin, State(deps): State<Deps>) -> Result<Json<TenantList>, ApiError> {
    Ok(Json(TenantList { tenants: tenants::list_tenants(&deps).await? }))
}

async fn create_tenant(
    _: AuthAdmin,
    State(deps): State<Deps>,
    ApiJson(request): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    Ok((StatusCode::CREATED, Json(tenants::create_tenant(&deps, request).await?)))
}

#[derive(Serialize)]
struct KeyList {
    keys: Vec<KeyView>,
}

async fn list_keys(
    _: AuthAdmin,
    State(deps): State<Deps>,
    PathParams(id): PathParams<String>,
) -> Result<Json<KeyList>, ApiError> {
    let tenant = tenants::existing_tenant(&deps, &id).await?;
    Ok(Json(KeyList { keys: tenants::list_keys(&deps, &tenant).await? }))
}

async fn issue_key(
    _: AuthAdmin,
    State(deps): State<Deps>,
    PathParams(id): PathParams<String>,
    ApiJson(request): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let tenant = tenants::existing_tenant(&deps, &id).await?;
    Ok((StatusCode::CREATED, Json(tenants::issue_key(&deps, &tenant, request).await?)))
}

async fn rotate_key(
    _: AuthAdmin,
    State(deps): State<Deps>,
    PathParams((id, key_id)): PathParams<(String, String)>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let tenant = tenants::existing_tenant(&deps, &id).await?;
    Ok((StatusCode::CREATED, Json(tenants::rotate_key(&deps, &tenant, &key_id).await?)))
}

async fn revoke_key(
    _: AuthAdmin,
    State(deps): State<Deps>,
    PathParams((id, key_id)): PathParams<(String, String)>,
) -> Result<Json<KeyView>, ApiError> {
    let tenant = tenants::existing_tenant(&deps, &id).await?;
    Ok(Json(tenants::revoke_key(&deps, &tenant, &key_id).await?))
}

async fn deployment_catalogue(_: AuthAdmin, State(deps): State<Deps>) -> Result<Json<FieldCatalogue>, ApiError> {
    Ok(Json(catalogue::declared(&deps, None).await?))
}

async fn declare_deployment_catalogue(
    _: AuthAdmin,
    State(deps): State<Deps>,
    ApiJson(declared): ApiJson<FieldCatalogue>,
) -> Result<Json<FieldCatalogue>, ApiError> {
    Ok(Json(catalogue::declare(&deps, None, declared).await?))
}

async fn tenant_catalogue(
    _: AuthAdmin,
    State(deps): State<Deps>,
    PathParams(id): PathParams<String>,
) -> Result<Json<FieldCatalogue>, ApiError> {
    let tenant = tenants::existing_tenant(&deps, &id).await?;
    Ok(Json(catalogue::declared(&deps, Some(&tenant.id)).await?))
}

async fn declare_tenant_catalogue(
    _: AuthAdmin,
    State(deps): State<Deps>,
    PathParams(id): PathParams<String>,
    ApiJson(declared): ApiJson<FieldCatalogue>,
) -> Result<Json<FieldCatalogue>, ApiError> {
    let tenant = tenants::existing_tenant(&deps, &id).await?;
    Ok(Json(catalogue::declare(&deps, Some(&tenant.id), declared).await?))
}

#[derive(Serialize)]
struct HealthList {
    connections: Vec<ConnectionHealth>,
}

async fn connections_health(_: AuthAdmin, State(deps): State<Deps>) -> Result<Json<HealthList>, ApiError> {
    Ok(Json(HealthList { connections: health::all_connections(&deps).await? }))
}

/// The subscriptions every config needs against those the app has at HubSpot.
async fn webhook_subscriptions(_: AuthAdmin, State(deps): State<Deps>) -> Result<Json<SubscriptionReport>, ApiError> {
    let needed = subscriptions::needed_by_all(&deps).await?;
    Ok(Json(subscriptions::report(&deps, &needed).await?))
}

/// Creates the missing subscriptions and activates the paused ones; answers with the report after.
async fn put_webhook_subscriptions_in_place(
    _: AuthAdmin,
    State(deps): State<Deps>,
) -> Result<Json<SubscriptionReport>, ApiError> {
    let needed = subscriptions::needed_by_all(&deps).await?;
    subscriptions::put_in_place(&deps, &needed).await?;
    Ok(Json(subscriptions::report(&deps, &needed).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedriveQuery {
    queue: Option<ParkedWork>,
}

/// Any connection's parked work back to its queues, whichever tenant it belongs to.
async fn redrive(
    _: AuthAdmin,
    State(deps): State<Deps>,
    PathParams(id): PathParams<String>,
    query: Result<Query<RedriveQuery>, QueryRejection>,
) -> Result<Json<Redriven>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::BadRequest(format!("the query is not valid: {}; `queue` is push, inbound or bulk", e.body_text()))
    })?;
    let connection = any_connection(&deps, &id).await?;
    Ok(Json(sync::redrive_parked(&deps, &connection, query.queue).await?))
}
