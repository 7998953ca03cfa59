//! HubSpot's webhook signatures. v3 (HMAC-SHA256 over method, URI, body and timestamp) is what
//! hubsync requires; v1 and v2 (plain SHA-256 with the secret in front) only when configured,
//! for apps that still send them alone. Every comparison is constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::Secret;

/// How old (or how far ahead) a v3 timestamp may be: HubSpot's own rule is 5 minutes.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// What a webhook request carries that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The full URL HubSpot called, as it called it (scheme, host, path, query).
    pub uri: &'a str,
    pub body: &'a [u8],
    /// `X-HubSpot-Signature-v3` and `X-HubSpot-Request-Timestamp`.
    pub v3: Option<(&'a str, &'a str)>,
    /// `X-HubSpot-Signature` and `X-HubSpot-Signature-Version`.
    pub legacy: Option<(&'a str, &'a str)>,
}

/// The headers a webhook's signature travels in.
pub const V3_SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
pub const LEGACY_SIGNATURE_HEADER: &str = "x-hubspot-signature";
pub const LEGACY_VERSION_HEADER: &str = "x-hubspot-signature-version";

impl<'a> SignedRequest<'a> {
    /// The request as the receiver reads it off the wire: `headers` are every (name, value) pair
    /// it carries, names in any case. A signature header sent more than once counts as absent:
    /// which copy was meant is ambiguous (a proxy may have checked another one), so such a
    /// request is refused as unsigned. Values that are not UTF-8 count as absent too.
    pub fn from_http(
        method: &'a str,
        uri: &'a str,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        body: &'a [u8],
    ) -> SignedRequest<'a> {
        let headers: Vec<(&'a str, &'a [u8])> = headers.into_iter().collect();
        let only_copy = |wanted: &str| {
            let mut copies = headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case(wanted));
            match (copies.next(), copies.next()) {
                (Some(&(_, value)), None) => std::str::from_utf8(value).ok(),
                _ => None,
            }
        };
        let v3 = only_copy(V3_SIGNATURE_HEADER).zip(only_copy(TIMESTAMP_HEADER));
        let legacy = only_copy(LEGACY_SIGNATURE_HEADER).zip(only_copy(LEGACY_VERSION_HEADER));
        SignedRequest { method, uri, body, v3, legacy }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request is not signed: X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required")]
    Missing,
    #[error("X-HubSpot-Request-Timestamp is not a time in milliseconds")]
    BadTimestamp,
    #[error("the request timestamp is more than 5 minutes away from now: refused as a replay")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks the request's signature against the app's client secret. `now_ms` is the receiver's
/// clock; `accept_legacy` allows v1/v2 when there is no v3 signature.
pub fn verify(
    request: &SignedRequest,
    secret: &Secret,
    now_ms: i64,
    accept_legacy: bool,
) -> Result<(), SignatureError> {
    if let Some((signature, timestamp)) = request.v3 {
        let timestamp_ms: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
        // `abs_diff`: a timestamp near i64's limits must be refused, not overflow the subtraction.
        if now_ms.abs_diff(timestamp_ms) > MAX_CLOCK_SKEW_MS.unsigned_abs() {
            return Err(SignatureError::Stale);
        }
        let provided = BASE64.decode(signature.trim()).map_err(|_| SignatureError::Mismatch)?;
        // `verify_slice` compares in constant time.
        return v3_mac(request.method, request.uri, request.body, timestamp.trim(), secret)
            .verify_slice(&provided)
            .map_err(|_| SignatureError::Mismatch);
    }
    match request.legacy {
        Some((signature, version)) if accept_legacy => {
            let expected = match version.trim() {
                "v1" => v1_signature(request.body, secret),
                "v2" => v2_signature(request.method, request.uri, request.body, secret),
                _ => return Err(SignatureError::Missing),
            };
            let provided = signature.trim().to_ascii_lowercase();
            if bool::from(expected.as_bytes().ct_eq(provided.as_bytes())) {
                Ok(())
            } else {
                Err(SignatureError::Mismatch)
            }
        }
        _ => Err(SignatureError::Missing),
    }
}

fn v3_mac(method: &str, uri: &str, body: &[u8], timestamp: &str, secret: &Secret) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(method.as_bytes());
    mac.update(decode_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac
}

