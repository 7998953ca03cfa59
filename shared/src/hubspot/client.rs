//! The HTTP side of the client: one `reqwest::Client` per cold start, base URLs that tests and
//! the local runner point at the simulator, size-limited bodies, and HubSpot's error mapping.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::error::HubSpotError;
use super::rate_limit::RateLimit;
use crate::domain::{ObjectType, Secret};
use crate::transport::{Network, ReadError, Transport, read_limited};

/// HubSpot's API host.
pub const DEFAULT_API_BASE_URL: &str = "https://api.hubapi.com";
/// HubSpot's app host, where users see the consent page.
pub const DEFAULT_APP_BASE_URL: &str = "https://app.hubspot.com";

/// The newest generally available HubSpot API version, which hubsync targets by default.
pub const CURRENT_API_VERSION: &str = "2026-09";

/// Which of HubSpot's API versions hubsync calls (the `HUBSYNC_HUBSPOT_API_VERSION` setting).
/// HubSpot versions its public APIs by date, a new version each March and September, each
/// supported for 18 months (developers.hubspot.com, "Developer platform and API versioning");
/// the v1–v4 paths are the legacy track, unsupported from September 2027.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVersion {
    /// A date version (`2026-09`): it goes after the API's name (`/crm/objects/2026-09/contacts`).
    Dated(String),
    /// The v1–v4 paths (`/crm/v3/objects/contacts`, `/crm/v4/associations/…`, `/oauth/v3/token`).
    Legacy,
}

impl Default for ApiVersion {
    fn default() -> Self {
        ApiVersion::Dated(CURRENT_API_VERSION.to_string())
    }
}

impl std::str::FromStr for ApiVersion {
    type Err = String;

    /// `legacy`, or a March or September date version such as `2026-09`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value == "legacy" {
            return Ok(ApiVersion::Legacy);
        }
        let (year, month) = value.split_once('-').unwrap_or_default();
        if year.len() == 4 && year.chars().all(|c| c.is_ascii_digit()) && matches!(month, "03" | "09") {
            return Ok(ApiVersion::Dated(value.to_string()));
        }
        Err(format!(
            "`{value}` is not a HubSpot API version: name a date version such as {CURRENT_API_VERSION} \
             (HubSpot releases one each March and September), or `legacy` for the v1-v4 paths"
        ))
    }
}

/// Where each endpoint lives, for one API version. The legacy paths put the version before the
/// resource (`/crm/v3/objects/contacts`), the dated ones after the API's name
/// (`/crm/objects/2026-09/contacts`); every path is built here, so moving to the next version
/// is one setting.
#[derive(Debug, Clone)]
pub(crate) struct Paths(ApiVersion);

