//! `tether admin …`: the admin API from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tether_cluster::clock::SystemClock;

use super::{EXIT_CONFIG, default_data_dir};
use crate::auth::mint_admin_hs256;
use crate::dev;

#[derive(Args)]
pub struct AdminArgs {
    /// Admin API base URL (default: the dev node's, else http://127.0.0.1:7071).
    #[arg(long, env = "TETHER_ADMIN_URL")]
    url: Option<String>,
    /// Admin token (default: minted from the dev keys of --data-dir).
    #[arg(long, env = "TETHER_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long, default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// CA certificate (PEM) that signed an https admin listener's certificate.
    #[arg(long, env = "TETHER_ADMIN_CACERT")]
    cacert: Option<PathBuf>,
    /// Client certificate (PEM) for an admin listener with tls.admin_client_ca.
    #[arg(long, env = "TETHER_ADMIN_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "TETHER_ADMIN_KEY", requires = "cert")]
    key: Option<PathBuf>,
    #[command(subcommand)]
    cmd: AdminCmd,
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Revoke one session (its connection closes 4004).
    Revoke {
        session_id: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Answer only after the owning connection closed; report propagation_ms.
        #[arg(long)]
        wait: bool,
    },
    /// Log a user out everywhere (4005); tokens issued before now stop working.
    Logout {
        tenant: String,
        user: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        wait: bool,
    },
    /// Set (or with --clear, drop) a user's permission override.
    Perms {
        tenant: String,
        user: String,
        /// Permissions such as sub:chat.* pub:chat.room1
        permissions: Vec<String>,
        #[arg(long)]
        clear: bool,
    },
    /// Deny-list a token id until its exp.
    RevokeToken {
        tenant: String,
        jti: String,
        exp: u64,
    },
    /// List a user's sessions.
    Sessions { tenant: String, user: String },
    /// Show one session.
    Session { session_id: String },
    /// Show, disable or enable a tenant, or `put` its whole config (idp section included)
    /// from a JSON file: the `PUT /v1/tenants/{t}` body.
    Tenant {
        tenant: String,
        #[arg(value_parser = ["disable", "enable", "get", "put"])]
        action: String,
        /// For `put`: the tenant as JSON (`-` reads standard input).
        #[arg(long, required_if_eq("action", "put"))]
        file: Option<PathBuf>,
    },
    /// Cluster status, or a membership change.
    Cluster {
        #[command(subcommand)]
        change: Option<ClusterCmd>,
    },
    /// Publish to a channel, a user or a session.
    Publish {
        #[arg(long)]
        tenant: String,
        #[arg(long, group = "target")]
        channel: Option<String>,
        #[arg(long, group = "target")]
        user: Option<String>,
        #[arg(long, group = "target")]
        session: Option<String>,
        /// JSON payload.
        #[arg(long)]
        data: String,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Add a learner (waits for it to catch up); a known node id with a new address moves.
    Add {
        node_id: u64,
        /// Its peer address, host:port.
        addr: String,
        /// Promote it to voter once it caught up.
        #[arg(long)]
        voter: bool,
        #[arg(long)]
        region: Option<String>,
    },
    /// Make a learner a voter.
    Promote { node_id: u64 },
    /// Make a voter a learner (refused below a majority of the current voters).
    Demote { node_id: u64 },
    /// Remove a member (a voter is demoted first).
    Remove { node_id: u64 },
}

pub fn run(a: AdminArgs) -> ExitCode {
    let keys = dev::load(&a.data_dir).ok().flatten();
    let url = a
        .url
        .clone()
        .or_else(|| keys.as_ref().and_then(|k| k.admin_url.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:7071".to_owned());
    let token = match (&a.token, &keys) {
        (Some(t), _) => t.clone(),
        (None, Some(k)) => {
            match mint_admin_hs256(
                &k.admin_secret,
                dev::DEV_ADMIN_KID,
                "cli",
                "tether:admin",
                300,
                &SystemClock,
            ) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("tether: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        (None, None) => {
            eprintln!(
                "tether: no admin token: pass --token (or TETHER_ADMIN_TOKEN) or --data-dir of a dev node"
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let client = match http_client(&a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (method, path, body) = match request(a.cmd) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(call(&client, &url, &token, method, &path, body)) {
        Ok((status, v)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
            );
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("tether: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The JSON body of `tenant put`, read from `path` (`-`: standard input).
fn tenant_file(path: &std::path::Path) -> Result<Value, String> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("reading stdin: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
    };
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn request(cmd: AdminCmd) -> Result<(reqwest::Method, String, Option<Value>), String> {
    use reqwest::Method;
    let wait_q = |w: bool| if w { "?wait=closed" } else { "" };
    Ok(match cmd {
        AdminCmd::Revoke {
            session_id,
            reason,
            wait,
        } => (
            Method::POST,
            format!("/v1/sessions/{}/revoke{}", enc(&session_id), wait_q(wait)),
            Some(json!({ "reason": reason })),
        ),
        AdminCmd::Logout {
            tenant,
            user,
            reason,
            wait,
        } => (
            Method::POST,
            format!(
                "/v1/tenants/{}/users/{}/logout{}",
                enc(&tenant),
                enc(&user),
                wait_q(wait)
            ),
            Some(json!({ "reason": reason })),
        ),
        AdminCmd::Perms {
            tenant,
            user,
            permissions,
            clear,
        } => {
            let path = format!(
                "/v1/tenants/{}/users/{}/permissions",
                enc(&tenant),
                enc(&user)
            );
            if clear {
                (Method::DELETE, path, None)
            } else {
                (
                    Method::PUT,
                    path,
                    Some(json!({ "permissions": permissions })),
                )
            }
        }
        AdminCmd::RevokeToken { tenant, jti, exp } => (
            Method::POST,
            format!("/v1/tenants/{}/tokens/revoke", enc(&tenant)),
            Some(json!({ "jti": jti, "exp": exp })),
        ),
        AdminCmd::Sessions { tenant, user } => (
            Method::GET,
            format!("/v1/tenants/{}/users/{}/sessions", enc(&tenant), enc(&user)),
            None,
        ),
        AdminCmd::Session { session_id } => (
            Method::GET,
            format!("/v1/sessions/{}", enc(&session_id)),
            None,
        ),
        AdminCmd::Tenant {
            tenant,
            action,
            file,
        } => match action.as_str() {
            "get" => (Method::GET, format!("/v1/tenants/{}", enc(&tenant)), None),
            "put" => {
                let file = file.ok_or("tenant put needs --file")?;
                (
                    Method::PUT,
                    format!("/v1/tenants/{}", enc(&tenant)),
                    Some(tenant_file(&file)?),
                )
            }
            a => (
                Method::POST,
                format!("/v1/tenants/{}/{a}", enc(&tenant)),
                None,
            ),
        },
        AdminCmd::Cluster { change } => match change {
            None => (Method::GET, "/v1/cluster".to_owned(), None),
            Some(ClusterCmd::Add {
                node_id,
                addr,
                voter,
                region,
            }) => (
                Method::POST,
                "/v1/cluster/members".to_owned(),
                Some(json!({"node_id": node_id, "addr": addr, "voter": voter, "region": region})),
            ),
            Some(ClusterCmd::Promote { node_id }) => (
                Method::POST,
                format!("/v1/cluster/members/{node_id}/promote"),
                None,
            ),
            Some(ClusterCmd::Demote { node_id }) => (
                Method::POST,
                format!("/v1/cluster/members/{node_id}/demote"),
                None,
            ),
            Some(ClusterCmd::Remove { node_id }) => (
                Method::DELETE,
                format!("/v1/cluster/members/{node_id}"),
                None,
            ),
        },
        AdminCmd::Publish {
            tenant,
            channel,
            user,
            session,
            data,
        } => {
            let data: Value =
                serde_json::from_str(&data).map_err(|e| format!("--data is not JSON: {e}"))?;
            let mut body = json!({ "tenant": tenant, "data": data });
            if let Some(c) = channel {
                body["channel"] = json!(c);
            } else if let Some(u) = user {
                body["user"] = json!(u);
            } else if let Some(s) = session {
                body["session"] = json!(s);
            } else {
                return Err("one of --channel, --user, --session is required".into());
            }
            (Method::POST, "/v1/publish".to_owned(), Some(body))
        }
    })
}

/// The HTTP client: trusting `--cacert` besides the usual roots, presenting `--cert`.
fn http_client(a: &AdminArgs) -> Result<reqwest::Client, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = &a.cacert {
        let ca =
            reqwest::Certificate::from_pem(&read(ca)?).map_err(|e| format!("--cacert: {e}"))?;
        builder = builder.add_root_certificate(ca);
    }
    if let (Some(cert), Some(key)) = (&a.cert, &a.key) {
        let mut pem = read(cert)?;
        pem.extend(read(key)?);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| format!("--cert/--key: {e}"))?;
        builder = builder.identity(id);
    }
    builder.build().map_err(|e| e.to_string())
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(reqwest::StatusCode, Value), String> {
    let mut req = client
        .request(method, format!("{}{path}", base.trim_end_matches('/')))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("admin API at {base}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, v))
}
