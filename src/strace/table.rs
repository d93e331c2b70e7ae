//! The side-by-side table of chapter 10, and the differences it marks.

use std::fmt::Write as _;

use super::counts::{CallCounts, CallKind};
use super::processes::Side;

/// The side-by-side table: every row, per side, Node's count next to ours. A row whose counts
/// differ ends with `<- differs`; rows that agree but were made with different syscalls get a
/// note underneath.
pub fn table(node: &CallCounts, ours: &CallCounts) -> String {
    let mut t = String::new();
    let top = format!("{:27}{:^12}    {:^12}", "", "primary", "workers");
    let _ = writeln!(t, "{}", top.trim_end());
    let _ = writeln!(
        t,
        "{:27}{:>6}{:>6}    {:>6}{:>6}",
        "", "node", "ours", "node", "ours"
    );
    for kind in CallKind::ALL {
        let (p, w) = (Side::Primary, Side::Workers);
        let cells = [
            node.count(p, kind),
            ours.count(p, kind),
            node.count(w, kind),
            ours.count(w, kind),
        ];
        let mark = if cells[0] != cells[1] || cells[2] != cells[3] {
            "   <- differs"
        } else {
            ""
        };
        let _ = writeln!(
            t,
            "  {:25}{:>6}{:>6}    {:>6}{:>6}{mark}",
            kind.label(),
            cells[0],
            cells[1],
            cells[2],
            cells[3]
        );
    }
    for (side, kind) in flavour_differences(node, ours) {
        let _ = writeln!(
            t,
            "  note: {}, {}: node uses {}, ours {}",
            side.name(),
            kind.label(),
            node.syscalls(side, kind),
            ours.syscalls(side, kind)
        );
    }
    t
}

/// Rows where both made calls, with different syscalls (`recvmsg` against `recvfrom`).
pub fn flavour_differences(node: &CallCounts, ours: &CallCounts) -> Vec<(Side, CallKind)> {
    let mut found = Vec::new();
    for side in [Side::Primary, Side::Workers] {
        for kind in CallKind::ALL {
            if node.count(side, kind) > 0
                && ours.count(side, kind) > 0
                && node.syscalls(side, kind) != ours.syscalls(side, kind)
            {
                found.push((side, kind));
            }
        }
    }
    found
}

/// Rows whose counts differ between the two runs.
pub fn count_differences(node: &CallCounts, ours: &CallCounts) -> Vec<(Side, CallKind)> {
    let mut found = Vec::new();
    for side in [Side::Primary, Side::Workers] {
        for kind in CallKind::ALL {
            if node.count(side, kind) != ours.count(side, kind) {
                found.push((side, kind));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_marks_differences_and_flavours() {
        let mut node = CallCounts::default();
        let mut ours = CallCounts::default();
        node.add(Side::Workers, CallKind::DatagramIn, "recvmsg");
        ours.add(Side::Workers, CallKind::DatagramIn, "recvfrom");
        node.add(Side::Primary, CallKind::Listen, "listen");
        let t = table(&node, &ours);
        let listen = t
            .lines()
            .find(|l| l.trim_start().starts_with("listen ("))
            .expect("a listen row");
        assert!(listen.ends_with("<- differs"), "{t}");
        let bind = t
            .lines()
            .find(|l| l.trim_start().starts_with("bind "))
            .expect("bind");
        assert!(!bind.contains("differs"), "{t}");
        assert!(
            t.contains("note: workers, datagram received: node uses recvmsg, ours recvfrom"),
            "{t}"
        );
        assert_eq!(
            count_differences(&node, &ours),
            vec![(Side::Primary, CallKind::Listen)]
        );
    }
}
