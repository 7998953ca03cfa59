//! `GET /oauth/install` and `GET /oauth/callback`: the two ends of installing the HubSpot app.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hubsync::connect::install::{CallbackParams, InstallError, finish_install, start_install};
use hubsync::console::auth::AuthTenant;
use hubsync::deps::Deps;
use hubsync::http::{ApiError, Url};
use serde::Deserialize;

pub fn router(deps: Deps) -> Router {
    Router::new().route("/oauth/install", get(install)).route("/oauth/callback", get(callback)).with_state(deps)
}

#[derive(Deserialize)]
struct InstallQuery {
    /// Optional: when given, it must be the tenant of the API key.
    tenant: Option<String>,
    return_to: String,
    /// Scopes to require besides the deployment's, space- or comma-separated: what a config
    /// refused for a missing scope asks for (its reconnect link).
    #[serde(default)]
    scope: Option<String>,
}

/// Answers with a redirect to HubSpot's consent page (and the URL as JSON, for a console backend
/// that forwards it to the browser).
async fn install(
    State(deps): State<Deps>,
    AuthTenant(tenant): AuthTenant,
    query: Result<Query<InstallQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::BadRequest("`return_to` is required".into()))?;
    if query.tenant.as_deref().is_some_and(|t| t != tenant.as_str()) {
        return Err(ApiError::BadRequest("`tenant` does not match the API key's tenant".into()));
    }
    let scopes: Vec<String> = match &query.scope {
        Some(scope) if scope.len() > 2_000 => return Err(ApiError::BadRequest("`scope` is too long".into())),
        Some(scope) => scope.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        None => vec![],
    };
    let url = start_install(&deps, &tenant, &query.return_to, &scopes).await?;
    let body = Json(serde_json::json!({ "authorize_url": url }));
    Ok((StatusCode::FOUND, [(LOCATION, url.clone())], body).into_response())
}

/// HubSpot sends the browser here. Once the state is verified the browser goes back to the
/// console with the outcome; before that, nothing in the request can be trusted to say where.
async fn callback(State(deps): State<Deps>, Query(params): Query<CallbackParams>) -> Response {
    let outcome = finish_install(&deps, params).await;
    match (outcome.return_to, outcome.result) {
        (Some(return_to), Ok(connection)) => redirect(
            &return_to,
            &[
                ("hubsync_status", "connected"),
                ("connection_id", connection.id.as_str()),
                ("portal_id", &connection.portal_id.to_string()),
            ],
        ),
        (Some(return_to), Err(err)) => {
            log_failure(&err);
            redirect(
                &return_to,
                &[("hubsync_status", "error"), ("hubsync_error", err.code()), ("hubsync_message", &err.to_string())],
            )
        }
        (None, result) => {
            let err = result.err().unwrap_or(InstallError::UnknownState);
            log_failure(&err);
            (StatusCode::BAD_REQUEST, Html(page("HubSpot connection failed", &err.to_string()))).into_response()
        }
    }
}

fn log_failure(err: &InstallError) {
    match err {
        InstallError::Internal(detail) => tracing::error!(%detail, "install failed"),
        other => tracing::info!(reason = other.code(), "install refused"),
    }
}

fn redirect(return_to: &str, params: &[(&str, &str)]) -> Response {
    // `return_to` was checked against the allowed origins when the install started.
    let Ok(mut url) = Url::parse(return_to) else {
        return (StatusCode::BAD_REQUEST, Html(page("HubSpot connection failed", "invalid return address")))
            .into_response();
    };
    url.query_pairs_mut().extend_pairs(params);
    (StatusCode::FOUND, [(LOCATION, url.to_string())]).into_response()
}

fn page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{}</p></body></html>",
        escape(message)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
