//! Relations between a platform's records, written to HubSpot as associations: what a config
//! lets out, what a push message says about them, how a record's changes fold, and which links
//! still need writing. Pure: no I/O, no clock.
//!
//! A relation is named by the other record's platform key (`"companies": {"set": ["acme.com"]}`)
//! and kept, once written, in the record's outbound state with the platform change time it
//! came from, like a field: an older change never undoes a newer one, and a link already
//! written costs no call.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::mapping::ConfigProblem;
use super::{ConnectionConfig, ObjectType, OutboundState, Stamped};

/// At most this many related keys in one message (`set`, `add` and `remove` together).
pub const MAX_RELATION_KEYS: usize = 1_000;

/// How long a link waits for its other record to exist in HubSpot before it is skipped: the
/// platform may send an organization after its members, or both at once.
pub const LINK_WAIT: time::Duration = time::Duration::minutes(15);

/// One relation of an object that goes out to HubSpot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationMapping {
    /// The related object: `contacts`, `companies` or `deals`.
    pub to: ObjectType,
    /// The association label the links carry; without one, HubSpot's unlabeled type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<AssociationLabel>,
}

/// A HubSpot association type, as its v4 API names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssociationLabel {
    pub category: LabelCategory,
    /// HubSpot's id of the type: a portal's own labels are listed by
    /// `GET /crm/v4/associations/{from}/{to}/labels`.
    pub type_id: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LabelCategory {
    HubspotDefined,
    UserDefined,
    IntegratorDefined,
}

impl LabelCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelCategory::HubspotDefined => "HUBSPOT_DEFINED",
            LabelCategory::UserDefined => "USER_DEFINED",
            LabelCategory::IntegratorDefined => "INTEGRATOR_DEFINED",
        }
    }
}

/// The pairs of objects hubsync links (HubSpot links more; these are the ones it syncs).
pub fn can_link(from: ObjectType, to: ObjectType) -> bool {
    from != to && ObjectType::ALL.contains(&from) && ObjectType::ALL.contains(&to)
}

/// HubSpot's own (`HUBSPOT_DEFINED`) association type ids from one object to another: the
/// unlabeled type, and the primary one where HubSpot has it (a contact's or a deal's primary
/// company). From HubSpot's associations v4 documentation ("Association type id values").
pub fn hubspot_type_ids(from: ObjectType, to: ObjectType) -> (Option<u32>, Option<u32>) {
    use ObjectType::{Companies, Contacts, Deals, LineItems};
    match (from, to) {
        (Contacts, Companies) => (Some(279), Some(1)),
        (Companies, Contacts) => (Some(280), Some(2)),
        (Deals, Companies) => (Some(341), Some(5)),
        (Companies, Deals) => (Some(342), Some(6)),
        (Deals, Contacts) => (Some(3), None),
        (Contacts, Deals) => (Some(4), None),
        (Deals, LineItems) => (Some(19), None),
        (LineItems, Deals) => (Some(20), None),
        _ => (None, None),
    }
}

/// Every problem of the relations a config lets out.
pub fn check_relations(config: &ConnectionConfig) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for (&object, object_config) in &config.objects {
        let mut seen = BTreeSet::new();
        for relation in &object_config.relations {
            let to = relation.to;
            let mut problem = |rule: &'static str, message: String, fix: String| {
                problems.push(ConfigProblem {
                    object: Some(object),
                    platform_field: Some(format!("associations.{to}")),
                    hubspot_property: None,
                    rule,
                    message,
                    fix,
                })
            };
            if !can_link(object, to) {
                problem(
                    "relation_not_linkable",
                    format!("{object} cannot be linked to {to} by hubsync"),
                    "link contacts, companies and deals with each other".into(),
                );
                continue;
            }
            if !seen.insert(to) {
                problem("relation_duplicate", format!("the relation to {to} is listed twice"), "keep one".into());
            }
            if !config.objects.contains_key(&to) {
                problem(
                    "relation_target_not_configured",
                    format!("{to} are not configured, so their records cannot be found by the keys pushed"),
                    format!("configure {to} (its match key says how a related key finds its record)"),
                );
            }
            if let Some(label) = &relation.label
                && label.category == LabelCategory::HubspotDefined
            {
                let (unlabeled, primary) = hubspot_type_ids(object, to);
                if ![unlabeled, primary].contains(&Some(label.type_id)) {
                    let known: Vec<String> =
                        [unlabeled, primary].into_iter().flatten().map(|id| id.to_string()).collect();
                    problem(
                        "label_unknown",
                        format!("HUBSPOT_DEFINED type {} does not link {object} to {to}", label.type_id),
                        format!("use {} or a USER_DEFINED label of the portal", known.join(" or ")),
                    );
                }
            }
        }
    }
    problems
}

