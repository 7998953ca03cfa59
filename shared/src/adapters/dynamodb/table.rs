//! The table's plumbing: attribute values, items with a JSON `body`, DynamoDB's answers as
//! [`StoreError`]s, and the reads and writes every part of the store builds on.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use super::{ACTIVE_INDEX, DynamoStore, PORTAL_INDEX, TENANT_INDEX};
use crate::domain::{Connection, ConnectionId, ConnectionStatus};
use crate::ports::StoreError;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn conn_pk(id: &ConnectionId) -> String {
    format!("CONN#{id}")
}

/// How long run history is kept.
pub(super) const RUN_RETENTION: Duration = Duration::days(90);

/// DynamoDB's limit per BatchGetItem call.
pub(super) const BATCH_GET_LIMIT: usize = 100;
/// Rounds of retrying what DynamoDB left unprocessed (throttling) before giving up.
pub(super) const UNPROCESSED_ROUNDS: u32 = 8;

pub(super) fn unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(DisplayErrorContext(err).to_string())
}

pub(super) fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// A conditional write's answer: `true` when it was applied, `false` when its condition failed.
pub(super) fn applied<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if condition_failed(&err) => Ok(false),
        Err(err) => Err(unavailable(err)),
    }
}

/// An item with its keys and its value as JSON in `body`.
pub(super) fn item<T: Serialize>(pk: String, sk: &str, value: &T) -> Result<Item, StoreError> {
    let body = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk)), ("body".to_string(), s(body))]))
}

/// A connection's item, at its next revision, with the indexes that find it (by tenant, by
/// portal, and, while active, among the active ones).
pub(super) fn connection_item(connection: &Connection) -> Result<Item, StoreError> {
    let stored = Connection { revision: connection.revision + 1, ..connection.clone() };
    let mut item = item(conn_pk(&connection.id), "CONNECTION", &stored)?;
    item.insert("rev".into(), n(stored.revision));
    item.insert("gsi1pk".into(), s(format!("TENANT#{}", connection.tenant_id)));
    item.insert("gsi1sk".into(), s(format!("CONN#{}", connection.id)));
    item.insert("gsi2pk".into(), s(format!("PORTAL#{}", connection.portal_id)));
    item.insert("gsi2sk".into(), s(format!("CONN#{}", connection.id)));
    if connection.status == ConnectionStatus::Active {
        item.insert("gsi3pk".into(), s("ACTIVE"));
        item.insert("gsi3sk".into(), s(format!("CONN#{}", connection.id)));
    }
    Ok(item)
}

pub(super) fn body<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let json = item.get("body").and_then(|v| v.as_s().ok()).ok_or_else(|| StoreError::Corrupt("no body".into()))?;
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn number(item: &Item, name: &str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("no number `{name}`")))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table as template.yaml declares it. For tests and local stacks only:
    /// in AWS the table belongs to the CloudFormation stack.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let index = |name: &str, pk: &str, sk: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash).expect("complete key"))
                .key_schema(key(sk, KeyType::Range).expect("complete key"))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("complete index")
        };
        let mut request = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).expect("complete key"))
            .key_schema(key("sk", KeyType::Range).expect("complete key"))
            .global_secondary_indexes(index(TENANT_INDEX, "gsi1pk", "gsi1sk"))
            .global_secondary_indexes(index(PORTAL_INDEX, "gsi2pk", "gsi2sk"))
            .global_secondary_indexes(index(ACTIVE_INDEX, "gsi3pk", "gsi3sk"));
        for name in ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk"] {
            request = request.attribute_definitions(attr(name).expect("complete attribute"));
        }
        request.send().await.map_err(unavailable)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().enabled(true).attribute_name("ttl").build().expect("complete ttl"),
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    pub(super) async fn get_body<T: DeserializeOwned>(&self, pk: String, sk: &str) -> Result<Option<T>, StoreError> {
        self.get_item(pk, sk).await?.as_ref().map(body).transpose()
    }

    pub(super) async fn put_item(&self, item: Item) -> Result<(), StoreError> {
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(unavailable)?;
        Ok(())
    }

    /// Reads up to [`BATCH_GET_LIMIT`] items, retrying the keys DynamoDB leaves unprocessed.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut items = Vec::new();
        for round in 0..UNPROCESSED_ROUNDS {
            let out =
                self.client.batch_get_item().request_items(&self.table, pending).send().await.map_err(unavailable)?;
            items.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
            match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                Some(rest) if !rest.keys.is_empty() => pending = rest,
                _ => return Ok(items),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 << round)).await;
        }
        Err(StoreError::Unavailable("DynamoDB left part of a batch read unprocessed".into()))
    }

    pub(super) async fn put_body<T: Serialize>(&self, pk: String, sk: &str, value: &T) -> Result<(), StoreError> {
        self.put_item(item(pk, sk, value)?).await
    }

    pub(super) async fn delete_item(&self, pk: String, sk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// All bodies under one index key whose sort key starts with `prefix`, following pages.
    pub(super) async fn query_index<T: DeserializeOwned>(
        &self,
        index: &str,
        partition: String,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let (pk, sk) = match index {
            TENANT_INDEX => ("gsi1pk", "gsi1sk"),
            PORTAL_INDEX => ("gsi2pk", "gsi2sk"),
            _ => ("gsi3pk", "gsi3sk"),
        };
        let mut values = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression(format!("{pk} = :pk AND begins_with({sk}, :prefix)"))
                .expression_attribute_values(":pk", s(partition.clone()))
                .expression_attribute_values(":prefix", s(prefix))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                values.push(body(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(values);
            }
        }
    }
}
