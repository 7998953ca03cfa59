//! Checks a connection config against the portal's live property schema, so that a saved
//! mapping is guaranteed to be writable. Every problem says what is wrong, which rule it breaks,
//! and how to fix it; all problems are reported at once.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{ConnectionConfig, Direction, FieldMapping, FieldType, MatchKey, ObjectConfig, ObjectType, PropertyDef};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    pub object: Option<ObjectType>,
    pub platform_field: Option<String>,
    pub hubspot_property: Option<String>,
    /// A stable code for the rule, e.g. `type_mismatch`.
    pub rule: &'static str,
    pub message: String,
    pub fix: String,
}

/// The schemas of the objects a config uses, by object.
pub type Schemas = BTreeMap<ObjectType, Vec<PropertyDef>>;

/// Every problem of `config` against `schemas`; empty when the config can be saved.
pub fn check_config(config: &ConnectionConfig, schemas: &Schemas) -> Vec<ConfigProblem> {
    let mut problems = super::trigger::check_triggers(&config.triggers, schemas);
    problems.extend(super::relations::check_relations(config));
    for (&object, object_config) in &config.objects {
        if !ObjectType::ALL.contains(&object) {
            problems.push(ConfigProblem {
                object: Some(object),
                platform_field: None,
                hubspot_property: None,
                rule: "object_not_syncable",
                message: format!("{object} are read with their deals, not synced on their own"),
                fix: "configure contacts, companies or deals".into(),
            });
            continue;
        }
        match schemas.get(&object) {
            Some(schema) => check_object(object, object_config, schema, schemas, &mut problems),
            None => problems.push(ConfigProblem {
                object: Some(object),
                platform_field: None,
                hubspot_property: None,
                rule: "schema_unavailable",
                message: format!("the portal's {object} properties are not known"),
                fix: "refresh the property schema (\"Update attributes\") and save again".into(),
            }),
        }
    }
    if let (Some(counter), Some(schema)) =
        (&config.options.bidirectional_counter_property, schemas.get(&ObjectType::Contacts))
        && let Some(property) = schema.iter().find(|p| &p.name == counter)
        && property.value_type != "number"
    {
        problems.push(ConfigProblem {
            object: Some(ObjectType::Contacts),
            platform_field: None,
            hubspot_property: Some(counter.clone()),
            rule: "counter_not_number",
            message: format!("the change counter `{counter}` is a {} property", property.value_type),
            fix: "name a number property, or a new name so hubsync creates it".into(),
        });
    }
    problems
}

fn check_object(
    object: ObjectType,
    config: &ObjectConfig,
    schema: &[PropertyDef],
    schemas: &Schemas,
    problems: &mut Vec<ConfigProblem>,
) {
    let by_name: HashMap<&str, &PropertyDef> = schema.iter().map(|p| (p.name.as_str(), p)).collect();
    check_match_key(object, &config.match_key, &by_name, problems);

    let mut seen: HashMap<(Option<ObjectType>, &str), &str> = HashMap::new();
    for field in &config.fields {
        let problem = |rule, message: String, fix: String| ConfigProblem {
            object: Some(object),
            platform_field: Some(field.platform_field.clone()),
            hubspot_property: Some(field.hubspot_property.clone()),
            rule,
            message,
            fix,
        };
        if let Some(associated) = field.from_associated {
            let allowed = object == ObjectType::Contacts
                && matches!(associated, ObjectType::Companies | ObjectType::Deals)
                && field.direction == Direction::In;
            if !allowed {
                problems.push(problem(
                    "associated_field",
                    format!("`{}` cannot be read from an associated {associated}", field.platform_field),
                    "only a contact's inbound fields can come from its company or deal".into(),
                ));
                continue;
            }
        }
        if let Some(first) = seen.insert((field.from_associated, &field.hubspot_property), &field.platform_field) {
            problems.push(problem(
                "property_mapped_twice",
                format!("`{}` is already mapped from `{first}`", field.hubspot_property),
                "map each HubSpot property from one platform field only".into(),
            ));
        }
        if field.computed && field.direction.comes_in() {
            problems.push(problem(
                "computed_field_inbound",
                format!("`{}` is computed by the platform, so HubSpot cannot write it", field.platform_field),
                "set the direction to out".into(),
            ));
        }
        let property = match field.from_associated {
            None => by_name.get(field.hubspot_property.as_str()).copied(),
            Some(associated) => {
                schemas.get(&associated).and_then(|s| s.iter().find(|p| p.name == field.hubspot_property))
            }
        };
        let Some(property) = property else {
            problems.push(problem(
                "property_missing",
                format!(
                    "the portal has no {} property `{}`",
                    field.from_associated.unwrap_or(object),
                    field.hubspot_property
                ),
                "create the property in HubSpot, or refresh the schema (\"Update attributes\") if it is new".into(),
            ));
            continue;
        };
        if field.direction.goes_out() && property.read_only {
            problems.push(problem(
                "read_only_target",
                format!("`{}` is read-only or calculated in HubSpot", property.name),
                "map it with direction in, or choose a writable property".into(),
            ));
        }
        if let Some((message, fix)) = type_mismatch(field, property) {
            problems.push(problem("type_mismatch", message, fix));
        }
    }
}

