//! `kbench run --omb WORKLOAD.yaml [--omb-driver DRIVER.yaml]`: an OpenMessaging Benchmark
//! (OMB) workload file, unchanged, mapped to a profile tree that then takes `--set` overrides
//! and runs like a profile. What cannot map is an error naming the file, the field and what is
//! allowed; nothing is silently dropped except where noted below.
//!
//! | OMB workload field | profile | notes |
//! |---|---|---|
//! | `name` | `name` (a folder-safe slug), `description` (the original) | the topic is `omb-<slug>` |
//! | `topics` | — | must be 1: a kbench run drives one topic |
//! | `partitionsPerTopic` | `target.partitions` | ≥ 1 |
//! | `messageSize` | `workload.record_size` | ≥ 36 (the kbench stamp) |
//! | `useRandomizedPayloads`, `randomBytesRatio` | `workload.payload_random_ratio` | the same "random head, zero tail" values; OMB's default ratio is 0 |
//! | `randomizedPayloadPoolSize` | — | kbench sizes its own pool (see `load::payload`) |
//! | `payloadFile` | `workload.payload_file` + `payload_delimiter` | see below |
//! | `keyDistributor` | `workload.keys` | `NO_KEY` → `none`, `KEY_ROUND_ROBIN` → `round-robin:10000`, `RANDOM_NANO` → `uniform:10000` (OMB's 10,000 keys) |
//! | `subscriptionsPerTopic` | `mode` | 0 → `produce`, 1 → `e2e`, more → error |
//! | `consumerPerSubscription` | `workload.consumers` | ≥ 1 when there is a subscription |
//! | `producersPerTopic` | `workload.producers` | ≥ 1 |
//! | `producerRate` > 0 | `[[phases]]` `benchmark` at that rate for `testDurationMinutes` | |
//! | `producerRate` = 0 | `[find_max_rate]` + thresholds | see below |
//! | `testDurationMinutes` | the phase duration; the max-rate trial length | ≥ 1 |
//! | `warmupDurationMinutes` | `warmup` | OMB's default is 1; 0 = none |
//! | `consumerBacklogSizeGB` > 0 | phases `build` (consumers paused), `drain`, `steady` | see below |
//! | `backlogDrainRatio` | a `max_lag` threshold on the `steady` phase | see below |
//! | `logIntervalMillis` | `reporting_interval` | |
//!
//! | OMB Kafka driver field | profile |
//! |---|---|
//! | `name` | `description` |
//! | `driverClass` | must be OMB's Kafka driver |
//! | `replicationFactor` | `target.replication_factor` |
//! | `commonConfig` | `producer_props` and `consumer_props`; `bootstrap.servers` → `target.bootstrap_server` |
//! | `producerConfig`, `consumerConfig` | `producer_props`, `consumer_props` (override `commonConfig`) |
//! | `topicConfig` | only `min.insync.replicas`, which is ignored (see below) |
//! | `reset` | ignored: kbench creates its topic when missing and never deletes topics |
//!
//! Decisions:
//! * **payloadFile.** OMB sends the whole file as the value of every message and refuses a
//!   file whose length is not `messageSize` ("Payload length mismatch"); so does this mapping.
//!   kbench splits a payload file by a delimiter, so the delimiter is set to a string that
//!   does not occur in the file: the file is one payload. kbench prepends its 36-byte stamp
//!   (send time, sequence) to file payloads, so **records are `messageSize` + 36 bytes**,
//!   noted in the description. The path is looked up as OMB does, relative to the working
//!   directory, then next to the workload file and in its parent (OMB's `workloads/` and
//!   `payload/` folders). `useRandomizedPayloads: true` ignores the file, as OMB does.
//! * **Max sustainable rate.** OMB's `RateController` never stops: every 3 s it ramps the rate
//!   up (doubling at most) while the receive backlog (published − received) and the publish
//!   backlog (scheduled − published) stay under 1000 records, and ramps down otherwise; the
//!   answer is the publish-rate time series. kbench instead runs separate trials of a fixed
//!   rate, doubling from OMB's start rate of 10,000/s, then bisecting to 5%, and reports the
//!   knee. A trial holds when `max_lag <= 1000` (OMB's receive-backlog limit, as kbench's
//!   sampled consumer lag), `send_delay.p99 < 100ms` (OMB's publish-backlog limit of 1000
//!   records, taken as time behind schedule at the start rate: 1000 / 10,000/s) and
//!   `consume.lost == 0`. A trial lasts `testDurationMinutes` / 12 (at least 10 s) after
//!   its own warm-up of `warmupDurationMinutes`: each rate is warmed up, where OMB warms up
//!   once.
//! * **Backlog.** OMB pauses the consumers until `consumerBacklogSizeGB` × 2^30 bytes of
//!   `messageSize` records wait, resumes them, waits until the backlog is under
//!   max(1000, (1 − backlogDrainRatio) × backlog), then runs `testDurationMinutes` more.
//!   kbench phases are timed, so three phases at `producerRate`: `build` (consumers paused)
//!   lasts backlog records / rate; `drain` (consumers resumed, producers going on) lasts
//!   `testDurationMinutes`, as does `steady`, whose threshold `max_lag <= L` (L: OMB's
//!   drained level) says whether the backlog was drained in time. OMB would instead wait, forever if
//!   the backlog never drains (OMB #334). `backlogDrainRatio: 0` (OMB's "best effort") adds
//!   no threshold. kbench counts a consumed record in the phase that produced it, so the
//!   backlog's records and their waiting time show in `build`'s end-to-end latency, and the
//!   drain itself in the lag over time (timeseries.csv, the report).
//! * **topicConfig.** The profile cannot set topic configs. `min.insync.replicas` (the only
//!   one in OMB's Kafka drivers) does not change a healthy run's performance (acks=all waits
//!   for the whole ISR either way), so it is ignored; any other topic config is an error that
//!   points to creating the topic beforehand with `target.create_topic = false`.
//! * **Java-only client properties.** `default.api.timeout.ms` and `request.timeout.ms` are
//!   timeouts of the Java clients' calls (OMB's drivers raise them to 20 minutes); librdkafka
//!   has no such call timeout (its `request.timeout.ms` is the producer's ack timeout, at
//!   most 15 minutes), so they are not passed on, and the description says so.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use toml::{Table, Value};

