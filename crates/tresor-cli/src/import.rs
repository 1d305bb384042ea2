//! Reading secrets to import: tresor archives, `.env` files, JSON objects.
//!
//! `.env`: `KEY=VALUE` lines; blank lines and `#` comments skipped; an optional `export ` prefix;
//! values in single quotes are literal, in double quotes `\n`, `\"` and `\\` are unescaped; a
//! leading UTF-8 byte-order mark is skipped; a quote left open is refused. There is no `$VAR`
//! expansion: `tresor run --env-file` reads its files here too, and a file must not pull tresor's
//! own environment (its credentials) into a value. Keys are secret paths here (`db/password=…`,
//! which dotenv's grammar does not allow) and variable names for `run`.

use tresor_wire::SecretBuf;

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
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}/{k}") };
        match v {
            serde_json::Value::String(s) => out.push((path, SecretBuf::new(s.as_bytes().to_vec()))),
            serde_json::Value::Object(_) => flatten(&path, v, out)?,
            serde_json::Value::Number(n) => out.push((path, SecretBuf::new(n.to_string().into_bytes()))),
            serde_json::Value::Bool(b) => out.push((path, SecretBuf::new(b.to_string().into_bytes()))),
            _ => return Err(format!("{path}: only strings, numbers, booleans and objects can be imported")),
        }
    }
    Ok(())
}

/// The `KEY=VALUE` lines of a `.env` file (see the module documentation); none is fine here.
pub(crate) fn parse_env(text: &str) -> Result<Vec<(String, SecretBuf)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, raw) = line.split_once('=').ok_or_else(|| format!("line {}: expected KEY=VALUE", n + 1))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("line {}: empty name", n + 1));
        }
        let raw = raw.trim();
        let quote = raw.chars().next().filter(|c| *c == '\'' || *c == '"');
        if let Some(q) = quote
            && (raw.len() < 2 || !raw.ends_with(q) || (q == '"' && ends_escaped(raw)))
        {
            return Err(format!("line {}: the value's quote ({q}) is not closed on its line", n + 1));
        }
        let value = if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            inner.to_string()
        } else if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            let mut s = String::with_capacity(inner.len());
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
        } else {
            raw.to_string()
        };
        out.push((key.to_string(), SecretBuf::new(value.into_bytes())));
    }
    Ok(out)
}

/// Whether the closing `"` of `raw` is escaped (an odd number of backslashes before it).
fn ends_escaped(raw: &str) -> bool {
    let body = &raw[1..raw.len() - 1];
    body.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
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
        assert!(parse(Format::Env, b"# only comments").is_err());
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
    fn detection() {
        use std::path::Path;
        assert_eq!(detect(Path::new("x"), b"TRSRARC1..."), Format::Archive);
        assert_eq!(detect(Path::new("x.json"), b"{}"), Format::Json);
        assert_eq!(detect(Path::new("x"), b"  {\"a\":1}"), Format::Json);
        assert_eq!(detect(Path::new(".env"), b"A=1"), Format::Env);
    }
}
