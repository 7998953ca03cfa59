//! Deployment settings, read once per cold start from the environment (template.yaml sets them).

use std::env;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Scopes every connection must grant: read and write the three objects and their schemas.
pub const DEFAULT_REQUIRED_SCOPES: &[&str] = &[
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.read",
    "crm.schemas.deals.read",
];

/// Asked for but not required: list automations need the lists scopes, triggers that read a
/// deal's line items the line items one.
pub const DEFAULT_OPTIONAL_SCOPES: &[&str] = &["crm.lists.read", "crm.lists.write", "crm.objects.line_items.read"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// HubSpot's API base (`https://api.hubapi.com`); the simulator's URL locally.
    pub hubspot_api_url: String,
    /// HubSpot's app base, for the authorize page (`https://app.hubspot.com`).
    pub hubspot_app_url: String,
    /// This deployment's `/oauth/callback` URL, as registered in the HubSpot app.
    pub oauth_redirect_uri: String,
    pub required_scopes: Vec<String>,
    pub optional_scopes: Vec<String>,
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
            oauth_redirect_uri: required("HUBSYNC_OAUTH_REDIRECT_URI")?,
            required_scopes: var("HUBSYNC_REQUIRED_SCOPES")
                .map(|v| list(&v))
                .unwrap_or_else(|| DEFAULT_REQUIRED_SCOPES.iter().map(|s| s.to_string()).collect()),
            optional_scopes: var("HUBSYNC_OPTIONAL_SCOPES")
                .map(|v| list(&v))
                .unwrap_or_else(|| DEFAULT_OPTIONAL_SCOPES.iter().map(|s| s.to_string()).collect()),
            allowed_return_origins,
            allow_shared_portals: flag("HUBSYNC_ALLOW_SHARED_PORTALS")?,
            platform_name: var("HUBSYNC_PLATFORM_NAME").unwrap_or_else(|| "Platform".into()),
            webhook_url: var("HUBSYNC_WEBHOOK_URL"),
            accept_legacy_webhook_signatures: flag("HUBSYNC_WEBHOOK_LEGACY_SIGNATURES")?,
            allowed_ingest_origins: var("HUBSYNC_ALLOWED_INGEST_ORIGINS").map(|v| list(&v)).unwrap_or_default(),
            allow_local_ingest: false,
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
        assert!(settings.required_scopes.contains(&"crm.objects.deals.write".to_string()));
        assert!(!settings.allow_shared_portals);
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
    }
}
