//! `server_b`: owns directory_b, serves Server A, and answers `lab3`
//! listings and status when Server A is down.

use std::path::PathBuf;

use clap::Parser;

/// Server B of lab3: owns one directory and keeps it in sync with Server A.
///
/// Examples:
///   server_b                                        # directory_b on 127.0.0.1:6001
///   server_b --dir ~/shared --listen 0.0.0.0:6001 --token s3cret
///   server_b --ignore-file ~/lab3-rules.txt         # gitignore syntax; also <dir>/.lab3ignore
///   server_b --server-a a.example:6000              # where A answers clients (listings via B)
///   RUST_LOG=debug server_b                         # more detail on stderr
///
/// Stdout: `listening on ADDR`, then one line per sync action. Stderr:
/// warnings and errors (RUST_LOG sets the detail). Colour only on a
/// terminal, never with NO_COLOR set. See docs/TWO-MACHINES.md for two hosts.
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// The directory this server owns.
    #[arg(long, default_value = "directory_b")]
    dir: PathBuf,
    /// Address to listen on for Server A (port 0: the kernel picks).
    #[arg(long, default_value = "127.0.0.1:6001")]
    listen: String,
    /// Server A's address for `lab3` clients: when Server B answers a
    /// listing (Server A being down for the client), it asks A here first.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6000")]
    server_a: String,
    #[command(flatten)]
    common: common::config::ServerArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::console::init_logging();
    let args = Args::parse();
    common::server::exit_code("server_b", run(args).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = server_b::Config::new(args.dir, args.common)?;
    cfg.server_a = args.server_a;
    let listener = cfg.served.listen(&args.listen).await?;
    server_b::run(listener, cfg, common::server::shutdown_signal()).await
}
