//! Where deliveries may go. The ingest URL comes from a tenant's config, so without limits a
//! tenant could make hubsync call anything its Lambdas can reach: the Lambda Runtime API on
//! 127.0.0.1:9001, the instance metadata service on 169.254.169.254, the VPC's private hosts. So:
//!
//! - the URL must be https, on an origin the deployment allows (`AllowedIngestOrigins`);
//! - its host must not be, or resolve to, a loopback, private, link-local or otherwise
//!   non-public address, checked on the addresses actually connected to (after DNS resolution);
//! - redirects are not followed (a redirect could lead anywhere).
//!
//! The local runner (and the tests on one machine) allow plain http and local addresses.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::http::Url;
use crate::settings::Settings;

/// What the deployment allows deliveries to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestPolicy {
    /// Origins (`https://platform.example.com`) an ingest URL may be on.
    pub allowed_origins: Vec<String>,
    /// Plain http, and loopback and private addresses: the local runner only.
    pub allow_local: bool,
}

impl IngestPolicy {
    pub fn from_settings(settings: &Settings) -> IngestPolicy {
        IngestPolicy {
            allowed_origins: settings.allowed_ingest_origins.clone(),
            allow_local: settings.allow_local_ingest,
        }
    }

    /// The URL, or why hubsync will not call it and what to do.
    pub fn check(&self, url: &str) -> Result<Url, String> {
        let parsed = Url::parse(url).map_err(|_| format!("`{url}` is not a URL"))?;
        let scheme_allowed = parsed.scheme() == "https" || (self.allow_local && parsed.scheme() == "http");
        if !scheme_allowed {
            return Err(format!("`{url}` is not an https URL: give the platform's ingest endpoint as https://…"));
        }
        let origin = parsed.origin().ascii_serialization();
        let listed = self.allowed_origins.iter().any(|o| o.trim_end_matches('/') == origin);
        // The local runner lists no origins: anything on this machine will do.
        let origin_allowed = listed || (self.allow_local && self.allowed_origins.is_empty());
        if !origin_allowed {
            return Err(format!(
                "`{origin}` is not among the deployment's allowed ingest origins: add it to the stack's \
                 AllowedIngestOrigins parameter"
            ));
        }
        // An address in the URL is connected to as it is, without DNS: checked here.
        let host = parsed.host_str().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        if let Some(ip) = literal
            && !self.allow_local
            && !is_public(ip)
        {
            return Err(format!("`{url}` is a local or private address, which hubsync does not call"));
        }
        Ok(parsed)
    }
}

/// Whether an address is on the public internet: not loopback, private (RFC 1918, unique local),
/// link-local (which holds the instance metadata service), shared (carrier NAT), unspecified,
/// broadcast, multicast or documentation space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// A host that resolved only to addresses hubsync does not call.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` resolves only to local or private addresses, which hubsync does not call")]
pub struct PrivateDestination(pub String);

/// DNS for deliveries: the system's answers, less every address that is not public, so a name
/// pointing (or re-pointed) at a private address is never connected to.
pub struct PublicResolver;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = resolved.filter(|address| is_public(address.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(PrivateDestination(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> IngestPolicy {
        IngestPolicy { allowed_origins: vec!["https://platform.example.com".into()], allow_local: false }
    }

    #[test]
    fn only_https_on_an_allowed_origin_passes() {
        assert!(production().check("https://platform.example.com/hubsync/ingest").is_ok());
        let err = production().check("http://platform.example.com/ingest").unwrap_err();
        assert!(err.contains("not an https URL"), "{err}");
        let err = production().check("https://evil.example.com/ingest").unwrap_err();
        assert!(err.contains("AllowedIngestOrigins"), "{err}");
        let err = production().check("https://platform.example.com:8443/ingest").unwrap_err();
        assert!(err.contains("AllowedIngestOrigins"), "another port is another origin: {err}");
    }

    #[test]
    fn the_lambda_runtime_api_and_metadata_addresses_are_refused() {
        let policy = IngestPolicy {
            allowed_origins: vec!["http://127.0.0.1:9001".into(), "https://169.254.169.254".into()],
            allow_local: false,
        };
        assert!(policy.check("http://127.0.0.1:9001/2018-06-01/runtime/invocation/next").is_err());
        let err = policy.check("https://169.254.169.254/latest/meta-data/").unwrap_err();
        assert!(err.contains("local or private address"), "{err}");
    }

    #[test]
    fn addresses_are_told_apart() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn the_local_runner_may_deliver_to_this_machine() {
        let local = IngestPolicy { allowed_origins: vec![], allow_local: true };
        assert!(local.check("http://127.0.0.1:8080/local/platform/ingest").is_ok());
    }
}
