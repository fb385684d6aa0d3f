//! Validating a summary.json against the committed schema, for both test helper modules
//! (`common` for runs of the binary, `result_fixtures` for hand-made result folders).

use serde_json::Value;

/// Panics, listing every violation, unless `doc` matches schema/summary.schema.json.
pub fn validate(doc: &Value) {
    let schema: Value =
        serde_json::from_str(include_str!("../../schema/summary.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "summary.json does not match the schema:\n{}",
        errors.join("\n")
    );
}
