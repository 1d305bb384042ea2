//! Reading secrets to import: tresor archives, `.env` files, JSON objects.
//!
//! `.env`: `KEY=VALUE` lines; blank lines and `#` comments skipped; an optional `export ` prefix;
//! values in single quotes are literal, in double quotes `\n`, `\"` and `\\` are unescaped; a
//! quoted value may hold line breaks (it runs to its closing quote, as dotenv and a shell read
//! it), and only a `#` comment may follow it; a leading UTF-8 byte-order mark is skipped; a quote
//! left open to the end of the file is refused. There is no `$VAR`
//! expansion: `tresor run --env-file` reads its files here too, and a file must not pull tresor's
//! own environment (its credentials) into a value. Keys are secret paths here (`db/password=…`,
//! which dotenv's grammar does not allow) and variable names for `run`.

use tresor_wire::SecretBuf;
use zeroize::Zeroizing;

/// Import formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A `tresor export` archive.
    Archive,
    /// KEY=VALUE lines.
    Env,
    /// A JSON object.
    Json,
}

/// The most secrets one `.env` or JSON import holds (each costs some hundred bytes to read: the
/// file's size alone would not bound the memory its reading takes).
pub const MAX_ENTRIES: usize = 1 << 20;

/// The error for a file past [`MAX_ENTRIES`].
fn too_many() -> String {
    format!("more than {MAX_ENTRIES} secrets in one file: split it")
}

/// Guesses the format from the file's first bytes and name.
pub fn detect(path: &std::path::Path, bytes: &[u8]) -> Format {
    if bytes.starts_with(b"TRSRARC1") {
        Format::Archive
    } else if path.extension().is_some_and(|e| e == "json") || bytes.trim_ascii_start().starts_with(b"{") {
        Format::Json
    } else {
        Format::Env
    }
}

/// The secrets in `bytes`.
pub fn parse(format: Format, bytes: &[u8]) -> Result<Vec<(String, SecretBuf)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the import file is not UTF-8".to_string())?;
    let items = match format {
        Format::Env => parse_env(text)?,
        Format::Json => {
            // The parsed tree is not wiped (serde_json::Value cannot be); the input buffer is.
            let Unique(value) = serde_json::from_str(text).map_err(|e| {
                if e.is_data() {
                    format!("invalid JSON at line {}: {e}", e.line())
                } else {
                    format!("invalid JSON at line {}", e.line())
                }
            })?;
            let mut out = Vec::new();
            flatten("", &value, &mut out)?;
            out
        }
        Format::Archive => return Err("archives are restored, not parsed as secrets".into()),
    };
    if items.is_empty() {
        return Err("the import file holds no secrets".into());
    }
    Ok(items)
}

/// A JSON value whose objects never name a key twice: `import` refuses a file that does (as it
/// refuses a `.env` file that names a variable twice) rather than keep the last one silently.
struct Unique(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Unique, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

/// Builds a [`serde_json::Value`] as serde_json does, refusing an object's key seen twice.
struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<serde_json::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<serde_json::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some((key, Unique(v))) = map.next_entry::<String, Unique>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("the key {key:?} appears twice in one object")));
            }
            out.insert(key, v);
        }
        Ok(serde_json::Value::Object(out))
    }
}

fn flatten(
    prefix: &str,
    value: &serde_json::Value,
    out: &mut Vec<(String, SecretBuf)>,
) -> Result<(), String> {
    let serde_json::Value::Object(map) = value else {
        return Err("JSON imports must be an object of names to strings".into());
    };
    for (k, v) in map {
        if out.len() >= MAX_ENTRIES {
            return Err(too_many());
        }
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}/{k}") };
        match v {
            serde_json::Value::String(s) => out.push((path, SecretBuf::new(s.as_bytes().to_vec()))),
            serde_json::Value::Object(_) => flatten(&path, v, out)?,
            // A fraction or a number past 64 bits would come back as another text (1.10 as 1.1,
            // 1e2 as 100.0): refused rather than changed.
            serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => {
                out.push((path, SecretBuf::new(n.to_string().into_bytes())))
            }
            serde_json::Value::Number(_) => {
                return Err(format!(
                    "{path}: a number that is not a whole 64-bit one would not be kept as written: give it as a string"
                ));
            }
            serde_json::Value::Bool(b) => out.push((path, SecretBuf::new(b.to_string().into_bytes()))),
            _ => return Err(format!("{path}: only strings, numbers, booleans and objects can be imported")),
        }
    }
    Ok(())
}

/// The `KEY=VALUE` lines of a `.env` file (see the module documentation); none is fine here.
pub(crate) fn parse_env(text: &str) -> Result<Vec<(String, SecretBuf)>, String> {
    Ok(parse_env_lines(text)?.into_iter().map(|(_, key, value)| (key, value)).collect())
}

