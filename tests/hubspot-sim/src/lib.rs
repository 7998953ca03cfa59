//! A stateful HubSpot simulator for hubsync's tests and local runner.
//!
//! It serves, on 127.0.0.1, the parts of HubSpot's public API a sync connector uses, with
//! HubSpot's status codes, error bodies and headers: OAuth (authorize, token, introspection,
//! revocation), CRM objects (contacts, companies, deals, line items) with their batch
//! endpoints and search, the Properties API, the Lists API, associations (v4), bearer-token
//! scopes and the rate limits. It sends webhooks for every CRM change to the apps subscribed,
//! signed and retried as HubSpot does. Tests drive it through [`RunningSimulator`]'s methods
//! (seed data, edit as a person, expire tokens, inject faults, subscribe to webhooks); the same
//! controls are served over HTTP under `/_sim/`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = hubspot_sim::start(hubspot_sim::SimConfig::default()).await?;
//! let tokens = sim.issue_tokens(1000, "sim-client-id", &["crm.objects.contacts.read"]);
//! // point a client at sim.base_url() with tokens.access_token …
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod associations;
mod auth;
mod errors;
mod faults;
mod lists;
mod oauth;
mod objects;
mod properties;
mod ratelimit;
mod records;
mod search;
mod state;
mod state_file;
mod webhook_api;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use admin::{SEED_MANY_LIMIT, Simulator};
pub use associations::ASSOCIATION_BATCH_LIMIT;
pub use faults::{DroppedConnection, Fault, FaultKind};
pub use lists::{MEMBERSHIP_IDS_LIMIT, MEMBERSHIP_PAGE_MAX};
pub use objects::BATCH_LIMIT;
pub use state::{
    ALL_SCOPES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PORTAL, IssuedTokens, OmittedOnUpsert, SimConfig,
    Tokens,
};
pub use state_file::{StateFile, StateFileError};
pub use webhooks::{
    HttpSender, Subscription, WEBHOOK_BATCH_MAX, WebhookAttempt, WebhookRequest, WebhookSender, signature_v1,
    signature_v3,
};

use state::{Shared, Sim};

/// Starts a simulator on 127.0.0.1 with a free port.
pub async fn start(config: SimConfig) -> std::io::Result<RunningSimulator> {
    start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts a simulator on `addr` (the binary's `--host`/`--port`).
pub async fn start_on(config: SimConfig, addr: SocketAddr) -> std::io::Result<RunningSimulator> {
    serve(config, addr, None).await
}

/// Starts a simulator on `addr` that keeps its state in `state` (see [`StateFile`]): it starts
/// with what the file holds, writes its changes there a moment after they happen, and once more
/// when it shuts down (or is dropped).
pub async fn start_kept(config: SimConfig, addr: SocketAddr, state: StateFile) -> std::io::Result<RunningSimulator> {
    serve(config, addr, Some(state)).await
}

async fn serve(config: SimConfig, addr: SocketAddr, state: Option<StateFile>) -> std::io::Result<RunningSimulator> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let simulator = Simulator { sim: Shared::new(config) };
    let keeper = state.map(|mut state| {
        state.restore_into(&mut simulator.sim.lock());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(state_file::keep(simulator.sim.clone(), state.path().to_path_buf(), stopped));
        Keeper { stop, task }
    });
    let (stop_webhooks, webhooks_stopped) = oneshot::channel::<()>();
    let sender = Arc::new(HttpSender::new().map_err(std::io::Error::other)?);
    let webhooks = tokio::spawn(webhooks::run(simulator.sim.clone(), webhooks_stopped, sender));
    let app = simulator.router().layer(axum::middleware::from_fn(faults::hang_up));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Dropping the RunningSimulator drops `stop`, which also ends the server.
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(err) = served.await {
            tracing::error!(error = %err, "hubspot-sim stopped");
        }
    });
    Ok(RunningSimulator { simulator, addr, stop, task, stop_webhooks, webhooks, keeper })
}

