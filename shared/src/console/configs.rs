//! Reading, checking and saving a connection's config.

use crate::connect::calls::{CallError, with_token};
use crate::console::schemas;
use crate::deps::Deps;
use crate::domain::mapping::{ConfigProblem, Schemas, check_config};
use crate::domain::scopes;
use crate::domain::{Connection, ConnectionConfig, ObjectConfig, ObjectType, VersionedConfig};
use crate::http::{ApiError, Url};
use crate::hubspot::{HubSpotError, PropertyCreate};
use crate::inbound::destination::IngestPolicy;

/// The saved config, or an empty one at version 0 before the first save.
pub async fn get(deps: &Deps, connection: &Connection) -> Result<VersionedConfig, ApiError> {
    Ok(deps
        .store
        .get_config(&connection.id)
        .await?
        .unwrap_or(VersionedConfig { version: 0, config: ConnectionConfig::default() }))
}

/// Every problem of `config` against the portal's schema; nothing is saved.
pub async fn validate(
    deps: &Deps,
    connection: &Connection,
    config: &ConnectionConfig,
) -> Result<Vec<ConfigProblem>, ApiError> {
    let mut objects: Vec<ObjectType> = config.objects.keys().copied().collect();
    objects.extend(config.triggers.iter().map(|t| t.object).filter(|o| ObjectType::ALL.contains(o)));
    let associated = config.objects.values().flat_map(|o| o.fields.iter().filter_map(|f| f.from_associated));
    objects.extend(associated.filter(|o| ObjectType::ALL.contains(o)));
    objects.sort();
    objects.dedup();
    if config.options.bidirectional_counter_property.is_some() && !objects.contains(&ObjectType::Contacts) {
        objects.push(ObjectType::Contacts);
    }
    // What the connection was not granted is reported as such, and not asked of HubSpot (it
    // would only answer 403).
    let missing = scopes::missing(&scopes::needed_by(config), &connection.scopes);
    let readable = |object: &ObjectType| {
        let name = object.api_name();
        !missing.iter().any(|s| *s == format!("crm.schemas.{name}.read") || *s == format!("crm.objects.{name}.read"))
    };
    objects.retain(readable);
    let schemas = schemas::for_objects(deps, connection, &objects).await?;
    let mut problems = check_config(config, &schemas);
    problems.extend(check_counter_name(config, &schemas));
    problems.extend(check_ingest_url(deps, config));
    if !missing.iter().any(|s| s.starts_with("crm.lists.")) {
        problems.extend(check_lists(deps, connection, config).await?);
    }
    problems.extend(super::catalogue::check(deps, &connection.tenant_id, config).await?);
    problems.extend(missing_scopes(&missing));
    Ok(problems)
}

/// A config may only use what the portal granted: a scope the connection lacks would fail every
/// call that needs it. The fix is a reconnect that asks for the missing scopes.
fn missing_scopes(missing: &[String]) -> Option<ConfigProblem> {
    if missing.is_empty() {
        return None;
    }
    let mut link = Url::parse("https://hubsync.invalid/oauth/install").expect("a valid URL");
    link.query_pairs_mut().append_pair("scope", &missing.join(" "));
    let link = format!("{}?{}&return_to=<your console page>", link.path(), link.query().unwrap_or_default());
    Some(ConfigProblem {
        object: None,
        platform_field: None,
        hubspot_property: None,
        rule: "missing_scopes",
        message: format!(
            "this config needs HubSpot permissions the connection was not granted: {}",
            missing.join(", ")
        ),
        fix: format!("reconnect the portal to grant them: {link} (a portal admin approves them in HubSpot)"),
    })
}

/// A counter property the save will create must have a name HubSpot accepts for a new property.
fn check_counter_name(config: &ConnectionConfig, schemas: &Schemas) -> Option<ConfigProblem> {
    let name = config.options.bidirectional_counter_property.as_deref()?;
    let exists = schemas.get(&ObjectType::Contacts).is_some_and(|properties| properties.iter().any(|p| p.name == name));
    let creatable = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (!exists && !creatable).then(|| ConfigProblem {
        object: Some(ObjectType::Contacts),
        platform_field: None,
        hubspot_property: Some(name.to_string()),
        rule: "counter_name_invalid",
        message: format!("`{name}` is not a contact property, and HubSpot would refuse it as a new property's name"),
        fix: "name an existing number property, or a new one in lower-case letters, digits and underscores, \
              starting with a letter"
            .into(),
    })
}

