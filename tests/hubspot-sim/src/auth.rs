//! Bearer-token authentication, the rate limit and scope checks for the CRM endpoints.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::errors::ApiError;
use crate::ratelimit;
use crate::state::Sim;

/// Who is calling, put in the request's extensions for the handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub hub_id: u64,
    pub client_id: String,
    pub app_id: u64,
    pub scopes: Vec<String>,
}

impl Caller {
    /// Passes when the token has at least one of `any_of` (HubSpot's "one or more of the
    /// following scopes are required").
    pub fn require(&self, any_of: &[String]) -> Result<(), ApiError> {
        if any_of.iter().any(|s| self.scopes.contains(s)) { Ok(()) } else { Err(ApiError::missing_scopes(any_of)) }
    }
}

/// Middleware for `/crm`: 401 without a valid token, 429 over the limit, and the rate-limit
/// headers on every answer after that (search has its own limit and no headers).
pub async fn crm_auth(State(sim): State<Sim>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());

    let admitted = {
        let mut state = sim.lock();
        let caller = match token.as_deref().and_then(|t| state.access_tokens.get(t)) {
            None => Err(ApiError::unauthenticated()),
            Some(token) if token.expires_at <= sim.now_ms() => {
                Err(ApiError::expired((sim.now_ms() - token.expires_at) / 1000, token.expires_at))
            }
            Some(token) if !state.portals.contains_key(&token.hub_id) => Err(ApiError::unauthenticated()),
            Some(token) => Ok(Caller {
                hub_id: token.hub_id,
                client_id: token.client_id.clone(),
                app_id: state.app_id(&token.client_id),
                scopes: token.scopes.clone(),
            }),
        };
        let search = request.uri().path().ends_with("/search");
        caller.and_then(|caller| {
            let taken = if search {
                ratelimit::take_search(&mut state, caller.hub_id, sim.config.search_rate_limit_per_second)
                    .map(|_| None)
                    .map_err(|_| ApiError::search_limited())
            } else {
                ratelimit::take(&mut state, caller.hub_id, &caller.client_id, sim.config.rate_limit_per_10s)
                    .map(Some)
                    .map_err(|budget| {
                        let mut error = ApiError::rate_limited();
                        error.rate_limit = Some(budget);
                        error
                    })
            };
            taken.map(|budget| (caller, budget))
        })
    };
    match admitted {
        Err(error) => error.into_response(),
        Ok((caller, budget)) => {
            request.extensions_mut().insert(caller);
            let mut response = next.run(request).await;
            if let Some(budget) = budget {
                response.headers_mut().extend(budget.headers());
            }
            response
        }
    }
}