impl Paths {
    /// `crm/{legacy}/{family}` or `crm/{family}/{date}`, then `rest`.
    fn crm<'a>(&'a self, family: &'static str, legacy: &'static str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut path = match &self.0 {
            ApiVersion::Legacy => vec!["crm", legacy, family],
            ApiVersion::Dated(date) => vec!["crm", family, date.as_str()],
        };
        path.extend_from_slice(rest);
        path
    }

    /// `oauth/v3/…` or `oauth/{date}/…`.
    fn oauth<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut path = match &self.0 {
            ApiVersion::Legacy => vec!["oauth", "v3"],
            ApiVersion::Dated(date) => vec!["oauth", date.as_str()],
        };
        path.extend_from_slice(rest);
        path
    }

    pub fn oauth_token(&self) -> Vec<&str> {
        self.oauth(&["token"])
    }

    pub fn oauth_introspect(&self) -> Vec<&str> {
        self.oauth(&["token", "introspect"])
    }

    pub fn oauth_revoke(&self) -> Vec<&str> {
        self.oauth(&["token", "revoke"])
    }

    /// On the app host, not the API host; not versioned.
    pub fn oauth_authorize() -> Vec<&'static str> {
        vec!["oauth", "authorize"]
    }

    pub fn objects(&self, object: ObjectType) -> Vec<&str> {
        self.crm("objects", "v3", &[object.api_name()])
    }

    pub fn object<'a>(&'a self, object: ObjectType, id: &'a str) -> Vec<&'a str> {
        self.crm("objects", "v3", &[object.api_name(), id])
    }

    pub fn batch<'a>(&'a self, object: ObjectType, action: &'a str) -> Vec<&'a str> {
        self.crm("objects", "v3", &[object.api_name(), "batch", action])
    }

    pub fn search(&self, object: ObjectType) -> Vec<&str> {
        self.crm("objects", "v3", &[object.api_name(), "search"])
    }

    pub fn properties(&self, object: ObjectType) -> Vec<&str> {
        self.crm("properties", "v3", &[object.api_name()])
    }

    /// `action`: `read`, `associate/default`, `create` or `archive`.
    pub fn associations_batch<'a>(&'a self, from: ObjectType, to: ObjectType, action: &'a str) -> Vec<&'a str> {
        let mut path = self.crm("associations", "v4", &[from.api_name(), to.api_name(), "batch"]);
        path.extend(action.split('/'));
        path
    }

    pub fn lists(&self) -> Vec<&str> {
        self.crm("lists", "v3", &[])
    }

    pub fn list<'a>(&'a self, list_id: &'a str) -> Vec<&'a str> {
        self.crm("lists", "v3", &[list_id])
    }

    pub fn memberships<'a>(&'a self, list_id: &'a str, action: &'a str) -> Vec<&'a str> {
        self.crm("lists", "v3", &[list_id, "memberships", action])
    }

    /// The webhooks API: `webhooks/v3/{appId}`, `webhooks/2026-03/{appId}`, and from 2026-09
    /// `app-webhooks/{date}/{appId}`.
    fn webhooks<'a>(&'a self, app_id: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut path = match &self.0 {
            ApiVersion::Legacy => vec!["webhooks", "v3", app_id],
            ApiVersion::Dated(date) if date.as_str() >= "2026-09" => vec!["app-webhooks", date.as_str(), app_id],
            ApiVersion::Dated(date) => vec!["webhooks", date.as_str(), app_id],
        };
        path.extend_from_slice(rest);
        path
    }

    pub fn webhook_settings<'a>(&'a self, app_id: &'a str) -> Vec<&'a str> {
        self.webhooks(app_id, &["settings"])
    }

    pub fn webhook_subscriptions<'a>(&'a self, app_id: &'a str) -> Vec<&'a str> {
        self.webhooks(app_id, &["subscriptions"])
    }

    pub fn webhook_subscriptions_batch_update<'a>(&'a self, app_id: &'a str) -> Vec<&'a str> {
        self.webhooks(app_id, &["subscriptions", "batch", "update"])
    }
}

/// How the client is built. `Default` is production HubSpot.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub api_base_url: String,
    pub app_base_url: String,
    /// The whole request, body included. Lambda timeouts are minutes; a stuck call must not eat one.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Responses larger than this are refused rather than read: a batch of 100 records or a
    /// portal's property list is well under 1 MB.
    pub max_response_bytes: usize,
    pub api_version: ApiVersion,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            api_base_url: DEFAULT_API_BASE_URL.to_string(),
            app_base_url: DEFAULT_APP_BASE_URL.to_string(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 8 * 1024 * 1024,
            api_version: ApiVersion::default(),
        }
    }
}

/// The typed HubSpot client. Build it once per cold start and clone it freely: clones share
/// the connection pool. It holds no per-portal state; calls take the portal's access token.
///
/// It never retries: what to do about a failure is the caller's decision, from
/// [`HubSpotError::class`](super::HubSpotError::class) and the rate-limit headers.
#[derive(Clone)]
pub struct HubSpotClient {
    /// Builds requests; `transport` sends them.
    http: reqwest::Client,
    transport: Arc<dyn Transport>,
    api_base: Url,
    app_base: Url,
    timeout: Duration,
    max_response_bytes: usize,
    pub(crate) paths: Paths,
}