/// OMB's key pool size (`KeyDistributor.UNIQUE_COUNT`).
const OMB_KEYS: u32 = 10_000;
/// The kbench stamp every record starts with.
const STAMP_LEN: i64 = crate::load::stamp::STAMP_LEN as i64;
/// OMB's `RateController` start rate and backlog limits.
const OMB_START_RATE: f64 = 10_000.0;
const OMB_BACKLOG_LIMIT: u64 = 1_000;
/// The search's ceiling: the highest rate OMB's workload generator tool accepts.
const MAX_RATE: f64 = 10_000_000.0;
const MAX_TRIALS: u64 = 12;
const MIN_TRIAL_SECS: u64 = 10;
/// The OMB Kafka driver's class; other drivers (Pulsar, RabbitMQ, ...) cannot map.
const KAFKA_DRIVER: &str = "io.openmessaging.benchmark.driver.kafka.KafkaBenchmarkDriver";
/// Java client call timeouts with no librdkafka counterpart (see the module doc).
const JAVA_ONLY_PROPS: [&str; 2] = ["default.api.timeout.ms", "request.timeout.ms"];

const WORKLOAD_FIELDS: [&str; 18] = [
    "name",
    "topics",
    "partitionsPerTopic",
    "keyDistributor",
    "messageSize",
    "useRandomizedPayloads",
    "randomBytesRatio",
    "randomizedPayloadPoolSize",
    "payloadFile",
    "subscriptionsPerTopic",
    "consumerPerSubscription",
    "producersPerTopic",
    "producerRate",
    "consumerBacklogSizeGB",
    "backlogDrainRatio",
    "testDurationMinutes",
    "warmupDurationMinutes",
    "logIntervalMillis",
];

const DRIVER_FIELDS: [&str; 8] = [
    "name",
    "driverClass",
    "replicationFactor",
    "reset",
    "topicConfig",
    "commonConfig",
    "producerConfig",
    "consumerConfig",
];

/// The fields of OMB's `Workload.java`; absent ones take Java's defaults.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Workload {
    name: Option<String>,
    topics: Option<i64>,
    partitions_per_topic: Option<i64>,
    key_distributor: Option<String>,
    message_size: Option<i64>,
    use_randomized_payloads: Option<bool>,
    random_bytes_ratio: Option<f64>,
    #[allow(dead_code)] // accepted; kbench sizes its own pool
    randomized_payload_pool_size: Option<i64>,
    payload_file: Option<String>,
    subscriptions_per_topic: Option<i64>,
    consumer_per_subscription: Option<i64>,
    producers_per_topic: Option<i64>,
    producer_rate: Option<i64>,
    #[serde(rename = "consumerBacklogSizeGB")]
    consumer_backlog_size_gb: Option<i64>,
    backlog_drain_ratio: Option<f64>,
    test_duration_minutes: Option<i64>,
    warmup_duration_minutes: Option<i64>,
    log_interval_millis: Option<i64>,
}

/// The fields of OMB's Kafka driver `Config.java` plus the driver file's own.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: Option<String>,
    driver_class: Option<String>,
    replication_factor: Option<i64>,
    #[allow(dead_code)] // accepted; see the module doc
    reset: Option<bool>,
    topic_config: Option<String>,
    common_config: Option<String>,
    producer_config: Option<String>,
    consumer_config: Option<String>,
}

/// Maps an OMB workload (YAML text; `source` is its path, for errors and to find
/// `payloadFile`) and optionally an OMB Kafka driver (YAML text) to a profile tree.
pub fn omb_to_tree(yaml: &str, source: &str, driver: Option<&str>) -> Result<Value> {
    map(yaml, source, driver.map(|d| (d, "--omb-driver")))
}

