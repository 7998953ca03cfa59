//! The store on one DynamoDB table.
//!
//! Every item has `pk` and `sk`; most keep their domain value as JSON in `body`, and copy out
//! only the attributes that conditions and indexes need. Layout:
//!
//! | item            | pk                              | sk                       | extra attributes          |
//! |-----------------|---------------------------------|--------------------------|---------------------------|
//! | tenant          | `TENANT#<tenant>`               | `TENANT`                 | gsi1 (`TENANTS`: all of them) |
//! | connection      | `CONN#<conn>`                   | `CONNECTION`             | gsi1 (tenant), gsi2 (portal), gsi3 (active), `rev` |
//! | config          | `CONN#<conn>`                   | `CONFIG`                 | `version`                 |
//! | tokens          | `CONN#<conn>`                   | `TOKENS`                 |                           |
//! | refresh lease   | `CONN#<conn>`                   | `REFRESH_LEASE`          | `holder`, `expires_at_ms` |
//! | schema          | `CONN#<conn>`                   | `SCHEMA#<object>`        |                           |
//! | cursor          | `CONN#<conn>`                   | `CURSOR#<object>#<flow>` | `ts`, `oid`               |
//! | run             | `CONN#<conn>`                   | `RUN#<run id>`           | `ttl` (90 days), `rev`    |
//! | record state    | `RECORD#<conn>#<object>#<key>`  | `STATE`                  | own partition (hot rows spread); parts in their own attributes ([`records`]) |
//! | running pull    | `CONN#<conn>`                   | `PULL#<object>#<flow>`   | `run_id`, `started_ms`    |
//! | OAuth state     | `OAUTH#<state>`                 | `OAUTH`                  | `ttl`                     |
//! | de-dup key      | `DEDUP#<key>`                   | `DEDUP`                  | `expires_at_ms`, `ttl`    |
//! | API key         | `APIKEY#<sha256>`               | `APIKEY`                 | gsi1 (tenant)             |
//! | rate budget     | `RATE#<key>`                    | `RATE`                   | `next_ms`, `ttl`          |
//! | field catalogue | `CATALOGUE#<tenant>` (`#*`: the deployment's) | `CATALOGUE` |                   |
//!
//! `ttl` (epoch seconds) lets DynamoDB delete expired items; since that deletion is lazy, every
//! expiry check is also made here, against the caller's clock.

mod records;
mod table;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;
use time::{Duration, OffsetDateTime};

use self::table::{
    RUN_RETENTION, applied, body, condition_failed, conn_pk, connection_item, item, millis, n, number, s, unavailable,
};
use crate::domain::{
    ApiKeyRecord, Connection, ConnectionConfig, ConnectionId, DedupKey, FieldCatalogue, InboundState, OAuthState,
    ObjectType, PortalId, PropertySchema, RecordKey, RecordSyncState, SyncCursor, SyncFlow, SyncRun, Tenant, TenantId,
    TokenRecord, VersionedConfig,
};
use crate::ports::{Claimed, OutboundSave, Store, StoreError};

pub const TENANT_INDEX: &str = "gsi1";
/// The tenant index's partition that lists every tenant.
const ALL_TENANTS: &str = "TENANTS";
pub const PORTAL_INDEX: &str = "gsi2";
/// Sparse: only active connections have `gsi3pk`, so the scheduled pulls list just those.
pub const ACTIVE_INDEX: &str = "gsi3";

pub struct DynamoStore {
    client: Client,
    table: String,
}

