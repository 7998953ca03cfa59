//! Hands every caller a valid access token for a connection.
//!
//! Tokens are refreshed ahead of expiry. Across all concurrent Lambdas only one refresh runs per
//! connection at a time (the store's refresh lease); the others wait for its result instead of
//! refreshing too, because HubSpot invalidates nothing on refresh but every refresh costs a call
//! and races would store tokens out of order. A refresh token HubSpot refuses (`BAD_REFRESH_TOKEN`,
//! `invalid_grant`) marks the connection `needs_reauth`, so its jobs wait instead of failing one by
//! one. Anything else the token endpoint answers is not about one connection: a refused client
//! secret (re-read once, as after a rotation), a 5xx or an unexpected answer is retried and logged
//! as an error for the alarms, and never marks a connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use time::{Duration, OffsetDateTime};

use crate::connect::vault::{OAuthTokens, TokenVault};
use crate::domain::{Connection, ConnectionId, ConnectionStatus, Secret, TokenRecord};
use crate::hubspot::{HubSpotClient, HubSpotError};
use crate::ports::{Clock, DataKeys, SecretSource, Store, StoreError};

/// Refresh this long before HubSpot's expiry, so no call starts with a token about to die.
pub const REFRESH_AHEAD: Duration = Duration::minutes(5);
/// How long one refresh may hold the lease; a crashed holder releases it by expiry.
const LEASE_TTL: Duration = Duration::seconds(30);
/// How long a caller waits for another's refresh before giving up (retryable).
const WAIT_FOR_REFRESH: StdDuration = StdDuration::from_secs(10);
const POLL_EVERY: StdDuration = StdDuration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("connection {0} has no stored tokens: install the HubSpot app")]
    NotConnected(ConnectionId),
    /// HubSpot refused the refresh token: the tenant must install the app again.
    #[error("connection {0} needs to be re-authorised: install the HubSpot app again")]
    NeedsReauth(ConnectionId),
    /// Temporary: HubSpot or the store failed, or another refresh took too long. Retry later.
    #[error("no valid token right now: {0}")]
    Unavailable(String),
}

impl From<StoreError> for TokenError {
    fn from(err: StoreError) -> Self {
        TokenError::Unavailable(err.to_string())
    }
}

pub struct TokenProvider {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretSource>,
    hubspot: HubSpotClient,
    clock: Arc<dyn Clock>,
    vault: TokenVault,
    /// Decrypted tokens this instance already holds, so a warm Lambda reads the store rarely.
    cache: Mutex<HashMap<ConnectionId, (Secret, OffsetDateTime)>>,
}

