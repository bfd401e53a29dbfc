//! `cairn`: the agent binary. Subcommands live in `cmd_*.rs`; this file parses arguments,
//! sets up logging and maps errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent_log;
mod api;
mod api_client;
mod cmd_check;
mod cmd_configcheck;
mod cmd_cursors;
mod cmd_intake;
mod cmd_logs;
mod cmd_metrics;
mod cmd_monitors;
mod cmd_pipelines;
mod cmd_reload;
mod cmd_run;
mod cmd_status;
mod cmd_stream_logs;
mod common;
mod flusher;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Runs Datadog-style custom checks and ships their logs, metrics, service checks and events"
)]
struct Cli {
    /// The config directory (datadog.yaml, conf.d/, checks.d/).
    #[arg(
        short = 'c',
        long = "config-dir",
        env = "CAIRN_CONFIG_DIR",
        global = true,
        default_value = "."
    )]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: schedule every check until SIGTERM or SIGINT.
    Run(cmd_run::RunArgs),
    /// Run one check's instances once (or --times N) and print what they submitted.
    Check(cmd_check::CheckArgs),
    /// Show every loaded check with its resolved instances and logs entries.
    Configcheck(cmd_configcheck::ConfigcheckArgs),
    /// Run the local intake and Log Explorer as a standalone server.
    Intake(cmd_intake::IntakeArgs),
    /// Search or follow logs in a running local intake.
    Logs(cmd_logs::LogsArgs),
    /// Query metrics in a running local intake.
    Metrics(cmd_metrics::MetricsArgs),
    /// List events in a running local intake.
    Events(cmd_metrics::EventsArgs),
    /// Show the latest service-check statuses in a running local intake.
    Checks(cmd_metrics::ChecksArgs),
    /// List, show or test the log monitors of a running local intake.
    Monitors(cmd_monitors::MonitorsArgs),
    /// Show the running agent's state: checks, logs pipeline, intake (like `agent status`).
    Status(cmd_status::StatusArgs),
    /// Make the running agent re-read datadog.yaml and conf.d/ (like SIGHUP).
    Reload(cmd_reload::ReloadArgs),
    /// Follow, live, the logs the running agent ships (after processing rules).
    StreamLogs(cmd_stream_logs::StreamLogsArgs),
    /// List, show or reset check cursors (through the running agent when there is one).
    Cursors(cmd_cursors::CursorsArgs),
    /// Run a pipelines file on sample logs (test), or validate it (check).
    Pipelines(cmd_pipelines::PipelinesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    common::init_tracing(match &cli.command {
        Command::Check(a) => a.log_level(),
        _ => None,
    });
    common::raise_fd_limit();
    let result = match cli.command {
        Command::Run(args) => cmd_run::run(&cli.config_dir, args),
        Command::Check(args) => cmd_check::run(&cli.config_dir, args),
        Command::Configcheck(args) => cmd_configcheck::run(&cli.config_dir, args),
        Command::Intake(args) => cmd_intake::run(args).map(|()| ExitCode::SUCCESS),
        Command::Logs(args) => cmd_logs::run(&cli.config_dir, args).map(|()| ExitCode::SUCCESS),
        Command::Metrics(a) => {
            cmd_metrics::run_metrics(&cli.config_dir, a).map(|()| ExitCode::SUCCESS)
        }
        Command::Events(a) => {
            cmd_metrics::run_events(&cli.config_dir, a).map(|()| ExitCode::SUCCESS)
        }
        Command::Checks(a) => {
            cmd_metrics::run_checks(&cli.config_dir, a).map(|()| ExitCode::SUCCESS)
        }
        Command::Monitors(a) => cmd_monitors::run(&cli.config_dir, a).map(|()| ExitCode::SUCCESS),
        Command::Status(a) => cmd_status::run(&cli.config_dir, a),
        Command::Reload(a) => cmd_reload::run(&cli.config_dir, a),
        Command::StreamLogs(a) => cmd_stream_logs::run(&cli.config_dir, a),
        Command::Cursors(a) => cmd_cursors::run(&cli.config_dir, a),
        Command::Pipelines(a) => cmd_pipelines::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
