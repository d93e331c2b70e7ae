//! The real Node binaries the tests compare with, found as the program finds them
//! (`cluster_walkthrough::node_source::find_node`): `$CLUSTER_WALKTHROUGH_NODE_<major>`, else
//! `node` on `PATH` when it is that major (Debian's is 20), else `.node-versions/<major>/node`
//! from `scripts/install-node-versions`.

use std::path::PathBuf;

use cluster_walkthrough::node_source::{Want, find_node};

/// The binary of a major line, or `None` after one `skipped:` line saying why.
pub fn node(major: u32) -> Option<PathBuf> {
    match find_node(Want::Major(major)) {
        Ok(found) => Some(found.path),
        Err(e) => {
            eprintln!("skipped: node {major}: {e} (scripts/install-node-versions {major})");
            None
        }
    }
}

/// Each of these majors that is found, with its binary, in order.
pub fn nodes(majors: &[u32]) -> Vec<(PathBuf, u32)> {
    majors
        .iter()
        .filter_map(|&m| node(m).map(|p| (p, m)))
        .collect()
}
