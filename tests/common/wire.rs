//! Reading what processes wrote to each other, from `strace`: how the tests compare our
//! primary's bytes with a real Node primary's. Used as `#[path = "common/wire.rs"] mod wire;`
//! by the tests that need it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// `strace -f` around `program args`, writing every `write`/`sendmsg`/`sendto` of every
/// process (strings up to 4 KiB) to `out`.
pub fn traced<S: AsRef<OsStr>>(out: &Path, program: impl AsRef<OsStr>, args: &[S]) -> Command {
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-s",
        "4096",
        "-e",
        "trace=write,sendmsg,sendto",
    ])
    .args(["-e", "signal=none", "-o"])
    .arg(out)
    .arg("--")
    .arg(program)
    .args(args)
    .env("NO_COLOR", "1");
    cmd
}

/// Every string strace printed in a call's arguments, with C's escapes undone.
pub fn strings(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars();
    while chars.by_ref().any(|c| c == '"') {
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some(other) => s.push(other),
                    None => {}
                },
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// Every Node IPC line (`{"cmd":"NODE_...`) any traced process wrote, in the order strace
/// saw the writes.
pub fn written_lines(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter(|l| {
            ["write(", "sendto(", "sendmsg("]
                .iter()
                .any(|c| l.contains(c))
        })
        .flat_map(strings)
        .flat_map(|s| s.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.starts_with("{\"cmd\":\"NODE_"))
        .collect()
}
