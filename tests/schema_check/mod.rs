//! Validating kbench's JSON against the committed schemas (summary.json, compare's output), for
//! both test helper modules (`common` for runs of the binary, `result_fixtures` for hand-made
//! result folders).

use serde_json::Value;

/// Panics, listing every violation, unless `doc` matches schema/summary.schema.json.
pub fn validate(doc: &Value) {
    check(
        doc,
        include_str!("../../schema/summary.schema.json"),
        "summary.json",
    );
}

/// Panics, listing every violation, unless `doc` matches schema/compare.schema.json.
pub fn validate_compare(doc: &Value) {
    check(
        doc,
        include_str!("../../schema/compare.schema.json"),
        "compare's JSON",
    );
}

fn check(doc: &Value, schema: &str, what: &str) {
    let schema: Value = serde_json::from_str(schema).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match the schema:\n{}",
        errors.join("\n")
    );
}
