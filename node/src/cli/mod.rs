//! The `tether` command line: `serve`, `token`, `admin`.

mod admin;
mod certs;
mod serve;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tether",
    version,
    about = "Tether: a clustered WebSocket gateway that stays in control of every live connection"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node. Without --config: a single-node dev cluster in ./tether-data.
    Serve(serve::ServeArgs),
    /// Mint a token with the dev keys of a data dir (dev mode only).
    Token(token::TokenArgs),
    /// Call the admin API.
    Admin(admin::AdminArgs),
    /// Make a dev CA and node certificates for peer mutual TLS.
    Certs(certs::CertsArgs),
}

/// Exit code for an invalid config (and other bad command-line input).
pub const EXIT_CONFIG: u8 = 2;

/// Default data dir of dev mode.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("./tether-data")
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(a) => serve::run(a),
        Cmd::Token(a) => token::run(a),
        Cmd::Admin(a) => admin::run(a),
        Cmd::Certs(a) => certs::run(a),
    }
}

/// Parses `15m`, `30s`, `2h`, `1d` or plain seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid duration {s:?} (examples: 30s, 15m, 2h, 1d)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations parse with units and reject junk.
    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("15m"), Ok(900));
        assert_eq!(parse_duration_secs("30"), Ok(30));
        assert_eq!(parse_duration_secs("2h"), Ok(7200));
        assert!(parse_duration_secs("0s").is_err());
        assert!(parse_duration_secs("m").is_err());
        assert!(parse_duration_secs("-1s").is_err());
    }
}
