//! `tether certs`: a dev cluster CA and node certificates for peer mutual TLS (and client TLS).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::EXIT_CONFIG;
use tether_cluster::certs::CaSource;

#[derive(Args)]
pub struct CertsArgs {
    /// Directory to write ca.pem, ca-key.pem, <node>.pem, <node>-key.pem into.
    #[arg(long, default_value = "./tether-certs")]
    out: PathBuf,
    /// Node names (repeatable); each cert gets the name and `--san` entries as SANs.
    #[arg(long = "node", required = true)]
    nodes: Vec<String>,
    /// Extra subject alternative names for every node cert (IPs or DNS names).
    #[arg(long = "san", default_values_t = ["127.0.0.1".to_owned(), "localhost".to_owned()])]
    sans: Vec<String>,
    /// Make a new CA even if `--out` has one (certificates of the old CA stop working with
    /// nodes that trust the new one). Without it, the CA in `--out` signs the new nodes.
    #[arg(long)]
    new_ca: bool,
}

pub fn run(a: CertsArgs) -> ExitCode {
    let nodes: Vec<(String, Vec<String>)> = a
        .nodes
        .iter()
        .map(|n| {
            let mut sans = vec![n.clone()];
            sans.extend(a.sans.iter().cloned());
            (n.clone(), sans)
        })
        .collect();
    match tether_cluster::certs::write_dev_pki(&a.out, &nodes, a.new_ca) {
        Ok(source) => {
            let ca = match source {
                CaSource::Reused => "signed by the CA already there",
                CaSource::Created => "and a new dev CA",
            };
            println!(
                "wrote {} node certificate(s) {ca} to {}",
                nodes.len(),
                a.out.display()
            );
            println!(
                "use them as [tls] peer_ca = ca.pem, peer_cert = <node>.pem, peer_key = <node>-key.pem"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tether: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
