//! The OpenAPI description made exact where the route macros cannot say it:
//! every error has the one documented shape, and every status a route can
//! answer with is listed, so a client (or schemathesis in CI) can rely on
//! it. The statuses come from the layers every route shares:
//!
//! - 400: a path or query parameter that does not parse, or a bad body;
//! - 401 and 403: authentication and the role table (`access.rs`);
//! - 413 and 415: a body over the limit or not JSON.

use serde_json::{Value, json};

/// The description served at `/api/v1/openapi.json`.
pub fn exact(openapi: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(openapi).expect("the OpenAPI description serializes");
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                complete(operation);
            }
        }
    }
    for (schema, property) in [
        ("NewToken", "groups"),
        ("NewUser", "groups"),
        ("UserChange", "groups"),
    ] {
        let items = &mut doc["components"]["schemas"][schema]["properties"][property]["items"];
        if items.is_object() {
            items["pattern"] = json!(SELECTOR_PATTERN);
        }
    }
    // A backup's source and a restore's target refuse unknown fields
    // (serde's deny_unknown_fields, which the derive does not carry over
    // to tagged enums' variants).
    for schema in ["BackupSource", "RestoreTarget"] {
        if let Some(variants) = doc["components"]["schemas"][schema]["oneOf"].as_array_mut() {
            for variant in variants
                .iter_mut()
                .filter(|v| v.get("properties").is_some())
            {
                variant["additionalProperties"] = json!(false);
            }
        }
    }
    doc
}

/// A host-group selector, `key=value` (as `users::check_groups` checks).
const SELECTOR_PATTERN: &str = "^[A-Za-z0-9._/-]{1,63}=[A-Za-z0-9._/-]{1,63}$";

/// Adds the statuses the shared layers can answer with, and the error shape
/// to every error response.
fn complete(operation: &mut Value) {
    let has_params = operation["parameters"]
        .as_array()
        .is_some_and(|p| !p.is_empty());
    let has_body = operation.get("requestBody").is_some();
    let public = operation["security"].as_array().is_some_and(|s| {
        s.iter()
            .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    });
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status)
            .or_insert_with(|| json!({ "description": description }));
    };
    if has_params || has_body {
        add(
            "400",
            "A parameter or the body is malformed or out of range",
        );
    }
    if !public {
        add("401", "Not authenticated, or the token or session expired");
        add(
            "403",
            "The caller's role is too low, or a cookie request came from another site or name",
        );
    }
    if has_body {
        add("413", "The body is over the limit (64 KiB)");
        add("415", "The body is not `application/json`");
    }
    for (status, response) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && response.get("content").is_none() {
            response["content"] = json!({
                "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backup_sources_and_restore_targets_refuse_unknown_fields() {
        let (_, openapi) = super::super::api_routes();
        let doc = super::exact(&openapi);
        for schema in ["BackupSource", "RestoreTarget"] {
            let variants = doc["components"]["schemas"][schema]["oneOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{schema} is a oneOf"));
            assert!(variants.len() >= 3, "{schema}: {variants:?}");
            for v in variants {
                assert_eq!(v["additionalProperties"], false, "{schema}: {v}");
            }
        }
    }
}
