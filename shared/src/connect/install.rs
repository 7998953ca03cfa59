//! Installing the HubSpot app for a tenant: the OAuth authorization-code flow, from the console's
//! "Connect" button to a stored, active connection.

use reqwest::Url;

use crate::connect::vault::OAuthTokens;
use crate::deps::Deps;
use crate::domain::scopes::{self, InstallScopes};
use crate::domain::{Connection, ConnectionId, ConnectionStatus, OAuthState, Secret, TenantId};
use crate::hubspot::{ErrorClass, HubSpotError};
use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("`return_to` must be an http(s) URL on one of this deployment's allowed origins")]
    ReturnToNotAllowed,
    #[error("this install link is unknown or was already used: start the install again from the console")]
    UnknownState,
    #[error("this install link expired (links are valid for 10 minutes): start the install again from the console")]
    ExpiredState,
    #[error("HubSpot did not authorise the app ({error}): {description}")]
    Denied { error: String, description: String },
    #[error("HubSpot sent no authorization code: start the install again")]
    MissingCode,
    #[error(
        "HubSpot refused the authorization code: a code works once and only for a few minutes. Install the app again"
    )]
    CodeRejected,
    #[error("HubSpot did not grant the permissions hubsync needs ({}): install again and approve every requested permission", .0.join(", "))]
    MissingScopes(Vec<String>),
    #[error("HubSpot portal {0} is already connected to another account: disconnect it there first")]
    PortalClaimed(u64),
    #[error("HubSpot could not be reached: try again in a few minutes")]
    HubSpotUnavailable,
    #[error("hubsync does not use the scope(s) {}: ask only for scopes a config needs", .0.join(", "))]
    UnknownScopes(Vec<String>),
    #[error("the install could not be completed: try again")]
    Internal(String),
}

impl InstallError {
    /// A stable code for redirects and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            InstallError::ReturnToNotAllowed => "return_to_not_allowed",
            InstallError::UnknownState => "unknown_state",
            InstallError::ExpiredState => "expired_state",
            InstallError::Denied { .. } => "access_denied",
            InstallError::MissingCode => "missing_code",
            InstallError::CodeRejected => "code_rejected",
            InstallError::MissingScopes(_) => "missing_scopes",
            InstallError::PortalClaimed(_) => "portal_claimed",
            InstallError::HubSpotUnavailable => "hubspot_unavailable",
            InstallError::UnknownScopes(_) => "unknown_scopes",
            InstallError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for InstallError {
    fn from(err: StoreError) -> Self {
        InstallError::Internal(err.to_string())
    }
}

fn from_hubspot(err: HubSpotError) -> InstallError {
    match err.class() {
        ErrorClass::Retryable => InstallError::HubSpotUnavailable,
        _ => InstallError::Internal(err.to_string()),
    }
}

/// Checks that `return_to` points at an allowed origin: an open redirect would let anyone
/// bounce a tenant's browser, with the install's outcome, to a site of their choosing.
pub fn check_return_to(deps: &Deps, return_to: &str) -> Result<Url, InstallError> {
    let url = Url::parse(return_to).map_err(|_| InstallError::ReturnToNotAllowed)?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(InstallError::ReturnToNotAllowed);
    }
    let origin = url.origin().ascii_serialization();
    let allowed = deps.settings.allowed_return_origins.iter().any(|o| o.trim_end_matches('/') == origin);
    if allowed { Ok(url) } else { Err(InstallError::ReturnToNotAllowed) }
}

/// The scopes `tenant`'s installs ask for: those of the objects in the tenant's field catalogue
/// (its own, else the deployment's), each list replaced by the deployment's when it names one.
pub async fn install_scopes(deps: &Deps, tenant: &TenantId) -> Result<InstallScopes, InstallError> {
    let catalogue = deps.store.catalogue_for(tenant).await?.map(|(_, catalogue)| catalogue);
    let derived = InstallScopes::for_catalogue(catalogue.as_ref());
    let required = deps.settings.required_scopes.clone().unwrap_or(derived.required);
    let optional = deps.settings.optional_scopes.clone().unwrap_or(derived.optional);
    let optional = optional.into_iter().filter(|s| !required.contains(s)).collect();
    Ok(InstallScopes { required, optional })
}

/// Starts an install: a single-use state bound to the tenant, and HubSpot's authorize URL.
/// `also_required` (a reconnect link's `scope`) adds scopes a config needs to the required ones.
pub async fn start_install(
    deps: &Deps,
    tenant: &TenantId,
    return_to: &str,
    also_required: &[String],
) -> Result<String, InstallError> {
    let return_to = check_return_to(deps, return_to)?;
    let known = scopes::known();
    let unknown: Vec<String> = also_required.iter().filter(|s| !known.contains(*s)).cloned().collect();
    if !unknown.is_empty() {
        return Err(InstallError::UnknownScopes(unknown));
    }
    let scopes = install_scopes(deps, tenant).await?.requiring(also_required.iter().cloned());
    let state = OAuthState::issue(tenant.clone(), return_to.to_string(), deps.clock.now());
    deps.store.put_oauth_state(&state).await?;
    let secrets = deps.secrets.app_secrets().await.map_err(|e| InstallError::Internal(e.to_string()))?;
    Ok(deps.hubspot.authorize_url(
        &secrets.client_id,
        &deps.settings.oauth_redirect_uri,
        &scopes.required,
        &scopes.optional,
        &state.state,
    ))
}

/// What HubSpot sent to the callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The end of an install. `return_to` is known once the state was verified; before that, the
/// request cannot be trusted to say where to go.
pub struct CallbackOutcome {
    pub return_to: Option<String>,
    pub result: Result<Connection, InstallError>,
}

