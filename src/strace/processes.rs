//! Who is who in a trace: which process each thread belongs to, who forked whom, what each
//! process runs, and so which side of the cluster it is on.

use std::collections::HashMap;

use super::parse::Call;

/// Which side of the cluster a process is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Primary,
    /// All workers together.
    Workers,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Workers => "workers",
        }
    }
}

/// Which process each thread belongs to, who forked whom, and what each process runs.
#[derive(Debug, Clone, Default)]
pub struct Processes {
    /// The first process: the program strace started.
    pub root: u32,
    /// A thread or process id → the call that made it: (its maker, a thread?, the syscall).
    made: HashMap<u32, (Option<u32>, bool, String)>,
    /// Process → the program of its last successful `execve`.
    program: HashMap<u32, String>,
}

impl Processes {
    /// The process a thread belongs to (a process's main thread has the process's id).
    pub fn process_of(&self, tid: Option<u32>) -> u32 {
        let mut t = tid.unwrap_or(self.root);
        for _ in 0..1000 {
            match self.made.get(&t) {
                Some((maker, true, _)) => t = maker.unwrap_or(self.root),
                _ => return t,
            }
        }
        t
    }

    /// The process that forked `pid` (`None` for the root).
    pub fn parent(&self, pid: u32) -> Option<u32> {
        match self.made.get(&pid) {
            Some((maker, false, _)) => Some(self.process_of(*maker)),
            _ => None,
        }
    }

    /// What the process runs, from its `execve` (`None` if it never ran a program).
    pub fn program(&self, pid: u32) -> Option<&str> {
        self.program.get(&pid).map(String::as_str)
    }

    /// Primary, worker, or `None` (a thread's id gives its process's side).
    pub fn side(&self, pid: u32) -> Option<Side> {
        if pid == self.root {
            Some(Side::Primary)
        } else if self.parent(pid) == Some(self.root) && self.program.contains_key(&pid) {
            Some(Side::Workers)
        } else {
            None
        }
    }

    /// The syscall that made `pid` (`clone`, `clone3`, `fork`...), if a traced one did.
    pub fn made_with(&self, pid: u32) -> Option<&str> {
        self.made.get(&pid).map(|(_, _, how)| how.as_str())
    }

    /// For every thread made (not a process's main thread): the thread that made it.
    pub fn thread_makers(&self) -> impl Iterator<Item = Option<u32>> + '_ {
        let threads = self.made.values().filter(|(_, thread, _)| *thread);
        threads.map(|(maker, _, _)| *maker)
    }

    /// Every process (not thread): the root and each one forked.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .made
            .iter()
            .filter(|(_, (_, thread, _))| !thread)
            .map(|(pid, _)| *pid)
            .collect();
        pids.push(self.root);
        pids.sort_unstable();
        pids
    }
}

// ANCHOR: processes
/// Build the process tree from the `clone`/`fork` and `execve` calls.
pub fn processes(calls: &[Call]) -> Processes {
    let mut p = Processes::default();
    for c in calls {
        if matches!(c.name.as_str(), "clone" | "clone3" | "fork" | "vfork")
            && let Some(child) = c.ok().filter(|n| *n > 0)
        {
            let thread = c.args.contains("CLONE_THREAD");
            p.made.insert(child as u32, (c.tid, thread, c.name.clone()));
        }
    }
    // The root is the one thread nobody traced made (its lines may carry no pid at all).
    p.root = calls
        .iter()
        .filter_map(|c| c.tid)
        .find(|t| !p.made.contains_key(t))
        .unwrap_or(0);
    for c in calls {
        if c.name == "execve" && c.ok() == Some(0) {
            let program = c.args.split('"').nth(1).unwrap_or("").to_string();
            p.program.insert(p.process_of(c.tid), program);
        }
    }
    p
}
// ANCHOR_END: processes

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strace::fixtures::NODE_RR;
    use crate::strace::parse::parse;

    #[test]
    fn threads_belong_to_their_process_even_when_seen_before_their_clone() {
        let p = processes(&parse(NODE_RR));
        assert_eq!(p.root, 100);
        assert_eq!(p.process_of(Some(101)), 100);
        // Thread 301 made a call before strace printed the clone3 that made it.
        assert_eq!(p.process_of(Some(301)), 300);
        assert_eq!(p.parent(300), Some(100));
        assert_eq!(p.program(300), Some("/usr/bin/node"));
        assert_eq!(p.side(100), Some(Side::Primary));
        assert_eq!(p.side(200), Some(Side::Workers));
        assert_eq!(p.side(p.process_of(Some(301))), Some(Side::Workers));
        assert_eq!(p.pids(), vec![100, 200, 300]);
    }
}
