//! Faults on librdkafka's mock cluster (tests, and fault profiles that run anywhere). The mock
//! has no processes or proxies, so each action maps onto what it can do:
//!
//! * `kill node:N`: the broker goes down (connections closed, new ones refused); up again on heal.
//! * `kill leader-of:T/P`: its leader goes down and, with another broker, leadership moves there
//!   (the failover a real cluster's controller would do); the old leader comes back on heal.
//! * `terminate leader-of:T/P`: a controlled shutdown: leadership moves to another broker and
//!   the next Produce requests fail with NOT_LEADER_OR_FOLLOWER (what clients of a leader that
//!   steps down see); with `for`, the old leader is also down until the heal.
//! * `restart`: down and up again at once.
//! * `delay MS`: the broker's round-trip time (jitter is not supported by the mock); healed back
//!   to the RTT the cluster started with.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use crate::fault::{Executor, Instance};
use crate::plan::faults::{Action, Target};
use crate::target::{MockControl, MockOp};

/// NOT_LEADER_OR_FOLLOWER answers to the Produce requests after a controlled shutdown.
pub const NOT_LEADER_BURST: usize = 5;

pub struct MockExecutor {
    pub control: MockControl,
}

impl MockExecutor {
    /// Another broker than `node`, to move leadership to.
    fn other(&self, node: i32) -> Option<i32> {
        (1..=self.control.brokers)
            .map(|k| (node + k - 1) % self.control.brokers + 1)
            .find(|b| *b != node)
    }

    fn move_leader(&self, t: &Target, from: i32) -> Result<()> {
        let Some((topic, partition)) = t.topic_partition() else {
            return Ok(());
        };
        let Some(to) = self.other(from) else {
            return Ok(());
        };
        self.control.apply(MockOp::PartitionLeader {
            topic: topic.to_string(),
            partition,
            broker: to,
        })
    }
}

impl Executor for MockExecutor {
    fn inject(&mut self, f: &Instance, node: Option<i32>) -> Result<()> {
        let node =
            node.ok_or_else(|| anyhow!("the mock cluster faults nodes; this target names none"))?;
        let target = f.spec.target.as_ref().ok_or_else(|| anyhow!("no target"))?;
        let c = &self.control;
        match f.spec.action {
            Action::Kill => {
                c.apply(MockOp::BrokerDown(node))?;
                self.move_leader(target, node)
            }
            Action::Terminate => {
                if self.other(node).is_none() {
                    bail!("terminate on the mock cluster moves leadership: give it 2 or more brokers (--mock-brokers 3)");
                }
                self.move_leader(target, node)?;
                c.apply(MockOp::ProduceErrors {
                    error:
                        rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                    count: NOT_LEADER_BURST,
                })?;
                if f.spec.for_ms.is_some() {
                    c.apply(MockOp::BrokerDown(node))?;
                }
                Ok(())
            }
            Action::Restart => {
                c.apply(MockOp::BrokerDown(node))?;
                c.apply(MockOp::BrokerUp(node))
            }
            Action::Delay { ms, .. } => c.apply(MockOp::Rtt(node, Duration::from_millis(ms))),
            a => bail!("the mock cluster cannot '{a}'"),
        }
    }

    fn heal(&mut self, f: &Instance, node: Option<i32>) -> Result<()> {
        let node = node.ok_or_else(|| anyhow!("no node to heal"))?;
        match f.spec.action {
            Action::Kill | Action::Terminate => self.control.apply(MockOp::BrokerUp(node)),
            Action::Delay { .. } => self.control.apply(MockOp::Rtt(node, self.control.base_rtt)),
            _ => Ok(()),
        }
    }
}
