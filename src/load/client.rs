//! Building librdkafka clients from resolved properties, and turning librdkafka's complaints
//! about a property into errors that name the flag or file it came from.

use anyhow::anyhow;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;

use crate::plan::props::Props;

/// A `ClientConfig` with `bootstrap.servers` and every property of `props`.
pub fn client_config(bootstrap: &str, props: &Props) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for (k, v) in props.iter() {
        cfg.set(k, v);
    }
    // librdkafka's own log goes through `log`; keep it at warnings unless RUST_LOG asks.
    cfg.set_log_level(RDKafkaLogLevel::Warning);
    cfg
}

/// Explains a client creation failure: librdkafka says which property is unknown or invalid;
/// we add where the user set it.
pub fn explain_create_error(e: KafkaError, props: &Props, what: &str) -> anyhow::Error {
    let text = e.to_string();
    let mentions = |k: &str| {
        ["\"", "`", " ", "'"]
            .iter()
            .any(|q| text.contains(&format!("{q}{k}{q}")))
            || text.contains(&format!("{k}:"))
    };
    let culprit = props.iter().map(|(k, _)| k).find(|k| mentions(k));
    match culprit {
        Some(k) => anyhow!(
            "invalid {what} property '{k}={}' (set by {}): {text}. See librdkafka's CONFIGURATION.md for valid names and values",
            props.get(k).unwrap_or(""),
            props.source(k)
        ),
        None => anyhow!("invalid {what} configuration: {text}"),
    }
}
