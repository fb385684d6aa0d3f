//! A deterministic mutation smoke test of the request path (the real fuzzing is `fuzz/`):
//! valid frames of every served API, bit-flipped, truncated and length-corrupted, must never
//! panic or abort the broker's decoders and handlers.

use kbench_broker::fuzzing::{seed_frames as seeds, Harness};

/// xorshift: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_frames_of_every_api_never_crash_the_broker() {
    let h = Harness::new().expect("harness");
    let seeds = seeds();
    assert!(seeds.len() > 50);
    for s in &seeds {
        h.feed(s);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..6000 {
        let mut f = seeds[rng.below(seeds.len())].clone();
        match i % 4 {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(f.len());
                    f[at] ^= 1 << rng.below(8);
                }
            }
            1 => f.truncate(rng.below(f.len() + 1)),
            2 => {
                // Plant a huge or negative length/count somewhere after the header start.
                let at = 8 + rng.below(f.len().saturating_sub(8).max(1));
                let v: [u8; 4] = [0x7f, 0xff, 0xff, rng.below(256) as u8];
                for (k, b) in v.iter().enumerate() {
                    if at + k < f.len() {
                        f[at + k] = *b;
                    }
                }
            }
            _ => {
                let n = rng.below(32);
                f.extend((0..n).map(|_| rng.next() as u8));
            }
        }
        h.feed(&f);
    }
}
