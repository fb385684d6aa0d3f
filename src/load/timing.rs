//! The client settings that decide how long a failover takes (`reference/ha_failover.md`
//! §1.6): their effective values (the user's, else librdkafka's default) and the librdkafka
//! version, recorded in summary.json's config, since numbers without them mislead (a stalled
//! leader costs `socket.timeout.ms`).

use std::ffi::{CStr, CString};

use serde_json::{Map, Value};

use crate::plan::props::Props;

/// The settings recorded.
pub const TIMING_KEYS: [&str; 9] = [
    "socket.timeout.ms",
    "message.timeout.ms",
    "request.timeout.ms",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "reconnect.backoff.max.ms",
    "topic.metadata.refresh.interval.ms",
    "topic.metadata.refresh.fast.interval.ms",
    "metadata.max.age.ms",
];

/// librdkafka's version, e.g. "2.12.1".
pub fn librdkafka_version() -> String {
    // SAFETY: returns a static, NUL-terminated string.
    unsafe { CStr::from_ptr(rdkafka::bindings::rd_kafka_version_str()) }
        .to_string_lossy()
        .into_owned()
}

/// `{key: value}` for every timing key: set in `props`, else librdkafka's default.
pub fn effective(props: &Props) -> Value {
    let defaults = Defaults::new();
    let mut m = Map::new();
    for k in TIMING_KEYS {
        let v = props.get(k).map(str::to_string).or_else(|| defaults.get(k));
        m.insert(k.to_string(), v.map_or(Value::Null, Value::String));
    }
    Value::Object(m)
}

/// Fresh librdkafka configurations (global and topic), read for their defaults.
struct Defaults {
    global: *mut rd::rd_kafka_conf_t,
    topic: *mut rd::rd_kafka_topic_conf_t,
}

use rdkafka::bindings as rd;

impl Defaults {
    fn new() -> Self {
        // SAFETY: creates two configuration objects, freed in drop.
        unsafe {
            Defaults {
                global: rd::rd_kafka_conf_new(),
                topic: rd::rd_kafka_topic_conf_new(),
            }
        }
    }

    /// A global property, else a topic one (`message.timeout.ms` is per topic).
    fn get(&self, key: &str) -> Option<String> {
        let name = CString::new(key).ok()?;
        let mut buf = [0 as std::ffi::c_char; 128];
        let mut size = buf.len();
        // SAFETY: both configurations are alive; librdkafka writes at most `size` bytes.
        let mut r = unsafe {
            rd::rd_kafka_conf_get(self.global, name.as_ptr(), buf.as_mut_ptr(), &mut size)
        };
        if r != rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
            size = buf.len();
            // SAFETY: as above.
            r = unsafe {
                rd::rd_kafka_topic_conf_get(self.topic, name.as_ptr(), buf.as_mut_ptr(), &mut size)
            };
        }
        if r != rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
            return None;
        }
        // SAFETY: on success the buffer holds a NUL-terminated string.
        Some(
            unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned(),
        )
    }
}

impl Drop for Defaults {
    fn drop(&mut self) {
        // SAFETY: created in `new` and destroyed once each.
        unsafe {
            rd::rd_kafka_conf_destroy(self.global);
            rd::rd_kafka_topic_conf_destroy(self.topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_librdkafka_and_user_values_win() {
        let mut p = Props::default();
        p.set("socket.timeout.ms", "10000", "--producer-props");
        let v = effective(&p);
        assert_eq!(v["socket.timeout.ms"], "10000");
        assert_eq!(v["message.timeout.ms"], "300000");
        assert_eq!(v["retry.backoff.max.ms"], "1000");
        assert!(librdkafka_version().starts_with("2."));
    }
}