impl std::fmt::Debug for HubSpotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpotClient").field("api_base", &self.api_base.as_str()).finish_non_exhaustive()
    }
}

/// A successful response, read in full.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub rate_limit: Option<RateLimit>,
}

impl HubSpotClient {
    /// A client for HubSpot (or the simulator) at these base URLs, with default timeouts.
    pub fn new(api_base_url: &str, app_base_url: &str) -> Result<HubSpotClient, HubSpotError> {
        HubSpotClient::with_options(ClientOptions {
            api_base_url: api_base_url.to_string(),
            app_base_url: app_base_url.to_string(),
            ..ClientOptions::default()
        })
    }

    pub fn with_options(options: ClientOptions) -> Result<HubSpotClient, HubSpotError> {
        let http = HubSpotClient::http_client(&options)?;
        HubSpotClient::assemble(options, http.clone(), Network::shared(http))
    }

    /// A client whose requests go through `transport` (a simulation's in-process router, say).
    pub fn with_transport(
        options: ClientOptions,
        transport: Arc<dyn Transport>,
    ) -> Result<HubSpotClient, HubSpotError> {
        let http = HubSpotClient::http_client(&options)?;
        HubSpotClient::assemble(options, http, transport)
    }

    fn assemble(
        options: ClientOptions,
        http: reqwest::Client,
        transport: Arc<dyn Transport>,
    ) -> Result<HubSpotClient, HubSpotError> {
        Ok(HubSpotClient {
            http,
            transport,
            api_base: base_url("API", &options.api_base_url)?,
            app_base: base_url("app", &options.app_base_url)?,
            timeout: options.timeout,
            max_response_bytes: options.max_response_bytes,
            paths: Paths(options.api_version),
        })
    }

    fn http_client(options: &ClientOptions) -> Result<reqwest::Client, HubSpotError> {
        reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            // HubSpot's API does not redirect; following one could send a token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hubsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HubSpotError::Setup(format!("could not build the HTTP client: {e}")))
    }

    pub(crate) fn api_url(&self, segments: &[&str]) -> Url {
        join(&self.api_base, segments)
    }

    pub(crate) fn app_url(&self, segments: &[&str]) -> Url {
        join(&self.app_base, segments)
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).timeout(self.timeout)
    }

    /// One call to a CRM endpoint with a portal's access token (and JSON body, query string).
    pub(crate) async fn call_with_token(
        &self,
        operation: &str,
        token: &Secret,
        method: Method,
        segments: &[&str],
        body: Option<&serde_json::Value>,
        query: &[(&str, String)],
    ) -> Result<Reply, HubSpotError> {
        let mut request = self.request(method, self.api_url(segments)).bearer_auth(token.expose());
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.execute(operation, request, &[token]).await
    }

    /// Sends a request and reads its body (up to the size limit). Any non-2xx status becomes
    /// a typed error; `secrets` are the credentials the request carries, kept out of errors.
    pub(crate) async fn execute(
        &self,
        operation: &str,
        request: RequestBuilder,
        secrets: &[&Secret],
    ) -> Result<Reply, HubSpotError> {
        let request = request.build().map_err(|e| HubSpotError::Setup(e.without_url().to_string()))?;
        let response = self.transport.send(request).await.map_err(|e| HubSpotError::transport(operation, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let rate_limit = RateLimit::from_headers(&headers);
        tracing::debug!(
            operation,
            status = status.as_u16(),
            remaining = rate_limit.and_then(|r| r.remaining),
            "HubSpot call"
        );

        let limit = self.max_response_bytes;
        let body = read_limited(response, limit).await.map_err(|err| match err {
            ReadError::TooLarge => HubSpotError::ResponseTooLarge { operation: operation.to_string(), limit },
            ReadError::Transport(err) => HubSpotError::transport(operation, err),
        })?;

        if status.is_success() {
            Ok(Reply { status, body, rate_limit })
        } else {
            Err(HubSpotError::from_response(operation, status, &headers, &body, secrets))
        }
    }
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self, operation: &str) -> Result<T, HubSpotError> {
        serde_json::from_slice(&self.body).map_err(|e| HubSpotError::invalid_json(operation, &e))
    }
}

