//! The `tether` binary as a user runs it: `serve --check-config`, and the README's dev-mode
//! walkthrough (`serve` without a config, `token`, `admin revoke`, `admin sessions`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tether_tests::DEADLINE;
use tether_tests::admin::Resp;
use tether_tests::client::WsClient;
use tether_tests::node::{config_toml, tether_bin};

/// A `tether` command with no inherited `TETHER_…` variables (a stray one would change the
/// config under test), logging at warn.
fn tether(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(tether_bin());
    c.args(args).current_dir(cwd);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TETHER_")) {
        c.env_remove(k);
    }
    c.env("TETHER_LOG", "warn");
    c
}

/// Runs a command to completion off the async runtime.
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("running tether"))
        .await
        .expect("join")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn check_config(dir: &Path, toml: &str) -> Output {
    let file = dir.join("check.toml");
    std::fs::write(&file, toml).expect("write config");
    let file = file.to_str().expect("utf-8 path").to_owned();
    run(tether(dir, &["serve", "--check-config", &file])).await
}

/// `serve --check-config` exits 0 on the harness's valid config, and 2 naming the key on a
/// mistyped value or an unknown key.
#[tokio::test]
async fn check_config_exit_codes_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");

    let ok = check_config(dir.path(), &config_toml(&data, "", "")).await;
    assert_eq!(ok.status.code(), Some(0), "stderr: {}", text(&ok.stderr));
    assert!(
        !data.exists(),
        "--check-config must not create the data dir"
    );

    let cases = [
        (r#"max_frame_bytes = "big""#, "limits.max_frame_bytes"),
        ("frobnicate = 1", "limits.frobnicate"),
        (
            "max_connections_per_ip = -3",
            "limits.max_connections_per_ip",
        ),
    ];
    for (limits, key) in cases {
        let out = check_config(dir.path(), &config_toml(&data, limits, "")).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{limits}: stderr: {stderr}");
        assert!(
            stderr.contains(key),
            "{limits}: stderr does not name {key}: {stderr}"
        );
    }
    // An unknown top-level section is named too.
    let toml = format!("{}\n[frobnicator]\nx = 1\n", config_toml(&data, "", ""));
    let out = check_config(dir.path(), &toml).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("frobnicator"), "{stderr}");
}

/// `--check-config` warns (and still exits 0) when `limits.max_connections` cannot fit under
/// the hard open-file limit (here 1024, set by `ulimit -n`).
#[tokio::test]
async fn check_config_warns_when_max_connections_cannot_fit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = dir.path().join("check.toml");
    let check = |limits: &str| {
        std::fs::write(&file, config_toml(&data, limits, "")).expect("write config");
        let mut c = Command::new("bash");
        c.args([
            "-c",
            "ulimit -n 1024 && exec \"$0\" serve --check-config \"$1\"",
        ])
        .arg(tether_bin())
        .arg(&file)
        .current_dir(dir.path());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TETHER_")) {
            c.env_remove(k);
        }
        c
    };
    let out = run(check("max_connections = 100000")).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stderr.contains("warning: limits.max_connections = 100000 cannot fit")
            && stderr.contains("hard 1024"),
        "{stderr}"
    );
    let out = run(check("max_connections = 100")).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}

