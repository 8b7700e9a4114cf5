//! `calconnect completions bash|zsh|fish|powershell|elvish`.

use std::io::Write as _;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Writes the completions to standard output. A reader that stops early (`| head`) ends the
/// command quietly, as it does any Unix tool.
///
/// # Errors
/// Writing failed for another reason than a closed pipe.
pub fn run<C: clap::CommandFactory>(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = C::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "calconnect", &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write the completions"))
        }
        _ => Ok(()),
    }
}
