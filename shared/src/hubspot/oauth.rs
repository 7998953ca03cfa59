//! HubSpot OAuth: the authorize URL, the token grants, introspection and revocation.
//! Credentials travel only in form bodies, never in URLs, so no access log ever holds one.

use reqwest::Method;
use serde::Deserialize;

use super::client::{HubSpotClient, Paths};
use super::error::HubSpotError;
use super::lenient;
use crate::domain::{PortalId, Secret};

/// Tokens granted by a code exchange or a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: Secret,
    /// Persist whatever comes back: HubSpot may or may not rotate it.
    pub refresh_token: Secret,
    /// Seconds until the access token expires (30 minutes at HubSpot today; never assume it).
    pub expires_in: u64,
    pub token_type: Option<String>,
    pub hub_id: Option<PortalId>,
    pub user_id: Option<u64>,
    pub scopes: Vec<String>,
}

/// What HubSpot knows about an access token: which portal, who installed, what was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenInfo {
    pub hub_id: PortalId,
    /// The installing user's email.
    pub user: Option<String>,
    pub user_id: Option<u64>,
    pub scopes: Vec<String>,
    pub expires_in: Option<u64>,
    pub app_id: Option<u64>,
    pub client_id: Option<String>,
    pub hub_domain: Option<String>,
    pub token_type: Option<String>,
}

/// The token endpoint's body. Every field is optional here; what a grant must have is checked
/// after parsing, with an error that names the field and not its value.
#[derive(Deserialize)]
struct TokenBody {
    #[serde(default, deserialize_with = "lenient::opt_text")]
    access_token: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    hub_id: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    user_id: Option<u64>,
    #[serde(default, deserialize_with = "lenient::strings")]
    scopes: Vec<String>,
}

/// The introspection body. It also echoes the token (`token`) and a signed copy; neither is read.
#[derive(Deserialize)]
struct IntrospectBody {
    #[serde(default)]
    active: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    hub_id: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    user: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    user_id: Option<u64>,
    #[serde(default, deserialize_with = "lenient::strings")]
    scopes: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    app_id: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    hub_domain: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    token_type: Option<String>,
}

fn missing(operation: &str, field: &str) -> HubSpotError {
    HubSpotError::InvalidResponse { operation: operation.to_string(), reason: format!("no `{field}` in the body") }
}

impl HubSpotClient {
    /// The consent page URL. Scopes are space-separated and encoded as `%20` (HubSpot's
    /// documented form); `optional_scope` is left out when empty.
    pub fn authorize_url(
        &self,
        client_id: &str,
        redirect_uri: &str,
        scopes: &[String],
        optional_scopes: &[String],
        state: &str,
    ) -> String {
        let mut url = self.app_url(&Paths::oauth_authorize());
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("client_id", client_id).append_pair("redirect_uri", redirect_uri);
            query.append_pair("scope", &scopes.join(" "));
            if !optional_scopes.is_empty() {
                query.append_pair("optional_scope", &optional_scopes.join(" "));
            }
            query.append_pair("state", state);
        }
        // Form encoding writes a space as `+` and a literal `+` as `%2B`, so every `+` left is a
        // space; HubSpot documents `%20`.
        let query = url.query().unwrap_or_default().replace('+', "%20");
        url.set_query(Some(&query));
        url.into()
    }

    /// Exchanges an authorization code (single use) for tokens.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &Secret,
        redirect_uri: &str,
        code: &Secret,
    ) -> Result<TokenGrant, HubSpotError> {
        const OP: &str = "exchange an authorization code";
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("redirect_uri", redirect_uri),
            ("code", code.expose()),
        ];
        let body = self.token_call(OP, &form, &[client_secret, code]).await?;
        let refresh_token = body.refresh_token.clone().map(Secret::new).ok_or_else(|| missing(OP, "refresh_token"))?;
        grant(OP, body, refresh_token)
    }

    /// Gets a new access token. If HubSpot returns no refresh token, the one used stays valid
    /// and is handed back.
    pub async fn refresh_token(
        &self,
        client_id: &str,
        client_secret: &Secret,
        refresh_token: &Secret,
    ) -> Result<TokenGrant, HubSpotError> {
        const OP: &str = "refresh an access token";
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("refresh_token", refresh_token.expose()),
        ];
        let body = self.token_call(OP, &form, &[client_secret, refresh_token]).await?;
        let rotated = body.refresh_token.clone().map(Secret::new).unwrap_or_else(|| refresh_token.clone());
        grant(OP, body, rotated)
    }

    /// Asks HubSpot which portal, user and scopes an access token belongs to
    /// (`POST /oauth/{version}/token/introspect`). An inactive token is [`HubSpotError::InactiveToken`].
    pub async fn introspect_access_token(
        &self,
        client_id: &str,
        client_secret: &Secret,
        access_token: &Secret,
    ) -> Result<AccessTokenInfo, HubSpotError> {
        const OP: &str = "introspect an access token";
        let form = [
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("token", access_token.expose()),
            ("token_type_hint", "access_token"),
        ];
        let request = self.request(Method::POST, self.api_url(&self.paths.oauth_introspect())).form(&form);
        let reply = self.execute(OP, request, &[client_secret, access_token]).await?;
        let body: IntrospectBody = reply.json(OP)?;
        if body.active == Some(false) {
            return Err(HubSpotError::InactiveToken);
        }
        Ok(AccessTokenInfo {
            hub_id: body.hub_id.ok_or_else(|| missing(OP, "hub_id"))?,
            user: body.user,
            user_id: body.user_id,
            scopes: body.scopes,
            expires_in: body.expires_in,
            app_id: body.app_id,
            client_id: body.client_id,
            hub_domain: body.hub_domain,
            token_type: body.token_type,
        })
    }

    /// Revokes a refresh token (`POST /oauth/{version}/token/revoke`): it can no longer mint access
    /// tokens. Access tokens already issued live until they expire.
    pub async fn revoke_refresh_token(
        &self,
        client_id: &str,
        client_secret: &Secret,
        refresh_token: &Secret,
    ) -> Result<(), HubSpotError> {
        const OP: &str = "revoke a refresh token";
        let form = [
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("token", refresh_token.expose()),
            ("token_type_hint", "refresh_token"),
        ];
        let request = self.request(Method::POST, self.api_url(&self.paths.oauth_revoke())).form(&form);
        self.execute(OP, request, &[client_secret, refresh_token]).await?;
        Ok(())
    }

    async fn token_call(
        &self,
        operation: &str,
        form: &[(&str, &str)],
        secrets: &[&Secret],
    ) -> Result<TokenBody, HubSpotError> {
        let request = self.request(Method::POST, self.api_url(&self.paths.oauth_token())).form(form);
        self.execute(operation, request, secrets).await?.json(operation)
    }
}