/// Reads and maps the files; errors name both files.
pub fn omb_files_to_tree(workload: &Path, driver: Option<&Path>) -> Result<Value> {
    let read = |p: &Path, what: &str| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {what} '{}'", p.display()))
    };
    let yaml = read(workload, "OMB workload")?;
    let driver_text = driver
        .map(|d| read(d, "OMB driver").map(|t| (t, d.display().to_string())))
        .transpose()?;
    map(
        &yaml,
        &workload.display().to_string(),
        driver_text.as_ref().map(|(t, n)| (t.as_str(), n.as_str())),
    )
}

fn map(yaml: &str, source: &str, driver: Option<(&str, &str)>) -> Result<Value> {
    let at = format!("OMB workload '{source}'");
    let w: Workload = parse(yaml, &WORKLOAD_FIELDS, &at)?;
    let mut notes = Vec::new();
    let mut root = Table::new();

    let title = w.name.clone().unwrap_or_default();
    let stem = Path::new(source)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = [slug(&title), slug(&stem)]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "omb".into());
    root.insert("name".into(), name.clone().into());

    // One topic: a kbench run drives one producer/consumer set on one topic.
    let topics = w.topics.unwrap_or(0);
    if topics != 1 {
        bail!("{at}: topics is {topics}; kbench runs one topic per run: topics must be 1 (run several kbench processes for several topics)");
    }
    let partitions = positive(w.partitions_per_topic, "partitionsPerTopic", &at)?;
    let mut target = Table::new();
    target.insert("topic".into(), format!("omb-{name}").into());
    target.insert("partitions".into(), Value::Integer(partitions));

    let message_size = w.message_size.unwrap_or(0);
    if message_size < STAMP_LEN {
        bail!("{at}: messageSize is {message_size}; kbench records carry a {STAMP_LEN}-byte stamp (send time and sequence), so messageSize must be at least {STAMP_LEN}");
    }
    let mut workload = Table::new();
    payload(&w, message_size, source, &at, &mut workload, &mut notes)?;
    workload.insert(
        "keys".into(),
        keys(w.key_distributor.as_deref(), &at)?.into(),
    );
    workload.insert(
        "producers".into(),
        Value::Integer(positive(w.producers_per_topic, "producersPerTopic", &at)?),
    );

    let subscriptions = w.subscriptions_per_topic.unwrap_or(0);
    let e2e = match subscriptions {
        0 => false,
        1 => true,
        n => bail!("{at}: subscriptionsPerTopic is {n}; kbench runs one consumer group: allowed are 0 (produce only) and 1"),
    };
    root.insert("mode".into(), if e2e { "e2e" } else { "produce" }.into());
    if e2e {
        let consumers = w.consumer_per_subscription.unwrap_or(0);
        if consumers < 1 {
            bail!("{at}: consumerPerSubscription is {consumers} with subscriptionsPerTopic: 1; a subscription needs at least 1 consumer (OMB would time out waiting for consumers to be ready), or set subscriptionsPerTopic: 0 to only produce");
        }
        workload.insert("consumers".into(), Value::Integer(consumers));
    }

    let minutes = positive(w.test_duration_minutes, "testDurationMinutes", &at)?;
    match w.warmup_duration_minutes.unwrap_or(1) {
        0 => {}
        m if m > 0 => {
            root.insert("warmup".into(), format!("{m}m").into());
        }
        m => bail!("{at}: warmupDurationMinutes is {m}; allowed are 0 (none) or more minutes"),
    }
    if let Some(ms) = w.log_interval_millis {
        if ms < 100 {
            bail!("{at}: logIntervalMillis is {ms}; kbench reports at most every 100 ms");
        }
        root.insert("reporting_interval".into(), format!("{ms}ms").into());
    }

    let rate = w.producer_rate.unwrap_or(0);
    let backlog_gb = w.consumer_backlog_size_gb.unwrap_or(0);
    let drain_ratio = w.backlog_drain_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&drain_ratio) {
        bail!("{at}: backlogDrainRatio is {drain_ratio}; allowed is 0 (best effort) to 1 (drain fully)");
    }
    if backlog_gb < 0 || rate < 0 {
        bail!("{at}: producerRate and consumerBacklogSizeGB must not be negative");
    }
    let mut thresholds: Vec<Value> = Vec::new();
    if backlog_gb > 0 {
        if rate == 0 {
            // OMB's own check, in its words.
            bail!("{at}: consumerBacklogSizeGB is {backlog_gb} with producerRate: 0: Cannot probe producer sustainable rate when building backlog; give producerRate > 0");
        }
        if !e2e {
            bail!("{at}: consumerBacklogSizeGB needs subscriptionsPerTopic: 1; without consumers no backlog is read (OMB would wait forever)");
        }
        // OMB's condition: backlog records × messageSize ≥ GB × 2^30.
        let records = (backlog_gb as f64 * (1u64 << 30) as f64 / message_size as f64).ceil();
        let build_secs = (records / rate as f64).ceil().max(1.0) as u64;
        root.insert(
            "phases".into(),
            Value::Array(vec![
                phase("build", &format!("{build_secs}s"), rate, Some("paused")),
                phase("drain", &format!("{minutes}m"), rate, None),
                phase("steady", &format!("{minutes}m"), rate, None),
            ]),
        );
        if drain_ratio > 0.0 {
            // OMB's "drained" level; checked over the phase after the drain.
            let left = (((1.0 - drain_ratio) * records) as u64).max(OMB_BACKLOG_LIMIT);
            thresholds.push(scoped(&format!("max_lag <= {left}"), "steady"));
        }
        notes.push(format!("backlog of {records:.0} records built in {build_secs} s at {rate}/s, drained for {minutes} min while producing, then {minutes} min steady"));
    } else if rate > 0 {
        root.insert(
            "phases".into(),
            Value::Array(vec![phase("benchmark", &format!("{minutes}m"), rate, None)]),
        );
    } else {
        // producerRate: 0 is OMB's max-sustainable-rate search; see the module doc.
        let trial_secs = (minutes as u64 * 60 / MAX_TRIALS).max(MIN_TRIAL_SECS);
        let mut search = Table::new();
        search.insert("start".into(), Value::Float(OMB_START_RATE));
        search.insert("max".into(), Value::Float(MAX_RATE));
        search.insert("factor".into(), Value::Float(2.0));
        search.insert("step_duration".into(), format!("{trial_secs}s").into());
        search.insert("max_trials".into(), Value::Integer(MAX_TRIALS as i64));
        search.insert("precision".into(), Value::Float(0.05));
        root.insert("find_max_rate".into(), Value::Table(search));
        // 1000 records behind schedule at OMB's start rate.
        let behind_ms = OMB_BACKLOG_LIMIT as f64 / OMB_START_RATE * 1000.0;
        thresholds.push(format!("send_delay.p99 < {behind_ms}ms").into());
        if e2e {
            thresholds.push(format!("max_lag <= {OMB_BACKLOG_LIMIT}").into());
            thresholds.push("consume.lost == 0".into());
        }
        notes.push(format!(
            "producerRate 0: kbench's max-rate search, {trial_secs} s trials, instead of OMB's rate controller"
        ));
    }
    if !thresholds.is_empty() {
        root.insert("thresholds".into(), Value::Array(thresholds));
    }

    let mut producer_props = Table::new();
    let mut consumer_props = Table::new();
    let mut driver_name = None;
    if let Some((text, driver_source)) = driver {
        let dat = format!("OMB driver '{driver_source}'");
        let d: Driver = parse(text, &DRIVER_FIELDS, &dat)?;
        apply_driver(
            &d,
            &dat,
            &mut target,
            &mut producer_props,
            &mut consumer_props,
            &mut notes,
        )?;
        driver_name = Some(d.name.unwrap_or_else(|| driver_source.to_string()));
    }

    let mut description = format!("OpenMessaging Benchmark workload '{title}' ({source})");
    if let Some(d) = driver_name {
        description += &format!(" with driver '{d}'");
    }
    for n in &notes {
        description += &format!("; {n}");
    }
    root.insert("description".into(), description.into());
    root.insert("target".into(), Value::Table(target));
    root.insert("workload".into(), Value::Table(workload));
    if !producer_props.is_empty() {
        root.insert("producer_props".into(), Value::Table(producer_props));
    }
    if !consumer_props.is_empty() && e2e {
        root.insert("consumer_props".into(), Value::Table(consumer_props));
    }
    Ok(Value::Table(root))
}

