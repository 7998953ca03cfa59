//! The portal's property schemas: read from HubSpot on demand ("Update attributes"), cached in
//! the store for config checks.

use std::collections::BTreeMap;

use crate::connect::calls::with_token;
use crate::deps::Deps;
use crate::domain::mapping::Schemas;
use crate::domain::{Connection, ObjectType, PropertyDef, PropertySchema};
use crate::http::ApiError;
use crate::hubspot::Property;

/// What mapping checks need of a HubSpot property.
pub fn property_def(property: &Property) -> PropertyDef {
    PropertyDef {
        name: property.name.clone(),
        label: property.label.clone(),
        value_type: property.property_type.clone(),
        field_type: property.field_type.clone(),
        options: property.options.iter().map(|o| o.value.clone()).collect(),
        read_only: property.is_read_only(),
        unique: property.has_unique_value,
    }
}

/// Reads the objects' properties from HubSpot and caches them.
pub async fn refresh(
    deps: &Deps,
    connection: &Connection,
    objects: &[ObjectType],
) -> Result<BTreeMap<ObjectType, PropertySchema>, ApiError> {
    let mut fresh = BTreeMap::new();
    for &object in objects {
        let properties =
            with_token(deps, &connection.id, |token| async move { deps.hubspot.list_properties(&token, object).await })
                .await?;
        let schema = PropertySchema {
            connection_id: connection.id.clone(),
            object_type: object,
            properties: properties.iter().map(property_def).collect(),
            fetched_at: deps.clock.now(),
        };
        deps.store.put_schema(&schema).await?;
        fresh.insert(object, schema);
    }
    Ok(fresh)
}

/// The cached schemas of every object.
pub async fn cached(deps: &Deps, connection: &Connection) -> Result<BTreeMap<ObjectType, PropertySchema>, ApiError> {
    let mut schemas = BTreeMap::new();
    for object in ObjectType::ALL {
        if let Some(schema) = deps.store.get_schema(&connection.id, object).await? {
            schemas.insert(object, schema);
        }
    }
    Ok(schemas)
}

/// The schemas of `objects` for config checks: from the cache, fetching what is not cached yet.
pub async fn for_objects(deps: &Deps, connection: &Connection, objects: &[ObjectType]) -> Result<Schemas, ApiError> {
    let mut schemas = Schemas::new();
    let mut missing = Vec::new();
    for &object in objects {
        match deps.store.get_schema(&connection.id, object).await? {
            Some(schema) => {
                schemas.insert(object, schema.properties);
            }
            None => missing.push(object),
        }
    }
    for (object, schema) in refresh(deps, connection, &missing).await? {
        schemas.insert(object, schema.properties);
    }
    Ok(schemas)
}
