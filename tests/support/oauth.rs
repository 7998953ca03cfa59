//! The OAuth install as a console and a browser perform it, through the oauth-callback handler.

use std::collections::HashMap;

use axum::http::StatusCode;

use crate::Function;
use crate::lambda::{Event, Reply, invoke};
use crate::world::{CONSOLE, REDIRECT_URI, World};

pub fn query(url: &str) -> HashMap<String, String> {
    let url = hubsync::http::Url::parse(url).unwrap();
    url.query_pairs().into_owned().collect()
}

/// The browser's trip through HubSpot's consent page: returns the callback query HubSpot sends.
pub async fn consent(authorize_url: &str) -> String {
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = browser.get(authorize_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND, "HubSpot's authorize page redirects back");
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    location.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default()
}

/// Starts an install as the console would; returns HubSpot's authorize URL.
pub async fn start(world: &World, key: &str) -> String {
    let handler = oauth_callback::router(world.function(Function::OAuthCallback).await);
    let reply = invoke(&handler, Event::get(&format!("/oauth/install?return_to={CONSOLE}/hubspot")).bearer(key)).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    reply.location().to_string()
}

pub async fn callback(world: &World, callback_query: &str) -> Reply {
    let handler = oauth_callback::router(world.function(Function::OAuthCallback).await);
    invoke(&handler, Event::get(&format!("/oauth/callback?{callback_query}"))).await
}

/// Install → consent → callback; returns the connection id.
pub async fn install(world: &World, key: &str) -> String {
    let back = callback(world, &consent(&start(world, key).await).await).await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    let outcome = query(back.location());
    assert_eq!(outcome["hubsync_status"], "connected", "{outcome:?}");
    outcome["connection_id"].clone()
}
