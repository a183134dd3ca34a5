//! One module per command group; each turns parsed arguments into
//! requests and prints the answers.

mod backup;
mod pool;
mod sandbox;
mod volume;

use crate::args::{Cli, Command};
use crate::client::{Client, Endpoint};
use crate::error::CliError;

/// What every command needs: the client and how to print.
pub struct Ctx {
    /// The daemon.
    pub client: Client,
    /// `--json`.
    pub json: bool,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let endpoint = Endpoint::from_flags(cli.socket, cli.url.as_deref())?;
    let ctx = Ctx {
        client: Client::new(endpoint, cli.token, cli.owner),
        json: cli.json,
    };
    match cli.command {
        Command::Volume(command) => volume::run(&ctx, command).await,
        Command::Sandbox(command) => sandbox::run(&ctx, command).await,
        Command::Pool(command) => pool::run(&ctx, command).await,
        Command::Backup(command) => backup::run(&ctx, command).await,
        Command::Job(command) => backup::job(&ctx, command).await,
    }
}
