//! `meta.properties` in the data dir (Kafka's name and format: `key=value` lines): which
//! node and which cluster a data dir belongs to, written at the first start and checked at
//! every start, before anything else is written.
//!
//! `cluster.id` is derived from the sorted voter list (ids and quorum addresses), so every
//! node of one `--controller-quorum` computes the same id without talking to the others,
//! and a data dir formatted under another quorum is refused. (Consequence: changing a
//! voter's address needs fresh data dirs, as a static KRaft quorum does.)

use std::path::Path;

use crate::cluster::ClusterConfig;

pub const FILE: &str = "meta.properties";

/// The cluster id of a voter set: 32 hex digits of a 128-bit FNV-1a of `id@addr,...`
/// sorted by id.
pub fn cluster_id(cfg: &ClusterConfig) -> String {
    let mut voters: Vec<_> = cfg.voters.iter().collect();
    voters.sort_by_key(|v| v.id);
    let text: String = voters
        .iter()
        .map(|v| format!("{}@{},", v.id, v.addr))
        .collect();
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in text.bytes() {
        h = (h ^ b as u128).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    format!("{h:032x}")
}

fn parse(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
}

/// Refuses a data dir that belongs to another node id or another cluster; the error names
/// `--data-dir`, `--node-id` or `--controller-quorum`. A dir without the file is fine.
pub fn check_data_dir(dir: &Path, cfg: &ClusterConfig) -> Result<(), String> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "--data-dir {}: cannot read {FILE}: {e}",
                dir.display()
            ))
        }
    };
    let (mut node, mut cluster) = (None, None);
    for (k, v) in parse(&text) {
        match k {
            "node.id" => node = Some(v.to_string()),
            "cluster.id" => cluster = Some(v.to_string()),
            _ => {}
        }
    }
    let want_node = cfg.node_id.to_string();
    if node.as_deref() != Some(want_node.as_str()) {
        return Err(format!(
            "--data-dir {} belongs to node {} (its {FILE} says node.id={}), not --node-id {}: give each node its own data dir",
            dir.display(),
            node.as_deref().unwrap_or("?"),
            node.as_deref().unwrap_or("(none)"),
            cfg.node_id
        ));
    }
    let want_cluster = cluster_id(cfg);
    if cluster.as_deref() != Some(want_cluster.as_str()) {
        return Err(format!(
            "--data-dir {} belongs to another cluster (cluster.id={}; this --controller-quorum gives {want_cluster}) for --node-id {}: use a fresh data dir or the --controller-quorum it was made with",
            dir.display(),
            cluster.as_deref().unwrap_or("(none)"),
            cfg.node_id
        ));
    }
    Ok(())
}

/// Writes the file if it is absent (after `check_data_dir` passed).
pub fn write_if_absent(dir: &Path, cfg: &ClusterConfig) -> std::io::Result<()> {
    let path = dir.join(FILE);
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let text = format!(
        "#\n# Written by kbench broker at its first start; checked at every start.\nversion=1\nnode.id={}\ncluster.id={}\n",
        cfg.node_id,
        cluster_id(cfg)
    );
    super::files::replace(&path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::config::parse_quorum;

    fn cfg(id: i32, quorum: &str) -> ClusterConfig {
        ClusterConfig::new(id, parse_quorum(quorum).unwrap())
    }

    #[test]
    fn a_data_dir_of_another_node_or_cluster_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let q = "1@127.0.0.1:19091,2@127.0.0.1:19092";
        assert!(check_data_dir(dir.path(), &cfg(1, q)).is_ok());
        write_if_absent(dir.path(), &cfg(1, q)).unwrap();
        assert!(check_data_dir(dir.path(), &cfg(1, q)).is_ok());
        // The same voters listed in another order are the same cluster.
        assert!(check_data_dir(dir.path(), &cfg(1, "2@127.0.0.1:19092,1@127.0.0.1:19091")).is_ok());
        let e = check_data_dir(dir.path(), &cfg(2, q)).unwrap_err();
        assert!(e.contains("--data-dir") && e.contains("--node-id 2"), "{e}");
        let e =
            check_data_dir(dir.path(), &cfg(1, "1@127.0.0.1:19091,2@127.0.0.1:29092")).unwrap_err();
        assert!(
            e.contains("--data-dir") && e.contains("another cluster"),
            "{e}"
        );
    }
}
