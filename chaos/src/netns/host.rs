//! What the root tier does to the machine: the commands it runs (`ip`, `nft`), the claim of a
//! run number, and the sweep of what crashed runs left behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::ENV;

const CLAIM_DIR: &str = "/run/tether-chaos-netns";

/// `name` from the sbin directories if it is there (root's PATH may lack them), else PATH.
fn tool(name: &str) -> String {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| name.to_owned())
}

/// Root and the tools, or a clear failure (the tier was asked for, so missing tools fail).
pub(super) fn preflight() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    assert!(root, "{ENV} is set but the tests do not run as root");
    for tool in ["ip", "nft"] {
        assert!(
            quiet(&[tool, "--version"]).is_ok() || quiet(&[tool, "-V"]).is_ok(),
            "{ENV} is set but `{tool}` is missing (apt-get install iproute2 nftables)"
        );
    }
}

/// Claims a free run number: a file holding this process's id, linked into place in one step
/// (`hard_link` fails if the name exists), so a concurrent sweep never sees it empty.
pub(super) fn claim_run() -> (u8, PathBuf) {
    std::fs::create_dir_all(CLAIM_DIR).expect("creating the claim dir");
    let pid = std::process::id();
    let draft = Path::new(CLAIM_DIR).join(format!(".draft-{pid}"));
    std::fs::write(&draft, pid.to_string()).expect("writing a claim");
    let existing = namespaces();
    let start = pid as usize % 250;
    for k in 0..250 {
        let run = ((start + k) % 250 + 1) as u8;
        if existing.iter().any(|n| run_of(n) == Some(run)) {
            continue;
        }
        let path = Path::new(CLAIM_DIR).join(run.to_string());
        if std::fs::hard_link(&draft, &path).is_ok() {
            let _ = std::fs::remove_file(&draft);
            return (run, path);
        }
    }
    let _ = std::fs::remove_file(&draft);
    panic!("no free network run number in 1..=250 (see {CLAIM_DIR})");
}

/// Deletes what earlier runs left behind: namespaces of runs whose claiming process is gone
/// (or that have no claim), their host veth and claim file.
pub(super) fn sweep_stale() {
    let _ = std::fs::create_dir_all(CLAIM_DIR);
    let mut runs: BTreeSet<u8> = namespaces().iter().filter_map(|n| run_of(n)).collect();
    for entry in std::fs::read_dir(CLAIM_DIR).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(run) = name.parse::<u8>() {
            runs.insert(run);
        } else if let Some(pid) = name.strip_prefix(".draft-")
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for run in runs {
        let claim = Path::new(CLAIM_DIR).join(run.to_string());
        let owner = std::fs::read_to_string(&claim)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
            continue;
        }
        for ns in namespaces().iter().filter(|n| run_of(n) == Some(run)) {
            eprintln!("netns: removing stale namespace {ns}");
            remove_namespace(ns);
        }
        let _ = quiet(&["ip", "link", "del", &format!("tch{run}h")]);
        let _ = std::fs::remove_file(claim);
    }
}

/// Kills every process left in `ns`, then deletes it.
pub(super) fn remove_namespace(ns: &str) {
    if let Ok(pids) = quiet(&["ip", "netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = quiet(&["kill", "-KILL", pid]);
        }
    }
    let _ = quiet(&["ip", "netns", "del", ns]);
}

/// Names of the existing network namespaces.
pub(super) fn namespaces() -> Vec<String> {
    quiet(&["ip", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// `tch<run>br` / `tch<run>n<i>` → `run`.
pub(super) fn run_of(ns: &str) -> Option<u8> {
    let rest = ns.strip_prefix("tch")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let tail = &rest[digits.len()..];
    (tail == "br" || tail.starts_with('n'))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Loads an nftables script into `ns`.
pub(super) fn nft(ns: &str, script: &str) {
    use std::io::Write;
    let nft = tool("nft");
    let mut child = Command::new(tool("ip"))
        .args(["netns", "exec", ns, &nft, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running nft");
    child
        .stdin
        .take()
        .expect("nft stdin")
        .write_all(script.as_bytes())
        .expect("writing to nft");
    let out = child.wait_with_output().expect("waiting for nft");
    assert!(
        out.status.success(),
        "nft in {ns} failed on {script:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command, panicking with its stderr if it fails.
pub(super) fn sh(args: &[&str]) {
    if let Err(e) = quiet(args) {
        panic!("`{}` failed: {e}", args.join(" "));
    }
}

/// Runs a command; its stdout, or its stderr as the error.
pub(super) fn quiet(args: &[&str]) -> Result<String, String> {
    let out = Command::new(tool(args[0]))
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}