/// The platform's ingest URL must be one the deployment delivers to: https, on an allowed
/// origin, not a private address (plain http only for the local runner).
fn check_ingest_url(deps: &Deps, config: &ConnectionConfig) -> Option<ConfigProblem> {
    let url = config.options.ingest_url.as_deref()?;
    let reason = IngestPolicy::from_settings(&deps.settings).check(url).err()?;
    Some(ConfigProblem {
        object: None,
        platform_field: None,
        hubspot_property: None,
        rule: "ingest_url_invalid",
        message: reason,
        fix: "give the platform's ingest endpoint as https://… on an origin the deployment allows".into(),
    })
}

/// Lists per object (as the OpenAPI document says): checking each one costs a HubSpot call.
pub const MAX_LISTS_PER_OBJECT: usize = 100;

fn too_many_lists(object: ObjectType, config: &ObjectConfig) -> Option<ConfigProblem> {
    (config.lists.len() > MAX_LISTS_PER_OBJECT).then(|| ConfigProblem {
        object: Some(object),
        platform_field: None,
        hubspot_property: None,
        rule: "too_many_lists",
        message: format!("{} lists for {object}; at most {MAX_LISTS_PER_OBJECT}", config.lists.len()),
        fix: "add records to fewer lists".into(),
    })
}

