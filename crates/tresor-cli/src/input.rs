//! Reading an input a user names — a file, or stdin for `-` — with a size bound: a device or a
//! FIFO that never ends (`--file /dev/zero`) is refused once past the bound instead of being read
//! until memory runs out.

use crate::exit::CliError;
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// Where an input comes from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// The named file.
    File(&'a Path),
    /// Standard input.
    Stdin,
}

impl<'a> Source<'a> {
    /// `path`, with `-` (or no path) meaning stdin, as every command that reads a file takes it.
    pub(crate) fn of(path: Option<&'a Path>) -> Source<'a> {
        match path {
            Some(p) if p.as_os_str() != "-" => Source::File(p),
            _ => Source::Stdin,
        }
    }

    /// How messages name it.
    pub(crate) fn shown(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "stdin".to_string(),
        }
    }
}

/// All of `source` (`stdin` when it is stdin), refused when it holds more than `limit` bytes:
/// `what` says which limit that is, in the message ("max_value_size", "the most import reads").
/// Only one byte past the limit is ever read. The buffer is wiped when dropped.
pub(crate) fn read_limited(
    source: Source<'_>,
    stdin: impl Read,
    limit: usize,
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let shown = source.shown();
    let mut buf = Zeroizing::new(Vec::new());
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    // A regular file's size is known: the message says it.
    let mut size = None;
    let read = match source {
        Source::File(path) => std::fs::File::open(path).and_then(|f| {
            size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            f.take(bound).read_to_end(&mut buf)
        }),
        Source::Stdin => stdin.take(bound).read_to_end(&mut buf),
    };
    read.map_err(|e| CliError::input(format!("cannot read {shown}: {e}")))?;
    if buf.len() > limit {
        return Err(CliError::input(match size {
            Some(size) => format!("{shown} is {size} bytes, more than the limit of {limit} bytes ({what})"),
            None => format!("{shown} holds more than the limit of {limit} bytes ({what})"),
        }));
    }
    Ok(buf)
}

/// One line of `stdin` (its line end included, as `read_line` gives it), refused when it runs past
/// `limit` bytes without ending: `< /dev/zero` is refused, not read until memory runs out. The
/// buffer is sized once and wiped when dropped (a growing `String` would leave copies behind).
pub(crate) fn read_line_limited(
    stdin: &mut impl std::io::BufRead,
    limit: usize,
) -> Result<Zeroizing<String>, String> {
    use std::io::BufRead as _;
    let mut line = Zeroizing::new(String::with_capacity(limit.saturating_add(1)));
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    stdin.take(bound).read_line(&mut line).map_err(|e| format!("cannot read stdin: {e}"))?;
    if line.len() > limit {
        return Err(format!("the line on stdin is longer than {limit} bytes"));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_device_is_refused_after_one_byte_past_the_limit() {
        let e = read_limited(Source::File(Path::new("/dev/zero")), std::io::empty(), 4096, "test").err();
        let message = e.map(|e| e.message().to_string()).unwrap_or_default();
        assert!(message.contains("/dev/zero holds more than the limit of 4096 bytes (test)"), "{message}");
        let endless = std::io::repeat(7);
        let e = read_limited(Source::Stdin, endless, 10, "max_value_size").err();
        assert!(e.is_some_and(|e| e.message().starts_with("stdin holds more than the limit of 10 bytes")));
    }

    #[test]
    fn a_line_past_its_limit_is_refused_and_a_shorter_one_read() {
        let e = read_line_limited(&mut std::io::BufReader::new(std::io::repeat(b'x')), 4096).err();
        assert_eq!(e.as_deref(), Some("the line on stdin is longer than 4096 bytes"));
        let mut two = &b"first\nsecond\n"[..];
        assert_eq!(read_line_limited(&mut two, 7).ok().as_deref().map(|s| s.as_str()), Some("first\n"));
        assert_eq!(read_line_limited(&mut two, 7).ok().as_deref().map(|s| s.as_str()), Some("second\n"));
        assert_eq!(read_line_limited(&mut two, 7).ok().as_deref().map(|s| s.as_str()), Some(""));
    }

    #[test]
    fn an_input_at_the_limit_is_read_whole() {
        let got = read_limited(Source::of(Some(Path::new("-"))), &b"abcd"[..], 4, "test").ok();
        assert_eq!(got.as_deref().map(|v| v.as_slice()), Some(&b"abcd"[..]));
        let e = read_limited(Source::of(None), &b"abcde"[..], 4, "test").err();
        assert!(e.is_some());
        let missing = read_limited(Source::File(Path::new("/nonexistent/x")), std::io::empty(), 4, "t").err();
        assert!(missing.is_some_and(|e| e.message().starts_with("cannot read /nonexistent/x: ")));
    }
}
