//! Arbitrary bytes as one request frame → header parser, request decoders and handlers of the
//! bundled broker. Run: `cargo +nightly fuzz run broker_request` from the repository root.
#![no_main]

use std::sync::OnceLock;

use kbench_broker::fuzzing::Harness;
use libfuzzer_sys::fuzz_target;

static HARNESS: OnceLock<Harness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let h = HARNESS.get_or_init(|| Harness::new().expect("fuzz harness"));
    let _ = h.feed(data);
});
