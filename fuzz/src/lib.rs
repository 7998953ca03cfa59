//! A fuzz input read as a webhook request, and the rules the receiver's verification and
//! parsing must keep for any input. The fuzz target and the security test suite (which replays
//! the seed corpus on stable) both use this file.
//!
//! An input looks like an HTTP request, so seeds are readable and mutations stay meaningful:
//!
//! ```text
//! POST https://sync.example.com/webhooks/hubspot
//! X-HubSpot-Signature-v3: {v3}
//! X-HubSpot-Request-Timestamp: 1767268800000
//!
//! [{"eventId":1,"portalId":1000,...}]
//! ```
//!
//! The first line is the method and the URL HubSpot called; header lines (`name: value`) follow
//! up to an empty line; the rest is the body, as bytes. A header value `{v3}`, `{v1}` or `{v2}`
//! is replaced by that signature of the request, so that mutated bodies still get past the
//! signature to the parser; any other value is sent as it is. The receiver's clock reads
//! [`NOW_MS`].

use hubsync::domain::inbound::{MAX_WEBHOOK_BODY_BYTES, MAX_WEBHOOK_EVENTS};
use hubsync::domain::{Secret, WebhookEvent};
use hubsync::webhooks::signature::{TIMESTAMP_HEADER, v1_signature, v2_signature, v3_signature};
use hubsync::webhooks::{ReceiveError, SignedRequest, verify_and_parse};

/// The app's client secret: what HubSpot signs webhooks with.
pub const CLIENT_SECRET: &str = "fuzz-client-secret";
/// The receiver's clock: 2026-01-01T12:00:00Z.
pub const NOW_MS: i64 = 1_767_268_800_000;

/// An input decoded, its signature placeholders filled in with one secret.
pub struct FuzzRequest {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// A `{v3}` placeholder was filled in.
    pub signed_v3: bool,
    /// A `{v1}` or `{v2}` placeholder was filled in.
    pub signed_legacy: bool,
}

impl FuzzRequest {
    pub fn decode(input: &[u8], signing_secret: &Secret) -> FuzzRequest {
        let (head, body) = match input.windows(2).position(|pair| pair == b"\n\n") {
            Some(at) => (&input[..at], &input[at + 2..]),
            None => (input, &[][..]),
        };
        let mut lines = head.split(|byte| *byte == b'\n');
        let request_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let (method, uri) = request_line.split_once(' ').unwrap_or((&request_line, ""));
        let raw_headers: Vec<(String, &[u8])> = lines
            .filter_map(|line| {
                let colon = line.iter().position(|byte| *byte == b':')?;
                let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
                Some((name, line[colon + 1..].trim_ascii_start()))
            })
            .collect();
        let timestamp = raw_headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(TIMESTAMP_HEADER))
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default();

        let mut request = FuzzRequest {
            method: method.to_string(),
            uri: uri.to_string(),
            headers: Vec::new(),
            body: body.to_vec(),
            signed_v3: false,
            signed_legacy: false,
        };
        for (name, value) in raw_headers {
            let value = match value {
                b"{v3}" => {
                    request.signed_v3 = true;
                    v3_signature(method, uri, body, &timestamp, signing_secret).into_bytes()
                }
                b"{v1}" => {
                    request.signed_legacy = true;
                    v1_signature(body, signing_secret).into_bytes()
                }
                b"{v2}" => {
                    request.signed_legacy = true;
                    v2_signature(method, uri, body, signing_secret).into_bytes()
                }
                other => other.to_vec(),
            };
            request.headers.push((name, value));
        }
        request
    }

    /// The request as the receiver reads it.
    pub fn signed_request(&self) -> SignedRequest<'_> {
        let headers = self.headers.iter().map(|(name, value)| (name.as_str(), value.as_slice()));
        SignedRequest::from_http(&self.method, &self.uri, headers, &self.body)
    }
}

/// What the receiver made of an input: with legacy signatures refused (the default) and accepted.
pub struct Outcome {
    pub strict: Result<Vec<WebhookEvent>, ReceiveError>,
    pub lenient: Result<Vec<WebhookEvent>, ReceiveError>,
}

/// Runs an input through the receiver's verification and parsing; panics if a rule is broken.
pub fn check(input: &[u8]) -> Outcome {
    let secret = Secret::new(CLIENT_SECRET);
    let genuine = FuzzRequest::decode(input, &secret);
    let strict = verify_and_parse(&genuine.signed_request(), &secret, NOW_MS, false);
    let lenient = verify_and_parse(&genuine.signed_request(), &secret, NOW_MS, true);

    // Only a signature made with the secret gets a request in.
    assert!(strict.is_err() || genuine.signed_v3, "accepted without a v3 signature made with the secret");
    assert!(
        lenient.is_err() || genuine.signed_v3 || genuine.signed_legacy,
        "accepted without any signature made with the secret"
    );
    // Accepting legacy signatures too never changes what a v3 signature gets in.
    if let Ok(events) = &strict {
        assert_eq!(lenient.as_ref().ok(), Some(events), "legacy acceptance changed a v3-signed request's outcome");
    }
    for result in [&strict, &lenient] {
        match result {
            Ok(events) => assert!(
                genuine.body.len() <= MAX_WEBHOOK_BODY_BYTES && events.len() <= MAX_WEBHOOK_EVENTS,
                "accepted a request over the limits"
            ),
            // Deciding from the request alone, nothing can be "unavailable".
            Err(err) => assert!(!matches!(err, ReceiveError::Unavailable(_)), "{err}"),
        }
    }

    // The same request signed by anyone without the secret is refused, whatever it says.
    let forged = FuzzRequest::decode(input, &Secret::new("not-the-client-secret"));
    for accept_legacy in [false, true] {
        let result = verify_and_parse(&forged.signed_request(), &secret, NOW_MS, accept_legacy);
        assert!(result.is_err(), "accepted a request signed with another secret");
    }
    Outcome { strict, lenient }
}
