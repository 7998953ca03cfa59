//! Uninstalling: the connection stops at once, HubSpot revokes its refresh token, and the stored
//! tokens are deleted.

use crate::deps::Deps;
use crate::domain::{Connection, ConnectionStatus};
use crate::http::ApiError;

pub async fn uninstall(deps: &Deps, connection: Connection) -> Result<Connection, ApiError> {
    // Disabled first: from this write on, workers drop the connection's jobs.
    let mut stopped = connection;
    stopped.status = ConnectionStatus::Disabled;
    stopped.updated_at = deps.clock.now();
    deps.store.put_connection(&stopped).await?;

    match deps.tokens.refresh_token(&stopped.id).await {
        Ok(refresh_token) => {
            let secrets = deps.secrets.app_secrets().await.map_err(|e| ApiError::Internal(e.to_string()))?;
            let revoked =
                deps.hubspot.revoke_refresh_token(&secrets.client_id, &secrets.client_secret, &refresh_token).await;
            if let Err(err) = revoked {
                // The tokens are deleted below either way; an unrevoked token is useless without them.
                tracing::warn!(connection = %stopped.id, error = %err, "HubSpot did not revoke the refresh token");
            }
        }
        Err(err) => tracing::info!(connection = %stopped.id, reason = %err, "no refresh token to revoke"),
    }
    deps.store.delete_tokens(&stopped.id).await?;
    deps.tokens.forget(&stopped.id);
    tracing::info!(connection = %stopped.id, "uninstalled");
    Ok(stopped)
}
