//! Property definitions: HubSpot's defaults for each object type, the Properties API, and the
//! validation every record write goes through (the per-type rules HubSpot applies).

use std::collections::BTreeMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::objects::{object_type, parse_json};
use crate::state::{ObjectType, Sim, iso};

const TYPES: &[&str] = &["bool", "date", "datetime", "enumeration", "number", "phone_number", "string"];
const FIELD_TYPES: &[&str] = &[
    "booleancheckbox",
    "calculation_equation",
    "checkbox",
    "date",
    "file",
    "html",
    "number",
    "phonenumber",
    "radio",
    "select",
    "text",
    "textarea",
];

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    pub label: String,
    pub value: String,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A property definition, as `GET /crm/v3/properties/{objectType}` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PropertyDef {
    pub name: String,
    pub label: String,
    pub property_type: String,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub options: Vec<PropertyOption>,
    pub display_order: i64,
    pub has_unique_value: bool,
    pub hubspot_defined: bool,
    /// HubSpot computes the value (`calculation_*` field types); never writable.
    pub calculated: bool,
    pub read_only_value: bool,
    pub read_only_definition: bool,
    pub hidden: bool,
    pub form_field: bool,
    pub archived: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PropertyDef {
    fn hubspot(name: &str, label: &str, property_type: &str, field_type: &str, group: &str) -> PropertyDef {
        PropertyDef {
            name: name.into(),
            label: label.into(),
            property_type: property_type.into(),
            field_type: field_type.into(),
            group_name: group.into(),
            description: String::new(),
            options: Vec::new(),
            display_order: -1,
            has_unique_value: false,
            hubspot_defined: true,
            calculated: false,
            read_only_value: false,
            read_only_definition: true,
            hidden: false,
            form_field: field_type != "calculation_equation",
            archived: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn unique(mut self) -> PropertyDef {
        self.has_unique_value = true;
        self
    }

    fn read_only(mut self) -> PropertyDef {
        self.read_only_value = true;
        self.form_field = false;
        self
    }

    fn calculated(mut self) -> PropertyDef {
        self.calculated = true;
        self.read_only()
    }

    fn options(mut self, options: &[(&str, &str)]) -> PropertyDef {
        self.options = options
            .iter()
            .enumerate()
            .map(|(i, (value, label))| PropertyOption {
                label: label.to_string(),
                value: value.to_string(),
                hidden: false,
                display_order: i as i64,
                description: None,
            })
            .collect();
        self
    }

    /// A property the portal's admins created (not HubSpot-defined).
    fn custom(mut self) -> PropertyDef {
        self.hubspot_defined = false;
        self.read_only_definition = false;
        self
    }

    pub fn is_writable(&self) -> bool {
        !self.read_only_value && !self.calculated
    }

    pub fn to_json(&self) -> Value {
        let mut property = json!({
            "name": self.name,
            "label": self.label,
            "type": self.property_type,
            "fieldType": self.field_type,
            "groupName": self.group_name,
            "description": self.description,
            "options": self.options,
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": false,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "hubspotDefined": self.hubspot_defined,
            "formField": self.form_field,
            "archived": self.archived,
            "dataSensitivity": "non_sensitive",
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.read_only_definition,
                "readOnlyValue": self.read_only_value,
            },
        });
        if self.field_type == "calculation_equation" {
            property["calculationFormula"] = json!("closedate - createdate");
        }
        property
    }
}

const LIFECYCLE_STAGES: &[(&str, &str)] = &[
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];

/// HubSpot's default properties (a representative subset with their real types), plus a few
/// custom ones a portal typically has, so every type and field type is represented.
pub fn default_properties(object_type: ObjectType) -> Vec<PropertyDef> {
    use PropertyDef as P;
    let group = match object_type {
        ObjectType::Contacts => "contactinformation",
        ObjectType::Companies => "companyinformation",
        ObjectType::Deals => "dealinformation",
        ObjectType::LineItems => "lineiteminformation",
    };
    let text = |name: &str, label: &str| P::hubspot(name, label, "string", "text", group);
    let number = |name: &str, label: &str| P::hubspot(name, label, "number", "number", group);
    let mut properties = vec![
        P::hubspot("createdate", "Create Date", "datetime", "date", group).read_only(),
        P::hubspot("hs_object_id", "Record ID", "number", "number", group).read_only(),
        P::hubspot(object_type.modified_property(), "Last Modified Date", "datetime", "date", group).read_only(),
    ];
    properties.extend(match object_type {
        ObjectType::Contacts => vec![
            text("email", "Email").unique(),
            text("firstname", "First Name"),
            text("lastname", "Last Name"),
            text("phone", "Phone Number"),
            text("mobilephone", "Mobile Phone Number"),
            text("company", "Company Name"),
            text("website", "Website URL"),
            text("jobtitle", "Job Title"),
            text("city", "City"),
            text("country", "Country/Region"),
            text("date_of_birth", "Date of birth"),
            number("num_employees", "Number of Employees"),
            P::hubspot("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", group).options(LIFECYCLE_STAGES),
            P::hubspot("hs_lead_status", "Lead Status", "enumeration", "select", group).options(&[
                ("NEW", "New"),
                ("OPEN", "Open"),
                ("IN_PROGRESS", "In Progress"),
                ("OPEN_DEAL", "Open Deal"),
                ("UNQUALIFIED", "Unqualified"),
                ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
                ("CONNECTED", "Connected"),
                ("BAD_TIMING", "Bad Timing"),
            ]),
            P::hubspot("hs_buying_role", "Buying Role", "enumeration", "checkbox", group).options(&[
                ("BUDGET_HOLDER", "Budget Holder"),
                ("CHAMPION", "Champion"),
                ("DECISION_MAKER", "Decision Maker"),
                ("END_USER", "End User"),
                ("EXECUTIVE_SPONSOR", "Executive Sponsor"),
                ("INFLUENCER", "Influencer"),
                ("OTHER", "Other"),
            ]),
            P::hubspot("hs_email_optout", "Unsubscribed from all email", "bool", "booleancheckbox", group)
                .options(&[("true", "Yes"), ("false", "No")]),
            P::hubspot("hs_analytics_num_visits", "Number of Sessions", "number", "number", group).calculated(),
            P::hubspot("renewal_date", "Renewal Date", "date", "date", group).custom(),
        ],
        ObjectType::Companies => vec![
            text("name", "Company name"),
            text("domain", "Company Domain Name"),
            text("website", "Website URL"),
            text("phone", "Phone Number"),
            text("city", "City"),
            P::hubspot("industry", "Industry", "enumeration", "select", group).options(&[
                ("ACCOUNTING", "Accounting"),
                ("COMPUTER_SOFTWARE", "Computer Software"),
                ("FINANCIAL_SERVICES", "Financial Services"),
                ("HOSPITAL_HEALTH_CARE", "Hospital & Health Care"),
                ("INFORMATION_TECHNOLOGY_AND_SERVICES", "Information Technology and Services"),
                ("MARKETING_AND_ADVERTISING", "Marketing and Advertising"),
                ("RETAIL", "Retail"),
            ]),
            number("numberofemployees", "Number of Employees"),
            number("annualrevenue", "Annual Revenue"),
            P::hubspot("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", group).options(LIFECYCLE_STAGES),
            P::hubspot("num_associated_contacts", "Number of Associated Contacts", "number", "number", group)
                .calculated(),
        ],
        ObjectType::Deals => vec![
            text("dealname", "Deal Name"),
            number("amount", "Amount"),
            P::hubspot("closedate", "Close Date", "datetime", "date", group),
            P::hubspot("pipeline", "Pipeline", "enumeration", "select", group)
                .options(&[("default", "Sales Pipeline")]),
            P::hubspot("dealstage", "Deal Stage", "enumeration", "radio", group).options(&[
                ("appointmentscheduled", "Appointment Scheduled"),
                ("qualifiedtobuy", "Qualified To Buy"),
                ("presentationscheduled", "Presentation Scheduled"),
                ("decisionmakerboughtin", "Decision Maker Bought-In"),
                ("contractsent", "Contract Sent"),
                ("closedwon", "Closed Won"),
                ("closedlost", "Closed Lost"),
            ]),
            P::hubspot("dealtype", "Deal Type", "enumeration", "radio", group)
                .options(&[("newbusiness", "New Business"), ("existingbusiness", "Existing Business")]),
            P::hubspot("days_to_close", "Days to close", "number", "calculation_equation", group).calculated(),
        ],
        ObjectType::LineItems => vec![
            text("name", "Name"),
            number("price", "Unit price"),
            number("quantity", "Quantity"),
            number("hs_product_id", "Product ID"),
            P::hubspot("amount", "Net price", "number", "calculation_equation", group).calculated(),
        ],
    });
    for (i, property) in properties.iter_mut().enumerate() {
        property.display_order = i as i64;
    }
    properties
}

/// One invalid value, reported the way HubSpot does (`error` code + message).
#[derive(Debug, Clone)]
pub struct PropertyError {
    pub name: String,
    pub code: &'static str,
    pub message: String,
}

/// Checks the values of a write against the definitions and normalises them (strings; `""`
/// clears). `allow_read_only` is for seeding data that "was already there".
pub fn validate(
    definitions: &[PropertyDef],
    input: &Map<String, Value>,
    allow_read_only: bool,
) -> Result<BTreeMap<String, String>, Vec<PropertyError>> {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, raw) in input {
        let error = |code: &'static str, message: String| PropertyError { name: name.clone(), code, message };
        let Some(definition) = definitions.iter().find(|d| &d.name == name && !d.archived) else {
            problems.push(error("PROPERTY_DOESNT_EXIST", format!("Property \"{name}\" does not exist")));
            continue;
        };
        if !definition.is_writable() && !allow_read_only {
            problems
                .push(error("READ_ONLY_VALUE", format!("{name} is a read only property; its value cannot be set.")));
            continue;
        }
        let value = match raw {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            other => {
                problems.push(error("INVALID_PROPERTY_VALUE", format!("{other} is not a valid value for {name}")));
                continue;
            }
        };
        match check_value(definition, &value) {
            Ok(normalised) => {
                values.insert(name.clone(), normalised);
            }
            Err((code, message)) => problems.push(error(code, message)),
        }
    }
    if problems.is_empty() { Ok(values) } else { Err(problems) }
}

fn check_value(definition: &PropertyDef, value: &str) -> Result<String, (&'static str, String)> {
    if value.is_empty() {
        return Ok(String::new());
    }
    let name = &definition.name;
    let trimmed = value.trim();
    match definition.property_type.as_str() {
        "number" => match trimmed.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(trimmed.to_string()),
            _ => Err(("INVALID_INTEGER", format!("{value} is not a valid number for property {name}"))),
        },
        "bool" => match trimmed.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => Ok(b.to_string()),
            _ => Err((
                "INVALID_BOOLEAN",
                format!("{value} is not a valid boolean for property {name}: use true or false"),
            )),
        },
        "date" => match trimmed.parse::<i64>() {
            Ok(ms) if ms.rem_euclid(86_400_000) == 0 => Ok(trimmed.to_string()),
            Ok(_) => Err(("INVALID_DATE", format!("{value} is not at midnight UTC; {name} is a date property"))),
            Err(_) if is_calendar_date(trimmed) => Ok(trimmed.to_string()),
            Err(_) => Err(("INVALID_DATE", format!("{value} is not a valid date for property {name}"))),
        },
        "datetime" => {
            let valid = trimmed.parse::<i64>().is_ok()
                || OffsetDateTime::parse(trimmed, &Rfc3339).is_ok()
                || is_calendar_date(trimmed);
            if valid {
                Ok(trimmed.to_string())
            } else {
                Err(("INVALID_DATETIME", format!("{value} is not a valid datetime for property {name}")))
            }
        }
        "enumeration" => {
            let allowed = |v: &str| definition.options.iter().any(|o| o.value == v);
            let chosen: Vec<&str> =
                if definition.field_type == "checkbox" { value.split(';').collect() } else { vec![value] };
            match chosen.iter().find(|v| !allowed(v)) {
                None => Ok(value.to_string()),
                Some(bad) => {
                    let options: Vec<&str> = definition.options.iter().map(|o| o.value.as_str()).collect();
                    Err(("INVALID_OPTION", format!("{bad} was not one of the allowed options: {options:?}")))
                }
            }
        }
        _ if name == "email" => {
            let email = trimmed.to_lowercase();
            match email.split_once('@') {
                Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.ends_with('.') => {
                    Ok(email)
                }
                _ => Err(("INVALID_EMAIL", format!("Email address {value} is invalid"))),
            }
        }
        _ => Ok(value.to_string()),
    }
}

