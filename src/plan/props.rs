//! Client properties: `k=v` flags and Java-style `.properties` files, merged in a fixed order.
//!
//! Precedence (lowest to highest): kbench defaults, the `.config` file, the convenience flags
//! (`--acks`, ...), then `--producer-props`/`--consumer-props`, as in Kafka's tools where the
//! inline properties override the file. Validation of names and values is librdkafka's job and
//! happens when a client is created (see `load::client`); this module only parses.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Ordered client properties; the `source` of each is kept for error messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Props {
    values: BTreeMap<String, String>,
    sources: BTreeMap<String, String>,
}

/// Properties whose values must never reach a result file or the console.
pub(crate) fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.contains("jaas")
        || k.ends_with(".key.pem")
        || k.contains("token")
}

/// Serialized as a plain map, with secrets redacted (summary.json is meant to be shared).
impl serde::Serialize for Props {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.values.len()))?;
        for (k, v) in &self.values {
            m.serialize_entry(k, if is_secret(k) { "[redacted]" } else { v })?;
        }
        m.end()
    }
}

impl Props {
    /// Sets `key` to `value`, remembering where it came from (a flag or a file name).
    pub fn set(&mut self, key: &str, value: &str, source: &str) {
        self.values.insert(key.to_string(), value.to_string());
        self.sources.insert(key.to_string(), source.to_string());
    }

    /// Sets `key` only if nothing set it yet.
    pub fn set_default(&mut self, key: &str, value: &str) {
        if !self.values.contains_key(key) {
            self.set(key, value, "kbench default");
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Where a property was set (a flag name, a file, or "kbench default").
    pub fn source(&self, key: &str) -> &str {
        self.sources.get(key).map(String::as_str).unwrap_or("?")
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Applies `k=v` arguments given to `flag`.
    pub fn apply_kv_args(&mut self, args: &[String], flag: &str) -> Result<()> {
        for arg in args {
            let Some((k, v)) = arg.split_once('=') else {
                bail!("{flag}: '{arg}' is not KEY=VALUE (for example {flag} linger.ms=5)");
            };
            let k = k.trim();
            if k.is_empty() {
                bail!("{flag}: '{arg}' has an empty property name");
            }
            self.set(k, v.trim(), flag);
        }
        Ok(())
    }

    /// Applies a Java `.properties` file (`k=v` or `k: v` lines, `#`/`!` comments).
    pub fn apply_file(&mut self, path: &Path, flag: &str) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{flag}: cannot read '{}'", path.display()))?;
        let source = format!("{flag} {}", path.display());
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some(split) = line.find(['=', ':']) else {
                bail!(
                    "{flag} {}: line {} is not KEY=VALUE: '{line}'",
                    path.display(),
                    n + 1
                );
            };
            let (k, v) = (line[..split].trim(), line[split + 1..].trim());
            self.set(k, v, &source);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_properties_override_file_properties() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.properties");
        std::fs::write(&f, "# comment\nlinger.ms=10\nacks: all\n\n! also comment\n").unwrap();
        let mut p = Props::default();
        p.apply_file(&f, "--producer.config").unwrap();
        p.apply_kv_args(&["linger.ms=5".into()], "--producer-props")
            .unwrap();
        assert_eq!(p.get("linger.ms"), Some("5"));
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.source("linger.ms"), "--producer-props");
    }

    #[test]
    fn fails_with_property_without_equals_sign() {
        let mut p = Props::default();
        let err = p
            .apply_kv_args(&["lingerms".into()], "--producer-props")
            .unwrap_err();
        assert!(err.to_string().contains("--producer-props"));
    }

    #[test]
    fn secrets_are_redacted_when_serialized() {
        let mut p = Props::default();
        p.set("sasl.password", "hunter2", "--producer-props");
        p.set("sasl.username", "kb", "--producer-props");
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("\"sasl.username\":\"kb\""), "{json}");
    }

    #[test]
    fn set_default_does_not_override() {
        let mut p = Props::default();
        p.set("acks", "0", "--acks");
        p.set_default("acks", "all");
        assert_eq!(p.get("acks"), Some("0"));
    }
}
