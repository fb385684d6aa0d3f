//! The sending thread's side of transactions: it begins a transaction before the first record
//! that needs one (drawing, with the run's seed, whether it will abort), counts its records,
//! and once the transaction is long enough (`--transaction-duration-ms` by intended send
//! times, or `--transaction-records`) hands its end to the transaction thread (`txn_end`)
//! and goes back to its schedule.
//!
//! If the next record falls due while the end is still running, the sender waits for it
//! (librdkafka takes no record meanwhile), serving delivery reports when it is the one that
//! serves them; that wait is the transaction's commit pause, recorded on its own, and the
//! waiting records go out afterwards with their intended times. Nothing here runs per record
//! but a counter and a comparison.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{BaseProducer, Producer};

use crate::load::producer::{DeliveryContext, ProducerShared};
use crate::load::txn_end::{EndTxn, Ended};
use crate::measure::clock;
use crate::plan::txn::TxnPlan;

/// The transaction the sender has open.
#[derive(Debug, Clone, Copy)]
struct Open {
    start_ns: u64,
    first_seq: u64,
    records: u64,
    abort: bool,
    phase: usize,
}

/// A producer's transactions, as its sending thread drives them.
pub struct TxnDriver<'a> {
    plan: &'a TxnPlan,
    producer: &'a BaseProducer<DeliveryContext>,
    shared: &'a ProducerShared,
    rng: SmallRng,
    ends: Sender<EndTxn>,
    done: Receiver<Ended>,
    open: Option<Open>,
    /// An end was handed over and its answer not read yet.
    ending: bool,
    /// A transaction was begun before (the first has no pause to report).
    began_any: bool,
}

/// What `before_send` decided for the record.
#[derive(Debug, Clone, Copy)]
pub struct Begun {
    /// The record's transaction will abort (its stamp says so).
    pub aborting: bool,
    /// The sender waited for the previous transaction to end: its clock reading is stale.
    pub waited: bool,
}

impl<'a> TxnDriver<'a> {
    pub fn new(
        plan: &'a TxnPlan,
        producer: &'a BaseProducer<DeliveryContext>,
        shared: &'a ProducerShared,
        seed: u64,
        (ends, done): (Sender<EndTxn>, Receiver<Ended>),
    ) -> Self {
        // Its own stream of draws, so aborts do not shift the keys or payloads of a seed.
        let rng = SmallRng::seed_from_u64(seed ^ 0x7458_6e41_626f_7274 ^ shared.index as u64);
        TxnDriver {
            plan,
            producer,
            shared,
            rng,
            ends,
            done,
            open: None,
            ending: false,
            began_any: false,
        }
    }

    /// Before a record (intended at `intended_ns`, in `phase`): makes sure a transaction is
    /// open, waiting for the previous one to end if it has not (`serve` serves delivery reports
    /// meanwhile when the sender is the one that serves them).
    pub fn before_send(
        &mut self,
        intended_ns: u64,
        phase: usize,
        serve: &dyn Fn(),
    ) -> Result<Begun, String> {
        if let Some(o) = &self.open {
            return Ok(Begun {
                aborting: o.abort,
                waited: false,
            });
        }
        let wait_from = clock::now_ns();
        let waited = self.ending;
        self.wait_for_end(serve)?;
        self.producer
            .begin_transaction()
            .map_err(|e| format!("begin_transaction: {e}"))?;
        // Every transaction after the first says how long its start was held back.
        if self.began_any {
            let pause_us = if waited {
                clock::now_ns().saturating_sub(wait_from) / 1000
            } else {
                0
            };
            self.shared
                .stats
                .with(phase, |s| s.txn.commit_pause_us.saturating_record(pause_us));
        }
        self.began_any = true;
        let abort = self.plan.abort_rate > 0.0 && self.rng.random::<f64>() < self.plan.abort_rate;
        self.open = Some(Open {
            start_ns: intended_ns,
            first_seq: 0,
            records: 0,
            abort,
            phase,
        });
        Ok(Begun {
            aborting: abort,
            waited,
        })
    }

    /// After a record was handed to the client (intended at `intended_ns`; `seq` is its
    /// sequence number when it is meant to commit): ends the transaction once it is long enough.
    #[inline]
    pub fn after_send(&mut self, intended_ns: u64, seq: u64) {
        let Some(o) = self.open.as_mut() else {
            return;
        };
        if o.records == 0 {
            o.first_seq = seq;
        }
        o.records += 1;
        let by_records = self.plan.records.is_some_and(|n| o.records >= n);
        let by_time = self
            .plan
            .duration_ms
            .is_some_and(|ms| intended_ns.saturating_sub(o.start_ns) >= ms * 1_000_000);
        if by_records || by_time {
            self.hand_over();
        }
    }

    /// At the end of the run: ends the open transaction and waits for it.
    pub fn finish(&mut self, serve: &dyn Fn()) -> Result<(), String> {
        self.hand_over();
        self.wait_for_end(serve)
    }

    /// Hands the open transaction's end to the transaction thread.
    fn hand_over(&mut self) {
        let Some(o) = self.open.take() else {
            return;
        };
        let req = EndTxn {
            commit: !o.abort,
            phase: o.phase,
            first_seq: o.first_seq,
            records: o.records,
        };
        // The thread lives as long as the sender; if it is gone, the wait below says so.
        self.ending = self.ends.send(req).is_ok();
    }

    /// Waits until the end handed over (if any) is done.
    fn wait_for_end(&mut self, serve: &dyn Fn()) -> Result<(), String> {
        while self.ending {
            serve();
            match self.done.recv_timeout(Duration::from_micros(100)) {
                Ok(Ended::Ok) => self.ending = false,
                Ok(Ended::Fatal(why)) => {
                    self.ending = false;
                    return Err(why);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.ending = false;
                    return Err("the transaction thread ended".into());
                }
            }
        }
        Ok(())
    }
}