impl TokenProvider {
    /// `keys` wrap the data keys that encrypt stored tokens (KMS in AWS).
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretSource>,
        keys: Arc<dyn DataKeys>,
        hubspot: HubSpotClient,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let vault = TokenVault::new(keys, secrets.clone());
        TokenProvider { store, secrets, hubspot, clock, vault, cache: Mutex::new(HashMap::new()) }
    }

    fn is_fresh(&self, expires_at: OffsetDateTime) -> bool {
        expires_at - self.clock.now() > REFRESH_AHEAD
    }

    /// Seals and stores freshly issued tokens (after an install or a refresh).
    pub async fn store_tokens(
        &self,
        connection: &ConnectionId,
        tokens: &OAuthTokens,
        expires_in_secs: u64,
    ) -> Result<(), TokenError> {
        let access_expires_at = self.clock.now() + Duration::seconds(expires_in_secs as i64);
        let sealed = self.vault.seal(connection, tokens).await.map_err(|e| TokenError::Unavailable(e.to_string()))?;
        let record = TokenRecord { connection_id: connection.clone(), sealed, access_expires_at };
        self.store.put_tokens(&record).await?;
        self.remember(connection, &tokens.access_token, access_expires_at);
        Ok(())
    }

    /// A valid access token for the connection.
    pub async fn access_token(&self, connection: &ConnectionId) -> Result<Secret, TokenError> {
        if let Some((token, expires_at)) = self.cached(connection)
            && self.is_fresh(expires_at)
        {
            return Ok(token);
        }
        let (tokens, expires_at) = self.load(connection).await?;
        if self.is_fresh(expires_at) {
            self.remember(connection, &tokens.access_token, expires_at);
            return Ok(tokens.access_token);
        }
        self.refresh(connection, None).await
    }

    /// HubSpot answered 401 to `rejected`: refresh now, unless someone already replaced it.
    pub async fn token_rejected(&self, connection: &ConnectionId, rejected: &Secret) -> Result<Secret, TokenError> {
        self.forget(connection);
        self.refresh(connection, Some(rejected)).await
    }

    /// Drops what this instance remembers (after an uninstall).
    pub fn forget(&self, connection: &ConnectionId) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(connection);
    }

    /// The refresh token, for revoking it at uninstall.
    pub async fn refresh_token(&self, connection: &ConnectionId) -> Result<Secret, TokenError> {
        Ok(self.load(connection).await?.0.refresh_token)
    }

    fn cached(&self, connection: &ConnectionId) -> Option<(Secret, OffsetDateTime)> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(connection).cloned()
    }

    fn remember(&self, connection: &ConnectionId, token: &Secret, expires_at: OffsetDateTime) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(connection.clone(), (token.clone(), expires_at));
    }

    async fn load(&self, connection: &ConnectionId) -> Result<(OAuthTokens, OffsetDateTime), TokenError> {
        let record =
            self.store.get_tokens(connection).await?.ok_or_else(|| TokenError::NotConnected(connection.clone()))?;
        let tokens =
            self.vault.open(connection, &record.sealed).await.map_err(|e| TokenError::Unavailable(e.to_string()))?;
        Ok((tokens, record.access_expires_at))
    }

    /// Whether the stored token is one a caller can use instead of refreshing.
    fn usable(&self, tokens: &OAuthTokens, expires_at: OffsetDateTime, rejected: Option<&Secret>) -> bool {
        match rejected {
            Some(rejected) => &tokens.access_token != rejected,
            None => self.is_fresh(expires_at),
        }
    }

    async fn refresh(&self, connection: &ConnectionId, rejected: Option<&Secret>) -> Result<Secret, TokenError> {
        let holder = uuid::Uuid::new_v4().to_string();
        let deadline = tokio::time::Instant::now() + WAIT_FOR_REFRESH;
        loop {
            let (tokens, expires_at) = self.load(connection).await?;
            if self.usable(&tokens, expires_at, rejected) {
                self.remember(connection, &tokens.access_token, expires_at);
                return Ok(tokens.access_token);
            }
            if self.store.acquire_refresh_lease(connection, &holder, self.clock.now(), LEASE_TTL).await? {
                let result = self.refresh_holding_lease(connection, rejected).await;
                self.store.release_refresh_lease(connection, &holder).await?;
                return result;
            }
            // Someone else is refreshing: wait for their result rather than refresh twice.
            if tokio::time::Instant::now() >= deadline {
                return Err(TokenError::Unavailable("another refresh of this connection is taking too long".into()));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn refresh_holding_lease(
        &self,
        connection: &ConnectionId,
        rejected: Option<&Secret>,
    ) -> Result<Secret, TokenError> {
        // Read before the tokens: a reinstall stores its tokens before its connection, so if
        // one lands after this read, marking the connection below is refused.
        let before = self.store.get_connection(connection).await?;
        // Re-read under the lease: the previous holder may have refreshed a moment ago.
        let (tokens, expires_at) = self.load(connection).await?;
        if self.usable(&tokens, expires_at, rejected) {
            return Ok(tokens.access_token);
        }
        let mut answer = self.refresh_with_app_secret(&tokens.refresh_token).await?;
        if answer.as_ref().is_err_and(refused_client) {
            // The client secret was rotated since this instance read it: read it again, once.
            self.secrets.invalidate();
            answer = self.refresh_with_app_secret(&tokens.refresh_token).await?;
        }
        match answer {
            Ok(fresh) => {
                // HubSpot may or may not rotate the refresh token: keep whatever it returns.
                let renewed = OAuthTokens { access_token: fresh.access_token, refresh_token: fresh.refresh_token };
                self.store_tokens(connection, &renewed, fresh.expires_in).await?;
                Ok(renewed.access_token)
            }
            Err(err) if refused_refresh_token(&err) => {
                if let Some(before) = before {
                    self.mark_needs_reauth(before).await?;
                }
                Err(TokenError::NeedsReauth(connection.clone()))
            }
            Err(err) => {
                // Every connection's refresh fails alike: the deployment needs attention.
                tracing::error!(connection = %connection, error = %err, "HubSpot's token endpoint refused a refresh for a reason not of this connection; retried");
                Err(TokenError::Unavailable(err.to_string()))
            }
        }
    }

    async fn refresh_with_app_secret(
        &self,
        refresh_token: &Secret,
    ) -> Result<Result<crate::hubspot::oauth::TokenGrant, HubSpotError>, TokenError> {
        let secrets = self.secrets.app_secrets().await.map_err(|e| TokenError::Unavailable(e.to_string()))?;
        Ok(self.hubspot.refresh_token(&secrets.client_id, &secrets.client_secret, refresh_token).await)
    }

    /// Marks the connection as read before the refused refresh, unless it changed since (an
    /// install meanwhile brought new tokens: this refusal is of the old ones).
    async fn mark_needs_reauth(&self, mut connection: Connection) -> Result<(), TokenError> {
        self.forget(&connection.id);
        if connection.status != ConnectionStatus::Active {
            return Ok(());
        }
        connection.status = ConnectionStatus::NeedsReauth;
        connection.updated_at = self.clock.now();
        match self.store.update_connection(&connection).await {
            Ok(()) => {
                tracing::warn!(connection = %connection.id, "HubSpot refused the refresh token; connection needs re-authorisation");
                Ok(())
            }
            Err(StoreError::RevisionConflict) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

/// A refresh token HubSpot will never accept again (revoked, uninstalled, invalid): HubSpot's
/// `BAD_REFRESH_TOKEN`, or RFC 6749's `invalid_grant` in its newer error shape.
fn refused_refresh_token(err: &HubSpotError) -> bool {
    matches!(err, HubSpotError::BadRequest(_)) && matches!(err.category(), Some("BAD_REFRESH_TOKEN" | "invalid_grant"))
}

/// HubSpot refused the app itself (`BAD_CLIENT_ID`, `invalid_client`): a wrong or rotated secret.
fn refused_client(err: &HubSpotError) -> bool {
    matches!(err.category(), Some("BAD_CLIENT_ID" | "BAD_CLIENT_SECRET" | "invalid_client"))
}