/// The lists a config adds records to must exist, hold the object, and take manual members.
async fn check_lists(
    deps: &Deps,
    connection: &Connection,
    config: &ConnectionConfig,
) -> Result<Vec<ConfigProblem>, ApiError> {
    let mut problems = Vec::new();
    for (object, object_config) in &config.objects {
        if let Some(problem) = too_many_lists(*object, object_config) {
            problems.push(problem);
            continue;
        }
        let mut checked = std::collections::HashSet::new();
        for list_id in object_config.lists.iter().filter(|id| checked.insert(*id)) {
            let found =
                with_token(deps, &connection.id, |token| async move { deps.hubspot.lists(&token).get(list_id).await })
                    .await;
            let problem = |rule: &'static str, message: String, fix: &str| ConfigProblem {
                object: Some(*object),
                platform_field: None,
                hubspot_property: None,
                rule,
                message,
                fix: fix.to_string(),
            };
            match found {
                Ok(list) if !list.processing_type.accepts_manual_changes() => problems.push(problem(
                    "list_dynamic",
                    format!(
                        "list {list_id} ({}) is {}: HubSpot maintains its members by filter",
                        list.name, list.processing_type
                    ),
                    "use a MANUAL or SNAPSHOT list",
                )),
                Ok(list) if !list.holds(*object) => problems.push(problem(
                    "list_object_mismatch",
                    format!("list {list_id} ({}) does not hold {object}", list.name),
                    "choose a list of the same object type",
                )),
                Ok(_) => {}
                Err(CallError::HubSpot(HubSpotError::NotFound(_))) => problems.push(problem(
                    "list_missing",
                    format!("list {list_id} does not exist in the portal"),
                    "create the list in HubSpot or remove it from the config",
                )),
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(problems)
}

/// Saves over the version the caller read, if the config has no problem. Enabling the
/// bidirectional flow creates its counter property in the portal first.
pub async fn save(deps: &Deps, connection: &Connection, update: &VersionedConfig) -> Result<VersionedConfig, ApiError> {
    let problems = validate(deps, connection, &update.config).await?;
    if !problems.is_empty() {
        return Err(ApiError::InvalidConfig(problems));
    }
    if let Some(counter) = &update.config.options.bidirectional_counter_property {
        ensure_counter_property(deps, connection, counter).await?;
    }
    let previous = deps.store.get_config(&connection.id).await?.map(|c| c.config);
    let version = deps.store.put_config(&connection.id, &update.config, update.version).await?;
    tracing::info!(connection = %connection.id, version, "config saved");
    crate::webhooks::subscriptions::keep_in_line_with(deps, &update.config).await;
    backfill_new_inbound_fields(deps, connection, previous.as_ref(), &update.config).await;
    Ok(VersionedConfig { version, config: update.config.clone() })
}

/// Creates the number property a HubSpot workflow increments to ask for a pull ("<Platform>
/// Changed"), unless the portal has it.
async fn ensure_counter_property(deps: &Deps, connection: &Connection, name: &str) -> Result<(), ApiError> {
    let contacts = schemas::for_objects(deps, connection, &[ObjectType::Contacts]).await?;
    if contacts.get(&ObjectType::Contacts).is_some_and(|props| props.iter().any(|p| p.name == name)) {
        return Ok(());
    }
    let property = PropertyCreate {
        name: name.to_string(),
        label: format!("{} Changed", deps.settings.platform_name),
        property_type: "number".into(),
        field_type: "number".into(),
        group_name: "contactinformation".into(),
        description: Some(format!(
            "Incremented by a HubSpot workflow to send this contact to {}.",
            deps.settings.platform_name
        )),
        options: vec![],
        has_unique_value: false,
    };
    let created = with_token(deps, &connection.id, |token| {
        let property = property.clone();
        async move { deps.hubspot.create_property(&token, ObjectType::Contacts, &property).await }
    })
    .await;
    match created {
        // Someone (another save, or a person in HubSpot) created it meanwhile: just as good.
        Ok(_) | Err(CallError::HubSpot(HubSpotError::Conflict(_))) => {}
        Err(err) => return Err(err.into()),
    }
    tracing::info!(connection = %connection.id, property = name, "created the bidirectional counter property");
    schemas::refresh(deps, connection, &[ObjectType::Contacts]).await?;
    Ok(())
}

/// A newly mapped inbound field is filled on the platform for every existing record, without
/// the customer having to ask for a full sync.
async fn backfill_new_inbound_fields(
    deps: &Deps,
    connection: &Connection,
    previous: Option<&ConnectionConfig>,
    config: &ConnectionConfig,
) {
    if !config.options.data_in_enabled || config.options.ingest_url.is_none() {
        return;
    }
    for (object, object_config) in &config.objects {
        let before = previous.and_then(|p| p.objects.get(object));
        let added: Vec<String> = object_config
            .fields
            .iter()
            .filter(|f| f.direction.comes_in())
            .filter(|f| {
                !before.is_some_and(|b| {
                    b.fields.iter().any(|old| old.direction.comes_in() && old.platform_field == f.platform_field)
                })
            })
            .map(|f| f.platform_field.clone())
            .collect();
        if added.is_empty() {
            continue;
        }
        match crate::inbound::start_full_sync(deps, connection, *object, Some(added.clone())).await {
            Ok(run) => {
                tracing::info!(connection = %connection.id, %object, fields = ?added, run = %run.run_id, "backfill started")
            }
            Err(err) => {
                tracing::warn!(connection = %connection.id, %object, error = %err, "could not start a backfill")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PropertyDef;

    fn counter(name: &str) -> ConnectionConfig {
        let mut config = ConnectionConfig::default();
        config.options.bidirectional_counter_property = Some(name.to_string());
        config
    }

    #[test]
    fn a_counter_property_to_create_needs_a_name_hubspot_accepts() {
        let existing = PropertyDef {
            name: "Legacy Counter".into(),
            label: "Legacy".into(),
            value_type: "number".into(),
            field_type: "number".into(),
            options: vec![],
            read_only: false,
            unique: false,
        };
        let schemas = Schemas::from([(ObjectType::Contacts, vec![existing])]);

        for refused in ["", "Acme Changed", "1st_change", "acme-changed"] {
            let problem = check_counter_name(&counter(refused), &schemas).expect(refused);
            assert_eq!(problem.rule, "counter_name_invalid");
        }
        assert!(check_counter_name(&counter("acme_changed_2"), &schemas).is_none());
        assert!(check_counter_name(&counter("Legacy Counter"), &schemas).is_none(), "it exists already");
        assert!(check_counter_name(&ConnectionConfig::default(), &schemas).is_none());
    }

    #[test]
    fn more_lists_than_documented_are_refused_before_hubspot_is_asked_about_each() {
        let mut contacts = ObjectConfig {
            match_key: crate::domain::MatchKey::Email,
            write_mode: crate::domain::WriteMode::Upsert,
            fields: vec![],
            lists: (0..MAX_LISTS_PER_OBJECT).map(|id| id.to_string()).collect(),
            relations: vec![],
        };
        assert!(too_many_lists(ObjectType::Contacts, &contacts).is_none());
        contacts.lists.push("one more".into());
        let problem = too_many_lists(ObjectType::Contacts, &contacts).expect("a problem");
        assert_eq!(problem.rule, "too_many_lists");
        assert_eq!(problem.message, "101 lists for contacts; at most 100");
    }
}
