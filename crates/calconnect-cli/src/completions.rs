//! `calconnect completions bash|zsh|fish|powershell|elvish`.

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

pub fn run<C: clap::CommandFactory>(args: &CompletionsArgs) {
    let mut cmd = C::command();
    clap_complete::generate(args.shell, &mut cmd, "calconnect", &mut std::io::stdout());
}
