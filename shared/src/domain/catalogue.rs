//! The platform's field catalogue: the fields a tenant may map, declared once per deployment
//! (and optionally per tenant) by the platform team. Mappings are checked against it, so a
//! tenant cannot map a field the platform does not have, nor take a computed field in.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::mapping::ConfigProblem;
use super::{ConnectionConfig, FieldType, ObjectType};

/// At most this many fields per catalogue: enough for any platform, bounded for the store.
pub const MAX_CATALOGUE_FIELDS: usize = 1_000;
const MAX_NAME_LEN: usize = 200;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldCatalogue {
    pub fields: Vec<CatalogueField>,
}

/// One mappable field of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueField {
    /// The HubSpot object its records sync with.
    pub object: ObjectType,
    /// The platform's name of the field, as push messages and deliveries carry it.
    pub name: String,
    /// What people see in the mapping screen.
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Computed by the platform (a score, a count): it can only go out to HubSpot.
    #[serde(default)]
    pub computed: bool,
    /// Whether the field identifies a record, and how (an email, a domain, a name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifies: Option<Identity>,
    /// For enumerations: the values the field can take.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where a tenant's catalogue comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogueSource {
    /// Declared for this tenant.
    Tenant,
    /// The deployment's, shared by every tenant without its own.
    Deployment,
    /// None declared: any platform field may be mapped.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    Email,
    Domain,
    Name,
    /// The platform's own unique id of the record.
    Id,
}

impl FieldCatalogue {
    pub fn field(&self, object: ObjectType, name: &str) -> Option<&CatalogueField> {
        self.fields.iter().find(|f| f.object == object && f.name == name)
    }

    /// What is wrong with the catalogue itself, each problem with its fix.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.fields.len() > MAX_CATALOGUE_FIELDS {
            problems.push(format!("{} fields; at most {MAX_CATALOGUE_FIELDS} are allowed", self.fields.len()));
        }
        let mut seen = BTreeSet::new();
        for field in &self.fields {
            let at = format!("{} `{}`", field.object, field.name);
            if !ObjectType::ALL.contains(&field.object) {
                problems.push(format!("{at}: line items sync with their deals; declare contacts, companies or deals"));
            }
            if field.name.trim().is_empty() || field.name.chars().count() > MAX_NAME_LEN {
                problems.push(format!("{at}: a name must be 1 to {MAX_NAME_LEN} characters"));
            }
            if field.label.trim().is_empty() || field.label.chars().count() > MAX_NAME_LEN {
                problems.push(format!("{at}: a label must be 1 to {MAX_NAME_LEN} characters"));
            }
            if !seen.insert((field.object, field.name.as_str())) {
                problems.push(format!("{at} is declared twice: declare each field once per object"));
            }
            if field.field_type == FieldType::Enumeration && field.values.is_empty() {
                problems.push(format!("{at} is an enumeration without `values`: list the values it can take"));
            }
            if field.field_type != FieldType::Enumeration && !field.values.is_empty() {
                problems.push(format!("{at} has `values` but is not an enumeration: remove them"));
            }
        }
        problems
    }

    /// The problems of `config`'s mappings against the catalogue: each platform field must be
    /// declared for its object, with the declared type, and a computed field may only go out.
    pub fn check(&self, config: &ConnectionConfig) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for (&object, object_config) in &config.objects {
            for mapping in &object_config.fields {
                let problem = |rule, message: String, fix: String| ConfigProblem {
                    object: Some(object),
                    platform_field: Some(mapping.platform_field.clone()),
                    hubspot_property: Some(mapping.hubspot_property.clone()),
                    rule,
                    message,
                    fix,
                };
                let Some(declared) = self.field(object, &mapping.platform_field) else {
                    problems.push(problem(
                        "field_not_in_catalogue",
                        format!("the platform has no {object} field `{}`", mapping.platform_field),
                        format!("pick one of the platform's {object} fields (GET /catalogue)"),
                    ));
                    continue;
                };
                if declared.computed && mapping.direction.comes_in() {
                    problems.push(problem(
                        "computed_field_inbound",
                        format!("`{}` is computed by the platform, so HubSpot cannot write it", declared.name),
                        "set the direction to out".into(),
                    ));
                }
                if declared.field_type != mapping.platform_type {
                    problems.push(problem(
                        "platform_type_mismatch",
                        format!(
                            "`{}` is a {} field of the platform, not a {}",
                            declared.name,
                            declared.field_type.as_str(),
                            mapping.platform_type.as_str()
                        ),
                        format!("set `platform_type` to {}", declared.field_type.as_str()),
                    ));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Direction, FieldMapping, MatchKey, ObjectConfig, WriteMode};

    fn catalogue() -> FieldCatalogue {
        let field = |name: &str, field_type, computed| CatalogueField {
            object: ObjectType::Contacts,
            name: name.into(),
            label: name.into(),
            field_type,
            computed,
            identifies: None,
            values: vec![],
            description: None,
        };
        FieldCatalogue {
            fields: vec![field("plan", FieldType::String, false), field("score", FieldType::Number, true)],
        }
    }

    fn config(fields: Vec<FieldMapping>) -> ConnectionConfig {
        let mut config = ConnectionConfig::default();
        let object = ObjectConfig {
            match_key: MatchKey::Email,
            write_mode: WriteMode::Upsert,
            fields,
            lists: vec![],
            relations: vec![],
        };
        config.objects.insert(ObjectType::Contacts, object);
        config
    }

    #[test]
    fn declared_fields_of_their_type_pass_and_each_breach_names_its_rule() {
        let ok = config(vec![
            FieldMapping::out("plan", "tier", FieldType::String),
            FieldMapping::out("score", "s", FieldType::Number),
        ]);
        assert!(catalogue().check(&ok).is_empty());

        let score_in =
            FieldMapping { direction: Direction::Both, ..FieldMapping::out("score", "s", FieldType::Number) };
        let breaches = config(vec![
            FieldMapping::out("nope", "x", FieldType::String),
            score_in,
            FieldMapping::out("plan", "tier", FieldType::Number),
        ]);
        let rules: Vec<&str> = catalogue().check(&breaches).iter().map(|p| p.rule).collect();
        assert_eq!(rules, ["field_not_in_catalogue", "computed_field_inbound", "platform_type_mismatch"]);
    }

    #[test]
    fn a_catalogue_must_be_consistent() {
        let mut twice = catalogue();
        twice.fields.push(twice.fields[0].clone());
        assert!(twice.problems().iter().any(|p| p.contains("declared twice")));
        let mut line_items = catalogue();
        line_items.fields[0].object = ObjectType::LineItems;
        assert!(line_items.problems().iter().any(|p| p.contains("line items")));
        assert!(catalogue().problems().is_empty());
    }
}
