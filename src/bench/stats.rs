//! The arithmetic of the benchmark, apart from any socket so it can be tested on its own:
//! percentiles of latencies, each worker's share of the connections, ratios between
//! strategies, the median over rounds, and CPU time per connection.
//!
//! Conventions: latencies are whole microseconds (`u32`: 71 minutes is plenty); a ratio or a
//! fairness figure that would divide by zero is `None` (printed as `-` or `∞`, and `null` in
//! the JSON), never a made-up number.

use std::time::Duration;

// ANCHOR: percentile
/// The `p`-th percentile (0 < p ≤ 100) of `sorted` by the nearest-rank method: the smallest
/// value such that at least `p` % of the values are less than or equal to it. `None` for no
/// values. `sorted` must be in ascending order.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}
// ANCHOR_END: percentile

/// The median of some values (the mean of the middle two for an even count); `None` for none.
/// NaNs are ignored.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if !v.len().is_multiple_of(2) {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// `a / b`, or `None` when `b` is zero (or either is not a number).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    let r = a / b;
    (b != 0.0 && r.is_finite()).then_some(r)
}

/// Events per second over `elapsed` (0 for no time at all).
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

// ANCHOR: fairness
/// How evenly the workers shared the connections.
#[derive(Debug, Clone, PartialEq)]
pub struct Fairness {
    /// Worker `i + 1`'s share of all connections, from 0 to 1.
    pub shares: Vec<f64>,
    /// The busiest worker's count over the idlest one's: 1 is perfectly even. `None` when some
    /// worker answered nothing (the ratio is infinite) or nobody answered at all.
    pub max_min: Option<f64>,
}

/// Fairness of `counts`, where `counts[i]` is how many connections worker `i + 1` answered.
/// Every worker that could have answered must be there, with 0 if it answered none.
pub fn fairness(counts: &[u64]) -> Fairness {
    let total: u64 = counts.iter().sum();
    let shares = counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect();
    let max = counts.iter().copied().max().unwrap_or(0);
    let min = counts.iter().copied().min().unwrap_or(0);
    Fairness {
        shares,
        max_min: ratio(max as f64, min as f64),
    }
}
// ANCHOR_END: fairness

/// CPU time per connection, in microseconds, from a process's CPU clock ticks
/// (`utime + stime` in `/proc/PID/stat`) before and after, at `hz` ticks per second.
/// `None` when nothing was served (or the clock went backwards: a different process).
pub fn cpu_us_per_connection(before: u64, after: u64, hz: u64, connections: u64) -> Option<f64> {
    if connections == 0 || hz == 0 || after < before {
        return None;
    }
    let secs = (after - before) as f64 / hz as f64;
    Some(secs * 1e6 / connections as f64)
}

/// `utime + stime` (fields 14 and 15) from the text of `/proc/PID/stat`. The command name
/// (field 2) is in parentheses and may itself hold spaces or parentheses, so fields are
/// counted from the last `)`.
pub fn cpu_ticks_from_stat(stat: &str) -> Option<u64> {
    let fields = fields_after_name(stat)?;
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// `utime + stime + cutime + cstime` (fields 14 to 17): a process's CPU time and that of
/// the children it has reaped.
pub fn cpu_ticks_with_children_from_stat(stat: &str) -> Option<u64> {
    let fields = fields_after_name(stat)?;
    let mut sum = 0;
    for n in 14..=17 {
        sum += fields.get(n - 3)?.parse::<u64>().ok()?;
    }
    Some(sum)
}

/// The parent's pid (field 4) from the text of `/proc/PID/stat`.
pub fn ppid_from_stat(stat: &str) -> Option<u32> {
    fields_after_name(stat)?.get(4 - 3)?.parse().ok()
}

/// The fields after the command name (field 2), which is in parentheses and may itself hold
/// spaces or parentheses: they are counted from the last `)`. Field N is at index N - 3.
fn fields_after_name(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

/// Latencies of one run, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    pub p50_us: Option<u32>,
    pub p99_us: Option<u32>,
}

/// Sort `latencies` in place and take p50 and p99.
pub fn latency(latencies: &mut [u32]) -> Latency {
    latencies.sort_unstable();
    Latency {
        p50_us: percentile(latencies, 50.0),
        p99_us: percentile(latencies, 99.0),
    }
}

/// A UTC calendar date from seconds since 1970 (`2026-11-26`), without a date crate: the
/// days-to-civil algorithm of Howard Hinnant's `chrono`-compatible date library.
pub fn utc_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.1), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&v, 0.0), None);
        assert_eq!(percentile(&v, 101.0), None);
    }

    #[test]
    fn latency_sorts_first() {
        let mut v = vec![900, 100, 300, 200, 10_000];
        let l = latency(&mut v);
        assert_eq!(l.p50_us, Some(300));
        assert_eq!(l.p99_us, Some(10_000));
    }

    #[test]
    fn fairness_shares_and_max_over_min() {
        let f = fairness(&[30, 10]);
        assert_eq!(f.shares, vec![0.75, 0.25]);
        assert_eq!(f.max_min, Some(3.0));
        assert_eq!(fairness(&[5, 5, 5]).max_min, Some(1.0));
        let idle = fairness(&[8, 0]);
        assert_eq!(
            idle.max_min, None,
            "a worker that answered nothing: infinite"
        );
        assert_eq!(fairness(&[0, 0]).shares, vec![0.0, 0.0]);
    }

    #[test]
    fn ratios_and_medians() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
    }

    #[test]
    fn cpu_from_proc_stat() {
        // A name with a space and a parenthesis, as a process may choose.
        let stat = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_ticks_from_stat(stat), Some(300));
        assert_eq!(cpu_ticks_from_stat("garbage"), None);
        assert_eq!(cpu_ticks_with_children_from_stat(stat), Some(300));
        let reaped = "7 (x) S 1 7 7 0 -1 0 0 0 0 0 250 50 30 20 20 0 1 0";
        assert_eq!(cpu_ticks_with_children_from_stat(reaped), Some(350));
        assert_eq!(ppid_from_stat(stat), Some(1));
        assert_eq!(cpu_us_per_connection(100, 300, 100, 1000), Some(2000.0));
        assert_eq!(cpu_us_per_connection(100, 300, 100, 0), None);
        assert_eq!(cpu_us_per_connection(300, 100, 100, 10), None);
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_795_680_000), "2026-11-26");
    }
}
