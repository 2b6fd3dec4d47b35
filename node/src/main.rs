//! The `tether` binary: everything lives in the library; see `tether_node::cli`.

fn main() -> std::process::ExitCode {
    tether_node::cli::main()
}
