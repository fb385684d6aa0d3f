//! Which node a target names right now: `leader-of`/`follower-of` from the cluster's metadata,
//! `controller` from librdkafka's controller query, `node:N` as written. Resolved at injection
//! time (leadership moves during a run), with one long-lived metadata client.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::producer::{BaseProducer, Producer};

use crate::load::client::client_config;
use crate::plan::faults::Target;
use crate::plan::props::Props;

const WAIT: Duration = Duration::from_secs(5);

/// A metadata client for resolving targets.
pub struct Resolver {
    client: BaseProducer,
}

impl Resolver {
    pub fn new(bootstrap: &str, props: &Props) -> Result<Resolver> {
        let mut cfg = client_config(bootstrap, props);
        cfg.set("client.id", "kbench-faults");
        Ok(Resolver {
            client: cfg
                .create()
                .context("fault targets: cannot create a metadata client")?,
        })
    }

    /// The node id `target` names now (None for consumer targets).
    pub fn node(&self, target: &Target) -> Result<Option<i32>> {
        match target {
            Target::Node { id } => Ok(Some(*id)),
            Target::Consumer { .. } => Ok(None),
            Target::Controller => {
                // SAFETY: the client handle is alive for the borrow of `self.client`.
                let id = unsafe {
                    rdkafka::bindings::rd_kafka_controllerid(
                        self.client.client().native_ptr(),
                        WAIT.as_millis() as i32,
                    )
                };
                if id < 0 {
                    bail!("the cluster named no controller within {WAIT:?}");
                }
                Ok(Some(id))
            }
            Target::LeaderOf { topic, partition } | Target::FollowerOf { topic, partition } => {
                let (leader, replicas) = self.partition(topic, *partition)?;
                if matches!(target, Target::LeaderOf { .. }) {
                    return Ok(Some(leader));
                }
                replicas
                    .into_iter()
                    .find(|r| *r != leader)
                    .map(Some)
                    .ok_or_else(|| {
                        anyhow!("'{target}': the partition has no follower (replication factor 1?)")
                    })
            }
        }
    }

    /// Leader and replicas of a partition.
    pub fn partition(&self, topic: &str, partition: i32) -> Result<(i32, Vec<i32>)> {
        let md = self
            .client
            .client()
            .fetch_metadata(Some(topic), WAIT)
            .with_context(|| format!("no metadata for topic '{topic}' within {WAIT:?}"))?;
        let p = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .and_then(|t| t.partitions().iter().find(|p| p.id() == partition))
            .ok_or_else(|| anyhow!("topic '{topic}' has no partition {partition}"))?;
        if p.leader() < 0 {
            bail!("partition {topic}/{partition} has no leader now");
        }
        Ok((p.leader(), p.replicas().to_vec()))
    }
}