/// What one push message says about a record's relations to one object, by the other
/// records' platform keys. `set` names every related record (links hubsync made to others are
/// removed); `add` and `remove` change single links. Applied in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl RelationChanges {
    pub fn keys(&self) -> usize {
        self.set.as_ref().map_or(0, Vec::len) + self.add.len() + self.remove.len()
    }
}

/// One record's relation changes to one object, folded: each related key's newest wish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingLinks {
    /// Other record's key (as its match key stores it) → whether the link should exist,
    /// stamped with the platform change time it came from.
    pub links: BTreeMap<String, Stamped<bool>>,
    /// The time of the newest `set`: links hubsync wrote before it to records it does not
    /// name go.
    pub set_at: Option<i64>,
}

impl PendingLinks {
    /// Applies one change at `at_ms`; `normalise` files a key as the other object's match key does.
    pub fn apply(&mut self, change: &RelationChanges, at_ms: i64, normalise: impl Fn(&str) -> String) {
        let mut wished: Vec<(String, bool)> = Vec::new();
        if let Some(set) = &change.set {
            let named: BTreeSet<String> = set.iter().map(|k| normalise(k)).collect();
            wished.extend(self.links.keys().filter(|k| !named.contains(*k)).map(|k| (k.clone(), false)));
            wished.extend(named.into_iter().map(|k| (k, true)));
            self.set_at = Some(at_ms);
        }
        wished.extend(change.add.iter().map(|k| (normalise(k), true)));
        wished.extend(change.remove.iter().map(|k| (normalise(k), false)));
        for (key, linked) in wished.into_iter().filter(|(key, _)| !key.is_empty()) {
            self.links.insert(key, Stamped::new(linked, at_ms));
        }
    }
}

/// A link as hubsync last wrote it: the other record's HubSpot id while linked (`None` once
/// unlinked), stamped with the platform change time it came from.
pub type WrittenLink = Stamped<Option<String>>;

/// One link to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkWrite {
    pub to: ObjectType,
    /// The other record's key.
    pub key: String,
    pub linked: bool,
    pub at_ms: i64,
    /// The other record's HubSpot id, when hubsync wrote the link before (an unlink needs no lookup).
    pub known_id: Option<String>,
}

/// What of a record's wished links to write, and what to note without a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkPlan {
    pub writes: Vec<LinkWrite>,
    /// Links already as wished by a newer change than the one that wrote them: their time moves
    /// on to it, so that an older change arriving later does not undo them.
    pub confirmed: Vec<(ObjectType, String, WrittenLink)>,
    pub unchanged: usize,
}

