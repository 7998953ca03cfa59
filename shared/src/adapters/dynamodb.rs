//! The store on one DynamoDB table.
//!
//! Every item has `pk` and `sk`; most keep their domain value as JSON in `body`, and copy out
//! only the attributes that conditions and indexes need. Layout:
//!
//! | item            | pk                              | sk                       | extra attributes          |
//! |-----------------|---------------------------------|--------------------------|---------------------------|
//! | tenant          | `TENANT#<tenant>`               | `TENANT`                 |                           |
//! | connection      | `CONN#<conn>`                   | `CONNECTION`             | gsi1 (tenant), gsi2 (portal), gsi3 (active) |
//! | config          | `CONN#<conn>`                   | `CONFIG`                 | `version`                 |
//! | tokens          | `CONN#<conn>`                   | `TOKENS`                 |                           |
//! | refresh lease   | `CONN#<conn>`                   | `REFRESH_LEASE`          | `holder`, `expires_at_ms` |
//! | schema          | `CONN#<conn>`                   | `SCHEMA#<object>`        |                           |
//! | cursor          | `CONN#<conn>`                   | `CURSOR#<object>#<flow>` | `ts`, `oid`               |
//! | run             | `CONN#<conn>`                   | `RUN#<run id>`           | `ttl` (90 days)           |
//! | record state    | `RECORD#<conn>#<object>#<key>`  | `STATE`                  | (own partition: hot rows spread) |
//! | OAuth state     | `OAUTH#<state>`                 | `OAUTH`                  | `ttl`                     |
//! | de-dup key      | `DEDUP#<key>`                   | `DEDUP`                  | `expires_at_ms`, `ttl`    |
//! | API key         | `APIKEY#<sha256>`               | `APIKEY`                 | gsi1 (tenant)             |
//! | rate budget     | `RATE#<key>`                    | `RATE`                   | `next_ms`, `ttl`          |
//!
//! `ttl` (epoch seconds) lets DynamoDB delete expired items; since that deletion is lazy, every
//! expiry check is also made here, against the caller's clock.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, PutRequest, ReturnValue, ScalarAttributeType,
    TimeToLiveSpecification, WriteRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use crate::domain::{
    ApiKeyRecord, Connection, ConnectionConfig, ConnectionId, ConnectionStatus, DedupKey, OAuthState, ObjectType,
    PortalId, PropertySchema, RecordSyncState, SyncCursor, SyncFlow, SyncRun, Tenant, TenantId, TokenRecord,
    VersionedConfig,
};
use crate::ports::{Store, StoreError};

type Item = HashMap<String, AttributeValue>;

pub const TENANT_INDEX: &str = "gsi1";
pub const PORTAL_INDEX: &str = "gsi2";
/// Sparse: only active connections have `gsi3pk`, so the scheduled pulls list just those.
pub const ACTIVE_INDEX: &str = "gsi3";

pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn conn_pk(id: &ConnectionId) -> String {
    format!("CONN#{id}")
}

fn record_pk(id: &ConnectionId, object: ObjectType, record_key: &str) -> String {
    format!("RECORD#{id}#{object}#{record_key}")
}

fn record_key(id: &ConnectionId, object: ObjectType, record_key: &str) -> Item {
    HashMap::from([("pk".to_string(), s(record_pk(id, object, record_key))), ("sk".to_string(), s("STATE"))])
}

/// How long run history is kept.
const RUN_RETENTION: Duration = Duration::days(90);

/// DynamoDB's limits per BatchGetItem and BatchWriteItem call.
const BATCH_GET_LIMIT: usize = 100;
const BATCH_WRITE_LIMIT: usize = 25;
/// Rounds of retrying what DynamoDB left unprocessed (throttling) before giving up.
const UNPROCESSED_ROUNDS: u32 = 8;

fn unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(DisplayErrorContext(err).to_string())
}

fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// An item with its keys and its value as JSON in `body`.
fn item<T: Serialize>(pk: String, sk: &str, value: &T) -> Result<Item, StoreError> {
    let body = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk)), ("body".to_string(), s(body))]))
}

