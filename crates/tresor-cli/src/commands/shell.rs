//! What shells get: completion scripts (commands and flags from the clap definitions, secret
//! paths from an unlocked agent through the hidden `__complete-paths`), and the man page.

use crate::cli::{Cli, Shell};
use crate::exit::CliError;
use crate::*;
use clap::CommandFactory;

/// The commands whose arguments are secret paths.
const PATH_COMMANDS: &str =
    "get set rm delete history edit cp mv generate undelete destroy read list ls find";

/// `tresor completions SHELL`: clap's script, then the completion of secret paths.
pub(crate) fn completions(shell: Shell) -> Result<(), CliError> {
    let mut cmd = without_hidden(Cli::command());
    // Written whole afterwards: a reader that stops early (`| head`) ends the output quietly.
    let mut out = Vec::new();
    let (generator, paths) = match shell {
        Shell::Bash => (clap_complete::Shell::Bash, BASH_PATHS),
        Shell::Zsh => (clap_complete::Shell::Zsh, ZSH_PATHS),
        Shell::Fish => (clap_complete::Shell::Fish, FISH_PATHS),
    };
    clap_complete::generate(generator, &mut cmd, "tresor", &mut out);
    out.extend_from_slice(paths.replace("@COMMANDS@", PATH_COMMANDS).as_bytes());
    outln_bytes(&out)
}

/// `cmd` without its hidden subcommands, which clap_complete would offer (clap has no way to
/// remove a subcommand, so the root is built again from its own parts).
fn without_hidden(cmd: clap::Command) -> clap::Command {
    let mut root = clap::Command::new(cmd.get_name().to_string())
        .version(cmd.get_version().map(str::to_string).unwrap_or_default())
        .about(cmd.get_about().cloned().unwrap_or_default());
    for arg in cmd.get_arguments().filter(|a| !a.is_positional()) {
        root = root.arg(arg.clone());
    }
    root.subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

const BASH_PATHS: &str = r#"
# Secret paths, from an unlocked agent (nothing is asked for).
_tresor_with_paths() {
    local cur="${COMP_WORDS[COMP_CWORD]}" cmd="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in -*) ;; *) cmd="${COMP_WORDS[i]}"; break ;; esac
    done
    case " @COMMANDS@ " in
        *" $cmd "*)
            if [[ -n "$cmd" && "$cur" != -* ]]; then
                # The agent filters by what was typed: its lines are taken as they are, never
                # through compgen -W, which would expand $(...) in a planted path name.
                mapfile -t COMPREPLY < <(tresor __complete-paths "$cur" 2>/dev/null)
                return 0
            fi ;;
    esac
    _tresor "$@"
}
complete -F _tresor_with_paths -o nosort -o bashdefault -o default tresor
"#;

const ZSH_PATHS: &str = r#"
# Secret paths, from an unlocked agent (nothing is asked for).
_tresor_with_paths() {
    local -a commands paths
    commands=(@COMMANDS@)
    if (( CURRENT > 2 )) && (( ${commands[(Ie)${words[2]}]} )) && [[ ${words[CURRENT]} != -* ]]; then
        paths=(${(f)"$(tresor __complete-paths "$PREFIX" 2>/dev/null)"})
        compadd -a paths
    else
        _tresor "$@"
    fi
}
compdef _tresor_with_paths tresor
"#;

const FISH_PATHS: &str = r#"
# Secret paths, from an unlocked agent (nothing is asked for).
complete -c tresor -n '__fish_seen_subcommand_from @COMMANDS@' -f -a '(tresor __complete-paths (commandline -ct) 2>/dev/null)'
"#;

/// `tresor __complete-paths PREFIX`: the live paths starting with PREFIX, one per line, from an
/// unlocked agent; nothing (and no prompt) without one.
pub(crate) fn complete_paths(ctx: &Ctx, prefix: &str) -> Result<(), CliError> {
    if ctx.no_agent || ctx.remote.is_some() {
        return Ok(());
    }
    if let Ok(Some(entries)) =
        agent_call(ctx, &tresor_wire::List { prefix: prefix.to_string(), deleted: false })
    {
        for e in entries {
            outln!("{}", e.path);
        }
    }
    Ok(())
}

/// `tresor man [COMMAND]`: the man page of tresor, or of one command (`tresor-COMMAND(1)`, which
/// the main page's list of commands names), from the clap definitions.
pub(crate) fn man(command: Option<&str>) -> Result<(), CliError> {
    let root = Cli::command();
    let page = match command {
        None => root,
        Some(name) => {
            let Some(sub) = root.find_subcommand(name).filter(|s| !s.is_hide_set()) else {
                return Err(CliError::usage(format!("no command {name:?}: `tresor --help` lists them")));
            };
            let title = format!("tresor-{}", sub.get_name());
            sub.clone().name(title).version(root.get_version().unwrap_or_default().to_string())
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| CliError::other(format!("cannot render the man page: {e}")))?;
    outln_bytes(&out)
}