/// Parses YAML into `T` after naming every field that is not in `known`.
fn parse<T: serde::de::DeserializeOwned>(text: &str, known: &[&str], at: &str) -> Result<T> {
    let value: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| anyhow!("{at}: not valid YAML: {e}"))?;
    let serde_norway::Value::Mapping(map) = &value else {
        bail!("{at}: expected a mapping of fields (field: value lines)");
    };
    let unknown: Vec<String> = map
        .keys()
        .map(|k| match k {
            serde_norway::Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "{at}: unsupported field(s) {}; kbench maps only {}",
            unknown.join(", "),
            known.join(", ")
        );
    }
    // From the text again (not the value): its errors name the field and the line.
    serde_norway::from_str(text).map_err(|e| anyhow!("{at}: {e}"))
}

/// A field that must be a whole number ≥ 1 (absent = Java's 0).
fn positive(v: Option<i64>, field: &str, at: &str) -> Result<i64> {
    match v.unwrap_or(0) {
        n if n >= 1 && n <= i32::MAX as i64 => Ok(n),
        n => bail!("{at}: {field} is {n} (or missing); it must be at least 1"),
    }
}

fn keys(distributor: Option<&str>, at: &str) -> Result<String> {
    Ok(match distributor.unwrap_or("NO_KEY") {
        "NO_KEY" => "none".into(),
        "KEY_ROUND_ROBIN" => format!("round-robin:{OMB_KEYS}"),
        "RANDOM_NANO" => format!("uniform:{OMB_KEYS}"),
        other => bail!(
            "{at}: keyDistributor '{other}' is not one of NO_KEY, KEY_ROUND_ROBIN, RANDOM_NANO"
        ),
    })
}

