//! List memberships of pushed records: the object's configured lists for every record written,
//! plus each change's own additions and removals.

use std::collections::{BTreeMap, BTreeSet};

use crate::deps::Deps;
use crate::domain::ObjectConfig;
use crate::outbound::job::{Record, Written};
use crate::work::gateway::HubSpotGateway;
use crate::work::{Outcome, Target};

/// Adds and removes the memberships of the records HubSpot holds; a list that refuses (a
/// dynamic list, a missing scope) settles its members with the reason.
pub(super) async fn apply(
    deps: &Deps,
    gateway: &HubSpotGateway,
    target: &Target,
    config: &ObjectConfig,
    records: &mut [Record],
) {
    // list id → record indexes to add, and to remove.
    let mut adds: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut removes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, record) in records.iter().enumerate() {
        if !record.in_hubspot() || record.hubspot_id.is_none() {
            continue;
        }
        let mut to_add: BTreeSet<&String> = record.pending.lists.add.iter().collect();
        if record.written == Written::Yes {
            to_add.extend(config.lists.iter());
        }
        for list in to_add {
            adds.entry(list.clone()).or_default().push(i);
        }
        for list in &record.pending.lists.remove {
            removes.entry(list.clone()).or_default().push(i);
        }
    }
    for (list_id, members, adding) in
        adds.into_iter().map(|(l, m)| (l, m, true)).chain(removes.into_iter().map(|(l, m)| (l, m, false)))
    {
        let ids: Vec<String> = members.iter().filter_map(|&i| records[i].hubspot_id.clone()).collect();
        let result = gateway
            .call(target, |token| {
                let (ids, list_id) = (&ids, &list_id);
                async move {
                    let lists = deps.hubspot.lists(&token);
                    let list = lists.get(list_id).await?;
                    if !list.processing_type.accepts_manual_changes() {
                        return Ok(Err(format!(
                            "list {list_id} ({}) is {}: HubSpot maintains its members by filter; \
                             use a MANUAL or SNAPSHOT list",
                            list.name,
                            list.processing_type.as_str()
                        )));
                    }
                    let change =
                        if adding { lists.add(list_id, ids).await? } else { lists.remove(list_id, ids).await? };
                    Ok(Ok(change))
                }
            })
            .await;
        let outcome = match result {
            Ok(Ok(_)) => continue,
            Ok(Err(refusal)) => Outcome::Failed(refusal),
            Err(failed) => match failed.outcome() {
                Outcome::Failed(reason) => Outcome::Failed(format!("list {list_id}: {reason}")),
                other => other,
            },
        };
        members.iter().for_each(|&i| records[i].settle(outcome.clone()));
    }
}