/// The v3 signature (base64), as HubSpot computes it; also what the simulator and tests sign with.
pub fn v3_signature(method: &str, uri: &str, body: &[u8], timestamp: &str, secret: &Secret) -> String {
    BASE64.encode(v3_mac(method, uri, body, timestamp, secret).finalize().into_bytes())
}

/// v1: hex SHA-256 of the secret followed by the body.
pub fn v1_signature(body: &[u8], secret: &Secret) -> String {
    let mut hash = Sha256::new();
    hash.update(secret.expose().as_bytes());
    hash.update(body);
    hex(&hash.finalize())
}

/// v2: hex SHA-256 of the secret, method, URI and body.
pub fn v2_signature(method: &str, uri: &str, body: &[u8], secret: &Secret) -> String {
    let mut hash = Sha256::new();
    hash.update(secret.expose().as_bytes());
    hash.update(method.as_bytes());
    hash.update(uri.as_bytes());
    hash.update(body);
    hex(&hash.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HubSpot signs v3 over the URI with these escapes decoded (and no others).
fn decode_uri(uri: &str) -> String {
    const DECODED: [(&str, char); 12] = [
        ("3A", ':'),
        ("2F", '/'),
        ("3F", '?'),
        ("40", '@'),
        ("21", '!'),
        ("24", '$'),
        ("27", '\''),
        ("28", '('),
        ("29", ')'),
        ("2A", '*'),
        ("2C", ','),
        ("3B", ';'),
    ];
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at + 1..at + 3).map(str::to_ascii_uppercase);
        match escape.and_then(|e| DECODED.iter().find(|(code, _)| *code == e)) {
            Some((_, decoded)) => {
                out.push(*decoded);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Body A's v1 signature is a vector of HubSpot's client libraries' tests (hubspot-api-nodejs
    // test/unit/signature.spec.ts, hubspot-api-php tests/Unit/Utils/SignatureTest.php); the v3
    // fixed-timestamp one is hubspot-api-python's (tests/spec/utils/test_signature.py); the rest
    // were computed with Python's hashlib and hmac.
    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const BODY_A: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    const URI: &str = "https://www.example.com/webhook_uri";

    fn secret() -> Secret {
        Secret::new(SECRET)
    }

    fn v3_request<'a>(uri: &'a str, body: &'a str, signature: &'a str, timestamp: &'a str) -> SignedRequest<'a> {
        SignedRequest { method: "POST", uri, body: body.as_bytes(), v3: Some((signature, timestamp)), legacy: None }
    }

    #[test]
    fn hubspots_test_vectors_match() {
        assert_eq!(
            v1_signature(BODY_A.as_bytes(), &secret()),
            "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
        );
        assert_eq!(
            v2_signature("GET", URI, b"", &secret()),
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        );
        assert_eq!(
            v2_signature("POST", URI, br#"{"example_field":"example_value"}"#, &secret()),
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
        );
        assert_eq!(
            v3_signature("POST", URI, b"{'example_field':'example_value'}", "1693657560000", &secret()),
            "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
        );
        assert_eq!(
            v3_signature("POST", URI, BODY_A.as_bytes(), "1564113600000", &secret()),
            "DxmVAjFNa2xfF3YgQjdZP6TNcok9k1oaH7UXombPtvw="
        );
        let encoded = "https://www.example.com/webhook_uri?state=a%3Ab%2Fc%40d";
        assert_eq!(
            v3_signature("POST", encoded, BODY_A.as_bytes(), "1564113600000", &secret()),
            "SxDrrshlpS3fGP4HsgcX41Swk2X2bbc0mxb8lZ1NgQY="
        );
    }

    #[test]
    fn a_fresh_v3_signature_is_accepted_and_anything_altered_is_refused() {
        let now = 1_564_113_600_000;
        let good = "DxmVAjFNa2xfF3YgQjdZP6TNcok9k1oaH7UXombPtvw=";
        assert_eq!(verify(&v3_request(URI, BODY_A, good, "1564113600000"), &secret(), now, false), Ok(()));
        let tampered = BODY_A.replace("123", "124");
        let cases = [
            (v3_request(URI, &tampered, good, "1564113600000"), SignatureError::Mismatch),
            (v3_request("https://www.example.com/other", BODY_A, good, "1564113600000"), SignatureError::Mismatch),
            (v3_request(URI, BODY_A, good, "1564113600001"), SignatureError::Mismatch),
            (v3_request(URI, BODY_A, "not base64!", "1564113600000"), SignatureError::Mismatch),
            (v3_request(URI, BODY_A, good, "yesterday"), SignatureError::BadTimestamp),
        ];
        for (request, error) in cases {
            assert_eq!(verify(&request, &secret(), now, false), Err(error));
        }
        assert_eq!(
            verify(&v3_request(URI, BODY_A, good, "1564113600000"), &Secret::new("other"), now, false),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_are_refused_either_way() {
        let signed = 1_564_113_600_000_i64;
        let good = "DxmVAjFNa2xfF3YgQjdZP6TNcok9k1oaH7UXombPtvw=";
        let request = v3_request(URI, BODY_A, good, "1564113600000");
        assert_eq!(verify(&request, &secret(), signed + MAX_CLOCK_SKEW_MS, false), Ok(()));
        assert_eq!(verify(&request, &secret(), signed + MAX_CLOCK_SKEW_MS + 1, false), Err(SignatureError::Stale));
        assert_eq!(verify(&request, &secret(), signed - MAX_CLOCK_SKEW_MS - 1, false), Err(SignatureError::Stale));
    }

    #[test]
    fn timestamps_at_the_limits_of_i64_are_refused_without_overflowing() {
        let good = "DxmVAjFNa2xfF3YgQjdZP6TNcok9k1oaH7UXombPtvw=";
        let signed = 1_564_113_600_000;
        // (timestamp, receiver's clock): each difference overflows an i64, or its absolute value does.
        let far_apart = [(i64::MIN, signed), (i64::MIN, 0), (signed, i64::MIN), (i64::MAX, -1), (i64::MIN, i64::MAX)];
        for (timestamp, now) in far_apart {
            let timestamp = timestamp.to_string();
            let request = v3_request(URI, BODY_A, good, &timestamp);
            assert_eq!(verify(&request, &secret(), now, false), Err(SignatureError::Stale), "{timestamp} at {now}");
        }
    }

    #[test]
    fn signature_headers_are_read_in_any_case_and_only_when_sent_once() {
        let good = "DxmVAjFNa2xfF3YgQjdZP6TNcok9k1oaH7UXombPtvw=";
        let read = |headers: &[(&'static str, &'static str)]| {
            let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
            SignedRequest::from_http("POST", URI, pairs, BODY_A.as_bytes()).v3
        };
        let signed = [("X-HubSpot-Signature-V3", good), ("x-hubspot-request-timestamp", "1564113600000")];
        assert_eq!(read(&signed), Some((good, "1564113600000")));
        let twice = [signed[0], signed[1], ("x-hubspot-signature-v3", good)];
        assert_eq!(read(&twice), None, "a signature sent twice is ambiguous");
        assert_eq!(read(&signed[..1]), None, "no timestamp, no v3 signature");

        let not_utf8 = [(V3_SIGNATURE_HEADER, &[0xff_u8, 0xfe][..]), (TIMESTAMP_HEADER, b"1564113600000")];
        assert_eq!(SignedRequest::from_http("POST", URI, not_utf8, b"").v3, None);
    }

    #[test]
    fn legacy_signatures_count_only_when_configured() {
        let v1 = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de";
        let request =
            SignedRequest { method: "POST", uri: URI, body: BODY_A.as_bytes(), v3: None, legacy: Some((v1, "v1")) };
        assert_eq!(verify(&request, &secret(), 0, false), Err(SignatureError::Missing));
        assert_eq!(verify(&request, &secret(), 0, true), Ok(()));
        let forged = SignedRequest { legacy: Some((&v1[..63], "v1")), ..request };
        assert_eq!(verify(&forged, &secret(), 0, true), Err(SignatureError::Mismatch));
        let unsigned = SignedRequest { legacy: None, ..request };
        assert_eq!(verify(&unsigned, &secret(), 0, true), Err(SignatureError::Missing));
    }
}