#[async_trait]
impl Store for DynamoStore {
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        self.put_item(tenant_item(tenant)?).await
    }

    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(tenant_item(tenant)?))
            .condition_expression("attribute_not_exists(pk)");
        applied(request.send().await)
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        self.get_body(format!("TENANT#{id}"), "TENANT").await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.query_index(TENANT_INDEX, ALL_TENANTS.into(), "TENANT#").await
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.put_item(connection_item(connection)?).await
    }

    async fn update_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut request = self.client.put_item().table_name(&self.table).set_item(Some(connection_item(connection)?));
        request = if connection.revision == 0 {
            request.condition_expression("attribute_not_exists(rev)")
        } else {
            request
                .condition_expression("rev = :expected")
                .expression_attribute_values(":expected", n(connection.revision))
        };
        match applied(request.send().await)? {
            true => Ok(()),
            false => Err(StoreError::RevisionConflict),
        }
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
        applied(result)
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
        // Refused by its condition is fine too: not ours, or already so.
        applied(result).map(|_| ())
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
        self.read_record_states(id, object, record_keys).await
    }

    async fn claim_records(
        &self,
        keys: &[RecordKey],
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_each(keys, holder, now, until).await
    }

    async fn save_outbound(
        &self,
        saves: &[OutboundSave],
        holder: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        self.save_outbound_parts(saves, holder, now).await
    }

    async fn release_records(&self, keys: &[RecordKey], holder: &str) -> Result<(), StoreError> {
        self.release_each(keys, holder).await
    }

    async fn save_inbound(&self, saves: &[(RecordKey, InboundState)]) -> Result<Vec<bool>, StoreError> {
        self.save_inbound_parts(saves).await
    }

    async fn begin_pull(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        flow: SyncFlow,
        run_id: &str,
        now: OffsetDateTime,
        stale_after: Duration,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(conn_pk(id)))
            .item("sk", s(format!("PULL#{object}#{}", flow.as_str())))
            .item("run_id", s(run_id))
            .item("started_ms", n(millis(now)))
            .condition_expression("attribute_not_exists(pk) OR run_id = :run OR started_ms <= :stale")
            .expression_attribute_values(":run", s(run_id))
            .expression_attribute_values(":stale", n(millis(now - stale_after)))
            .send()
            .await;
        applied(result)
    }

    async fn end_pull(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        flow: SyncFlow,
        run_id: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(conn_pk(id)))
            .key("sk", s(format!("PULL#{object}#{}", flow.as_str())))
            .condition_expression("run_id = :run")
            .expression_attribute_values(":run", s(run_id))
            .send()
            .await;
        // Refused by its condition is fine too: not ours, or already so.
        applied(result).map(|_| ())
    }

    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let mut item = item(conn_pk(&run.connection_id), &format!("RUN#{}", run.run_id), run)?;
        item.insert("ttl".into(), n((run.started_at + RUN_RETENTION).unix_timestamp()));
        item.insert("rev".into(), n(run.revision));
        self.put_item(item).await
    }

    async fn update_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let stored = SyncRun { revision: run.revision + 1, ..run.clone() };
        let mut item = item(conn_pk(&run.connection_id), &format!("RUN#{}", run.run_id), &stored)?;
        item.insert("ttl".into(), n((run.started_at + RUN_RETENTION).unix_timestamp()));
        item.insert("rev".into(), n(stored.revision));
        let mut request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        request = if run.revision == 0 {
            request
                .condition_expression("attribute_not_exists(rev) OR rev = :zero")
                .expression_attribute_values(":zero", n(0))
        } else {
            request.condition_expression("rev = :expected").expression_attribute_values(":expected", n(run.revision))
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Err(StoreError::RevisionConflict),
            Err(err) => Err(unavailable(err)),
        }
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
        applied(result)
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
        // Refused by its condition is fine too: not ours, or already so.
        applied(result).map(|_| ())
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

    async fn list_api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.query_index(TENANT_INDEX, format!("TENANT#{tenant}"), "APIKEY#").await
    }

    async fn delete_api_key(&self, key_hash: &str) -> Result<(), StoreError> {
        self.delete_item(format!("APIKEY#{key_hash}"), "APIKEY").await
    }

    async fn get_catalogue(&self, tenant: Option<&TenantId>) -> Result<Option<FieldCatalogue>, StoreError> {
        self.get_body(catalogue_pk(tenant), "CATALOGUE").await
    }

    async fn put_catalogue(&self, tenant: Option<&TenantId>, catalogue: &FieldCatalogue) -> Result<(), StoreError> {
        self.put_body(catalogue_pk(tenant), "CATALOGUE", catalogue).await
    }
}

/// A tenant's item, listed under the tenant index's `TENANTS` partition.
fn tenant_item(tenant: &Tenant) -> Result<table::Item, StoreError> {
    let mut item = item(format!("TENANT#{}", tenant.id), "TENANT", tenant)?;
    item.insert("gsi1pk".into(), s(ALL_TENANTS));
    item.insert("gsi1sk".into(), s(format!("TENANT#{}", tenant.id)));
    Ok(item)
}

/// The catalogue's partition: a tenant's, or `*` for the deployment's (`*` is no tenant id).
fn catalogue_pk(tenant: Option<&TenantId>) -> String {
    format!("CATALOGUE#{}", tenant.map_or("*", |t| t.as_str()))
}
