//! `tether certs`: a dev cluster CA and node certificates for peer mutual TLS (and client TLS).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::EXIT_CONFIG;
use tether_cluster::certs::{CaSource, NodeCert};

#[derive(Args)]
pub struct CertsArgs {
    /// Directory to write ca.pem, ca-key.pem, <node>.pem, <node>-key.pem into.
    #[arg(long, default_value = "./tether-certs")]
    out: PathBuf,
    /// Node names (repeatable); each cert gets the name and `--san` entries as SANs.
    #[arg(long = "node", required = true)]
    nodes: Vec<String>,
    /// The node id of each `--node`, in the same order (repeatable): written into its
    /// certificate as the SAN URI `urn:tether:node:<id>`, which peers check against the id
    /// the node claims. Leave out only for certificates that are not a node's.
    #[arg(long = "node-id")]
    node_ids: Vec<u64>,
    /// Extra subject alternative names for every node cert (IPs or DNS names).
    #[arg(long = "san", default_values_t = ["127.0.0.1".to_owned(), "localhost".to_owned()])]
    sans: Vec<String>,
    /// Make a new CA even if `--out` has one (certificates of the old CA stop working with
    /// nodes that trust the new one). Without it, the CA in `--out` signs the new nodes.
    #[arg(long)]
    new_ca: bool,
}

pub fn run(a: CertsArgs) -> ExitCode {
    if !a.node_ids.is_empty() && a.node_ids.len() != a.nodes.len() {
        eprintln!(
            "tether: {} --node-id for {} --node: give one id per node, in the same order",
            a.node_ids.len(),
            a.nodes.len()
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let nodes: Vec<NodeCert> = a
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut sans = vec![n.clone()];
            sans.extend(a.sans.iter().cloned());
            NodeCert {
                name: n.clone(),
                id: a.node_ids.get(i).copied(),
                sans,
            }
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
            if a.node_ids.is_empty() {
                println!(
                    "no --node-id given: these certificates name no node id, and peers refuse \
                     them unless tls.peer_allow_missing_node_id = true"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tether: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
