//! `server_a`: owns directory_a, answers `lab3` clients, dials Server B.

use std::path::PathBuf;

use clap::Parser;

/// Server A of lab3: owns one directory, answers `lab3`, keeps in sync with Server B.
///
/// Examples:
///   server_a                                        # directory_a on 127.0.0.1:6000, B at 127.0.0.1:6001
///   server_a --dir ~/shared --peer b.example:6001 --token s3cret
///   server_a --listen 0.0.0.0:6000 --token s3cret   # clients on other machines too
///   server_a --peer b.example:6001 --token s3cret --peer-fingerprint sha256:3f1c…  # B's, as B prints it
///   server_a --ignore '*.log' --ignore 'build/'     # gitignore syntax; also <dir>/.lab3ignore
///   server_a --http 127.0.0.1:8080                  # the web page elsewhere (default :6080; `off`)
///   RUST_LOG=debug server_a                         # more detail on stderr
///
/// Stdout: `listening on ADDR`, `web page at http://ADDR/`, then one line
/// per sync action. Stderr: warnings and errors (RUST_LOG sets the detail).
/// Colour only on a terminal, never with NO_COLOR set. See
/// docs/TWO-MACHINES.md for two hosts.
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// The directory this server owns.
    #[arg(long, default_value = "directory_a")]
    dir: PathBuf,
    /// Address to listen on for `lab3` clients (port 0: the kernel picks).
    #[arg(long, default_value = "127.0.0.1:6000")]
    listen: String,
    /// Server B's address.
    #[arg(long, default_value = "127.0.0.1:6001")]
    peer: String,
    /// Address of the web page (port 0: the kernel picks), or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:6080")]
    http: String,
    /// The certificate fingerprint Server B must show (`sha256:…`, as B
    /// prints at start); a different one is refused. Without it, any B
    /// that proves the token is accepted (and, with no token, any B).
    #[arg(long, value_name = "FINGERPRINT", env = "LAB3_PEER_FINGERPRINT")]
    peer_fingerprint: Option<common::tls::Fingerprint>,
    #[command(flatten)]
    common: common::config::ServerArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::console::init_logging();
    let args = Args::parse();
    common::server::exit_code("server_a", run(args).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = server_a::Config::new(args.dir, args.peer, args.peer_fingerprint, args.common)?;
    cfg.http = (args.http != "off").then_some(args.http);
    let listener = cfg.served.listen(&args.listen).await?;
    server_a::run(listener, cfg, common::server::shutdown_signal()).await
}