/// The dev node child process; killed when the test ends, also on panic.
struct DevNode {
    child: Child,
    client: String,
    admin: String,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevNode {
    /// `tether serve` without a config in `cwd`, all listeners on port 0 via the environment.
    async fn start(cwd: &Path) -> DevNode {
        let mut cmd = tether(cwd, &["serve"]);
        cmd.env("TETHER_LISTEN_CLIENT", "127.0.0.1:0")
            .env("TETHER_LISTEN_ADMIN", "127.0.0.1:0")
            .env("TETHER_LISTEN_PEER", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        let node = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().expect("spawning tether serve");
            let out = child.stdout.take().expect("stdout");
            // The guard exists before anything can panic, so the child never outlives the test.
            let mut node = DevNode {
                child,
                client: String::new(),
                admin: String::new(),
                stdout: lines.clone(),
            };
            let mut reader = BufReader::new(out).lines();
            for line in reader.by_ref() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line.clone());
                if let Some(rest) = line.strip_prefix("tether listening ") {
                    for kv in rest.split_whitespace() {
                        if let Some(v) = kv.strip_prefix("client=") {
                            node.client = v.to_owned();
                        }
                        if let Some(v) = kv.strip_prefix("admin=") {
                            node.admin = v.to_owned();
                        }
                    }
                    break;
                }
            }
            std::thread::spawn(move || {
                for line in reader.map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
            node
        })
        .await
        .expect("spawn task");
        assert!(
            !node.client.is_empty() && !node.admin.is_empty(),
            "no `tether listening` line; stdout: {:?}",
            node.stdout.lock().unwrap()
        );
        let http = reqwest::Client::new();
        let url = format!("http://{}/readyz", node.admin);
        tether_tests::wait_for("dev node ready", DEADLINE, || {
            let req = http.get(&url).send();
            async move { req.await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        })
        .await;
        node
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/v1/connect", self.client)
    }

    async fn get(&self, path: &str, token: &str) -> Resp {
        let r = reqwest::Client::new()
            .get(format!("http://{}{path}", self.admin))
            .bearer_auth(token)
            .send()
            .await
            .expect("admin request");
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Resp { status, body }
    }
}

/// Stdout of a successful CLI run.
async fn cli_ok(cwd: &Path, args: &[&str]) -> String {
    let out = run(tether(cwd, args)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "tether {args:?}: stdout {} stderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The README's 2-minute walkthrough: `tether serve` with no config starts a dev node (data in
/// ./tether-data); `tether token` mints a token that connects; `tether admin sessions` lists
/// the session; `tether admin revoke --wait` closes it (client sees 4004, CLI prints
/// `closed: 1`); `tether token --admin` mints a token the admin API accepts.
#[tokio::test]
async fn dev_mode_walkthrough() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path();
    let node = DevNode::start(cwd).await;
    assert!(
        cwd.join("tether-data").join("dev-keys.json").exists(),
        "dev keys not in ./tether-data"
    );
    let banner = node.stdout.lock().unwrap().join("\n");
    assert!(banner.contains("tether dev mode"), "{banner}");

    let token = cli_ok(
        cwd,
        &[
            "token",
            "--tenant",
            "dev",
            "--sub",
            "alice",
            "--perm",
            "sub:chat.*",
        ],
    )
    .await;
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token:?}");
    let (mut c, w) = WsClient::connect(&node.ws_url(), token).await;
    assert_eq!(w["permissions"], serde_json::json!(["sub:chat.*"]));
    assert_eq!(c.subscribe("chat.room1", 1).await["ok"], true);
    let sid = w["session_id"].as_str().expect("session_id").to_owned();

    let listed: Value =
        serde_json::from_str(&cli_ok(cwd, &["admin", "sessions", "dev", "alice"]).await)
            .expect("sessions output is JSON");
    let sessions = listed["sessions"].as_array().expect("sessions array");
    assert!(
        sessions.iter().any(|s| s["session_id"] == sid.as_str()),
        "{listed}"
    );

    let revoked: Value =
        serde_json::from_str(&cli_ok(cwd, &["admin", "revoke", &sid, "--wait"]).await)
            .expect("revoke output is JSON");
    assert_eq!(revoked["closed"], 1, "{revoked}");
    let closed = c.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4004, "session_revoked")
    );

    let admin = cli_ok(cwd, &["token", "--admin"]).await;
    let r = node.get("/v1/cluster", admin.trim()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["leader"], 1, "{}", r.body);
    // The dev tenant's access token is not an admin token.
    let r = node.get("/v1/cluster", token).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

/// `tether admin tenant <t> put --file` sends a whole tenant, its idp section included;
/// `get` shows it back with the push bearer redacted.
#[tokio::test]
async fn tenant_put_sets_the_idp_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path();
    let _node = DevNode::start(cwd).await;
    let tenant = serde_json::json!({
        "id": "acme",
        "issuer": "https://idp.acme.example/",
        "keys": [{"kid": "k1", "alg": "HS256", "secret": "0123456789abcdef0123456789abcdef"}],
        "idp": {
            "backchannel_logout_audiences": ["tether-web"],
            "sid_ttl_secs": 600,
            "ssf": {"issuer": "https://idp.acme.example/", "audience": "https://tether/",
                    "push_bearer": "never-printed-bearer"},
        },
    });
    let file = cwd.join("acme.json");
    std::fs::write(&file, tenant.to_string()).expect("write tenant file");
    let path = file.to_str().expect("utf-8 path");
    cli_ok(cwd, &["admin", "tenant", "acme", "put", "--file", path]).await;
    let got: Value = serde_json::from_str(&cli_ok(cwd, &["admin", "tenant", "acme", "get"]).await)
        .expect("tenant output is JSON");
    assert_eq!(
        got["idp"]["backchannel_logout_audiences"][0], "tether-web",
        "{got}"
    );
    assert_eq!(
        (
            got["idp"]["sid_claim"].as_str(),
            got["idp"]["sid_ttl_secs"].as_u64()
        ),
        (Some("sid"), Some(600))
    );
    assert_eq!(got["idp"]["ssf"]["push_bearer"], "<redacted>", "{got}");
    // An invalid section is refused by the node, naming the key; the CLI fails.
    std::fs::write(
        &file,
        serde_json::json!({"id": "acme", "keys": tenant["keys"], "idp": {"sid_claim": ""}})
            .to_string(),
    )
    .expect("write tenant file");
    let out = run(tether(
        cwd,
        &["admin", "tenant", "acme", "put", "--file", path],
    ))
    .await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("idp.sid_claim"),
        "{}",
        text(&out.stdout)
    );
}