fn check_match_key(
    object: ObjectType,
    key: &MatchKey,
    by_name: &HashMap<&str, &PropertyDef>,
    problems: &mut Vec<ConfigProblem>,
) {
    let mut problem = |property: Option<&str>, rule, message: String, fix: &str| {
        problems.push(ConfigProblem {
            object: Some(object),
            platform_field: None,
            hubspot_property: property.map(str::to_string),
            rule,
            message,
            fix: fix.to_string(),
        })
    };
    match key {
        MatchKey::Email if object != ObjectType::Contacts => problem(
            None,
            "match_key_object",
            format!("{object} cannot be matched by email"),
            "match companies by domain or name, and deals by a unique external-id property",
        ),
        MatchKey::CompanyName | MatchKey::CompanyDomain if object != ObjectType::Companies => problem(
            None,
            "match_key_object",
            format!("{object} cannot be matched by a company name or domain"),
            "match contacts by email and deals by a unique external-id property",
        ),
        MatchKey::UniqueProperty { property } => match by_name.get(property.as_str()) {
            None => problem(
                Some(property),
                "match_key_missing",
                format!("the portal has no {object} property `{property}` to match on"),
                "create it in HubSpot with \"unique values\" switched on, then refresh the schema",
            ),
            Some(p) if !p.unique => problem(
                Some(property),
                "match_key_not_unique",
                format!("`{property}` does not require unique values, so it cannot identify a record"),
                "use a HubSpot property created with \"unique values\" switched on",
            ),
            Some(_) => {}
        },
        _ => {}
    }
}

/// Why `field` cannot map to `property`, with the fix; `None` when the types fit.
fn type_mismatch(field: &FieldMapping, property: &PropertyDef) -> Option<(String, String)> {
    let kind = format!("{} ({})", property.value_type, property.field_type);
    let fits = match field.platform_type {
        FieldType::Boolean => {
            property.value_type == "bool" || (property.value_type == "enumeration" && is_true_false(&property.options))
        }
        FieldType::String => {
            matches!(property.value_type.as_str(), "string" | "phone_number")
                && matches!(property.field_type.as_str(), "text" | "textarea" | "phonenumber")
        }
        FieldType::Number => property.value_type == "number",
        FieldType::Date | FieldType::Datetime => matches!(property.value_type.as_str(), "date" | "datetime"),
        FieldType::Enumeration => {
            if property.value_type != "enumeration" {
                false
            } else {
                let missing: Vec<&str> =
                    field.values.iter().filter(|v| !property.options.contains(v)).map(String::as_str).collect();
                if field.values.is_empty() {
                    return Some((
                        format!("the values of enumeration `{}` are not declared", field.platform_field),
                        "list every value the platform field can take, so hubsync can check HubSpot accepts them"
                            .into(),
                    ));
                }
                if !missing.is_empty() {
                    return Some((
                        format!("`{}` has no option for {}", property.name, quoted(&missing)),
                        format!("add the options {} to `{}` in HubSpot", quoted(&missing), property.name),
                    ));
                }
                true
            }
        }
    };
    if fits {
        return None;
    }
    let wanted = match field.platform_type {
        FieldType::Boolean => "a bool property, or an enumeration whose options are exactly true and false",
        FieldType::String => "a single-line or multi-line text property",
        FieldType::Number => "a number property",
        FieldType::Date | FieldType::Datetime => "a date or datetime property",
        FieldType::Enumeration => "an enumeration property (select, radio or checkbox)",
    };
    Some((
        format!(
            "`{}` is {} on the platform but `{}` is {kind}",
            field.platform_field, field.platform_type, property.name
        ),
        format!("map it to {wanted}"),
    ))
}

fn is_true_false(options: &[String]) -> bool {
    let mut sorted: Vec<&str> = options.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted == ["false", "true"]
}

