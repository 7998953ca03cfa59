//! How hubsync's HTTP clients (HubSpot's API, the platform's ingest endpoint) put a request on
//! the wire. Production sends it with reqwest; a simulation hands it to an in-process router
//! instead, so a whole deployment can run on one thread with a simulated clock and replay
//! exactly (see `tests/chaos.rs`). Requests and responses are reqwest's own types either way:
//! the clients build, sign, size-limit and read them the same.

use std::sync::Arc;

use async_trait::async_trait;

/// Sends one request and returns the response, its body still to be read.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, request: reqwest::Request) -> Result<reqwest::Response, TransportError>;
}

/// Why a request got no answer. Never carries the URL: query strings stay out of logs.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No complete answer within the request's timeout.
    #[error("no answer in time")]
    Timeout,
    /// Connecting, sending or reading failed (refused, reset, closed without an answer).
    #[error("{0}")]
    Connection(String),
    /// The request could not be formed (a bad header, say): retrying will not help.
    #[error("the request could not be formed: {0}")]
    Invalid(String),
    /// The destination is one hubsync does not call (a private address after DNS resolution).
    #[error("{0}")]
    Forbidden(String),
}

impl From<reqwest::Error> for TransportError {
    fn from(err: reqwest::Error) -> Self {
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            if let Some(private) = cause.downcast_ref::<crate::inbound::destination::PrivateDestination>() {
                return TransportError::Forbidden(private.to_string());
            }
            source = cause.source();
        }
        if err.is_timeout() {
            TransportError::Timeout
        } else if err.is_builder() {
            TransportError::Invalid(err.without_url().to_string())
        } else {
            TransportError::Connection(err.without_url().to_string())
        }
    }
}

/// The network, through one reqwest client (its connection pool is shared by every clone).
pub struct Network(reqwest::Client);

impl Network {
    /// The network through `client`, as the transport clients share.
    pub fn shared(client: reqwest::Client) -> Arc<dyn Transport> {
        Arc::new(Network(client))
    }
}

#[async_trait]
impl Transport for Network {
    async fn send(&self, request: reqwest::Request) -> Result<reqwest::Response, TransportError> {
        Ok(self.0.execute(request).await?)
    }
}

/// Reads a response's body, refusing to read more than `limit` bytes.
pub async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|len| len > limit as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| ReadError::Transport(e.into()))? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the answer is larger than allowed")]
    TooLarge,
    #[error(transparent)]
    Transport(TransportError),
}
