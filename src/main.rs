//! The `podtrace` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Distributed traces of Kubernetes pod startup.
#[derive(Parser, Debug)]
#[command(name = "podtrace", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the TraceSession CustomResourceDefinition as YAML.
    Crd,
    /// Rebuild startup traces from recorded watch streams.
    Replay(podtrace::replay::ReplayArgs),
    /// Run the controller: follow TraceSessions and export their traces over OTLP.
    Run(podtrace::controller::RunArgs),
    /// Record Pod, Event and Node watch streams to a file for `replay`.
    Record(podtrace::record::RecordArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => podtrace::crd::crd_yaml().map(|y| print!("{y}")),
        Command::Replay(args) => podtrace::replay::run(args),
        Command::Run(args) => tokio_main(podtrace::controller::run(args)),
        Command::Record(args) => tokio_main(podtrace::record::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn tokio_main<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?
        .block_on(f)
}
