//! What a lab run produced: per worker what the primary learned, who answered each
//! connection, and the problems peers caused. The `--json` summary is this, serialised.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::channel::WireRecord;
use crate::cluster::SchedulingPolicy;
use crate::http::Answer;
use crate::sys;

/// What the primary learned about one worker.
#[derive(Debug, Default, Clone)]
pub(super) struct Record {
    pub(super) pid: u32,
    pub(super) ports: Vec<u16>,
    /// The paths of its pipe servers (`-1` in the primary's `listening`).
    pub(super) paths: Vec<String>,
    pub(super) errors: Vec<Value>,
    pub(super) settled: bool,
    /// Runs `--exec`: a program that speaks Node's protocol but not the lab's messages.
    pub(super) foreign: bool,
    pub(super) disconnected: bool,
    pub(super) exit: Option<(Option<i32>, Option<i32>)>,
    pub(super) served: u32,
}

impl Record {
    /// How many servers it listens on: ports and paths.
    pub(super) fn listens(&self) -> usize {
        self.ports.len() + self.paths.len()
    }
}

/// Everything the lab run produced, for the summary.
#[derive(Debug, Default)]
pub struct Outcome {
    pub(super) records: BTreeMap<u32, Record>,
    pub(super) answered_by: Vec<Option<u32>>,
    /// Who answered each connection, as the answer said (a worker, a pid, or its first
    /// line): the same order as `answered_by`.
    pub(super) answers: Vec<Option<Answer>>,
    pub(super) problems: Vec<String>,
    pub(super) policy: Option<SchedulingPolicy>,
    /// What `record_wire` kept: channel messages, plus the client's requests and answers as
    /// records from/to `client`.
    pub(super) wire: Vec<WireRecord>,
}

impl Outcome {
    /// Who answered each connection, in order (`None`: nobody did).
    pub fn answered_by(&self) -> &[Option<u32>] {
        &self.answered_by
    }

    /// The recorded messages (empty unless `record_wire` was set).
    pub fn wire(&self) -> &[WireRecord] {
        &self.wire
    }

    /// The final summary as JSON.
    pub fn to_json(&self) -> Value {
        let workers: Vec<Value> = self
            .records
            .iter()
            .map(|(id, r)| {
                let mut w = json!({"id": id, "pid": r.pid, "ports": r.ports, "errors": r.errors, "served": r.served,
                       "exit": r.exit.map(|(c, s)| json!({"code": c, "signal": s.map(sys::signal_name)}))});
                if !r.paths.is_empty() {
                    w["paths"] = json!(r.paths);
                }
                w
            })
            .collect();
        let errors: Vec<Value> = self
            .records
            .values()
            .flat_map(|r| r.errors.clone())
            .collect();
        json!({"summary": {
            "policy": self.policy.map(SchedulingPolicy::name),
            "workers": workers,
            "answered_by": self.answers.iter().map(shown).collect::<Vec<Value>>(),
            "counts": self.counts(),
            "errors": errors,
            "problems": self.problems,
        }})
    }

    pub(super) fn counts(&self) -> BTreeMap<String, u32> {
        let mut c = BTreeMap::new();
        for id in self.records.keys() {
            c.insert(id.to_string(), 0);
        }
        for id in self.answered_by.iter().flatten() {
            *c.entry(id.to_string()).or_insert(0) += 1;
        }
        c
    }
}

/// An answer in the summary: the worker's id; a pid or a text as a string; `null` for none.
fn shown(answer: &Option<Answer>) -> Value {
    match answer {
        Some(Answer::Worker(id)) => json!(id),
        Some(Answer::Pid(pid)) => json!(format!("pid {pid}")),
        Some(Answer::Text(text)) => json!(text),
        None => Value::Null,
    }
}