fn body<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let json = item.get("body").and_then(|v| v.as_s().ok()).ok_or_else(|| StoreError::Corrupt("no body".into()))?;
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn number(item: &Item, name: &str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("no number `{name}`")))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore { client, table: table.into() }
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

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
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

    async fn get_body<T: DeserializeOwned>(&self, pk: String, sk: &str) -> Result<Option<T>, StoreError> {
        self.get_item(pk, sk).await?.as_ref().map(body).transpose()
    }

    async fn put_item(&self, item: Item) -> Result<(), StoreError> {
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(unavailable)?;
        Ok(())
    }

    /// Reads up to [`BATCH_GET_LIMIT`] items, retrying the keys DynamoDB leaves unprocessed.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
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

    /// Writes items in batches of [`BATCH_WRITE_LIMIT`], retrying what DynamoDB leaves unprocessed.
    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        for chunk in items.chunks(BATCH_WRITE_LIMIT) {
            let mut pending = chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder().set_item(Some(item.clone())).build();
                    put.map(|put| WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut round = 0;
            while !pending.is_empty() {
                if round == UNPROCESSED_ROUNDS {
                    return Err(StoreError::Unavailable("DynamoDB left part of a batch write unprocessed".into()));
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(unavailable)?;
                pending = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
                if !pending.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << round)).await;
                }
                round += 1;
            }
        }
        Ok(())
    }

    async fn put_body<T: Serialize>(&self, pk: String, sk: &str, value: &T) -> Result<(), StoreError> {
        self.put_item(item(pk, sk, value)?).await
    }

    async fn delete_item(&self, pk: String, sk: &str) -> Result<(), StoreError> {
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
    async fn query_index<T: DeserializeOwned>(
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

#[async_trait]
impl Store for DynamoStore {
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        self.put_body(format!("TENANT#{}", tenant.id), "TENANT", tenant).await
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        self.get_body(format!("TENANT#{id}"), "TENANT").await
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut item = item(conn_pk(&connection.id), "CONNECTION", connection)?;
        item.insert("gsi1pk".into(), s(format!("TENANT#{}", connection.tenant_id)));
        item.insert("gsi1sk".into(), s(format!("CONN#{}", connection.id)));
        item.insert("gsi2pk".into(), s(format!("PORTAL#{}", connection.portal_id)));
        item.insert("gsi2sk".into(), s(format!("CONN#{}", connection.id)));
        if connection.status == ConnectionStatus::Active {
            item.insert("gsi3pk".into(), s("ACTIVE"));
            item.insert("gsi3sk".into(), s(format!("CONN#{}", connection.id)));
        }
        self.put_item(item).await
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.get_body(conn_pk(id), "CONNECTION").await
    }

    async fn list_connections(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        self.query_index(TENANT_INDEX, format!("TENANT#{tenant}"), "CONN#").await
    }

    async fn connections_for_portal(&self, portal: PortalId) -> Result<Vec<Connection>, StoreError> {
        self.query_index(PORTAL_INDEX, format!("PORTAL#{portal}"), "CONN#").await
    }

    async fn active_connections(&self) -> Result<Vec<Connection>, StoreError> {
        self.query_index(ACTIVE_INDEX, "ACTIVE".into(), "CONN#").await
    }

    async fn get_config(&self, id: &ConnectionId) -> Result<Option<VersionedConfig>, StoreError> {
        let Some(item) = self.get_item(conn_pk(id), "CONFIG").await? else { return Ok(None) };
        Ok(Some(VersionedConfig { version: number(&item, "version")? as u64, config: body(&item)? }))
    }

    async fn put_config(
        &self,
        id: &ConnectionId,
        config: &ConnectionConfig,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let version = expected_version + 1;
        let mut item = item(conn_pk(id), "CONFIG", config)?;
        item.insert("version".into(), n(version));
        let mut request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        request = if expected_version == 0 {
            request.condition_expression("attribute_not_exists(pk)")
        } else {
            request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(expected_version))
        };
        match request.send().await {
            Ok(_) => Ok(version),
            Err(err) if condition_failed(&err) => {
                let actual = self.get_config(id).await?.map_or(0, |c| c.version);
                Err(StoreError::VersionConflict { expected: expected_version, actual })
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn put_tokens(&self, tokens: &TokenRecord) -> Result<(), StoreError> {
        self.put_body(conn_pk(&tokens.connection_id), "TOKENS", tokens).await
    }

    async fn get_tokens(&self, id: &ConnectionId) -> Result<Option<TokenRecord>, StoreError> {
        self.get_body(conn_pk(id), "TOKENS").await
    }

    async fn delete_tokens(&self, id: &ConnectionId) -> Result<(), StoreError> {
        self.delete_item(conn_pk(id), "TOKENS").await
    }

    async fn acquire_refresh_lease(
        &self,
        id: &ConnectionId,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let expires_at = now + ttl;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(conn_pk(id)))
            .item("sk", s("REFRESH_LEASE"))
            .item("holder", s(holder))
            .item("expires_at_ms", n(millis(expires_at)))
            .item("ttl", n(expires_at.unix_timestamp() + 60))
            .condition_expression("attribute_not_exists(pk) OR holder = :holder OR expires_at_ms <= :now")
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":now", n(millis(now)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn release_refresh_lease(&self, id: &ConnectionId, holder: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(conn_pk(id)))
            .key("sk", s("REFRESH_LEASE"))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Ok(()),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn put_schema(&self, schema: &PropertySchema) -> Result<(), StoreError> {
        self.put_body(conn_pk(&schema.connection_id), &format!("SCHEMA#{}", schema.object_type), schema).await
    }

    async fn get_schema(&self, id: &ConnectionId, object: ObjectType) -> Result<Option<PropertySchema>, StoreError> {
        self.get_body(conn_pk(id), &format!("SCHEMA#{object}")).await
    }

    async fn get_cursor(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        flow: SyncFlow,
    ) -> Result<Option<SyncCursor>, StoreError> {
        self.get_body(conn_pk(id), &format!("CURSOR#{object}#{}", flow.as_str())).await
    }

    async fn advance_cursor(&self, cursor: &SyncCursor) -> Result<(), StoreError> {
        let sk = format!("CURSOR#{}#{}", cursor.object_type, cursor.flow.as_str());
        let mut item = item(conn_pk(&cursor.connection_id), &sk, cursor)?;
        item.insert("ts".into(), n(cursor.position.modified_at_ms));
        item.insert("oid".into(), n(cursor.position.object_id));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR ts < :ts OR (ts = :ts AND oid <= :oid)")
            .expression_attribute_values(":ts", n(cursor.position.modified_at_ms))
            .expression_attribute_values(":oid", n(cursor.position.object_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Err(StoreError::CursorBehind),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn get_record_states(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        record_keys: &[String],
    ) -> Result<HashMap<String, RecordSyncState>, StoreError> {
        let mut unique: Vec<&String> = record_keys.iter().collect();
        unique.sort();
        unique.dedup();
        let mut found = HashMap::new();
        for chunk in unique.chunks(BATCH_GET_LIMIT) {
            let keys = chunk.iter().map(|key| record_key(id, object, key)).collect();
            for item in self.batch_get(keys).await? {
                let state: RecordSyncState = body(&item)?;
                found.insert(state.record_key.clone(), state);
            }
        }
        Ok(found)
    }

    async fn put_record_states(&self, states: &[RecordSyncState]) -> Result<(), StoreError> {
        let items = states
            .iter()
            .map(|state| item(record_pk(&state.connection_id, state.object_type, &state.record_key), "STATE", state))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_put(items).await
    }

    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let mut item = item(conn_pk(&run.connection_id), &format!("RUN#{}", run.run_id), run)?;
        item.insert("ttl".into(), n((run.started_at + RUN_RETENTION).unix_timestamp()));
        self.put_item(item).await
    }

    async fn get_run(&self, id: &ConnectionId, run_id: &str) -> Result<Option<SyncRun>, StoreError> {
        self.get_body(conn_pk(id), &format!("RUN#{run_id}")).await
    }

    async fn list_runs(&self, id: &ConnectionId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(conn_pk(id)))
            .expression_attribute_values(":prefix", s("RUN#"))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(unavailable)?;
        let mut runs: Vec<SyncRun> = out.items().iter().map(body).collect::<Result<_, _>>()?;
        runs.truncate(limit);
        Ok(runs)
    }

    async fn put_oauth_state(&self, state: &OAuthState) -> Result<(), StoreError> {
        let mut item = item(format!("OAUTH#{}", state.state), "OAUTH", state)?;
        item.insert("ttl".into(), n(state.expires_at.unix_timestamp()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Err(StoreError::AlreadyExists("OAuth state".into())),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn take_oauth_state(&self, state: &str, now: OffsetDateTime) -> Result<OAuthState, StoreError> {
        // Delete-and-return in one conditional call: of two concurrent callers, one gets it.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("OAUTH#{state}")))
            .key("sk", s("OAUTH"))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(out) => out.attributes.ok_or_else(|| StoreError::NotFound("OAuth state".into()))?,
            Err(err) if condition_failed(&err) => return Err(StoreError::NotFound("OAuth state".into())),
            Err(err) => return Err(unavailable(err)),
        };
        let taken: OAuthState = body(&old)?;
        if taken.is_expired(now) {
            return Err(StoreError::Expired);
        }
        Ok(taken)
    }

    async fn claim_dedup_key(&self, key: &DedupKey, now: OffsetDateTime) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("DEDUP#{}", key.key)))
            .item("sk", s("DEDUP"))
            .item("expires_at_ms", n(millis(key.expires_at)))
            .item("ttl", n(key.expires_at.unix_timestamp()))
            .condition_expression("attribute_not_exists(pk) OR expires_at_ms <= :now")
            .expression_attribute_values(":now", n(millis(now)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn release_dedup_key(&self, key: &str) -> Result<(), StoreError> {
        self.delete_item(format!("DEDUP#{key}"), "DEDUP").await
    }

    async fn reserve_rate_slot(
        &self,
        key: &str,
        now: OffsetDateTime,
        interval: Duration,
    ) -> Result<OffsetDateTime, StoreError> {
        let (now_ms, step) = (millis(now), interval.whole_milliseconds() as i64);
        // Usually one call: while the budget is busy, take the slot after the last one handed out.
        // When it is idle (or new), start from now. A lost race on either just tries again.
        for _ in 0..20 {
            let busy = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("RATE#{key}")))
                .key("sk", s("RATE"))
                .update_expression("SET next_ms = next_ms + :step")
                .condition_expression("next_ms >= :now")
                .expression_attribute_values(":step", n(step))
                .expression_attribute_values(":now", n(now_ms))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match busy {
                Ok(out) => {
                    let next =
                        out.attributes.as_ref().map(|a| number(a, "next_ms")).transpose()?.unwrap_or(now_ms + step);
                    return OffsetDateTime::from_unix_timestamp_nanos(i128::from(next - step) * 1_000_000)
                        .map_err(|e| StoreError::Corrupt(e.to_string()));
                }
                Err(err) if condition_failed(&err) => {}
                Err(err) => return Err(unavailable(err)),
            }
            let idle = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("RATE#{key}")))
                .key("sk", s("RATE"))
                .update_expression("SET next_ms = :next, #ttl = :ttl")
                .condition_expression("attribute_not_exists(next_ms) OR next_ms < :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":next", n(now_ms + step))
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":ttl", n(now.unix_timestamp() + 86_400))
                .send()
                .await;
            match idle {
                Ok(_) => return Ok(now),
                Err(err) if condition_failed(&err) => {}
                Err(err) => return Err(unavailable(err)),
            }
        }
        Err(StoreError::Unavailable(format!("rate budget `{key}` is too contended")))
    }

    async fn hold_rate_budget(&self, key: &str, until: OffsetDateTime) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RATE#{key}")))
            .key("sk", s("RATE"))
            .update_expression("SET next_ms = :until, #ttl = :ttl")
            .condition_expression("attribute_not_exists(next_ms) OR next_ms < :until")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":until", n(millis(until)))
            .expression_attribute_values(":ttl", n(until.unix_timestamp() + 86_400))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Ok(()), // already held at least that long
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut item = item(format!("APIKEY#{}", key.key_hash), "APIKEY", key)?;
        item.insert("gsi1pk".into(), s(format!("TENANT#{}", key.tenant_id)));
        item.insert("gsi1sk".into(), s(format!("APIKEY#{}", key.key_id)));
        self.put_item(item).await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.get_body(format!("APIKEY#{key_hash}"), "APIKEY").await
    }
}
