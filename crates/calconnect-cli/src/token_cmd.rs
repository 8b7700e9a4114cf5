//! `calconnect token`: a fresh access token on stdout, for scripts.

use crate::fresh::Session;

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Connection id (or a prefix of it, or the Cal.com username); default: the last login.
    #[arg(long)]
    connection: Option<String>,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let session = Session::open(args.connection.as_deref()).await?;
    let token = session.fresh_token().await?;
    // Printing the token is this command's purpose (and the only place calconnect does).
    println!("{}", token.expose_secret());
    Ok(())
}
