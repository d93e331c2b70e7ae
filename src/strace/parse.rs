//! Reading strace's lines: one [`Call`] per system call, in the order they finished, the two
//! halves of an interrupted call joined.

use std::collections::HashMap;

/// One system call, its two halves joined if strace split it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The thread that made it; `None` when strace printed no pid (the first process, alone).
    pub tid: Option<u32>,
    pub name: String,
    /// Everything between the parentheses, as strace printed it.
    pub args: String,
    /// The return value, or the errno's name (`"EAGAIN"`), or `"?"` when strace could not tell.
    pub result: Result<i64, String>,
    /// For a failed call, strace's words for its errno: `Address already in use`.
    pub desc: Option<String>,
}

impl Call {
    pub(super) fn ok(&self) -> Option<i64> {
        self.result.as_ref().ok().copied()
    }

    /// The first argument as a number: the fd of every socket call.
    pub(super) fn fd(&self) -> Option<i64> {
        self.args.split(',').next()?.trim().parse().ok()
    }
}

/// `1234 rest`, `[pid 1234] rest` or just `rest`.
fn split_pid(line: &str) -> (Option<u32>, &str) {
    if let Some(rest) = line.strip_prefix("[pid")
        && let Some(end) = rest.find(']')
        && let Ok(tid) = rest[..end].trim().parse()
    {
        return (Some(tid), rest[end + 1..].trim_start());
    }
    let digits = line
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(line.len());
    if digits > 0
        && line[digits..].starts_with(' ')
        && let Ok(tid) = line[..digits].parse()
    {
        return (Some(tid), line[digits..].trim_start());
    }
    (None, line)
}

/// `name(args) = result`; `None` for anything else (signals, exits, strace's own notes).
fn parse_call(tid: Option<u32>, text: &str) -> Option<Call> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    // The result comes last, so the last ` = ` is its: argument strings are escaped by strace.
    let eq = text.rfind(" = ")?;
    let args = text[..eq].trim_end().strip_suffix(')')?.get(open + 1..)?;
    let returned = &text[eq + 3..];
    let mut words = returned.split_whitespace();
    let first = words.next()?;
    let mut desc = None;
    let result = if first == "-1" {
        let errno = words.next().unwrap_or("?");
        let after = returned
            .split_once(errno)
            .map_or("", |(_, rest)| rest.trim());
        desc = after
            .strip_prefix('(')
            .and_then(|d| d.strip_suffix(')'))
            .map(str::to_string);
        Err(errno.to_string())
    } else if let Some(hex) = first.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).map_err(|_| first.to_string())
    } else {
        first.parse().map_err(|_| first.to_string())
    };
    Some(Call {
        tid,
        name: name.to_string(),
        args: args.to_string(),
        result,
        desc,
    })
}

/// Every system call in strace's output, in the order they finished.
pub fn parse(text: &str) -> Vec<Call> {
    let mut pending: HashMap<Option<u32>, String> = HashMap::new();
    let mut calls = Vec::new();
    for line in text.lines() {
        let (tid, rest) = split_pid(line);
        let rest = rest.trim_end();
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(tid, head.trim_end().to_string());
            continue;
        }
        let joined;
        let text = match rest.strip_prefix("<... ") {
            Some(after) => {
                let Some(at) = after.find(" resumed>") else {
                    continue;
                };
                let Some(head) = pending.remove(&tid) else {
                    continue;
                };
                let tail = after[at + " resumed>".len()..].trim_start();
                let gap = if head.ends_with(',') { " " } else { "" };
                joined = format!("{head}{gap}{tail}");
                joined.as_str()
            }
            None => rest,
        };
        calls.extend(parse_call(tid, text));
    }
    calls
}

/// The fds in a `recvmsg`'s `cmsg_data=[4, 5]`.
pub(super) fn received_fds(args: &str) -> Vec<i64> {
    let Some(start) = args.find("cmsg_data=[") else {
        return Vec::new();
    };
    let rest = &args[start + "cmsg_data=[".len()..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strace::fixtures::NODE_RR;

    #[test]
    fn a_line_with_a_pid_and_a_result() {
        let c = parse("100 listen(21, 511)                   = 0\n");
        assert_eq!(
            c,
            vec![Call {
                tid: Some(100),
                name: "listen".into(),
                args: "21, 511".into(),
                result: Ok(0),
                desc: None,
            }]
        );
    }

    #[test]
    fn the_three_pid_forms_and_an_errno() {
        let text = "bind(4, {sa_family=AF_INET, sin_port=htons(80)}, 16) = -1 EACCES (Permission denied)\n\
                    [pid  4242] accept4(4, NULL, NULL, SOCK_CLOEXEC) = -1 EAGAIN (Resource temporarily unavailable)\n\
                    77 clone3({flags=CLONE_VM}, 88) = 0x10\n";
        let c = parse(text);
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].tid, c[0].result.clone()),
            (None, Err("EACCES".into()))
        );
        assert_eq!(c[0].desc.as_deref(), Some("Permission denied"));
        assert_eq!(
            (c[1].tid, c[1].result.clone()),
            (Some(4242), Err("EAGAIN".into()))
        );
        assert_eq!((c[2].tid, c[2].result.clone()), (Some(77), Ok(16)));
    }

    #[test]
    fn unfinished_and_resumed_halves_are_joined() {
        let c = parse(NODE_RR);
        let got = c
            .iter()
            .find(|c| c.name == "recvmsg" && c.tid == Some(300))
            .expect("the joined recvmsg");
        assert!(got.args.starts_with("3, {msg_name=NULL"), "{}", got.args);
        assert_eq!(got.result, Ok(129));
        assert_eq!(received_fds(&got.args), vec![19]);
        let set = c
            .iter()
            .find(|c| c.name == "setsockopt" && c.args.contains("TCP_NODELAY"));
        assert_eq!(set.map(|c| c.result.clone()), Some(Ok(0)));
        assert!(c.iter().all(|c| !c.name.contains("SIGCHLD")));
    }
}
