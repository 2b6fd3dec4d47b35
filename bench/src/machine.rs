//! What this machine is and how busy it is: `/proc` readers for the report.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_total_kib: u64,
    pub open_files_limit: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_default();
        let limits = read("/proc/self/limits");
        let open_files_limit = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .map(|l| l.split_whitespace().nth(3).unwrap_or("").to_owned())
            .unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            mem_total_kib: status_kib(&read("/proc/meminfo"), "MemTotal:").unwrap_or(0),
            open_files_limit,
        }
    }
}

/// 1, 5 and 15 minute load averages.
pub fn loadavg() -> [f64; 3] {
    let s = read("/proc/loadavg");
    let mut it = s.split_whitespace().map(|x| x.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// The KiB value of a `Key:   123 kB` line.
pub fn status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Resident set size and its high-water mark of process `pid`, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rss {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn rss(pid: u32) -> Option<Rss> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Rss {
        rss_kib: status_kib(&s, "VmRSS:")?,
        hwm_kib: status_kib(&s, "VmHWM:")?,
    })
}

/// Number of open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Latency (ms) of `n` appends of 4 KiB each followed by `fdatasync`, in a temp file under
/// `dir`: what one durable Raft append costs on this disk at this moment.
pub fn fsync_latency(dir: &std::path::Path, n: usize) -> std::io::Result<Vec<f64>> {
    use std::io::Write;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut f = tmp.as_file();
    let block = [7u8; 4096];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = tokio::time::Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `VmRSS:` is read in KiB from a status text.
    #[test]
    fn parses_status_lines() {
        let s = "Name:\ttether\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(s, "VmRSS:"), Some(10240));
        assert_eq!(status_kib(s, "VmHWM:"), Some(20480));
        assert_eq!(status_kib(s, "VmSwap:"), None);
    }
}
