//! `uni-operator`: `crdgen` prints the CRDs; `run` mirrors custom resources into Universal.

use clap::Parser;
use tokio_util::sync::CancellationToken;
use uni_operator::cli::{Cli, Command};
use uni_operator::{crd, operator, Result};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uni-operator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { out_dir: None } => {
            print!("{}", crd::yaml()?);
            Ok(())
        }
        Command::Crdgen { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for (file, doc) in crd::files()? {
                std::fs::write(dir.join(file), doc)?;
            }
            Ok(())
        }
        Command::Run(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let shutdown = CancellationToken::new();
            let signal = shutdown.clone();
            let watcher = tokio::spawn(async move {
                if let Err(e) = shutdown_signal().await {
                    eprintln!("uni-operator: cannot listen for signals: {e}");
                }
                signal.cancel();
            });
            let result = operator::run(args, shutdown.clone()).await;
            watcher.abort();
            result
        }
    }
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