fn grant(operation: &str, body: TokenBody, refresh_token: Secret) -> Result<TokenGrant, HubSpotError> {
    Ok(TokenGrant {
        access_token: body.access_token.map(Secret::new).ok_or_else(|| missing(operation, "access_token"))?,
        refresh_token,
        expires_in: body.expires_in.ok_or_else(|| missing(operation, "expires_in"))?,
        token_type: body.token_type,
        hub_id: body.hub_id,
        user_id: body.user_id,
        scopes: body.scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> HubSpotClient {
        HubSpotClient::new("https://api.hubapi.com", "https://app.hubspot.com").unwrap()
    }

    #[test]
    fn authorize_url_encodes_scopes_with_percent_20() {
        let url = client().authorize_url(
            "abc-123",
            "https://hubsync.example.com/oauth/callback",
            &["crm.objects.contacts.read".into(), "crm.objects.contacts.write".into()],
            &["crm.lists.read".into(), "a+b".into()],
            "st/ate",
        );
        assert_eq!(
            url,
            "https://app.hubspot.com/oauth/authorize?client_id=abc-123\
             &redirect_uri=https%3A%2F%2Fhubsync.example.com%2Foauth%2Fcallback\
             &scope=crm.objects.contacts.read%20crm.objects.contacts.write\
             &optional_scope=crm.lists.read%20a%2Bb&state=st%2Fate"
        );
        let without_optional = client().authorize_url("id", "https://x/cb", &["oauth".into()], &[], "s");
        assert!(!without_optional.contains("optional_scope"));
    }

    #[test]
    fn token_bodies_parse_and_keep_tokens_secret() {
        let body: TokenBody = serde_json::from_str(
            r#"{"token_type":"bearer","refresh_token":"na1-rrrr-rrrr","access_token":"CNaaaaaaaaaaaaaaaa","expires_in":1800,"hub_id":1000,"user_id":7,"scopes":["oauth","crm.objects.contacts.read"],"token_use":"access_token"}"#,
        )
        .unwrap();
        let refresh = Secret::new(body.refresh_token.clone().unwrap());
        let grant = grant("op", body, refresh).unwrap();
        assert_eq!(grant.access_token.expose(), "CNaaaaaaaaaaaaaaaa");
        assert_eq!(grant.expires_in, 1800);
        assert_eq!(grant.hub_id, Some(1000));
        assert_eq!(grant.scopes.len(), 2);
        let shown = format!("{grant:?}");
        assert!(!shown.contains("CNaaaa") && !shown.contains("na1-rrrr"), "{shown}");
    }

    #[test]
    fn a_grant_without_an_access_token_names_the_field() {
        let body: TokenBody = serde_json::from_str(r#"{"expires_in":1800}"#).unwrap();
        let err = grant("op", body, Secret::new("r")).unwrap_err();
        assert!(err.to_string().contains("access_token"));
    }

    #[test]
    fn introspection_body_parses_the_public_access_token_shape() {
        let body: IntrospectBody = serde_json::from_str(
            r#"{"active":true,"app_id":123,"client_id":"abc","expires_in":1700,"hub_id":1000,"hub_domain":"demo.com","is_private_distribution":false,"scopes":["oauth"],"signed_access_token":{"expiresAt":1},"token":"CN-secret","token_type":"bearer","token_use":"access_token","user":"a@b.c","user_id":9}"#,
        )
        .unwrap();
        assert_eq!(body.hub_id, Some(1000));
        assert_eq!(body.user.as_deref(), Some("a@b.c"));
        assert_eq!(body.app_id, Some(123));
    }
}