fn quoted(values: &[&str]) -> String {
    values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Direction, WriteMode};

    fn property(name: &str, value_type: &str, field_type: &str) -> PropertyDef {
        PropertyDef {
            name: name.into(),
            label: name.into(),
            value_type: value_type.into(),
            field_type: field_type.into(),
            options: vec![],
            read_only: false,
            unique: false,
        }
    }

    fn schemas() -> Schemas {
        let mut consent = property("consent", "enumeration", "booleancheckbox");
        consent.options = vec!["true".into(), "false".into()];
        let mut stage = property("lifecyclestage", "enumeration", "radio");
        stage.options = vec!["lead".into(), "customer".into()];
        let mut created = property("createdate", "datetime", "date");
        created.read_only = true;
        let mut platform_id = property("platform_id", "string", "text");
        platform_id.unique = true;
        let contacts = vec![
            property("email", "string", "text"),
            property("firstname", "string", "text"),
            property("notes", "string", "textarea"),
            property("hs_email_optout", "bool", "booleancheckbox"),
            property("num_seats", "number", "number"),
            property("renewal", "date", "date"),
            consent,
            stage,
            created,
            platform_id,
        ];
        Schemas::from([(ObjectType::Contacts, contacts)])
    }

    fn field(platform_field: &str, property: &str, platform_type: FieldType) -> FieldMapping {
        FieldMapping::out(platform_field, property, platform_type)
    }

    fn config(match_key: MatchKey, fields: Vec<FieldMapping>) -> ConnectionConfig {
        let mut config = ConnectionConfig::default();
        config.objects.insert(
            ObjectType::Contacts,
            ObjectConfig { match_key, write_mode: WriteMode::Upsert, fields, lists: vec![], relations: vec![] },
        );
        config
    }

    fn rules(config: &ConnectionConfig) -> Vec<&'static str> {
        check_config(config, &schemas()).into_iter().map(|p| p.rule).collect()
    }

    #[test]
    fn a_well_typed_config_has_no_problems() {
        let mut plan = field("plan", "lifecyclestage", FieldType::Enumeration);
        plan.values = vec!["lead".into(), "customer".into()];
        let mut created = field("signed_up", "createdate", FieldType::Datetime);
        created.direction = Direction::In;
        let fields = vec![
            field("first_name", "firstname", FieldType::String),
            field("bio", "notes", FieldType::String),
            field("opted_out", "hs_email_optout", FieldType::Boolean),
            field("consented", "consent", FieldType::Boolean),
            field("seats", "num_seats", FieldType::Number),
            field("renews_on", "renewal", FieldType::Date),
            plan,
            created,
        ];
        assert_eq!(check_config(&config(MatchKey::Email, fields), &schemas()), vec![]);
    }

    #[test]
    fn each_type_rule_is_enforced() {
        let fields = vec![
            field("seats", "firstname", FieldType::Number),
            field("flag", "lifecyclestage", FieldType::Boolean),
            field("name", "num_seats", FieldType::String),
            field("when", "notes", FieldType::Date),
        ];
        assert_eq!(rules(&config(MatchKey::Email, fields)), vec!["type_mismatch"; 4]);
    }

    #[test]
    fn enumeration_options_must_cover_the_platform_values() {
        let mut plan = field("plan", "lifecyclestage", FieldType::Enumeration);
        plan.values = vec!["lead".into(), "churned".into()];
        let problems = check_config(&config(MatchKey::Email, vec![plan]), &schemas());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].rule, "type_mismatch");
        assert!(problems[0].message.contains("`churned`"), "{}", problems[0].message);
        assert!(problems[0].fix.contains("add the options `churned`"));

        let undeclared = field("plan", "lifecyclestage", FieldType::Enumeration);
        assert_eq!(rules(&config(MatchKey::Email, vec![undeclared])), vec!["type_mismatch"]);
    }

    #[test]
    fn read_only_properties_cannot_be_written_and_computed_fields_cannot_come_in() {
        let mut computed = field("score", "num_seats", FieldType::Number);
        computed.computed = true;
        computed.direction = Direction::Both;
        let fields = vec![field("signed_up", "createdate", FieldType::Datetime), computed];
        assert_eq!(rules(&config(MatchKey::Email, fields)), vec!["read_only_target", "computed_field_inbound"]);
    }

    #[test]
    fn missing_and_doubly_mapped_properties_are_reported_with_the_property() {
        let fields = vec![
            field("a", "firstname", FieldType::String),
            field("b", "firstname", FieldType::String),
            field("c", "nickname", FieldType::String),
        ];
        let problems = check_config(&config(MatchKey::Email, fields), &schemas());
        assert_eq!(
            problems.iter().map(|p| p.rule).collect::<Vec<_>>(),
            vec!["property_mapped_twice", "property_missing"]
        );
        assert_eq!(problems[1].hubspot_property.as_deref(), Some("nickname"));
        assert!(problems[1].fix.contains("Update attributes"));
    }

    #[test]
    fn match_keys_must_identify_one_record() {
        let not_unique = MatchKey::UniqueProperty { property: "firstname".into() };
        assert_eq!(rules(&config(not_unique, vec![])), vec!["match_key_not_unique"]);
        let missing = MatchKey::UniqueProperty { property: "external_id".into() };
        assert_eq!(rules(&config(missing, vec![])), vec!["match_key_missing"]);
        assert_eq!(rules(&config(MatchKey::CompanyDomain, vec![])), vec!["match_key_object"]);
        let unique = MatchKey::UniqueProperty { property: "platform_id".into() };
        assert!(rules(&config(unique, vec![])).is_empty());
    }

    #[test]
    fn an_object_without_a_known_schema_is_a_problem() {
        let mut c = ConnectionConfig::default();
        c.objects.insert(
            ObjectType::Deals,
            ObjectConfig {
                match_key: MatchKey::Email,
                write_mode: WriteMode::Upsert,
                fields: vec![],
                lists: vec![],
                relations: vec![],
            },
        );
        assert_eq!(rules(&c), vec!["schema_unavailable"]);
    }
}
