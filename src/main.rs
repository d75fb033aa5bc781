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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => podtrace::crd::crd_yaml().map(|y| print!("{y}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
