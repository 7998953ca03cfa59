//! `POST /webhooks/hubspot`: HubSpot's webhook requests. The signature is checked against the
//! URL HubSpot called before the body is read as JSON; the answer is 200 only once every event
//! taken is on the inbound queue.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::post;
use axum::{Json, Router};
use hubsync::deps::Deps;
use hubsync::domain::inbound::MAX_WEBHOOK_BODY_BYTES;
use hubsync::http::ApiError;
use hubsync::webhooks::{Receipt, SignedRequest, receive};

pub fn router(deps: Deps) -> Router {
    Router::new()
        .route("/webhooks/hubspot", post(hubspot_webhook))
        // One byte over the limit is enough to know the body is too large.
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY_BYTES + 1))
        .with_state(deps)
}

async fn hubspot_webhook(
    State(deps): State<Deps>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Receipt>, ApiError> {
    let body = body.map_err(|_| ApiError::TooLarge(format!("the body is over {MAX_WEBHOOK_BODY_BYTES} bytes")))?;
    let called = called_url(deps.settings.webhook_url.as_deref(), &headers, &uri);
    let pairs = headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()));
    let request = SignedRequest::from_http(method.as_str(), &called, pairs, &body);
    Ok(Json(receive(&deps, &request).await?))
}

/// The URL HubSpot called, which v3 signatures cover: the configured webhook URL, or else
/// `https://` + the host it called + path and query. Behind API Gateway the `Host` header is the
/// API's (custom) domain; `X-Forwarded-Host` wins when a proxy in front sets it.
fn called_url(configured: Option<&str>, headers: &HeaderMap, uri: &Uri) -> String {
    if let Some(url) = configured {
        return url.to_string();
    }
    let host = ["x-forwarded-host", "host"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .or(uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    format!("https://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_called_url_keeps_host_path_and_query_as_sent() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "sync.example.com".parse().unwrap());
        let uri: Uri = "/webhooks/hubspot?state=a%3Ab".parse().unwrap();
        assert_eq!(called_url(None, &headers, &uri), "https://sync.example.com/webhooks/hubspot?state=a%3Ab");
        headers.insert("x-forwarded-host", "hooks.example.com".parse().unwrap());
        assert_eq!(called_url(None, &headers, &uri), "https://hooks.example.com/webhooks/hubspot?state=a%3Ab");
        assert_eq!(called_url(Some("https://x.example/h"), &headers, &uri), "https://x.example/h");
    }
}