pub async fn finish_install(deps: &Deps, params: CallbackParams) -> CallbackOutcome {
    let state = match params.state.as_deref() {
        None | Some("") => Err(InstallError::UnknownState),
        Some(state) => deps.store.take_oauth_state(state, deps.clock.now()).await.map_err(|err| match err {
            StoreError::NotFound(_) => InstallError::UnknownState,
            StoreError::Expired => InstallError::ExpiredState,
            other => other.into(),
        }),
    };
    let state = match state {
        Ok(state) => state,
        Err(err) => return CallbackOutcome { return_to: None, result: Err(err) },
    };
    let result = match (params.error, params.code) {
        (Some(error), _) => Err(InstallError::Denied {
            description: params.error_description.unwrap_or_else(|| "no reason given".into()),
            error,
        }),
        (None, None) => Err(InstallError::MissingCode),
        (None, Some(code)) => connect_portal(deps, &state.tenant_id, &Secret::new(code)).await,
    };
    CallbackOutcome { return_to: Some(state.return_to), result }
}

/// Exchanges an authorization code and stores the connection it grants. Used by the OAuth
/// callback and by the console's connect-with-code route. On any refusal the tokens just
/// obtained are revoked, so nothing half-installed is left at HubSpot or here.
pub async fn connect_portal(deps: &Deps, tenant: &TenantId, code: &Secret) -> Result<Connection, InstallError> {
    let secrets = deps.secrets.app_secrets().await.map_err(|e| InstallError::Internal(e.to_string()))?;
    let granted = deps
        .hubspot
        .exchange_code(&secrets.client_id, &secrets.client_secret, &deps.settings.oauth_redirect_uri, code)
        .await
        .map_err(|err| match err.class() {
            ErrorClass::Retryable => InstallError::HubSpotUnavailable,
            _ => InstallError::CodeRejected,
        })?;
    let tokens = OAuthTokens { access_token: granted.access_token, refresh_token: granted.refresh_token };
    let result = register(deps, tenant, &tokens, granted.expires_in).await;
    if result.is_err() {
        let revoked =
            deps.hubspot.revoke_refresh_token(&secrets.client_id, &secrets.client_secret, &tokens.refresh_token).await;
        if let Err(err) = revoked {
            tracing::warn!(error = %err, "could not revoke the refresh token of a refused install");
        }
    }
    result
}

async fn register(
    deps: &Deps,
    tenant: &TenantId,
    tokens: &OAuthTokens,
    expires_in: u64,
) -> Result<Connection, InstallError> {
    let secrets = deps.secrets.app_secrets().await.map_err(|e| InstallError::Internal(e.to_string()))?;
    let info = deps
        .hubspot
        .introspect_access_token(&secrets.client_id, &secrets.client_secret, &tokens.access_token)
        .await
        .map_err(from_hubspot)?;
    let required = install_scopes(deps, tenant).await?.required;
    let missing: Vec<String> = required.iter().filter(|s| !info.scopes.contains(s)).cloned().collect();
    if !missing.is_empty() {
        return Err(InstallError::MissingScopes(missing));
    }

    let existing = deps.store.connections_for_portal(info.hub_id).await?;
    let claimed_elsewhere = existing.iter().any(|c| &c.tenant_id != tenant && c.status != ConnectionStatus::Disabled);
    if claimed_elsewhere && !deps.settings.allow_shared_portals {
        return Err(InstallError::PortalClaimed(info.hub_id));
    }

    let now = deps.clock.now();
    // Reinstalling updates the tenant's connection to this portal instead of adding another.
    let previous = existing.into_iter().find(|c| &c.tenant_id == tenant);
    let is_new = previous.is_none();
    let was_stopped = previous.as_ref().is_some_and(|c| c.status == ConnectionStatus::NeedsReauth);
    let connection = match previous {
        Some(mut connection) => {
            connection.status = ConnectionStatus::Active;
            connection.scopes = info.scopes;
            connection.installed_by = info.user;
            connection.app_id = info.app_id;
            connection.updated_at = now;
            connection
        }
        None => Connection {
            id: ConnectionId::generate(&deps.ids.new_id()),
            tenant_id: tenant.clone(),
            portal_id: info.hub_id,
            status: ConnectionStatus::Active,
            scopes: info.scopes,
            installed_by: info.user,
            app_id: info.app_id,
            created_at: now,
            updated_at: now,
            revision: 0,
        },
    };
    // Tokens first: the connection row is what makes the install visible, so it goes last.
    deps.tokens
        .store_tokens(&connection.id, tokens, expires_in)
        .await
        .map_err(|e| InstallError::Internal(e.to_string()))?;
    if let Err(err) = deps.store.put_connection(&connection).await {
        if is_new && let Err(cleanup) = deps.store.delete_tokens(&connection.id).await {
            tracing::warn!(error = %cleanup, "could not delete the tokens of an unfinished install");
        }
        return Err(err.into());
    }
    tracing::info!(connection = %connection.id, tenant = %tenant, portal = connection.portal_id, "HubSpot app installed");
    if was_stopped {
        // Work parked while the connection could not reach HubSpot goes out again now: the
        // platform's changes, HubSpot's changes waiting for delivery, and pulls. The bulk worker
        // does it (work/redrive.rs); should asking fail, the work stays parked with its reasons
        // for the console's redrive.
        if let Err(err) = crate::work::queue_redrive(deps, &connection.id).await {
            tracing::error!(connection = %connection.id, error = %err, "could not ask for the parked work to be redriven");
        }
    }
    Ok(connection)
}
