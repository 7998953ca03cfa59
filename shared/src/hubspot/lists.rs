//! HubSpot lists (segments) of one portal: reading and creating lists, and adding records to
//! or removing them from the lists a mapping names. Only manual and snapshot lists take
//! membership changes; HubSpot maintains dynamic lists from their filters and refuses them.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{HubSpotClient, Reply};
use super::error::HubSpotError;
use super::lenient;
use super::rate_limit::RateLimit;
use crate::domain::{ObjectType, Secret};

/// Record ids sent per membership call. HubSpot documents no cap for these endpoints; 250 is
/// its largest memberships page, which keeps each request and answer small and each retry cheap.
pub const MEMBERSHIP_CHUNK: usize = 250;

/// How a list gets its members (HubSpot's `processingType`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListProcessing {
    /// Members change only by hand or through the memberships API.
    Manual,
    /// HubSpot keeps the members in line with the list's filters.
    Dynamic,
    /// Filled from the filters once, then changed by hand like a manual list.
    Snapshot,
    /// A processing type this client does not know, kept as HubSpot spelled it.
    Other(String),
}

impl ListProcessing {
    pub fn parse(value: &str) -> ListProcessing {
        match value {
            "MANUAL" => ListProcessing::Manual,
            "DYNAMIC" => ListProcessing::Dynamic,
            "SNAPSHOT" => ListProcessing::Snapshot,
            other => ListProcessing::Other(other.to_string()),
        }
    }

    /// HubSpot's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            ListProcessing::Manual => "MANUAL",
            ListProcessing::Dynamic => "DYNAMIC",
            ListProcessing::Snapshot => "SNAPSHOT",
            ListProcessing::Other(name) => name,
        }
    }

    /// Whether HubSpot lets the memberships API change this list. Unknown types count as
    /// not: asking would most likely end in a 400 that no retry fixes.
    pub fn accepts_manual_changes(&self) -> bool {
        matches!(self, ListProcessing::Manual | ListProcessing::Snapshot)
    }
}

impl std::fmt::Display for ListProcessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A list, reduced to what sync needs to decide whether and how to write to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpotList {
    pub list_id: String,
    pub name: String,
    /// The type id of the records it holds (`0-1` contacts, `0-2` companies, `0-3` deals).
    pub object_type_id: String,
    pub processing_type: ListProcessing,
    /// Members, when HubSpot reports it (it may leave it out while a list is processing).
    pub size: Option<u64>,
}

impl HubSpotList {
    /// Whether the list holds records of `object`.
    pub fn holds(&self, object: ObjectType) -> bool {
        self.object_type_id == object.type_id()
    }
}

/// What membership calls did, summed over every call they took. Ids keep HubSpot's spelling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChange {
    /// Records that became members (`recordsIdsAdded`; records already in are not listed).
    pub added: Vec<String>,
    /// Records that left the list.
    pub removed: Vec<String>,
    /// Ids HubSpot ignored: no such record of the list's type when adding, not a member when
    /// removing.
    pub missing: Vec<String>,
    /// HTTP calls made (ids / [`MEMBERSHIP_CHUNK`], rounded up).
    pub calls: u32,
    /// The rate-limit headers of the last response.
    pub rate_limit: Option<RateLimit>,
}

#[derive(Deserialize)]
struct ListEnvelope {
    #[serde(default)]
    list: Option<ListBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    #[serde(default, deserialize_with = "lenient::opt_text")]
    list_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    object_type_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    processing_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    size: Option<u64>,
}

impl ListEnvelope {
    /// A list without an id cannot be written to: such a body is not what HubSpot documents.
    fn into_list(self, operation: &str) -> Result<HubSpotList, HubSpotError> {
        let body = self.list.ok_or_else(|| invalid(operation, "the answer has no `list`"))?;
        let list_id =
            body.list_id.filter(|id| !id.is_empty()).ok_or_else(|| invalid(operation, "the list has no id"))?;
        Ok(HubSpotList {
            list_id,
            name: body.name.unwrap_or_default(),
            object_type_id: body.object_type_id.unwrap_or_default(),
            processing_type: ListProcessing::parse(body.processing_type.as_deref().unwrap_or_default()),
            size: body.size,
        })
    }
}

/// HubSpot's `MembershipsUpdateResponse`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MembershipsBody {
    /// HubSpot spells it `recordsIdsAdded`; the regular spelling is taken too, should it ever
    /// be corrected.
    #[serde(default, rename = "recordsIdsAdded", alias = "recordIdsAdded", deserialize_with = "lenient::strings")]
    added: Vec<String>,
    #[serde(default, rename = "recordIdsRemoved", deserialize_with = "lenient::strings")]
    removed: Vec<String>,
    #[serde(default, rename = "recordIdsMissing", deserialize_with = "lenient::strings")]
    missing: Vec<String>,
}

fn invalid(operation: &str, reason: &str) -> HubSpotError {
    HubSpotError::InvalidResponse { operation: operation.to_string(), reason: reason.to_string() }
}

/// The lists of the portal a token belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Lists<'a> {
    client: &'a HubSpotClient,
    token: &'a Secret,
}

impl HubSpotClient {
    /// The lists of the portal this token belongs to (scopes `crm.lists.read`, and
    /// `crm.lists.write` to create lists or change memberships).
    pub fn lists<'a>(&'a self, token: &'a Secret) -> Lists<'a> {
        Lists { client: self, token }
    }
}