/// [`parse_env`], each entry with the number of the line it starts on.
pub(crate) fn parse_env_lines(text: &str) -> Result<Vec<(usize, String, SecretBuf)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    // CRLF line ends are line ends, in a quoted value too.
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).enumerate();
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, raw) = line.split_once('=').ok_or_else(|| format!("line {}: expected KEY=VALUE", n + 1))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("line {}: empty name", n + 1));
        }
        // A line that is not KEY=VALUE (`KEY value=…`, `KEY: value=…`) would make a name of
        // what may be a secret, shown in errors and kept in the audit trail: refused, unnamed.
        if key.contains(|c: char| c.is_whitespace() || matches!(c, ':' | '"' | '\'')) {
            return Err(format!(
                "line {}: the name before `=` holds a space, a colon or a quote (not shown: it may \
                 hold a value); write KEY=VALUE",
                n + 1
            ));
        }
        let raw = raw.trim_start();
        let mut value = match raw.chars().next() {
            Some(q @ ('\'' | '"')) => {
                // The value runs to its closing quote, over more lines if it holds line breaks;
                // each line is scanned once, and the value is copied once, into a buffer of its
                // final size (a buffer grown line by line would leave unwiped copies behind).
                let mut parts = vec![&raw[1..]];
                let mut escaped = false;
                let end = loop {
                    let last = parts[parts.len() - 1];
                    if let Some(end) = closing(last, q, &mut escaped) {
                        break end;
                    }
                    // A line break escapes nothing.
                    escaped = false;
                    let Some((_, next)) = lines.next() else {
                        return Err(format!("line {}: the value's quote ({q}) is not closed", n + 1));
                    };
                    parts.push(next);
                };
                let (last, whole) = parts.split_last().unwrap_or((&"", &[]));
                let after = last[end + 1..].trim();
                if !after.is_empty() && !after.starts_with('#') {
                    return Err(format!("line {}: text after the value's closing quote ({q})", n + 1));
                }
                let size = whole.iter().map(|p| p.len() + 1).sum::<usize>() + end;
                let mut inner = Zeroizing::new(String::with_capacity(size));
                for part in whole {
                    inner.push_str(part);
                    inner.push('\n');
                }
                inner.push_str(&last[..end]);
                if q == '"' { unescape(&inner) } else { inner }
            }
            _ => Zeroizing::new(raw.trim().to_string()),
        };
        // The value's bytes move into the secret buffer (no copy is left behind).
        let value = std::mem::take(&mut *value).into_bytes();
        if out.len() >= MAX_ENTRIES {
            return Err(too_many());
        }
        out.push((n + 1, key.to_string(), SecretBuf::new(value)));
    }
    Ok(out)
}

/// Where the quote `q` that closes the value is in `line` (`escaped`: whether the character
/// before `line` escapes the next, kept across lines): the first one, or for `"` the first not
/// escaped (after an even number of backslashes).
fn closing(line: &str, q: char, escaped: &mut bool) -> Option<usize> {
    for (i, c) in line.char_indices() {
        match c {
            _ if c == q && !*escaped => return Some(i),
            '\\' if q == '"' => *escaped = !*escaped,
            _ => *escaped = false,
        }
    }
    None
}