/// Starts a simulator that serves no port: callers hand its [`Simulator::router`] their
/// requests in-process, and its webhooks go to `sender`. What a simulation with a paused clock
/// needs, since nothing then waits on a socket.
pub fn start_in_process(config: SimConfig, sender: Arc<dyn WebhookSender>) -> InProcessSimulator {
    let simulator = Simulator { sim: Shared::new(config) };
    let (stop_webhooks, webhooks_stopped) = oneshot::channel::<()>();
    let webhooks = tokio::spawn(webhooks::run(simulator.sim.clone(), webhooks_stopped, sender));
    InProcessSimulator { simulator, _stop_webhooks: stop_webhooks, webhooks }
}

/// A simulator without a port (see [`start_in_process`]); dropping it stops its webhook sender.
pub struct InProcessSimulator {
    simulator: Simulator,
    _stop_webhooks: oneshot::Sender<()>,
    webhooks: JoinHandle<()>,
}

impl Drop for InProcessSimulator {
    fn drop(&mut self) {
        self.webhooks.abort();
    }
}

impl std::ops::Deref for InProcessSimulator {
    type Target = Simulator;

    fn deref(&self) -> &Simulator {
        &self.simulator
    }
}

/// A simulator serving on a local port. Its control methods come from [`Simulator`]
/// (through `Deref`); dropping it stops the server and the webhook sender.
pub struct RunningSimulator {
    simulator: Simulator,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    /// Dropping it also stops the sender, cancelling deliveries under way.
    stop_webhooks: oneshot::Sender<()>,
    webhooks: JoinHandle<()>,
    /// The state file's writer, for a simulator that keeps its state.
    keeper: Option<Keeper>,
}

/// Stops the state file's writer, which then writes the state a last time.
struct Keeper {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningSimulator {
    /// `http://127.0.0.1:PORT`: both the API base (api.hubapi.com) and the app base
    /// (app.hubspot.com, for `/oauth/authorize`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that outlives borrows of this value (e.g. for a spawned task).
    pub fn handle(&self) -> Simulator {
        self.simulator.clone()
    }

    /// Stops accepting connections and waits for open requests to finish. Webhooks not yet
    /// delivered are dropped. A simulator that keeps its state has written it when this returns.
    pub async fn shutdown(self) {
        let _ = self.stop_webhooks.send(());
        let _ = self.webhooks.await;
        let _ = self.stop.send(());
        let _ = self.task.await;
        if let Some(keeper) = self.keeper {
            let _ = keeper.stop.send(());
            let _ = keeper.task.await;
        }
    }
}

impl std::ops::Deref for RunningSimulator {
    type Target = Simulator;

