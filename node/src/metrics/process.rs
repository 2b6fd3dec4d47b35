//! The process's own figures, from `/proc/self` (Linux); zeros where it cannot be read.

pub struct Process {
    pub resident_bytes: i64,
    pub open_fds: i64,
    pub cpu_seconds: f64,
}

/// Clock ticks per second of `/proc/self/stat`'s times: 100 on every Linux the node targets
/// (reading `sysconf(_SC_CLK_TCK)` would need `unsafe` or another crate).
const TICKS_PER_SEC: f64 = 100.0;
const PAGE_BYTES: i64 = 4096;

pub fn read() -> Process {
    let resident_bytes = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        .map_or(0, |pages| pages * PAGE_BYTES);
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64);
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| cpu_ticks(&s))
        .map_or(0.0, |t| t as f64 / TICKS_PER_SEC);
    Process {
        resident_bytes,
        open_fds,
        cpu_seconds,
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its closing `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skips_a_command_name_with_spaces() {
        let stat = "42 (a b) c) S 1 1 1 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0 5 0 0";
        assert_eq!(cpu_ticks(stat), Some(281));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let p = read();
        assert!(
            p.resident_bytes > 0 && p.open_fds > 0,
            "{} {}",
            p.resident_bytes,
            p.open_fds
        );
    }
}