/// A double-quoted value with `\n`, `\t` and `\X` (X itself) read (never longer than `inner`:
/// written into a buffer of that size, never grown).
fn unescape(inner: &str) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(inner.len()));
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some(other) => s.push(other),
                None => s.push('\\'),
            }
        } else {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: Vec<(String, SecretBuf)>) -> Vec<(String, String)> {
        items.into_iter().map(|(k, v)| (k, String::from_utf8(v.0.to_vec()).unwrap())).collect()
    }

    #[test]
    fn env_files() {
        let text = "# comment\nexport A=1\nB = 'x y'\nC=\"line\\nnext\"\n\nD=";
        let got = pairs(parse(Format::Env, text.as_bytes()).unwrap());
        assert_eq!(
            got,
            [("A", "1"), ("B", "x y"), ("C", "line\nnext"), ("D", "")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert!(parse(Format::Env, b"novalue").is_err());
        // Regression (issue 15, bug 14): a byte-order mark is not part of the first name, and
        // an open quote is refused instead of stored.
        assert_eq!(pairs(parse(Format::Env, "\u{feff}A=1".as_bytes()).unwrap()), [("A".into(), "1".into())]);
        for open in ["A=\"abc", "A='abc", "A=\"", "A=\"abc\\\"", "A='abc\"\nB=1"] {
            let Err(e) = parse(Format::Env, open.as_bytes()) else { panic!("{open}: accepted") };
            assert!(e.contains("line 1") && e.contains("not closed"), "{open}: {e}");
        }
        assert_eq!(pairs(parse(Format::Env, br#"A="a\\""#).unwrap()), [("A".into(), "a\\".into())]);
        // A quoted value runs over lines to its closing quote (as dotenv and a shell read it);
        // a `#` comment may follow it, nothing else; CRLF line ends are line ends.
        let text = "A=\"one\ntwo \\\" three\" # note\r\nB='x\ny'\r\nC=3\r\n";
        assert_eq!(
            pairs(parse(Format::Env, text.as_bytes()).unwrap()),
            [("A", "one\ntwo \" three"), ("B", "x\ny"), ("C", "3")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let Err(e) = parse(Format::Env, b"A=\"x\" y") else { panic!("text after the quote was taken") };
        assert!(e.contains("line 1") && e.contains("after"), "{e}");
        let Err(e) = parse(Format::Env, b"A=1\nB=\"open\nC=2\n") else { panic!("an open quote was taken") };
        assert!(e.contains("line 2") && e.contains("not closed"), "{e}");
        assert!(parse(Format::Env, b"# only comments").is_err());
    }

    #[test]
    fn regression_a_value_over_many_lines_was_scanned_again_for_every_line() {
        // Each line of a quoted value made the whole value be scanned again for its closing
        // quote: 200 KB took 15 s, 64 MiB would have taken weeks. Each line is scanned once.
        let mut escaped = true;
        assert_eq!(closing("\"ab\"", '"', &mut escaped), Some(3), "an escape carries over");
        let text = format!("A=\"{}end\"\nB=1\n", "x\n".repeat(200_000));
        let got = parse_env(&text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.0.len(), 200_000 * 2 + 3);
    }

    #[test]
    fn regression_a_line_that_was_not_key_value_made_a_secret_a_name() {
        // `KEY value=…` and `KEY: value=…` split at the value's own `=`: the secret became a name,
        // shown in the error and kept in the audit trail by an import. Refused, and not shown.
        for line in [
            "DATABASE_URL postgres://admin:Hunter2Secret@db/app?sslmode=require",
            "API_KEY: sk-live-Hunter2Secret=",
            "\"Q Hunter2Secret\"=x",
        ] {
            let Err(e) = parse(Format::Env, line.as_bytes()) else { panic!("{line}: taken") };
            assert!(e.contains("line 1") && !e.contains("Hunter2"), "{e}");
        }
        // CRLF files: the line ends are not part of a quoted value over several lines.
        let got = pairs(parse(Format::Env, b"A=\"one\r\ntwo\"\r\nB=2\r\n").unwrap());
        assert_eq!(got, [("A".into(), "one\ntwo".into()), ("B".into(), "2".into())]);
    }

    #[test]
    fn json_objects_flatten() {
        let got = pairs(parse(Format::Json, br#"{"db": {"user": "u", "port": 5432}, "k": "v"}"#).unwrap());
        assert_eq!(got.len(), 3);
        assert!(got.contains(&("db/user".into(), "u".into())));
        assert!(got.contains(&("db/port".into(), "5432".into())));
        assert!(parse(Format::Json, b"[1,2]").is_err());
        assert!(parse(Format::Json, br#"{"a": null}"#).is_err());
    }

    #[test]
    fn regression_json_numbers_were_changed_and_files_had_no_bound_on_entries() {
        // 1.10 was stored as 1.1, 1e2 as 100.0, a 23-digit number as a float: refused now.
        for number in ["1.10", "1e2", "12345678901234567890123"] {
            let text = format!("{{\"n\": {number}}}");
            let Err(e) = parse(Format::Json, text.as_bytes()) else { panic!("{number}: taken") };
            assert!(e.contains("give it as a string"), "{e}");
        }
        assert_eq!(pairs(parse(Format::Json, br#"{"n": -42}"#).unwrap()), [("n".into(), "-42".into())]);
        // A file of more entries than one import takes is refused before it is all read in.
        let many = "x=1\n".repeat(MAX_ENTRIES + 1);
        let Err(e) = parse(Format::Env, many.as_bytes()) else { panic!("taken") };
        assert!(e.contains("split it"), "{e}");
    }

    #[test]
    fn detection() {
        use std::path::Path;
        assert_eq!(detect(Path::new("x"), b"TRSRARC1..."), Format::Archive);
        assert_eq!(detect(Path::new("x.json"), b"{}"), Format::Json);
        assert_eq!(detect(Path::new("x"), b"  {\"a\":1}"), Format::Json);
        assert_eq!(detect(Path::new(".env"), b"A=1"), Format::Env);
    }
}