fn base_url(which: &str, raw: &str) -> Result<Url, HubSpotError> {
    let url = Url::parse(raw)
        .map_err(|e| HubSpotError::Setup(format!("the HubSpot {which} base URL `{raw}` is not a URL: {e}")))?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(HubSpotError::Setup(format!("the HubSpot {which} base URL `{raw}` must be http(s)")));
    }
    Ok(url)
}

/// Appends path segments to a base URL, percent-encoding each one: record ids and property
/// names go into paths, and a `/` or `?` in one must not change the route.
fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_appended_to_the_base_and_encoded() {
        let client = HubSpotClient::new("http://127.0.0.1:9000/", "http://127.0.0.1:9000").unwrap();
        let url = client.api_url(&client.paths.object(ObjectType::Deals, "a/b?c"));
        assert_eq!(url.as_str(), "http://127.0.0.1:9000/crm/objects/2026-09/deals/a%2Fb%3Fc");
        let prefixed = HubSpotClient::new("http://host/hubspot", "http://host").unwrap();
        assert_eq!(prefixed.api_url(&prefixed.paths.oauth_token()).as_str(), "http://host/hubspot/oauth/2026-09/token");
    }

    #[test]
    fn each_version_puts_its_name_where_hubspot_expects_it() {
        let dated = Paths(ApiVersion::default());
        let legacy = Paths(ApiVersion::Legacy);
        let older = Paths("2026-03".parse().unwrap());
        let cases = [
            (dated.batch(ObjectType::Contacts, "upsert"), "crm/objects/2026-09/contacts/batch/upsert"),
            (legacy.batch(ObjectType::Contacts, "upsert"), "crm/v3/objects/contacts/batch/upsert"),
            (dated.properties(ObjectType::Deals), "crm/properties/2026-09/deals"),
            (
                dated.associations_batch(ObjectType::Deals, ObjectType::Contacts, "associate/default"),
                "crm/associations/2026-09/deals/contacts/batch/associate/default",
            ),
            (
                legacy.associations_batch(ObjectType::Deals, ObjectType::Contacts, "read"),
                "crm/v4/associations/deals/contacts/batch/read",
            ),
            (dated.memberships("7", "add"), "crm/lists/2026-09/7/memberships/add"),
            (dated.oauth_introspect(), "oauth/2026-09/token/introspect"),
            (legacy.oauth_revoke(), "oauth/v3/token/revoke"),
            (dated.webhook_settings("54"), "app-webhooks/2026-09/54/settings"),
            (older.webhook_subscriptions("54"), "webhooks/2026-03/54/subscriptions"),
            (legacy.webhook_subscriptions_batch_update("54"), "webhooks/v3/54/subscriptions/batch/update"),
        ];
        for (path, expected) in cases {
            assert_eq!(path.join("/"), expected);
        }
    }

    #[test]
    fn a_version_is_a_march_or_september_date_or_legacy() {
        assert_eq!("2027-03".parse::<ApiVersion>(), Ok(ApiVersion::Dated("2027-03".into())));
        assert_eq!("legacy".parse::<ApiVersion>(), Ok(ApiVersion::Legacy));
        for bad in ["v3", "2026-06", "26-09", "2026-09-beta", ""] {
            let err = bad.parse::<ApiVersion>().unwrap_err();
            assert!(err.contains(CURRENT_API_VERSION), "{err}");
        }
    }

    #[test]
    fn bad_base_urls_are_setup_errors() {
        assert!(matches!(HubSpotClient::new("not a url", "https://app.hubspot.com"), Err(HubSpotError::Setup(_))));
        assert!(matches!(HubSpotClient::new("mailto:x@y.z", "https://app.hubspot.com"), Err(HubSpotError::Setup(_))));
    }
}
