//! Writes the fuzzer's seed corpus: one file per served API and version (a default-valued
//! request frame). `cargo run -p kbench-broker --example fuzz_seeds -- DIR` (scripts/fuzz.sh).

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| std::io::Error::other("usage: fuzz_seeds DIR"))?;
    std::fs::create_dir_all(&dir)?;
    let seeds = kbench_broker::fuzzing::seed_frames();
    for (i, frame) in seeds.iter().enumerate() {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("seed-{i:03}")),
            frame,
        )?;
    }
    eprintln!("fuzz_seeds: wrote {} frames to {dir}", seeds.len());
    Ok(())
}
