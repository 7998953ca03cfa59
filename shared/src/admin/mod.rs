//! What the platform team's admin API does, independent of HTTP: tenants and their console API
//! keys, every connection's health across tenants, and redrives for any connection. The
//! console-api function serves it under `/admin`, behind the admin key of the app secret.

pub mod auth;
pub mod catalogue;
pub mod health;
pub mod tenants;