/// Sets the payload fields: generated values, or the payload file as one payload.
fn payload(
    w: &Workload,
    message_size: i64,
    source: &str,
    at: &str,
    out: &mut Table,
    notes: &mut Vec<String>,
) -> Result<()> {
    if w.use_randomized_payloads.unwrap_or(false) {
        let ratio = w.random_bytes_ratio.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&ratio) {
            bail!("{at}: randomBytesRatio is {ratio}; allowed is 0 to 1");
        }
        out.insert("record_size".into(), Value::Integer(message_size));
        out.insert("payload_random_ratio".into(), Value::Float(ratio));
        return Ok(());
    }
    let Some(file) = w.payload_file.as_deref() else {
        bail!("{at}: payloadFile is missing; give payloadFile: PATH (a file of exactly messageSize bytes) or useRandomizedPayloads: true");
    };
    let path = find_payload(file, source).ok_or_else(|| {
        anyhow!("{at}: payloadFile '{file}' was found neither from the working directory nor next to the workload file or in its parent folder")
    })?;
    let data = std::fs::read(&path)
        .with_context(|| format!("{at}: payloadFile: cannot read '{}'", path.display()))?;
    if data.len() as i64 != message_size {
        bail!(
            "{at}: payloadFile '{}' is {} bytes but messageSize is {message_size}; OMB requires them equal (Payload length mismatch)",
            path.display(),
            data.len()
        );
    }
    out.insert("payload_file".into(), path.display().to_string().into());
    out.insert("payload_delimiter".into(), absent_delimiter(&data).into());
    notes.push(format!(
        "records are messageSize + {STAMP_LEN} = {} bytes: the kbench stamp precedes the payload file",
        message_size + STAMP_LEN
    ));
    Ok(())
}

/// OMB resolves `payloadFile` from its working directory (the OMB checkout, whose
/// `workloads/` and `payload/` are siblings); kbench also looks beside the workload file.
fn find_payload(file: &str, source: &str) -> Option<PathBuf> {
    let file = Path::new(file);
    if file.is_absolute() || file.is_file() {
        return file.is_file().then(|| file.to_path_buf());
    }
    let dir = Path::new(source).parent()?;
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(file))
        .find(|p| p.is_file())
}

/// A delimiter that does not occur in `data`, so kbench reads the file as one payload. No
/// backslash: kbench unescapes `\n`, `\t`, `\r` in delimiters.
fn absent_delimiter(data: &[u8]) -> String {
    (0u64..)
        .map(|n| match n {
            0 => "<kbench:whole-file>".to_string(),
            n => format!("<kbench:whole-file:{n}>"),
        })
        .find(|d| !data.windows(d.len()).any(|w| w == d.as_bytes()))
        .expect("some candidate is absent: the file has finitely many substrings")
}

fn phase(name: &str, duration: &str, rate: i64, consumers: Option<&str>) -> Value {
    let mut t = Table::new();
    t.insert("name".into(), name.into());
    t.insert("duration".into(), duration.into());
    t.insert("rate".into(), Value::Float(rate as f64));
    if let Some(c) = consumers {
        t.insert("consumers".into(), c.into());
    }
    Value::Table(t)
}

fn scoped(expr: &str, phase: &str) -> Value {
    let mut t = Table::new();
    t.insert("expr".into(), expr.into());
    t.insert("phase".into(), phase.into());
    Value::Table(t)
}

fn apply_driver(
    d: &Driver,
    at: &str,
    target: &mut Table,
    producer: &mut Table,
    consumer: &mut Table,
    notes: &mut Vec<String>,
) -> Result<()> {
    if let Some(class) = d.driver_class.as_deref().filter(|c| *c != KAFKA_DRIVER) {
        bail!("{at}: driverClass '{class}' is not OMB's Kafka driver; kbench speaks Kafka only: allowed is {KAFKA_DRIVER}");
    }
    if let Some(rf) = d.replication_factor {
        if !(1..=i16::MAX as i64).contains(&rf) {
            bail!("{at}: replicationFactor is {rf}; it must be at least 1");
        }
        target.insert("replication_factor".into(), Value::Integer(rf));
    }
    for (k, _) in properties(d.topic_config.as_deref(), "topicConfig", at)? {
        if k != "min.insync.replicas" {
            bail!("{at}: topicConfig '{k}': kbench cannot set topic configs; only min.insync.replicas is accepted (and ignored); create the topic yourself and use --set target.create_topic=false");
        }
        notes.push("topicConfig min.insync.replicas ignored".into());
    }
    let mut ignored = Vec::new();
    let mut put = |t: &mut Table, k: String, v: String| {
        if JAVA_ONLY_PROPS.contains(&k.as_str()) {
            if !ignored.contains(&k) {
                ignored.push(k);
            }
        } else {
            t.insert(k, v.into());
        }
    };
    for (k, v) in properties(d.common_config.as_deref(), "commonConfig", at)? {
        if k == "bootstrap.servers" {
            target.insert("bootstrap_server".into(), v.into());
            continue;
        }
        put(producer, k.clone(), v.clone());
        put(consumer, k, v);
    }
    for (k, v) in properties(d.producer_config.as_deref(), "producerConfig", at)? {
        put(producer, k, v);
    }
    for (k, v) in properties(d.consumer_config.as_deref(), "consumerConfig", at)? {
        put(consumer, k, v);
    }
    if !ignored.is_empty() {
        notes.push(format!(
            "Java client timeouts not passed to librdkafka: {}",
            ignored.join(", ")
        ));
    }
    Ok(())
}