fn is_calendar_date(value: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &format).is_ok()
}

// The Properties API.

fn require_read(caller: &Caller, object_type: ObjectType) -> Result<(), ApiError> {
    caller.require(&[format!("crm.schemas.{}.read", object_type.name()), object_type.read_scope()])
}

fn require_write(caller: &Caller, object_type: ObjectType) -> Result<(), ApiError> {
    caller.require(&[format!("crm.schemas.{}.write", object_type.name())])
}

fn property_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Unable to find property with name: {name}"))
}

pub async fn list(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    require_read(&caller, object_type)?;
    let state = sim.lock();
    let hub = &state.portals[&caller.hub_id].hub;
    let results: Vec<Value> =
        hub.properties(object_type).iter().filter(|p| !p.archived).map(PropertyDef::to_json).collect();
    Ok(axum::Json(json!({ "results": results })).into_response())
}

pub async fn get(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((object, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    require_read(&caller, object_type)?;
    let state = sim.lock();
    let property =
        state.portals[&caller.hub_id].hub.property(object_type, &name).ok_or_else(|| property_not_found(&name))?;
    Ok(axum::Json(property.to_json()).into_response())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PropertyInput {
    name: Option<String>,
    label: Option<String>,
    #[serde(rename = "type")]
    property_type: Option<String>,
    field_type: Option<String>,
    group_name: Option<String>,
    description: Option<String>,
    options: Option<Vec<PropertyOption>>,
    display_order: Option<i64>,
    has_unique_value: Option<bool>,
    hidden: Option<bool>,
    form_field: Option<bool>,
}

fn input(body: &Bytes) -> Result<PropertyInput, ApiError> {
    serde_json::from_value(parse_json(body)?).map_err(|e| ApiError::bad_request(format!("Invalid input JSON: {e}")))
}

fn check_types(property_type: &str, field_type: &str, options: &[PropertyOption]) -> Result<(), ApiError> {
    if !TYPES.contains(&property_type) {
        return Err(ApiError::bad_request(format!(
            "{property_type} is not a valid property type; use one of {TYPES:?}"
        )));
    }
    if !FIELD_TYPES.contains(&field_type) {
        return Err(ApiError::bad_request(format!(
            "{field_type} is not a valid field type; use one of {FIELD_TYPES:?}"
        )));
    }
    if property_type == "enumeration" && options.is_empty() {
        return Err(ApiError::bad_request("Enumeration properties must have at least one option"));
    }
    Ok(())
}

pub async fn create(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    require_write(&caller, object_type)?;
    let input = input(&body)?;
    let (Some(name), Some(label), Some(property_type), Some(field_type), Some(group_name)) =
        (input.name, input.label, input.property_type, input.field_type, input.group_name)
    else {
        return Err(ApiError::bad_request(
            "Invalid input JSON: name, label, type, fieldType and groupName are required",
        ));
    };
    let well_formed = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(ApiError::bad_request(format!(
            "Property name {name} is invalid: use lower-case letters, digits and underscores, starting with a letter"
        )));
    }
    let options = input.options.unwrap_or_default();
    check_types(&property_type, &field_type, &options)?;

    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    if hub.property(object_type, &name).is_some() {
        return Err(ApiError::conflict(format!("A property named '{name}' already exists.")));
    }
    let now = sim.now_ms();
    let property = PropertyDef {
        name,
        label,
        property_type,
        field_type,
        group_name,
        description: input.description.unwrap_or_default(),
        options,
        display_order: input.display_order.unwrap_or(-1),
        has_unique_value: input.has_unique_value.unwrap_or(false),
        hubspot_defined: false,
        calculated: false,
        read_only_value: false,
        read_only_definition: false,
        hidden: input.hidden.unwrap_or(false),
        form_field: input.form_field.unwrap_or(false),
        archived: false,
        created_at: now,
        updated_at: now,
    };
    let json = property.to_json();
    hub.add_property(object_type, property);
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

pub async fn update(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((object, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    require_write(&caller, object_type)?;
    let input = input(&body)?;
    let mut state = sim.lock();
    let properties = state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub.properties_mut(object_type);
    let property =
        properties.iter_mut().find(|p| p.name == name && !p.archived).ok_or_else(|| property_not_found(&name))?;
    if property.read_only_definition {
        return Err(ApiError::bad_request(format!("{name} is a HubSpot-defined property and cannot be modified")));
    }
    let mut changed = property.clone();
    if let Some(label) = input.label {
        changed.label = label;
    }
    if let Some(t) = input.property_type {
        changed.property_type = t;
    }
    if let Some(t) = input.field_type {
        changed.field_type = t;
    }
    if let Some(group) = input.group_name {
        changed.group_name = group;
    }
    if let Some(description) = input.description {
        changed.description = description;
    }
    if let Some(options) = input.options {
        changed.options = options;
    }
    if let Some(order) = input.display_order {
        changed.display_order = order;
    }
    if let Some(hidden) = input.hidden {
        changed.hidden = hidden;
    }
    if let Some(form_field) = input.form_field {
        changed.form_field = form_field;
    }
    check_types(&changed.property_type, &changed.field_type, &changed.options)?;
    changed.updated_at = sim.now_ms();
    *property = changed;
    Ok(axum::Json(property.to_json()).into_response())
}

pub async fn archive(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((object, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    require_write(&caller, object_type)?;
    let mut state = sim.lock();
    let properties = state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub.properties_mut(object_type);
    if let Some(property) = properties.iter_mut().find(|p| p.name == name && !p.archived) {
        if property.hubspot_defined {
            return Err(ApiError::bad_request(format!("{name} is a HubSpot-defined property and cannot be archived")));
        }
        property.archived = true;
        property.updated_at = sim.now_ms();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /crm/v3/properties/{objectType}/groups`: the one default group per type, plus any
/// group a created property named.
pub async fn groups(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    require_read(&caller, object_type)?;
    let state = sim.lock();
    let mut names: Vec<String> =
        state.portals[&caller.hub_id].hub.properties(object_type).iter().map(|p| p.group_name.clone()).collect();
    names.sort();
    names.dedup();
    let results: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| json!({ "name": name, "label": name, "displayOrder": i, "archived": false }))
        .collect();
    Ok(axum::Json(json!({ "results": results })).into_response())
}
