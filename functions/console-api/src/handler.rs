//! The console's REST API. Every route authenticates the tenant by API key and touches only
//! that tenant's connections; the work itself is in `hubsync::console`. The platform team's
//! admin API (`/admin`, its own key) is served alongside ([`admin`]).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use hubsync::console::auth::{AuthTenant, owned_connection};
use hubsync::console::catalogue::{self, TenantCatalogue};
use hubsync::console::didomi::{self, ConnectResult, DidomiConfig};
use hubsync::console::sync::{self, ParkedWork, Queued, Redriven};
use hubsync::console::{configs, schemas, uninstall};
use hubsync::deps::Deps;
use hubsync::domain::mapping::ConfigProblem;
use hubsync::domain::{Connection, ConnectionConfig, ObjectType, PropertySchema, SyncRun, VersionedConfig};
use hubsync::http::{ApiError, ApiJson, PathParams};
use serde::{Deserialize, Serialize};

mod admin;

/// Configs are small; this bounds what a request can make the function parse.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// The OpenAPI document describing this API, served as written.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub fn router(deps: Deps) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/catalogue", get(get_catalogue))
        .route("/connections", get(list_connections).post(connect_with_code))
        .route("/connections/{connection_id}", get(get_connection).delete(delete_connection))
        .route("/connections/{connection_id}/config", get(get_config).put(put_config))
        .route("/connections/{connection_id}/config/validate", post(validate_config))
        .route("/connections/{connection_id}/schema", get(get_schema))
        .route("/connections/{connection_id}/schema/refresh", post(refresh_schema))
        .route("/connections/{connection_id}/sync", post(sync_record))
        .route("/connections/{connection_id}/runs", get(list_runs))
        .route("/connections/{connection_id}/redrive", post(redrive_parked))
        .route("/connections/{connection_id}/full-sync", post(full_sync))
        .merge(admin::routes())
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(deps)
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The platform fields this tenant may map (the mapping screen's left column).
async fn get_catalogue(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
) -> Result<Json<TenantCatalogue>, ApiError> {
    Ok(Json(catalogue::for_tenant(&deps, &tenant).await?))
}

#[derive(Serialize)]
struct ConnectionList {
    connections: Vec<Connection>,
}

async fn list_connections(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
) -> Result<Json<ConnectionList>, ApiError> {
    Ok(Json(ConnectionList { connections: deps.store.list_connections(&tenant).await? }))
}

async fn connect_with_code(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    ApiJson(request): ApiJson<DidomiConfig>,
) -> Result<(StatusCode, Json<ConnectResult>), ApiError> {
    Ok((StatusCode::CREATED, Json(didomi::connect(&deps, &tenant, request).await?)))
}

async fn get_connection(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
) -> Result<Json<Connection>, ApiError> {
    Ok(Json(owned_connection(&deps, &tenant, &id).await?))
}

async fn delete_connection(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
) -> Result<Json<Connection>, ApiError> {
    let connection = owned_connection(&deps, &tenant, &id).await?;
    Ok(Json(uninstall::uninstall(&deps, connection).await?))
}

async fn get_config(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
) -> Result<Json<VersionedConfig>, ApiError> {
    let connection = owned_connection(&deps, &tenant, &id).await?;
    Ok(Json(configs::get(&deps, &connection).await?))
}

async fn put_config(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
    ApiJson(update): ApiJson<VersionedConfig>,
) -> Result<Json<VersionedConfig>, ApiError> {
    let connection = owned_connection(&deps, &tenant, &id).await?;
    Ok(Json(configs::save(&deps, &connection, &update).await?))
}

#[derive(Serialize)]
struct ValidationResult {
    valid: bool,
    problems: Vec<ConfigProblem>,
}

async fn validate_config(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
    ApiJson(config): ApiJson<ConnectionConfig>,
) -> Result<Json<ValidationResult>, ApiError> {
    let connection = owned_connection(&deps, &tenant, &id).await?;
    let problems = configs::validate(&deps, &connection, &config).await?;
    Ok(Json(ValidationResult { valid: problems.is_empty(), problems }))
}

/// Cached schemas by object; each carries its properties and when they were read.
#[derive(Serialize)]
struct SchemaView {
    schemas: BTreeMap<ObjectType, PropertySchema>,
}

async fn get_schema(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
) -> Result<Json<SchemaView>, ApiError> {
    let connection = owned_connection(&deps, &tenant, &id).await?;
    Ok(Json(SchemaView { schemas: schemas::cached(&deps, &connection).await? }))
}

async fn refresh_schema(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
) -> Result<Json<SchemaView>, ApiError> {
    let connection = owned_connection(&deps, &tenant, &id).await?;
    Ok(Json(SchemaView { schemas: schemas::refresh(&deps, &connection, &ObjectType::ALL).await? }))
}

/// "Sync with HubSpot" for one record: the push message, validated and queued.
async fn sync_record(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
    TextBody(body): TextBody,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let connection = owned_connection(&deps, &tenant, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(sync::enqueue_change(&deps, &connection, &body).await?)))
}

#[derive(Deserialize)]
struct RunsQuery {
    limit: Option<usize>,
}

#[derive(Serialize)]
struct RunList {
    runs: Vec<SyncRun>,
}

async fn list_runs(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(format!("the query is not valid: {}", e.body_text())))?;
    let connection = owned_connection(&deps, &tenant, &id).await?;
    Ok(Json(RunList { runs: sync::runs(&deps, &connection, query.limit).await? }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedriveQuery {
    queue: Option<ParkedWork>,
}

async fn redrive_parked(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
    query: Result<Query<RedriveQuery>, QueryRejection>,
) -> Result<Json<Redriven>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::BadRequest(format!("the query is not valid: {}; `queue` is push, inbound or bulk", e.body_text()))
    })?;
    let connection = owned_connection(&deps, &tenant, &id).await?;
    Ok(Json(sync::redrive_parked(&deps, &connection, query.queue).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FullSyncRequest {
    objects: Option<Vec<ObjectType>>,
}

/// Sends every record of the configured objects (or of those named) to the platform again.
async fn full_sync(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    PathParams(id): PathParams<String>,
    TextBody(body): TextBody,
) -> Result<(StatusCode, Json<RunList>), ApiError> {
    let connection = owned_connection(&deps, &tenant, &id).await?;
    let request: FullSyncRequest = if body.trim().is_empty() {
        FullSyncRequest::default()
    } else {
        serde_json::from_str(&body)
            .map_err(|e| ApiError::BadRequest(format!("the body is not a full-sync request: {e}")))?
    };
    Ok((StatusCode::ACCEPTED, Json(RunList { runs: sync::full_sync(&deps, &connection, request.objects).await? })))
}

/// The request body as text; a body that is not UTF-8 or too large is a bad request.
struct TextBody(String);

impl<S: Send + Sync> FromRequest<S> for TextBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match String::from_request(request, state).await {
            Ok(body) => Ok(TextBody(body)),
            Err(rejection) => {
                Err(ApiError::BadRequest(format!("the request body is not valid: {}", rejection.body_text())))
            }
        }
    }
}
