//! `TestNode`: one `tether serve --config` child process on a temp data dir.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub use crate::config::{NodeSpec, config_toml, config_toml_spec};

/// Path of the `tether` binary, built once per test process.
pub fn tether_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("TETHER_BIN") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Up to date after `cargo test --workspace` (which builds the binary); cheap then.
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "tether-node", "--bin", "tether"])
            .current_dir(&root)
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building tether failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("tether")
    })
    .clone()
}

pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    child: Option<Child>,
    pub client_addr: String,
    pub admin_addr: String,
    pub peer_addr: String,
    pub id: u64,
    /// The `[listen]` addresses as first written (pinned to the bound ports by `pin_ports`).
    listen: [String; 3],
    wrapper: Vec<String>,
    /// Extra environment of the process, used from the next (re)start on.
    pub env: Vec<(String, String)>,
    /// Everything the node printed on stdout (audit lines etc.), collected in the background.
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// When set before `spawn`, the process's stderr (its log) is appended to this file
    /// instead of the test's stderr (the chaos suite keeps each node's log this way).
    pub stderr_file: Option<PathBuf>,
}

impl TestNode {
    /// Starts a node with default limits.
    pub async fn start() -> TestNode {
        Self::start_with("", "").await
    }

    /// Starts a node with extra `[limits]` lines and extra tenant keys (TOML).
    pub async fn start_with(limits: &str, extra_tenant: &str) -> TestNode {
        let spec = NodeSpec {
            limits: limits.to_owned(),
            extra_tenant: extra_tenant.to_owned(),
            ..Default::default()
        };
        Self::start_spec(&spec).await
    }

    /// Starts a node from `spec`, waits until it is ready, then pins its ports in the config
    /// so a restart comes back on the same addresses (as a real deployment would).
    pub async fn start_spec(spec: &NodeSpec) -> TestNode {
        let mut n = Self::create(spec);
        n.spawn().await;
        n.pin_ports();
        n
    }

    /// Writes the config of `spec` into a fresh temp dir without starting anything.
    pub fn create(spec: &NodeSpec) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("tether.toml");
        let data = dir.path().join("data");
        std::fs::write(&config_path, config_toml_spec(&data, spec)).expect("write config");
        TestNode {
            dir,
            config_path,
            child: None,
            client_addr: String::new(),
            admin_addr: String::new(),
            peer_addr: String::new(),
            stdout: Default::default(),
            id: spec.id,
            listen: spec.listen.clone(),
            wrapper: spec.wrapper.clone(),
            env: spec.env.clone(),
            stderr_file: None,
        }
    }

    /// Rewrites the `[listen]` addresses of the config to the ports bound now.
    pub fn pin_ports(&self) {
        let text = std::fs::read_to_string(&self.config_path).expect("read config");
        let [client, admin, peer] = &self.listen;
        let text = text
            .replacen(
                &format!("client = \"{client}\""),
                &format!("client = \"{}\"", self.client_addr),
                1,
            )
            .replacen(
                &format!("admin = \"{admin}\""),
                &format!("admin = \"{}\"", self.admin_addr),
                1,
            )
            .replacen(
                &format!("peer = \"{peer}\""),
                &format!("peer = \"{}\"", self.peer_addr),
                1,
            );
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// (Re)starts the process on the same config and data dir; returns once it has bound its
    /// listeners (not necessarily ready: a node that is joining or cut off is not).
    pub async fn spawn_no_wait(&mut self) {
        let bin = tether_bin();
        let config = self.config_path.clone();
        let stdout = self.stdout.clone();
        let wrapper = self.wrapper.clone();
        let env = self.env.clone();
        let stderr = match &self.stderr_file {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open the node's stderr file"),
            ),
            None => Stdio::inherit(),
        };
        let (child, client, admin, peer) = tokio::task::spawn_blocking(move || {
            let mut cmd = match wrapper.split_first() {
                Some((program, args)) => {
                    let mut c = Command::new(program);
                    c.args(args).arg(bin);
                    c
                }
                None => Command::new(bin),
            };
            let mut child = cmd
                .envs(env)
                .args(["serve", "--config"])
                .arg(&config)
                .env(
                    "TETHER_LOG",
                    std::env::var("TETHER_TEST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .expect("spawning tether");
            let out = child.stdout.take().expect("stdout");
            let mut lines = BufReader::new(out).lines();
            let mut addrs = None;
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("tether listening ") {
                    let mut client = None;
                    let mut admin = None;
                    let mut peer = None;
                    for kv in rest.split_whitespace() {
                        if let Some(v) = kv.strip_prefix("client=") {
                            client = Some(v.to_owned());
                        }
                        if let Some(v) = kv.strip_prefix("admin=") {
                            admin = Some(v.to_owned());
                        }
                        if let Some(v) = kv.strip_prefix("peer=") {
                            peer = Some(v.to_owned());
                        }
                    }
                    addrs = client.zip(admin).zip(peer);
                    break;
                }
            }
            // Keep draining stdout so the node never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    stdout.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
            let ((c, a), p) = addrs.expect("tether did not print its listening line");
            (child, c, a, p)
        })
        .await
        .expect("spawn task");
        self.child = Some(child);
        self.client_addr = client;
        self.admin_addr = admin;
        self.peer_addr = peer;
    }

    /// (Re)starts the process and waits until `/readyz` says ready.
    pub async fn spawn(&mut self) {
        self.spawn_no_wait().await;
        self.wait_ready().await;
    }

    pub async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.admin_addr);
        let http = reqwest::Client::new();
        crate::wait_for("node ready", crate::DEADLINE, || {
            let req = http.get(&url).timeout(Duration::from_secs(2)).send();
            async move {
                req.await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/connect", self.client_addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// SIGKILL and wait.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process id while a process is running (or stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends `signal` (a `kill` name: `STOP`, `CONT`, `TERM`, ...) without waiting; `false` if
    /// there is no process or `kill` failed.
    pub fn signal(&self, signal: &str) -> bool {
        let Some(pid) = self.pid() else { return false };
        Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
    }

    /// Whether the process has exited (and how), without waiting.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM and wait up to `grace`; returns the exit status if it exited.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        for _ in 0..(grace.as_millis() / 20).max(1) {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Lines printed so far that are audit records of `kind`.
    pub fn audit_lines(&self, kind: &str) -> Vec<serde_json::Value> {
        let lines = self
            .stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["audit"]["kind"] == kind)
            .collect()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}
