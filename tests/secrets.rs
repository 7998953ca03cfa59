//! App secrets from Secrets Manager (on moto's server): parsed, validated, cached per cold start.

use hubsync::adapters::SecretsManagerSource;
use hubsync::ports::{SecretSource, SecretsError};

const SECRET: &str = r#"{"client_id":"app-123","client_secret":"cs-first","delivery_signing_secret":"dss","token_encryption_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#;

async fn client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&hubsync_tests::aws_config().await)
}

async fn create_secret(value: &str) -> String {
    let name = hubsync_tests::unique_name("hubsync/app");
    client().await.create_secret().name(&name).secret_string(value).send().await.unwrap();
    name
}

#[tokio::test]
async fn secrets_are_read_once_per_cold_start() {
    let name = create_secret(SECRET).await;
    let source = SecretsManagerSource::new(client().await, &name);
    let first = source.app_secrets().await.unwrap();
    assert_eq!(first.client_id, "app-123");
    assert_eq!(first.client_secret.expose(), "cs-first");

    let rotated = SECRET.replace("cs-first", "cs-second");
    client().await.put_secret_value().secret_id(&name).secret_string(rotated).send().await.unwrap();

    // The running instance keeps what it read; a new cold start reads the new value.
    assert_eq!(source.app_secrets().await.unwrap().client_secret.expose(), "cs-first");
    let cold_start = SecretsManagerSource::new(client().await, &name);
    assert_eq!(cold_start.app_secrets().await.unwrap().client_secret.expose(), "cs-second");
}

#[tokio::test]
async fn a_missing_secret_is_reported_by_name() {
    let source = SecretsManagerSource::new(client().await, "hubsync/does-not-exist");
    let err = source.app_secrets().await.unwrap_err();
    assert!(matches!(err, SecretsError::NotFound(ref name) if name == "hubsync/does-not-exist"), "{err:?}");
}

#[tokio::test]
async fn an_incomplete_secret_names_the_missing_field_and_no_value() {
    let name = create_secret(r#"{"client_id":"app-123","client_secret":"cs-leak-check"}"#).await;
    let err = SecretsManagerSource::new(client().await, &name).app_secrets().await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("`delivery_signing_secret` is missing"), "{message}");
    assert!(!message.contains("cs-leak-check") && !format!("{err:?}").contains("cs-leak-check"));
}
