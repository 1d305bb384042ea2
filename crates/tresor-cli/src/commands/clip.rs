//! `--clip` (on `get` and `generate`): a value copied to the clipboard and cleared after
//! `TRESOR_CLIP_TIME` seconds (default 45, as `pass` does) — only if the clipboard still holds it.
//!
//! The clipboard is the desktop's own tool, fed on stdin: `wl-copy` under Wayland, `xclip` (else
//! `xsel`) under X11, `pbcopy` on macOS. Clearing is a detached `tresor-cli __clip-clear` that
//! gets the value's SHA-256 on its stdin (never in argv, where a hash of a short secret is a
//! guessing oracle), waits, reads the clipboard back and empties it if the hashes match.

use crate::exit::CliError;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use zeroize::Zeroizing;

/// The desktop's clipboard: how to write it and how to read it back.
struct Clipboard {
    copy: &'static [&'static str],
    paste: &'static [&'static str],
}

const WAYLAND: Clipboard = Clipboard { copy: &["wl-copy"], paste: &["wl-paste", "--no-newline"] };
const XCLIP: Clipboard = Clipboard {
    copy: &["xclip", "-selection", "clipboard", "-in"],
    paste: &["xclip", "-selection", "clipboard", "-out"],
};
const XSEL: Clipboard =
    Clipboard { copy: &["xsel", "--clipboard", "--input"], paste: &["xsel", "--clipboard", "--output"] };
const MACOS: Clipboard = Clipboard { copy: &["pbcopy"], paste: &["pbpaste"] };

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn clipboard() -> Result<Clipboard, CliError> {
    let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    let candidates: Vec<Clipboard> = match () {
        _ if cfg!(target_os = "macos") => vec![MACOS],
        _ if set("WAYLAND_DISPLAY") => vec![WAYLAND, XCLIP, XSEL],
        _ if set("DISPLAY") => vec![XCLIP, XSEL],
        _ => Vec::new(),
    };
    candidates.into_iter().find(|c| on_path(c.copy[0])).ok_or_else(|| {
        CliError::other(
            "no clipboard here (a desktop session with wl-copy, xclip or xsel): print the value instead"
                .into(),
        )
    })
}

/// Seconds until the clipboard is cleared.
fn clip_time() -> Result<u64, CliError> {
    match std::env::var("TRESOR_CLIP_TIME") {
        Err(_) => Ok(45),
        Ok(text) => text.trim().parse::<u64>().ok().filter(|s| (1..=86_400).contains(s)).ok_or_else(|| {
            CliError::input(format!("TRESOR_CLIP_TIME={text}: whole seconds from 1 to 86400"))
        }),
    }
}

/// Feeds `bytes` to `argv` on its stdin; its output is not ours (a forking `xclip` keeps serving
/// the selection in the background).
fn feed(argv: &[&str], bytes: &[u8]) -> Result<(), CliError> {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::other(format!("cannot run {}: {e}", argv[0])))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(bytes).map_err(|e| CliError::other(format!("{}: {e}", argv[0])))?;
    }
    let status = child.wait().map_err(|e| CliError::other(format!("{}: {e}", argv[0])))?;
    if !status.success() {
        return Err(CliError::other(format!("{} failed ({status})", argv[0])));
    }
    Ok(())
}

/// Checks, before anything is stored, that a value could be copied (`generate --clip`).
pub(crate) fn check() -> Result<(), CliError> {
    clip_time()?;
    clipboard().map(drop)
}

/// Copies `value` to the clipboard and leaves a clearer behind; says so on stderr.
pub(crate) fn copy(what: &str, value: &[u8]) -> Result<(), CliError> {
    let seconds = clip_time()?;
    let board = clipboard()?;
    feed(board.copy, value)?;
    let exe = std::env::current_exe().map_err(|e| CliError::other(format!("cannot find tresor-cli: {e}")))?;
    use std::os::unix::process::CommandExt;
    let mut clearer = Command::new(exe)
        .args(["__clip-clear", "--after", &seconds.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C at the shell does not stop the clearing.
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::other(format!("cannot start the clipboard clearer: {e}")))?;
    if let Some(mut stdin) = clearer.stdin.take() {
        let _ = stdin.write_all(&tresor_crypto::hash(value));
    }
    errln!("{what}: copied to the clipboard; cleared in {seconds}s if it still holds it");
    Ok(())
}

/// `tresor-cli __clip-clear --after N`: the value's SHA-256 on stdin; after N seconds, empties the
/// clipboard if it still holds that value.
pub(crate) fn clear_after(seconds: u64, mut stdin: impl Read) -> Result<(), CliError> {
    let mut expected = [0u8; 32];
    stdin.read_exact(&mut expected).map_err(|e| CliError::input(format!("no hash on stdin: {e}")))?;
    std::thread::sleep(Duration::from_secs(seconds));
    let board = clipboard()?;
    let output = Command::new(board.paste[0])
        .args(&board.paste[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| CliError::other(format!("cannot read the clipboard: {e}")))?;
    let now = Zeroizing::new(output.stdout);
    let same: bool = subtle::ConstantTimeEq::ct_eq(&tresor_crypto::hash(&now)[..], &expected[..]).into();
    if same {
        feed(board.copy, b"")?;
    }
    Ok(())
}
