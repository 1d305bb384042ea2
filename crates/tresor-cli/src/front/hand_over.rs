//! Becoming `tresor-cli`: the same arguments, and a value already read from stdin given back to it
//! through a pipe.

use crate::exit::CliError;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// `tresor-cli`, beside this program's own executable, if it is there and executable.
pub(super) fn full_cli() -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program's own path: {e}"))?
        .with_file_name("tresor-cli");
    rustix::fs::access(&exe, rustix::fs::Access::EXEC_OK).map_err(|e| {
        format!("cannot run {}: {e} (tresor-cli must be installed beside tresor)", exe.display())
    })?;
    Ok(exe)
}

/// Replaces this process with `tresor-cli` and the same arguments. A value already read from
/// stdin becomes `tresor-cli`'s stdin again, through a pipe holding it whole.
pub(super) fn hand_over(stdin: Option<Zeroizing<Vec<u8>>>) -> u8 {
    use std::os::unix::process::CommandExt;
    let fail = |what: String| {
        CliError::other(what).print();
        1
    };
    let exe = match full_cli() {
        Ok(exe) => exe,
        Err(e) => return fail(e),
    };
    if let Some(value) = stdin
        && let Err(e) = refill_stdin(&value)
    {
        return fail(format!("cannot hand the value over to tresor-cli (nothing was written): {e}"));
    }
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "tresor".into());
    let e = std::process::Command::new(&exe).arg0(argv0).args(args).exec();
    fail(format!("cannot run {}: {e} (tresor-cli must be installed beside tresor)", exe.display()))
}

/// Makes stdin a pipe already holding `value` and closed for writing: `tresor-cli` reads it once,
/// and nothing of it stays behind once read (unlike a file, it cannot be read again).
fn refill_stdin(value: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // The whole value must fit in the pipe, since nobody is left to write the rest once this
    // process becomes tresor-cli.
    if value.len() > rustix::pipe::fcntl_getpipe_size(&write)? {
        rustix::pipe::fcntl_setpipe_size(&write, value.len())?;
    }
    let mut write = std::fs::File::from(write);
    write.write_all(value)?;
    drop(write);
    // The copy on fd 0 does not inherit close-on-exec.
    rustix::stdio::dup2_stdin(&read)?;
    Ok(())
}
