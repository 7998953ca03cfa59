//! Deployment settings, read once per cold start from the environment (template.yaml sets them).

use std::env;

use crate::hubspot::ApiVersion;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// HubSpot's API base (`https://api.hubapi.com`); the simulator's URL locally.
    pub hubspot_api_url: String,
    /// HubSpot's app base, for the authorize page (`https://app.hubspot.com`).
    pub hubspot_app_url: String,
    /// The HubSpot API version every call uses (`2026-09`, or `legacy` for the v1-v4 paths).
    pub hubspot_api_version: ApiVersion,
    /// This deployment's `/oauth/callback` URL, as registered in the HubSpot app.
    pub oauth_redirect_uri: String,
    /// Scopes every install must grant, when the deployment names them; unset, they follow
    /// from the objects of the tenant's field catalogue (`domain::scopes`).
    pub required_scopes: Option<Vec<String>>,
    /// Scopes asked for but not required, when the deployment names them.
    pub optional_scopes: Option<Vec<String>>,
    /// Origins (`https://console.example.com`) that `return_to` may point at after an install.
    pub allowed_return_origins: Vec<String>,
    /// Whether one portal may be connected by several tenants.
    pub allow_shared_portals: bool,
    /// The platform's name, used for the bidirectional counter property's label.
    pub platform_name: String,
    /// The webhook URL registered in the HubSpot app, exactly: the URL v3 signatures cover.
    /// Unset, it is rebuilt from the request (https, its host, path and query).
    pub webhook_url: Option<String>,
    /// Accept webhooks signed with v1/v2 only (no v3 signature).
    pub accept_legacy_webhook_signatures: bool,
    /// Origins (`https://platform.example.com`) the platform's ingest URLs may be on.
    pub allowed_ingest_origins: Vec<String>,
    /// Deliveries over plain http, and to this machine or private addresses: the local runner
    /// only (never read from the environment).
    pub allow_local_ingest: bool,
    /// The platform's ingest endpoint for configs that name none: where the Didomi-shaped
    /// route's bidirectional flow delivers, as Didomi's documented config carries no URL.
    pub default_ingest_url: Option<String>,
    /// The HubSpot app's id (its settings page shows it), for the webhooks API. Unset, it is
    /// taken from the installs (HubSpot names the app of every token).
    pub hubspot_app_id: Option<u64>,
    /// Each config save puts the webhook subscriptions it needs in place (with the app
    /// secret's developer key). Otherwise the admin API does it when asked.
    pub keep_webhook_subscriptions: bool,
}

fn list(value: &str) -> Vec<String> {
    value.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

impl Settings {
    /// Reads `HUBSYNC_*` variables; each error names the variable to fix.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let var = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
        let required = |name: &'static str| var(name).ok_or(SettingsError::Missing(name));
        let flag = |name: &'static str| match var(name).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(SettingsError::Invalid { name, reason: format!("`{other}` is neither true nor false") }),
        };
        let allowed_return_origins = list(&required("HUBSYNC_ALLOWED_RETURN_ORIGINS")?);
        Ok(Settings {
            hubspot_api_url: var("HUBSYNC_HUBSPOT_API_URL").unwrap_or_else(|| "https://api.hubapi.com".into()),
            hubspot_app_url: var("HUBSYNC_HUBSPOT_APP_URL").unwrap_or_else(|| "https://app.hubspot.com".into()),
            hubspot_api_version: match var("HUBSYNC_HUBSPOT_API_VERSION") {
                None => ApiVersion::default(),
                Some(version) => version
                    .trim()
                    .parse()
                    .map_err(|reason| SettingsError::Invalid { name: "HUBSYNC_HUBSPOT_API_VERSION", reason })?,
            },
            oauth_redirect_uri: required("HUBSYNC_OAUTH_REDIRECT_URI")?,
            required_scopes: var("HUBSYNC_REQUIRED_SCOPES").map(|v| list(&v)),
            optional_scopes: var("HUBSYNC_OPTIONAL_SCOPES").map(|v| list(&v)),
            allowed_return_origins,
            allow_shared_portals: flag("HUBSYNC_ALLOW_SHARED_PORTALS")?,
            platform_name: var("HUBSYNC_PLATFORM_NAME").unwrap_or_else(|| "Platform".into()),
            webhook_url: var("HUBSYNC_WEBHOOK_URL"),
            accept_legacy_webhook_signatures: flag("HUBSYNC_WEBHOOK_LEGACY_SIGNATURES")?,
            allowed_ingest_origins: var("HUBSYNC_ALLOWED_INGEST_ORIGINS").map(|v| list(&v)).unwrap_or_default(),
            allow_local_ingest: false,
            default_ingest_url: var("HUBSYNC_DEFAULT_INGEST_URL"),
            keep_webhook_subscriptions: flag("HUBSYNC_KEEP_WEBHOOK_SUBSCRIPTIONS")?,
            hubspot_app_id: match var("HUBSYNC_HUBSPOT_APP_ID") {
                None => None,
                Some(id) => Some(id.trim().parse().map_err(|_| SettingsError::Invalid {
                    name: "HUBSYNC_HUBSPOT_APP_ID",
                    reason: format!("`{id}` is not a HubSpot app id (a number)"),
                })?),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_fill_everything_but_the_deployment_specific_values() {
        let settings = from(&[
            ("HUBSYNC_OAUTH_REDIRECT_URI", "https://sync.example.com/oauth/callback"),
            ("HUBSYNC_ALLOWED_RETURN_ORIGINS", "https://console.example.com, https://admin.example.com"),
        ])
        .unwrap();
        assert_eq!(settings.hubspot_api_url, "https://api.hubapi.com");
        assert_eq!(settings.allowed_return_origins, vec!["https://console.example.com", "https://admin.example.com"]);
        assert_eq!(settings.required_scopes, None, "derived from the catalogue");
        assert_eq!(settings.default_ingest_url, None);
        assert!(!settings.allow_shared_portals);
        assert_eq!(settings.hubspot_api_version, ApiVersion::default(), "HubSpot's newest version");
    }

    #[test]
    fn errors_name_the_variable() {
        let err = from(&[("HUBSYNC_ALLOWED_RETURN_ORIGINS", "https://c")]).unwrap_err();
        assert!(err.to_string().contains("HUBSYNC_OAUTH_REDIRECT_URI"));
        let err = from(&[
            ("HUBSYNC_OAUTH_REDIRECT_URI", "https://s/cb"),
            ("HUBSYNC_ALLOWED_RETURN_ORIGINS", "https://c"),
            ("HUBSYNC_ALLOW_SHARED_PORTALS", "yes"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("HUBSYNC_ALLOW_SHARED_PORTALS"));
        let err = from(&[
            ("HUBSYNC_OAUTH_REDIRECT_URI", "https://s/cb"),
            ("HUBSYNC_ALLOWED_RETURN_ORIGINS", "https://c"),
            ("HUBSYNC_HUBSPOT_API_VERSION", "v4"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("HUBSYNC_HUBSPOT_API_VERSION") && err.to_string().contains("2026-09"),
            "{err}"
        );
    }
}
