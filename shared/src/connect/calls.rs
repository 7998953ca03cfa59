//! Calling HubSpot on behalf of a connection: with a valid token, and once more with a fresh
//! one if HubSpot answers 401.

use std::future::Future;

use crate::connect::tokens::TokenError;
use crate::deps::Deps;
use crate::domain::{ConnectionId, Secret};
use crate::hubspot::{ErrorClass, HubSpotError};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    HubSpot(#[from] HubSpotError),
}

pub async fn with_token<T, F, Fut>(deps: &Deps, connection: &ConnectionId, call: F) -> Result<T, CallError>
where
    F: Fn(Secret) -> Fut,
    Fut: Future<Output = Result<T, HubSpotError>>,
{
    let token = deps.tokens.access_token(connection).await?;
    match call(token.clone()).await {
        Err(err) if err.class() == ErrorClass::Reauth => {
            let fresh = deps.tokens.token_rejected(connection, &token).await?;
            Ok(call(fresh).await?)
        }
        other => Ok(other?),
    }
}