    fn deref(&self) -> &Simulator {
        &self.simulator
    }
}

impl std::fmt::Debug for RunningSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSimulator").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Simulator {
    /// The simulator's HTTP API, for serving it some other way (e.g. inside another router).
    pub fn router(&self) -> Router {
        let sim = self.sim.clone();
        let mut crm = Router::new();
        // The legacy v3 paths and the date-versioned ones serve the same shapes.
        for (objects, properties) in [
            ("/crm/v3/objects", "/crm/v3/properties"),
            ("/crm/objects/2026-03", "/crm/properties/2026-03"),
            ("/crm/objects/2026-09", "/crm/properties/2026-09"),
        ] {
            let t = format!("{objects}/{{objectType}}");
            crm = crm
                .route(&t, get(objects::list).post(objects::create))
                .route(&format!("{t}/{{objectId}}"), get(objects::get).patch(objects::update).delete(objects::archive))
                .route(&format!("{t}/search"), post(search::search))
                .route(&format!("{t}/merge"), post(objects::merge))
                .route(&format!("{t}/batch/read"), post(objects::batch_read))
                .route(&format!("{t}/batch/create"), post(objects::batch_create))
                .route(&format!("{t}/batch/update"), post(objects::batch_update))
                .route(&format!("{t}/batch/upsert"), post(objects::batch_upsert))
                .route(&format!("{t}/batch/archive"), post(objects::batch_archive));
            let p = format!("{properties}/{{objectType}}");
            crm = crm
                .route(&p, get(properties::list).post(properties::create))
                .route(&format!("{p}/groups"), get(properties::groups))
                .route(
                    &format!("{p}/{{propertyName}}"),
                    get(properties::get).patch(properties::update).delete(properties::archive),
                );
        }
        for (associations, objects) in [
            ("/crm/v4/associations", "/crm/v4/objects"),
            ("/crm/associations/2026-03", "/crm/objects/2026-03"),
            ("/crm/associations/2026-09", "/crm/objects/2026-09"),
        ] {
            let record = format!("{objects}/{{objectType}}/{{objectId}}/associations");
            crm = crm
                .route(
                    &format!("{associations}/{{fromObjectType}}/{{toObjectType}}/batch/read"),
                    post(associations::batch_read),
                )
                .route(
                    &format!("{associations}/{{fromObjectType}}/{{toObjectType}}/batch/associate/default"),
                    post(associations::batch_associate_default),
                )
                .route(
                    &format!("{associations}/{{fromObjectType}}/{{toObjectType}}/batch/create"),
                    post(associations::batch_create),
                )
                .route(
                    &format!("{associations}/{{fromObjectType}}/{{toObjectType}}/batch/archive"),
                    post(associations::batch_archive),
                )
                .route(&format!("{record}/{{toObjectType}}"), get(associations::page))
                .route(&format!("{record}/default/{{toObjectType}}/{{toObjectId}}"), put(associations::create_default))
                .route(&format!("{record}/{{toObjectType}}/{{toObjectId}}"), delete(associations::remove));
        }
        for prefix in ["/crm/v3/lists", "/crm/lists/2026-03", "/crm/lists/2026-09"] {
            let l = format!("{prefix}/{{listId}}");
            crm = crm
                .route(prefix, post(lists::create))
                .route(&l, get(lists::get))
                .route(&format!("{l}/memberships"), get(lists::memberships))
                .route(&format!("{l}/memberships/add"), put(lists::add))
                .route(&format!("{l}/memberships/remove"), put(lists::remove))
                .route(&format!("{l}/memberships/add-and-remove"), put(lists::add_and_remove));
        }
        let crm = crm.route_layer(from_fn_with_state(sim.clone(), auth::crm_auth));

        let mut oauth = Router::new()
            .route("/oauth/authorize", get(oauth::authorize))
            .route("/oauth/{portalId}/authorize", get(oauth::authorize_pinned))
            .route("/oauth/v1/access-tokens/{token}", get(oauth::access_token_v1))
            .route(
                "/oauth/v1/refresh-tokens/{token}",
                get(oauth::refresh_token_v1).delete(oauth::revoke_refresh_token_v1),
            );
        for version in ["v1", "v3", "2026-03", "2026-09"] {
            oauth = oauth.route(&format!("/oauth/{version}/token"), post(oauth::token));
        }
        for version in ["v3", "2026-03", "2026-09"] {
            oauth = oauth
                .route(&format!("/oauth/{version}/token/introspect"), post(oauth::introspect))
                .route(&format!("/oauth/{version}/token/revoke"), post(oauth::revoke));
        }

        Router::new()
            .merge(crm)
            .merge(oauth)
            .merge(admin::routes())
            .merge(webhook_api::routes())
            .fallback(not_found)
            .layer(from_fn_with_state(sim.clone(), faults::inject))
            .layer(from_fn_with_state(sim.clone(), count_requests))
            .with_state(sim)
    }
}

/// Unknown routes answer 404, after reading the request's body (up to 1 MiB), so the client's
/// keep-alive connection stays usable.
async fn not_found(request: Request) -> Response {
    let message = format!("No route for {} {}", request.method(), request.uri().path());
    let _ = axum::body::to_bytes(request.into_body(), 1024 * 1024).await;
    errors::ApiError::not_found(message).into_response()
}

/// Counts every request (by route pattern and by concrete path) and logs it.
async fn count_requests(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let pattern = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    if !path.starts_with("/_sim") {
        sim.lock().count_request(&method, pattern.as_deref(), &path);
    }
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "hubspot-sim");
    response
}