/// The `key=value` (or `key: value`) lines of a Java properties block; `#`/`!` comments.
fn properties(text: Option<&str>, field: &str, at: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (n, line) in text.unwrap_or("").lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(split) = line.find(['=', ':']) else {
            bail!("{at}: {field} line {}: '{line}' is not key=value", n + 1);
        };
        let (k, v) = (line[..split].trim(), line[split + 1..].trim());
        if k.is_empty() {
            bail!(
                "{at}: {field} line {}: '{line}' has no property name",
                n + 1
            );
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// "1 topic / 1 partition / 1Kb" → "1-topic-1-partition-1kb": a folder and topic name part.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::file::typed;

    /// An OMB checkout's layout: `workloads/NAME.yaml` and `payload/` with its files.
    fn omb_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workloads")).unwrap();
        std::fs::create_dir_all(dir.path().join("payload")).unwrap();
        let bytes: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.path().join("payload/payload-1Kb.data"), &bytes).unwrap();
        std::fs::write(dir.path().join("payload/payload-100b.data"), &bytes[..100]).unwrap();
        dir
    }

    fn map_in(dir: &Path, yaml: &str, driver: Option<&str>) -> Result<Value> {
        let src = dir.join("workloads/w.yaml");
        omb_to_tree(yaml, &src.display().to_string(), driver)
    }

    fn get<'a>(tree: &'a Value, path: &str) -> &'a Value {
        path.split('.').fold(tree, |v, k| match v {
            Value::Array(a) => &a[k.parse::<usize>().unwrap()],
            _ => v.get(k).unwrap_or_else(|| panic!("no {path} in {tree}")),
        })
    }

    const FIXED: &str = "name: 1 topic / 1 partition / 1Kb\ntopics: 1\npartitionsPerTopic: 1\nkeyDistributor: \"NO_KEY\"\nmessageSize: 1024\npayloadFile: \"payload/payload-1Kb.data\"\nsubscriptionsPerTopic: 1\nconsumerPerSubscription: 1\nproducersPerTopic: 1\nproducerRate: 50000\nconsumerBacklogSizeGB: 0\ntestDurationMinutes: 15\n";

    #[test]
    fn a_fixed_rate_workload_maps_field_by_field() {
        let dir = omb_dir();
        let tree = map_in(dir.path(), FIXED, None).unwrap();
        assert_eq!(get(&tree, "name").as_str(), Some("1-topic-1-partition-1kb"));
        assert_eq!(get(&tree, "mode").as_str(), Some("e2e"));
        assert_eq!(get(&tree, "warmup").as_str(), Some("1m"));
        assert_eq!(
            get(&tree, "target.topic").as_str(),
            Some("omb-1-topic-1-partition-1kb")
        );
        assert_eq!(get(&tree, "target.partitions").as_integer(), Some(1));
        assert_eq!(get(&tree, "workload.keys").as_str(), Some("none"));
        assert_eq!(get(&tree, "workload.producers").as_integer(), Some(1));
        assert_eq!(get(&tree, "workload.consumers").as_integer(), Some(1));
        assert_eq!(get(&tree, "phases.0.rate").as_float(), Some(50000.0));
        assert_eq!(get(&tree, "phases.0.duration").as_str(), Some("15m"));
        assert!(tree.get("thresholds").is_none() && tree.get("find_max_rate").is_none());
        let file = get(&tree, "workload.payload_file").as_str().unwrap();
        assert!(file.ends_with("payload/payload-1Kb.data"), "{file}");
        let p = typed(tree, Path::new("w.yaml")).unwrap();
        assert!(p.description.unwrap().contains("1060 bytes"));
    }

    #[test]
    fn the_payload_file_is_read_as_one_payload() {
        let dir = omb_dir();
        let tree = map_in(dir.path(), FIXED, None).unwrap();
        let p = typed(tree, Path::new("w.yaml")).unwrap();
        let parts = crate::load::payload::read_payload_file(
            Path::new(p.workload.payload_file.as_deref().unwrap()),
            p.workload.payload_delimiter.as_deref().unwrap(),
        )
        .unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].len(), 1024);
        // A file that holds the first candidate gets another delimiter.
        let d = absent_delimiter(b"xx<kbench:whole-file>yy");
        assert_eq!(d, "<kbench:whole-file:1>");
    }

    #[test]
    fn randomized_payloads_keys_and_no_subscription() {
        let dir = omb_dir();
        let yaml = "topics: 1\npartitionsPerTopic: 6\nmessageSize: 100\nuseRandomizedPayloads: true\nrandomBytesRatio: 0.5\nrandomizedPayloadPoolSize: 1000\nkeyDistributor: KEY_ROUND_ROBIN\nsubscriptionsPerTopic: 0\nproducersPerTopic: 3\nproducerRate: 1000\ntestDurationMinutes: 1\nwarmupDurationMinutes: 0\nlogIntervalMillis: 2000\n";
        let tree = map_in(dir.path(), yaml, None).unwrap();
        // No name: the file stem.
        assert_eq!(get(&tree, "name").as_str(), Some("w"));
        assert_eq!(get(&tree, "mode").as_str(), Some("produce"));
        assert_eq!(get(&tree, "workload.record_size").as_integer(), Some(100));
        assert_eq!(
            get(&tree, "workload.payload_random_ratio").as_float(),
            Some(0.5)
        );
        assert_eq!(
            get(&tree, "workload.keys").as_str(),
            Some("round-robin:10000")
        );
        assert_eq!(get(&tree, "workload.producers").as_integer(), Some(3));
        assert_eq!(get(&tree, "reporting_interval").as_str(), Some("2000ms"));
        assert!(tree.get("warmup").is_none());
        assert!(get(&tree, "workload").get("consumers").is_none());
        let nano = yaml.replace("KEY_ROUND_ROBIN", "RANDOM_NANO");
        let tree = map_in(dir.path(), &nano, None).unwrap();
        assert_eq!(get(&tree, "workload.keys").as_str(), Some("uniform:10000"));
        typed(tree, Path::new("w.yaml")).unwrap();
    }

    #[test]
    fn producer_rate_zero_is_the_max_rate_search() {
        let dir = omb_dir();
        let yaml = FIXED
            .replace("producerRate: 50000", "producerRate: 0")
            .replace("testDurationMinutes: 15", "testDurationMinutes: 5");
        let tree = map_in(dir.path(), &yaml, None).unwrap();
        assert!(tree.get("phases").is_none());
        assert_eq!(get(&tree, "find_max_rate.start").as_float(), Some(10_000.0));
        assert_eq!(
            get(&tree, "find_max_rate.step_duration").as_str(),
            Some("25s")
        );
        let th: Vec<&str> = get(&tree, "thresholds")
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(
            th,
            [
                "send_delay.p99 < 100ms",
                "max_lag <= 1000",
                "consume.lost == 0"
            ]
        );
        for t in th {
            crate::profile::threshold::Threshold::parse(t, None).unwrap();
        }
        let p = typed(tree, Path::new("w.yaml")).unwrap();
        crate::profile::max_rate::validate(p.find_max_rate.as_ref().unwrap()).unwrap();
    }

    #[test]
    fn a_backlog_becomes_a_paused_build_then_a_drain() {
        let dir = omb_dir();
        let yaml = FIXED
            .replace("producerRate: 50000", "producerRate: 100000")
            .replace("consumerBacklogSizeGB: 0", "consumerBacklogSizeGB: 100");
        let tree = map_in(dir.path(), &yaml, None).unwrap();
        // 100 GiB of 1 KiB records = 104,857,600 records at 100,000/s.
        assert_eq!(get(&tree, "phases.0.name").as_str(), Some("build"));
        assert_eq!(get(&tree, "phases.0.duration").as_str(), Some("1049s"));
        assert_eq!(get(&tree, "phases.0.consumers").as_str(), Some("paused"));
        assert_eq!(get(&tree, "phases.1.name").as_str(), Some("drain"));
        assert_eq!(get(&tree, "phases.1.duration").as_str(), Some("15m"));
        assert_eq!(get(&tree, "phases.2.name").as_str(), Some("steady"));
        assert_eq!(get(&tree, "phases.2.duration").as_str(), Some("15m"));
        assert_eq!(
            get(&tree, "thresholds.0.expr").as_str(),
            Some("max_lag <= 1000")
        );
        assert_eq!(get(&tree, "thresholds.0.phase").as_str(), Some("steady"));
        // 99% drained leaves 1% of 104,857,600 records.
        let part = format!("{yaml}backlogDrainRatio: 0.99\n");
        let tree = map_in(dir.path(), &part, None).unwrap();
        assert_eq!(
            get(&tree, "thresholds.0.expr").as_str(),
            Some("max_lag <= 1048576")
        );
        // Best effort: no drain threshold.
        let best = format!("{yaml}backlogDrainRatio: 0\n");
        assert!(map_in(dir.path(), &best, None)
            .unwrap()
            .get("thresholds")
            .is_none());
    }

    #[test]
    fn a_driver_sets_client_properties_and_replication() {
        let dir = omb_dir();
        let driver = "name: Kafka\ndriverClass: io.openmessaging.benchmark.driver.kafka.KafkaBenchmarkDriver\nreplicationFactor: 3\nreset: true\ntopicConfig: |\n  min.insync.replicas=2\ncommonConfig: |\n  bootstrap.servers=localhost:9092\n  default.api.timeout.ms=1200000\n  request.timeout.ms=1200000\n  client.id=omb\nproducerConfig: |\n  acks=all\n  linger.ms=1\n  batch.size=1048576\nconsumerConfig: |\n  auto.offset.reset=earliest\n  enable.auto.commit=false\n  max.partition.fetch.bytes=10485760\n";
        let tree = map_in(dir.path(), FIXED, Some(driver)).unwrap();
        assert_eq!(
            get(&tree, "target.replication_factor").as_integer(),
            Some(3)
        );
        assert_eq!(
            get(&tree, "target.bootstrap_server").as_str(),
            Some("localhost:9092")
        );
        let pp = get(&tree, "producer_props").as_table().unwrap();
        assert_eq!(pp["acks"].as_str(), Some("all"));
        assert_eq!(pp["batch.size"].as_str(), Some("1048576"));
        assert_eq!(pp["client.id"].as_str(), Some("omb"));
        assert!(
            !pp.contains_key("default.api.timeout.ms") && !pp.contains_key("request.timeout.ms")
        );
        let cp = get(&tree, "consumer_props").as_table().unwrap();
        assert_eq!(cp["max.partition.fetch.bytes"].as_str(), Some("10485760"));
        assert_eq!(cp["client.id"].as_str(), Some("omb"));
        let desc = get(&tree, "description").as_str().unwrap();
        assert!(
            desc.contains("driver 'Kafka'") && desc.contains("default.api.timeout.ms"),
            "{desc}"
        );
        typed(tree, Path::new("w.yaml")).unwrap();
    }

    fn err(yaml: &str, driver: Option<&str>) -> String {
        let dir = omb_dir();
        format!("{:#}", map_in(dir.path(), yaml, driver).unwrap_err())
    }

    #[test]
    fn what_cannot_map_is_an_error_naming_the_field() {
        let cases: Vec<(String, &str)> = vec![
            (FIXED.replace("topics: 1", "topics: 10"), "topics is 10"),
            (
                FIXED.replace("partitionsPerTopic: 1", "partitionsPerTopic: 0"),
                "partitionsPerTopic",
            ),
            (
                FIXED.replace("messageSize: 1024", "messageSize: 20"),
                "at least 36",
            ),
            (
                FIXED.replace("messageSize: 1024", "messageSize: 1000"),
                "Payload length mismatch",
            ),
            (
                FIXED.replace("payload-1Kb", "payload-none"),
                "payloadFile 'payload/payload-none.data'",
            ),
            (
                FIXED.replace("subscriptionsPerTopic: 1", "subscriptionsPerTopic: 2"),
                "subscriptionsPerTopic is 2",
            ),
            (
                FIXED.replace("consumerPerSubscription: 1", "consumerPerSubscription: 0"),
                "consumerPerSubscription is 0",
            ),
            (FIXED.replace("NO_KEY", "ZIPF"), "keyDistributor 'ZIPF'"),
            (
                FIXED.replace("testDurationMinutes: 15", "testDurationMinutes: 0"),
                "testDurationMinutes",
            ),
            (
                FIXED
                    .replace("producerRate: 50000", "producerRate: 0")
                    .replace("consumerBacklogSizeGB: 0", "consumerBacklogSizeGB: 1"),
                "Cannot probe producer sustainable rate when building backlog",
            ),
            (
                format!("{FIXED}producerStartRate: 5\nmessageSizeDistribution: {{}}\n"),
                "producerStartRate, messageSizeDistribution",
            ),
            (
                format!("{FIXED}backlogDrainRatio: 2\n"),
                "backlogDrainRatio",
            ),
            (FIXED.replace("topics: 1", "topics: one"), "topics"),
            ("- a\n- b\n".into(), "mapping"),
        ];
        for (yaml, want) in cases {
            let e = err(&yaml, None);
            assert!(e.contains("OMB workload '") && e.contains("w.yaml"), "{e}");
            assert!(e.contains(want), "want '{want}' in: {e}");
        }
        for (driver, want) in [
            (
                "driverClass: io.openmessaging.benchmark.driver.pulsar.PulsarBenchmarkDriver\n",
                "driverClass",
            ),
            (
                "topicConfig: |\n  retention.ms=1000\n",
                "topicConfig 'retention.ms'",
            ),
            ("producerConfig: |\n  acks\n", "producerConfig line 1"),
            ("zoneId: a\n", "unsupported field(s) zoneId"),
        ] {
            let e = err(FIXED, Some(driver));
            assert!(
                e.contains("OMB driver") && e.contains(want),
                "want '{want}' in: {e}"
            );
        }
    }

    #[test]
    fn names_become_slugs() {
        assert_eq!(
            slug("Max rate 1 producer on 1 topic / 1 partition"),
            "max-rate-1-producer-on-1-topic-1-partition"
        );
        assert_eq!(slug("  //  "), "");
    }
}