/// Which links of `pending` to write, given what was written (`outbound.links`, per object and
/// key). Newer wins per link; a link already as wished costs nothing. A `set` also unlinks what
/// hubsync linked before it and the set does not name; links people made in HubSpot stay. A
/// wish older than a `set` already applied changes nothing: that set decided every link.
pub fn plan_links(pending: &BTreeMap<ObjectType, PendingLinks>, outbound: &OutboundState) -> LinkPlan {
    let mut plan = LinkPlan::default();
    let empty = BTreeMap::new();
    for (&to, wished) in pending {
        let known = outbound.links.get(&to).unwrap_or(&empty);
        let announced = outbound.linking.get(&to);
        let newest_set = outbound.link_sets.get(&to).copied();
        let mut wish: Vec<(String, Stamped<bool>)> = wished.links.iter().map(|(k, w)| (k.clone(), w.clone())).collect();
        if let Some(set_at) = wished.set_at {
            // Links hubsync made (or may have made) before the set, which it does not name, go.
            let linked = known.iter().filter(|(_, link)| link.value.is_some()).map(|(key, link)| (key, link.at_ms));
            let maybe_linked = announced.into_iter().flatten().filter(|(_, a)| a.value).map(|(key, a)| (key, a.at_ms));
            for (key, at_ms) in linked.chain(maybe_linked) {
                if at_ms < set_at && !wished.links.contains_key(key) && !wish.iter().any(|(k, _)| k == key) {
                    wish.push((key.clone(), Stamped::new(false, set_at)));
                }
            }
        }
        for (key, wish) in wish {
            let link = known.get(&key);
            // A write announced and never settled may have changed the link: it is written again.
            let in_doubt = announced.and_then(|a| a.get(&key));
            let newer_decided = in_doubt.is_some_and(|a| a.at_ms > wish.at_ms)
                || link.is_some_and(|l| l.at_ms > wish.at_ms)
                // A newer `set` decided every link of the object: named ones in, the rest out.
                || newest_set.is_some_and(|set_at| set_at > wish.at_ms);
            match link {
                _ if newer_decided => plan.unchanged += 1,
                Some(link) if in_doubt.is_none() && link.value.is_some() == wish.value => {
                    plan.unchanged += 1;
                    if link.at_ms < wish.at_ms {
                        plan.confirmed.push((to, key, Stamped::new(link.value.clone(), wish.at_ms)));
                    }
                }
                _ => plan.writes.push(LinkWrite {
                    to,
                    key,
                    linked: wish.value,
                    at_ms: wish.at_ms,
                    known_id: link.and_then(|l| l.value.clone()),
                }),
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(set: Option<&[&str]>, add: &[&str], remove: &[&str]) -> RelationChanges {
        let owned = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        RelationChanges { set: set.map(owned), add: owned(add), remove: owned(remove) }
    }

    fn fold(steps: &[(RelationChanges, i64)]) -> BTreeMap<ObjectType, PendingLinks> {
        let mut pending = PendingLinks::default();
        for (change, at) in steps {
            pending.apply(change, *at, |k| k.trim().to_ascii_lowercase());
        }
        BTreeMap::from([(ObjectType::Companies, pending)])
    }

    fn written(links: &[(&str, Option<&str>, i64)]) -> OutboundState {
        let links = links.iter().map(|(k, id, at)| (k.to_string(), Stamped::new(id.map(str::to_string), *at)));
        OutboundState { links: BTreeMap::from([(ObjectType::Companies, links.collect())]), ..OutboundState::default() }
    }

    fn summary(writes: &[LinkWrite]) -> Vec<(&str, bool, i64)> {
        writes.iter().map(|w| (w.key.as_str(), w.linked, w.at_ms)).collect()
    }

    #[test]
    fn a_later_change_of_a_link_wins_within_a_batch() {
        let pending = fold(&[(changes(None, &["Acme.com"], &[]), 1), (changes(None, &[], &["acme.com"]), 2)]);
        let writes = plan_links(&pending, &OutboundState::default()).writes;
        assert_eq!(summary(&writes), [("acme.com", false, 2)]);
    }

    #[test]
    fn a_set_replaces_what_came_before_it_and_unlinks_what_hubsync_linked() {
        let pending = fold(&[(changes(None, &["old.com"], &[]), 1), (changes(Some(&["acme.com"]), &[], &[]), 2)]);
        let known = written(&[("gone.com", Some("7"), 1), ("made-later.com", Some("8"), 3), ("unlinked.com", None, 1)]);
        let writes = plan_links(&pending, &known).writes;
        assert_eq!(summary(&writes), [("acme.com", true, 2), ("old.com", false, 2), ("gone.com", false, 2)]);
        assert_eq!(writes[2].known_id.as_deref(), Some("7"), "an unlink of a written link needs no lookup");
    }

    #[test]
    fn links_as_written_cost_nothing_and_older_changes_give_way() {
        let pending = fold(&[(changes(None, &["acme.com"], &["beta.com"]), 5)]);
        let plan = plan_links(&pending, &written(&[("acme.com", Some("7"), 4), ("beta.com", None, 4)]));
        assert!(plan.writes.is_empty());
        assert_eq!(plan.unchanged, 2);
        let confirmed: Vec<(&str, i64)> =
            plan.confirmed.iter().map(|(_, key, link)| (key.as_str(), link.at_ms)).collect();
        assert_eq!(confirmed, [("acme.com", 5), ("beta.com", 5)], "their time moves on, with no call");
        let plan = plan_links(&pending, &written(&[("acme.com", None, 6)]));
        assert_eq!((summary(&plan.writes), plan.unchanged), (vec![("beta.com", false, 5)], 1), "a newer unlink stands");
    }

    #[test]
    fn a_set_applied_first_keeps_out_what_an_older_set_or_add_named() {
        let newer = fold(&[(changes(Some(&["beta.com"]), &[], &[]), 2)]);
        let mut outbound = OutboundState::default();
        for write in plan_links(&newer, &outbound).writes {
            outbound.record_link(write.to, &write.key, Stamped::new(Some("8".into()), write.at_ms));
        }
        outbound.record_link_set(ObjectType::Companies, 2);
        // Gone was unlinked before either set: an older set naming it, arriving after the newer
        // set, does not bring it back.
        outbound.record_link(ObjectType::Companies, "gone.com", Stamped::new(None, 0));
        let older = fold(&[(changes(Some(&["acme.com", "gone.com"]), &["gamma.com"], &[]), 1)]);
        let plan = plan_links(&older, &outbound);
        assert!(plan.writes.is_empty(), "the older set arrives late and changes nothing: {plan:?}");
        assert_eq!(plan.unchanged, 3);
    }

    #[test]
    fn a_link_whose_write_was_announced_and_never_settled_is_written_again() {
        // Linked to Acme at 1; an unlink at 2 was announced, and its worker stopped.
        let mut outbound = written(&[("acme.com", Some("7"), 1)]);
        outbound.linking.insert(ObjectType::Companies, BTreeMap::from([("acme.com".into(), Stamped::new(false, 2))]));
        let again = fold(&[(changes(None, &["acme.com"], &[]), 3)]);
        assert_eq!(summary(&plan_links(&again, &outbound).writes), [("acme.com", true, 3)], "not believed linked");
        let older = fold(&[(changes(None, &["acme.com"], &[]), 1)]);
        assert!(plan_links(&older, &outbound).writes.is_empty(), "the announced change is newer");
        let set = fold(&[(changes(Some(&["beta.com"]), &[], &[]), 3)]);
        let maybe_linked = BTreeMap::from([("gamma.com".into(), Stamped::new(true, 2))]);
        outbound.linking.insert(ObjectType::Companies, maybe_linked);
        let writes = plan_links(&set, &outbound).writes;
        assert_eq!(summary(&writes), [("beta.com", true, 3), ("acme.com", false, 3), ("gamma.com", false, 3)]);
    }

    #[test]
    fn a_config_may_only_let_out_relations_hubsync_can_resolve_and_write() {
        let config: ConnectionConfig = serde_json::from_value(serde_json::json!({ "objects": {
            "contacts": { "match_key": { "kind": "email" }, "write_mode": "upsert", "fields": [], "relations": [
                { "to": "companies" }, { "to": "companies" }, { "to": "deals" }, { "to": "contacts" },
                { "to": "line_items" }
            ] },
            "companies": { "match_key": { "kind": "company_domain" }, "write_mode": "upsert", "fields": [],
                "relations": [{ "to": "contacts", "label": { "category": "HUBSPOT_DEFINED", "type_id": 279 } }] }
        } }))
        .unwrap();
        let rules: Vec<(ObjectType, &str)> =
            check_relations(&config).iter().map(|p| (p.object.unwrap(), p.rule)).collect();
        assert_eq!(
            rules,
            [
                (ObjectType::Contacts, "relation_duplicate"),
                (ObjectType::Contacts, "relation_target_not_configured"),
                (ObjectType::Contacts, "relation_not_linkable"),
                (ObjectType::Contacts, "relation_not_linkable"),
                (ObjectType::Companies, "label_unknown"),
            ]
        );
        let label = &check_relations(&config)[4];
        assert_eq!(label.fix, "use 280 or 2 or a USER_DEFINED label of the portal", "279 links contacts to companies");
    }

    #[test]
    fn only_the_synced_objects_link_and_never_to_their_own_kind() {
        assert!(can_link(ObjectType::Contacts, ObjectType::Companies));
        assert!(can_link(ObjectType::Deals, ObjectType::Contacts));
        assert!(!can_link(ObjectType::Contacts, ObjectType::Contacts));
        assert!(!can_link(ObjectType::Deals, ObjectType::LineItems));
    }
}
