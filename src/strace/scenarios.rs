//! What chapter 10 runs both ways: a Node cluster script, and the same with our lab.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One thing to run both ways: a Node cluster script, and the same with our lab.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `round robin`, `SCHED_NONE`, ...
    pub title: &'static str,
    /// The script is `tests/node/scenario-<slug>.js`.
    pub slug: &'static str,
    /// Arguments for the script after its path.
    pub node_args: Vec<String>,
    /// Arguments for `cluster-walkthrough lab`.
    pub lab_args: Vec<String>,
    /// How many requests (connections or datagrams) the primary makes.
    pub requests: u32,
}

impl Scenario {
    /// The script's path relative to the crate root, as a reader would type it.
    pub fn script(&self) -> String {
        format!("tests/node/scenario-{}.js", self.slug)
    }

    /// The script's absolute path.
    pub fn script_path(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(self.script())
    }

    /// Node's side: `node <script> [args]`, ready for [`run`](super::run).
    pub fn node_command(&self) -> Command {
        self.node_command_with(Path::new("node"))
    }

    /// Node's side with a given Node binary (another version than the one on `PATH`).
    pub fn node_command_with(&self, node: &Path) -> Command {
        let mut cmd = Command::new(node);
        cmd.arg(self.script_path()).args(&self.node_args);
        cmd
    }

    /// Our side's `lab` flags when following Node `major`.
    pub fn lab_args_for(&self, major: u32) -> Vec<String> {
        let node = ["--node".to_string(), major.to_string()];
        self.lab_args.iter().cloned().chain(node).collect()
    }

    /// The two commands as a reader would type them, one line each, for Node `major`:
    /// `node: node tests/node/scenario-rr.js` and `ours: lab --workers 2 --connections 2 --node 24`.
    pub fn commands(&self, major: u32) -> String {
        let node = std::iter::once(self.script()).chain(self.node_args.iter().cloned());
        format!(
            "node: node {}\nours: lab {}\n",
            node.collect::<Vec<_>>().join(" "),
            self.lab_args_for(major).join(" ")
        )
    }
}

/// The four scenarios: 2 workers, 127.0.0.1, 2 requests each. `port` is for the exclusive one,
/// whose workers bind a fixed port themselves.
pub fn scenarios(port: u16) -> Vec<Scenario> {
    let lab = |extra: &[&str]| -> Vec<String> {
        ["--workers", "2", "--connections", "2"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let port = port.to_string();
    vec![
        Scenario {
            title: "round robin",
            slug: "rr",
            node_args: vec![],
            lab_args: lab(&[]),
            requests: 2,
        },
        Scenario {
            title: "SCHED_NONE",
            slug: "none",
            node_args: vec![],
            lab_args: lab(&["--policy", "none"]),
            requests: 2,
        },
        Scenario {
            title: "exclusive",
            slug: "exclusive",
            node_args: vec![port.clone()],
            lab_args: lab(&["--exclusive", "--port", &port]),
            requests: 2,
        },
        Scenario {
            title: "UDP",
            slug: "udp",
            node_args: vec![],
            lab_args: lab(&["--udp"]),
            requests: 2,
        },
    ]
}