impl Lists<'_> {
    async fn call(
        &self,
        operation: &str,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Reply, HubSpotError> {
        self.client.call_with_token(operation, self.token, method, segments, body, &[]).await
    }

    /// One list by id. An unknown id is [`HubSpotError::NotFound`].
    pub async fn get(&self, list_id: &str) -> Result<HubSpotList, HubSpotError> {
        let op = "get list";
        let envelope: ListEnvelope =
            self.call(op, Method::GET, &self.client.paths.list(list_id), None).await?.json(op)?;
        envelope.into_list(op)
    }

    /// Creates a list without filters. Names are unique in a portal: a taken one is
    /// [`HubSpotError::Conflict`].
    pub async fn create(
        &self,
        name: &str,
        object: ObjectType,
        processing: ListProcessing,
    ) -> Result<HubSpotList, HubSpotError> {
        let op = "create list";
        let body = json!({ "name": name, "objectTypeId": object.type_id(), "processingType": processing.as_str() });
        let envelope: ListEnvelope =
            self.call(op, Method::POST, &self.client.paths.lists(), Some(&body)).await?.json(op)?;
        envelope.into_list(op)
    }

    /// Adds records (by HubSpot record id) to a manual or snapshot list, in calls of at most
    /// [`MEMBERSHIP_CHUNK`] ids. A dynamic list answers 400 ([`ErrorClass::Permanent`]).
    ///
    /// On an error, the calls before the failing one have been applied. Adding a member again
    /// changes nothing, so sending the whole set again is safe.
    ///
    /// [`ErrorClass::Permanent`]: super::ErrorClass::Permanent
    pub async fn add(&self, list_id: &str, record_ids: &[String]) -> Result<MembershipChange, HubSpotError> {
        self.change("add to list", list_id, "add", record_ids).await
    }

    /// Removes records from a manual or snapshot list, in calls of at most
    /// [`MEMBERSHIP_CHUNK`] ids. Ids that are not members come back in `missing`. Like
    /// [`Lists::add`], safe to repeat after an error.
    pub async fn remove(&self, list_id: &str, record_ids: &[String]) -> Result<MembershipChange, HubSpotError> {
        self.change("remove from list", list_id, "remove", record_ids).await
    }

    async fn change(
        &self,
        operation: &str,
        list_id: &str,
        action: &str,
        record_ids: &[String],
    ) -> Result<MembershipChange, HubSpotError> {
        let mut change = MembershipChange::default();
        for chunk in record_ids.chunks(MEMBERSHIP_CHUNK) {
            let body = json!(chunk);
            change.calls += 1;
            let reply =
                self.call(operation, Method::PUT, &self.client.paths.memberships(list_id, action), Some(&body)).await?;
            change.rate_limit = reply.rate_limit.or(change.rate_limit);
            let answer: MembershipsBody =
                if reply.body.is_empty() { MembershipsBody::default() } else { reply.json(operation)? };
            change.added.extend(answer.added);
            change.removed.extend(answer.removed);
            change.missing.extend(answer.missing);
        }
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_answers_use_hubspots_spelling() {
        let body: MembershipsBody =
            serde_json::from_str(r#"{"recordIdsMissing":["999"],"recordIdsRemoved":[],"recordsIdsAdded":["101",102]}"#)
                .unwrap();
        assert_eq!(body.added, ["101", "102"]);
        assert_eq!(body.missing, ["999"]);
        assert!(body.removed.is_empty());
        let corrected: MembershipsBody =
            serde_json::from_str(r#"{"recordIdsAdded":["7"],"recordIdsMissing":null}"#).unwrap();
        assert_eq!(corrected.added, ["7"]);
        assert!(corrected.missing.is_empty());
    }

    #[test]
    fn lists_parse_leniently_but_need_an_id() {
        let envelope: ListEnvelope = serde_json::from_str(
            r#"{"list":{"listId":123,"listVersion":1,"name":"Customers","objectTypeId":"0-1","processingStatus":"COMPLETE","processingType":"SNAPSHOT","size":"4","createdAt":"2024-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
        let list = envelope.into_list("get list").unwrap();
        assert_eq!(list.list_id, "123");
        assert_eq!(list.processing_type, ListProcessing::Snapshot);
        assert_eq!(list.size, Some(4));
        assert!(list.holds(ObjectType::Contacts) && !list.holds(ObjectType::Deals));

        let no_id: ListEnvelope = serde_json::from_str(r#"{"list":{"name":"x"}}"#).unwrap();
        assert!(matches!(no_id.into_list("get list"), Err(HubSpotError::InvalidResponse { .. })));
    }

    #[test]
    fn only_manual_and_snapshot_lists_take_changes() {
        assert!(ListProcessing::parse("MANUAL").accepts_manual_changes());
        assert!(ListProcessing::parse("SNAPSHOT").accepts_manual_changes());
        assert!(!ListProcessing::parse("DYNAMIC").accepts_manual_changes());
        let other = ListProcessing::parse("SOMETHING_NEW");
        assert_eq!(other, ListProcessing::Other("SOMETHING_NEW".into()));
        assert!(!other.accepts_manual_changes());
        assert_eq!(other.to_string(), "SOMETHING_NEW");
    }
}
