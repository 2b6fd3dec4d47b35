//! `tether token`: mint access or admin tokens with the dev keys of a data dir.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tether_cluster::clock::SystemClock;

use super::{EXIT_CONFIG, default_data_dir, parse_duration_secs};
use crate::auth::{TokenClaims, mint_admin_hs256, mint_hs256};
use crate::dev;

#[derive(Args)]
pub struct TokenArgs {
    /// Tenant of the token (for --admin: restrict the admin scope to this tenant).
    #[arg(long)]
    tenant: Option<String>,
    /// Subject (user id); for --admin, the operator name.
    #[arg(long)]
    sub: Option<String>,
    /// Lifetime: 30s, 15m, 2h, 1d.
    #[arg(long, default_value = "15m", value_parser = parse_duration_secs)]
    ttl: u64,
    /// A permission, e.g. sub:chat.* (repeatable).
    #[arg(long = "perm")]
    perms: Vec<String>,
    /// Token id (default: random).
    #[arg(long)]
    jti: Option<String>,
    /// Mint an admin token (scope tether:admin, or tether:admin:<tenant> with --tenant).
    #[arg(long)]
    admin: bool,
    /// Data dir of the dev node whose keys sign the token.
    #[arg(long, default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// Name of the tenant claim.
    #[arg(long, default_value = "tid")]
    tenant_claim: String,
}

pub fn run(a: TokenArgs) -> ExitCode {
    let keys = match dev::load(&a.data_dir) {
        Ok(Some(k)) => k,
        Ok(None) => {
            eprintln!(
                "tether: no dev keys in {} (start `tether serve` without --config first, or pass --data-dir)",
                a.data_dir.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(e) => {
            eprintln!("tether: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let minted = if a.admin {
        let scope = match &a.tenant {
            Some(t) => format!("tether:admin:{t}"),
            None => "tether:admin".to_owned(),
        };
        let sub = a.sub.as_deref().unwrap_or("operator");
        mint_admin_hs256(
            &keys.admin_secret,
            dev::DEV_ADMIN_KID,
            sub,
            &scope,
            a.ttl,
            &SystemClock,
        )
    } else {
        let Some(sub) = a.sub.as_deref() else {
            eprintln!("tether: --sub is required (the user id)");
            return ExitCode::from(EXIT_CONFIG);
        };
        let tenant = a.tenant.as_deref().unwrap_or(dev::DEV_TENANT);
        let mut claims = TokenClaims::new(tenant, sub)
            .tenant_claim(a.tenant_claim)
            .ttl_secs(a.ttl)
            .permissions(a.perms)
            .to_json(&SystemClock);
        if let Some(j) = a.jti {
            claims["jti"] = serde_json::json!(j);
        }
        mint_hs256(&keys.tenant_secret, dev::DEV_TENANT_KID, &claims)
    };
    match minted {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tether: {e}");
            ExitCode::FAILURE
        }
    }
}
