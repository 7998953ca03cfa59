//! The OAuth scopes an integration needs, derived from what it syncs: an install asks for the
//! objects the platform declares (its field catalogue), and a config needs the scopes of the
//! objects, lists and properties it touches. A contacts-only platform (Didomi's integration
//! asks for `crm.objects.contacts.read`, `crm.objects.contacts.write`, `crm.schemas.contacts.read`
//! and `crm.schemas.contacts.write`) installs with those four, nothing more.

use std::collections::BTreeSet;

use super::{ConnectionConfig, FieldCatalogue, ObjectType, TriggerSource};

/// Every scope hubsync may ask for; anything else in a request is refused.
pub fn known() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for object in ObjectType::ALL {
        all.extend(object_scopes(object, true));
    }
    all.insert(counter_scope());
    all.extend(list_scopes());
    all.insert(line_items_scope());
    all
}

/// Reading and writing an object's records, and reading its property schema.
fn object_scopes(object: ObjectType, write: bool) -> Vec<String> {
    let name = object.api_name();
    let mut scopes = vec![format!("crm.objects.{name}.read"), format!("crm.schemas.{name}.read")];
    if write {
        scopes.push(format!("crm.objects.{name}.write"));
    }
    scopes
}

/// Creating the bidirectional counter property, a contact property.
fn counter_scope() -> String {
    "crm.schemas.contacts.write".into()
}

fn list_scopes() -> [String; 2] {
    ["crm.lists.read".into(), "crm.lists.write".into()]
}

fn line_items_scope() -> String {
    "crm.objects.line_items.read".into()
}

/// What an install asks HubSpot for: the required scopes must be granted, the optional ones
/// are granted where the portal's products allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallScopes {
    pub required: Vec<String>,
    pub optional: Vec<String>,
}

impl InstallScopes {
    /// For a platform syncing `objects`: each one read and written with its schema read, the
    /// counter property's schema write when contacts are among them; lists (and a deal's line
    /// items) optional, as list automations and triggers use them.
    pub fn for_objects(objects: &[ObjectType]) -> InstallScopes {
        let mut required = BTreeSet::new();
        let mut optional = BTreeSet::new();
        for &object in objects.iter().filter(|o| ObjectType::ALL.contains(o)) {
            required.extend(object_scopes(object, true));
            optional.extend(list_scopes());
            if object == ObjectType::Contacts {
                required.insert(counter_scope());
            }
            if object == ObjectType::Deals {
                optional.insert(line_items_scope());
            }
        }
        let optional = optional.difference(&required).cloned().collect();
        InstallScopes { required: required.into_iter().collect(), optional }
    }

    /// For the objects a catalogue declares; every object without one (any field may be mapped).
    pub fn for_catalogue(catalogue: Option<&FieldCatalogue>) -> InstallScopes {
        let mut objects: Vec<ObjectType> = match catalogue {
            Some(catalogue) if !catalogue.fields.is_empty() => catalogue.fields.iter().map(|f| f.object).collect(),
            _ => ObjectType::ALL.to_vec(),
        };
        objects.sort();
        objects.dedup();
        InstallScopes::for_objects(&objects)
    }

    /// Adds `extra` to the required scopes (a reconnect asking for what a config needs).
    pub fn requiring(mut self, extra: impl IntoIterator<Item = String>) -> InstallScopes {
        let mut required: BTreeSet<String> = self.required.into_iter().collect();
        required.extend(extra);
        self.optional.retain(|s| !required.contains(s));
        self.required = required.into_iter().collect();
        self
    }
}

