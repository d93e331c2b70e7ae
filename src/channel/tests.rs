//! The channel's unit tests: framing across reads, fds with their lines, the bounded queue.

use super::*;
use serde_json::json;

fn pair() -> (Channel, Channel) {
    let (a, b) = sys::socketpair().expect("socketpair");
    (
        Channel::new(a, "b").expect("channel"),
        Channel::new(b, "a").expect("channel"),
    )
}

fn read_all(c: &mut Channel) -> Vec<Incoming> {
    c.read().expect("read ok").expect("not EOF")
}

#[test]
fn several_lines_in_one_read() {
    let (mut a, mut b) = pair();
    a.send(json!({"cmd": "x", "n": 1}));
    a.send(json!({"cmd": "x", "n": 2}));
    let got = read_all(&mut b);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].msg["n"], 2);
}

#[test]
fn a_line_split_across_reads() {
    let (a, mut b) = pair();
    sys::send(a.fd(), b"{\"cmd\":\"x\",").expect("send");
    assert!(read_all(&mut b).is_empty());
    sys::send(a.fd(), b"\"n\":7}\n").expect("send");
    let got = read_all(&mut b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].msg["n"], 7);
}

#[test]
fn fd_is_attached_to_its_handle_line_and_acked() {
    let (mut a, mut b) = pair();
    let (x, _y) = sys::socketpair().expect("socketpair");
    a.send(json!({"cmd": "before"}));
    a.send_handle(
        json!({"cmd": "NODE_CLUSTER", "act": "newconn"}),
        Rc::new(x),
        HandleType::NetNative,
    );
    a.send(json!({"cmd": "held"}));
    let got = read_all(&mut b);
    assert_eq!(got.len(), 2, "the held message waits for the ACK");
    assert!(got[0].fd.is_none());
    assert!(got[1].fd.is_some());
    assert_eq!(got[1].msg["act"], "newconn");
    // b answered NODE_HANDLE_ACK; reading it releases "held".
    assert!(read_all(&mut a).is_empty());
    let got = read_all(&mut b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].msg["cmd"], "held");
}

#[test]
fn handle_line_without_fd_is_nacked() {
    let (a, mut b) = pair();
    sys::send(
        a.fd(),
        b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{}}\n",
    )
    .expect("send");
    assert!(read_all(&mut b).is_empty());
    let mut buf = [0u8; 100];
    let n = sys::read(a.fd(), &mut buf).expect("read");
    assert_eq!(&buf[..n], b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n");
}

#[test]
fn not_json_is_an_error() {
    let (a, mut b) = pair();
    sys::send(a.fd(), b"hello\n").expect("send");
    assert!(matches!(
        b.read(),
        Err(ChannelError::Frame(FrameError::NotJson { .. }))
    ));
}

#[test]
fn eof_mid_line_is_an_error_and_clean_eof_is_none() {
    let (a, mut b) = pair();
    sys::send(a.fd(), b"{\"cmd\":").expect("send");
    drop(a);
    assert!(read_all(&mut b).is_empty());
    assert_eq!(
        b.read().err(),
        Some(ChannelError::Frame(FrameError::ClosedMidLine))
    );
    let (a, mut b) = pair();
    drop(a);
    assert!(b.read().expect("ok").is_none());
}

#[test]
fn too_many_fds_in_one_message_is_an_error() {
    let (a, mut b) = pair();
    let (x, _y) = sys::socketpair().expect("socketpair");
    let fds = [x.as_raw_fd(); 2 * sys::FDS_PER_READ];
    let line = b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{}}\n";
    sys::sendmsg_with_fds(a.fd(), line, &fds).expect("sendmsg");
    assert_eq!(b.read().err(), Some(ChannelError::TruncatedFds));
}

#[test]
fn a_peer_that_does_not_read_overflows_the_bound_once() {
    let (mut a, mut b) = pair();
    let big = json!({"cmd": "x", "pad": "y".repeat(1000)});
    let mut sent = 0;
    while a.overflow().is_none() {
        a.send(big.clone());
        a.flush();
        sent += 1;
        assert!(sent < 100_000, "the bound never bit");
    }
    assert!(a.queued() <= MAX_QUEUED, "{} queued", a.queued());
    let before = a.queued();
    a.send(big.clone());
    assert_eq!(a.queued(), before, "nothing more is queued once overflowed");
    assert_eq!(
        a.read().err(),
        Some(ChannelError::Overflowed { queued: before })
    );
    // The peer's side is untouched: it reads what did go out, in order.
    assert!(!read_all(&mut b).is_empty());
}

#[test]
fn what_waits_behind_a_handle_counts_too() {
    let (mut a, _b) = pair();
    let (x, _y) = sys::socketpair().expect("socketpair");
    a.send_handle(json!({"cmd": "h"}), Rc::new(x), HandleType::NetNative);
    let sent = a.queued();
    let line = json!({"cmd": "held", "pad": "z".repeat(100)});
    let each = line.to_string().len() + 1;
    for _ in 0..10 {
        a.send(line.clone());
    }
    assert_eq!(a.queued(), sent + 10 * each);
    while a.overflow().is_none() {
        a.send(line.clone());
    }
    assert!(a.queued() <= MAX_QUEUED);
}

#[test]
fn the_count_goes_back_to_zero_once_everything_is_read() {
    let (mut a, mut b) = pair();
    let (x, _y) = sys::socketpair().expect("socketpair");
    a.send(json!({"cmd": "before"}));
    a.send_handle(json!({"cmd": "h"}), Rc::new(x), HandleType::NetNative);
    for n in 0..100 {
        a.send(json!({"cmd": "held", "n": n}));
    }
    assert!(a.queued() > 0);
    assert_eq!(read_all(&mut b).len(), 2);
    assert!(read_all(&mut a).is_empty(), "the ACK releases the rest");
    a.flush();
    assert_eq!(read_all(&mut b).len(), 100);
    assert_eq!(a.queued(), 0);
}

#[test]
fn endless_line_hits_the_limit() {
    let (a, mut b) = pair();
    let chunk = vec![b'x'; 60 * 1024];
    let mut result = Ok(Some(Vec::new()));
    for _ in 0..40 {
        let _ = sys::send(a.fd(), &chunk);
        result = b.read();
        if result.is_err() {
            break;
        }
    }
    assert_eq!(
        result.err(),
        Some(ChannelError::Frame(FrameError::LineTooLong))
    );
}