/// The scopes `config` uses: each synced object's records and schema (written only when a
/// field goes out), the objects of associated fields and triggers, the counter property,
/// lists, and a deal's line items when a trigger reads them.
pub fn needed_by(config: &ConnectionConfig) -> BTreeSet<String> {
    let mut needed = BTreeSet::new();
    for (&object, object_config) in &config.objects {
        let writes = object_config.fields.iter().any(|f| f.direction.goes_out()) || !object_config.lists.is_empty();
        needed.extend(object_scopes(object, writes));
        for associated in object_config.fields.iter().filter_map(|f| f.from_associated) {
            needed.extend(object_scopes(associated, false));
        }
        if !object_config.lists.is_empty() {
            needed.extend(list_scopes());
        }
    }
    for trigger in &config.triggers {
        needed.extend(object_scopes(trigger.object, false));
        if trigger.fields.iter().any(|f| matches!(f.source, TriggerSource::LineItems { .. })) {
            needed.insert(line_items_scope());
        }
    }
    if config.options.bidirectional_counter_property.is_some() {
        needed.extend(object_scopes(ObjectType::Contacts, false));
        needed.insert(counter_scope());
    }
    needed
}

/// The scopes of `needed` that `granted` lacks.
pub fn missing(needed: &BTreeSet<String>, granted: &[String]) -> Vec<String> {
    needed.iter().filter(|s| !granted.contains(s)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CatalogueField, FieldMapping, FieldType, MatchKey, ObjectConfig, WriteMode};

    fn field(object: ObjectType, name: &str) -> CatalogueField {
        CatalogueField {
            object,
            name: name.into(),
            label: name.into(),
            field_type: FieldType::Boolean,
            computed: false,
            identifies: None,
            values: vec![],
            description: None,
        }
    }

    #[test]
    fn a_contacts_only_platform_installs_with_didomis_four_scopes() {
        let catalogue =
            FieldCatalogue { fields: vec![field(ObjectType::Contacts, "consents_purposes_marketing_enabled")] };
        let scopes = InstallScopes::for_catalogue(Some(&catalogue));
        assert_eq!(
            scopes.required,
            [
                "crm.objects.contacts.read",
                "crm.objects.contacts.write",
                "crm.schemas.contacts.read",
                "crm.schemas.contacts.write"
            ]
        );
        assert_eq!(scopes.optional, ["crm.lists.read", "crm.lists.write"]);
    }

    #[test]
    fn without_a_catalogue_every_object_is_required() {
        let scopes = InstallScopes::for_catalogue(None);
        for scope in ["crm.objects.companies.write", "crm.objects.deals.read", "crm.schemas.deals.read"] {
            assert!(scopes.required.contains(&scope.to_string()), "{scope}");
        }
        assert!(scopes.optional.contains(&"crm.objects.line_items.read".to_string()));
        assert!(scopes.required.iter().chain(&scopes.optional).all(|s| known().contains(s)));
    }

    #[test]
    fn a_reconnect_requires_what_was_optional() {
        let scopes = InstallScopes::for_objects(&[ObjectType::Contacts]).requiring(["crm.lists.write".to_string()]);
        assert!(scopes.required.contains(&"crm.lists.write".to_string()));
        assert_eq!(scopes.optional, ["crm.lists.read"]);
    }

    #[test]
    fn a_config_needs_the_scopes_of_what_it_touches() {
        let mut config = ConnectionConfig::default();
        config.objects.insert(
            ObjectType::Contacts,
            ObjectConfig {
                match_key: MatchKey::Email,
                write_mode: WriteMode::Upsert,
                fields: vec![FieldMapping {
                    from_associated: Some(ObjectType::Companies),
                    direction: crate::domain::Direction::In,
                    ..FieldMapping::out("company_size", "numberofemployees", FieldType::Number)
                }],
                lists: vec![],
                relations: vec![],
            },
        );
        let needed = needed_by(&config);
        assert!(needed.contains("crm.objects.companies.read"));
        assert!(!needed.contains("crm.objects.contacts.write"), "nothing goes out");
        assert!(!needed.contains("crm.lists.write"));

        config.objects.get_mut(&ObjectType::Contacts).unwrap().lists.push("42".into());
        config.options.bidirectional_counter_property = Some("platform_changed".into());
        let needed = needed_by(&config);
        for scope in ["crm.lists.read", "crm.lists.write", "crm.objects.contacts.write", "crm.schemas.contacts.write"] {
            assert!(needed.contains(scope), "{scope}");
        }
        let granted = ["crm.objects.contacts.read".to_string(), "crm.objects.contacts.write".to_string()];
        assert!(missing(&needed, &granted).contains(&"crm.lists.write".to_string()));
    }
}
