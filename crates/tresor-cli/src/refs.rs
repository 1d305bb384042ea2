//! Secret references — `tresor://PATH[#FIELD][?version=N]` — as `run`, `inject` and `read` take
//! them, and the `{{ tresor://… }}` placeholders of a template.
//!
//! - PATH is a secret path; a `#`, `?` or `%` in it is written percent-encoded (`%23`, `%3F`,
//!   `%25`), as in a URL.
//! - `#FIELD` picks one field of a value that holds a JSON object (what a Vault client writes
//!   through the server: `{"username": …, "password": …}`); a text field is given as its text,
//!   any other as its JSON. Without it the value is given as it is.
//! - `?version=N` reads version N instead of the current one.
//!
//! In a template, a placeholder is `{{`, optional spaces, a reference, optional spaces, `}}`;
//! other `{{ … }}` (a Helm or Jinja template's own) are left as they are.

use crate::exit::CliError;
use percent_encoding::percent_decode_str;
use std::ops::Range;
use tresor::path::SecretPath;
use tresor_wire::SecretBuf;
use zeroize::Zeroizing;

/// What every reference starts with.
pub(crate) const SCHEME: &str = "tresor://";

/// One secret (or one field of it) that a command names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Reference {
    /// The secret's path (checked by the path rules).
    pub(crate) path: String,
    /// The field of a JSON-object value, if one is named.
    pub(crate) field: Option<String>,
    /// The version, if not the current one.
    pub(crate) version: Option<u64>,
}

impl Reference {
    /// Parses `tresor://…`; the error says what is wrong with the reference (never a value).
    pub(crate) fn parse(text: &str) -> Result<Reference, String> {
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| format!("`{text}` is not a reference: references start with {SCHEME}"))?;
        let path_end = rest.find(['#', '?']).unwrap_or(rest.len());
        let path = decode(&rest[..path_end], "path")?;
        SecretPath::parse(&path).map_err(|e| format!("`{text}`: {e}"))?;
        let mut reference = Reference { path, field: None, version: None };
        // `#field` and `?version=N`, in either order, each at most once.
        let mut tail = &rest[path_end..];
        while let Some(part) = tail.chars().next() {
            let body_end = tail[1..].find(['#', '?']).map_or(tail.len(), |i| i + 1);
            let body = &tail[1..body_end];
            tail = &tail[body_end..];
            match part {
                '#' if reference.field.is_none() => {
                    let field = decode(body, "field")?;
                    if field.is_empty() {
                        return Err(format!("`{text}`: the field after `#` is empty"));
                    }
                    reference.field = Some(field);
                }
                '?' if reference.version.is_none() => reference.version = Some(parse_query(text, body)?),
                _ => return Err(format!("`{text}`: `{part}` appears twice")),
            }
        }
        Ok(reference)
    }

    /// A reference, or a plain secret path (`--env NAME=db/password`, `tresor read db/password`).
    pub(crate) fn parse_or_path(text: &str) -> Result<Reference, String> {
        if text.starts_with(SCHEME) {
            return Reference::parse(text);
        }
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.contains('/')
        {
            return Err(format!(
                "`{text}`: {scheme}:// references are not tresor's: they start with {SCHEME}"
            ));
        }
        SecretPath::parse(text).map_err(|e| format!("`{text}`: {e}"))?;
        Ok(Reference { path: text.to_string(), field: None, version: None })
    }

    /// What this reference names within the value read for it: the value itself, or its field.
    pub(crate) fn select(&self, value: SecretBuf) -> Result<Zeroizing<Vec<u8>>, CliError> {
        let Some(field) = &self.field else { return Ok(value.0) };
        // Any JSON object has fields, whatever its key order or spacing; any other value shows
        // as the server shows it (`value`, or `value_base64`).
        let data = match serde_json::from_slice::<serde_json::Value>(&value.0) {
            Ok(object @ serde_json::Value::Object(_)) => object,
            _ => tresor_server::http::kvdata::decode(&value.0),
        };
        let Some(object) = data.as_object() else {
            return Err(CliError::input(format!("{self}: the value has no fields")));
        };
        match object.get(field) {
            Some(serde_json::Value::String(text)) => Ok(Zeroizing::new(text.as_bytes().to_vec())),
            Some(other) => serde_json::to_vec(other)
                .map(Zeroizing::new)
                .map_err(|e| CliError::other(format!("{self}: {e}"))),
            // The value's other field names are not listed: they are part of the secret (a
            // map of user names to passwords), and this message may reach a CI log.
            None => Err(CliError::with_code(
                4,
                format!(
                    "{self}: the value has no field `{field}` (`tresor get {}` shows it whole)",
                    self.path
                ),
            )),
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
        const RESERVED: &AsciiSet = &CONTROLS.add(b'#').add(b'?').add(b'%');
        write!(f, "{SCHEME}{}", utf8_percent_encode(&self.path, RESERVED))?;
        if let Some(field) = &self.field {
            write!(f, "#{}", utf8_percent_encode(field, RESERVED))?;
        }
        if let Some(version) = self.version {
            write!(f, "?version={version}")?;
        }
        Ok(())
    }
}

fn decode(text: &str, what: &str) -> Result<String, String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("the {what} `{text}` is not UTF-8 once percent-decoded"))
}

fn parse_query(text: &str, query: &str) -> Result<u64, String> {
    match query.split_once('=') {
        Some(("version", n)) => match n.parse::<u64>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(format!("`{text}`: the version must be a number from 1 (got `{n}`)")),
        },
        _ => Err(format!("`{text}`: the only parameter a reference takes is ?version=N (got `?{query}`)")),
    }
}

/// The placeholders of a template, in order: where each one is (braces included) and what it names.
/// An error names the line of the first bad placeholder.
pub(crate) fn placeholders(template: &[u8]) -> Result<Vec<(Range<usize>, Reference)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    // The line of the last placeholder, counted on from there (not from the start each time).
    let (mut line, mut counted) = (1, 0);
    while let Some(open) = find(&template[at..], b"{{").map(|i| at + i) {
        let inner_start = open + 2;
        let text_start = inner_start + leading_spaces(&template[inner_start..]);
        if !template[text_start..].starts_with(SCHEME.as_bytes()) {
            at = open + 1;
            continue;
        }
        line += template[counted..open].iter().filter(|b| **b == b'\n').count();
        counted = open;
        let Some(close) = find(&template[text_start..], b"}}").map(|i| text_start + i) else {
            return Err(format!("line {line}: a {{{{ {SCHEME}… placeholder is not closed with }}}}"));
        };
        let inner = &template[text_start..close];
        if inner.contains(&b'\n') {
            return Err(format!("line {line}: a {{{{ {SCHEME}… placeholder is not closed on its line"));
        }
        let text = std::str::from_utf8(inner)
            .map_err(|_| format!("line {line}: the reference is not UTF-8"))?
            .trim_end_matches([' ', '\t']);
        let reference = Reference::parse(text).map_err(|e| format!("line {line}: {e}"))?;
        out.push((open..close + 2, reference));
        at = close + 2;
    }
    Ok(out)
}

/// The template with each placeholder replaced by its value (`values` in the order of
/// [`placeholders`]).
pub(crate) fn render(
    template: &[u8],
    places: &[(Range<usize>, Reference)],
    values: &[&[u8]],
) -> Zeroizing<Vec<u8>> {
    let size = rendered_len(template, places, values);
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    let mut at = 0;
    for ((range, _), value) in places.iter().zip(values) {
        out.extend_from_slice(&template[at..range.start]);
        out.extend_from_slice(value);
        at = range.end;
    }
    out.extend_from_slice(&template[at..]);
    out
}

/// The length of what [`render`] makes of `template` with `values`.
pub(crate) fn rendered_len(template: &[u8], places: &[(Range<usize>, Reference)], values: &[&[u8]]) -> usize {
    let cut: usize = places.iter().map(|(range, _)| range.len()).sum();
    template.len().saturating_sub(cut).saturating_add(values.iter().map(|v| v.len()).sum::<usize>())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn leading_spaces(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| **b == b' ' || **b == b'\t').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(path: &str, field: Option<&str>, version: Option<u64>) -> Reference {
        Reference { path: path.into(), field: field.map(Into::into), version }
    }

    #[test]
    fn references_name_a_path_a_field_and_a_version_in_either_order() {
        assert_eq!(Reference::parse("tresor://db/password").unwrap(), r("db/password", None, None));
        assert_eq!(Reference::parse("tresor://db/creds#user").unwrap(), r("db/creds", Some("user"), None));
        assert_eq!(Reference::parse("tresor://db/pw?version=3").unwrap(), r("db/pw", None, Some(3)));
        let both = r("db/creds", Some("user"), Some(2));
        assert_eq!(Reference::parse("tresor://db/creds#user?version=2").unwrap(), both);
        assert_eq!(Reference::parse("tresor://db/creds?version=2#user").unwrap(), both);
        assert_eq!(Reference::parse("tresor://a%23b/c%3Fd#f%20g").unwrap(), r("a#b/c?d", Some("f g"), None));
    }

    #[test]
    fn bad_references_are_refused_with_the_reason() {
        for (text, why) in [
            ("db/password", "start with tresor://"),
            ("tresor://", "path"),
            ("tresor://a//b", "path"),
            ("tresor://a/../b", "path"),
            ("tresor://db#", "empty"),
            ("tresor://db?version=0", "from 1"),
            ("tresor://db?version=x", "from 1"),
            ("tresor://db?ver=1", "only parameter"),
            ("tresor://db#a#b", "twice"),
            ("tresor://db?version=1?version=2", "twice"),
            ("tresor://db%ff", "UTF-8"),
        ] {
            let e = Reference::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn a_plain_path_is_a_reference_where_one_is_accepted() {
        assert_eq!(Reference::parse_or_path("db/pw").unwrap(), r("db/pw", None, None));
        assert_eq!(Reference::parse_or_path("tresor://db/pw#f").unwrap(), r("db/pw", Some("f"), None));
        assert!(Reference::parse_or_path("db//pw").is_err());
        assert!(
            Reference::parse_or_path("op://vault/item/field")
                .unwrap_err()
                .contains("op:// references are not tresor's")
        );
    }

    #[test]
    fn fields_come_from_a_json_object_value_and_a_missing_one_names_no_other() {
        let value =
            || SecretBuf(Zeroizing::new(br#"{"password":"s3cr3t","port":5432,"user":"app"}"#.to_vec()));
        assert_eq!(*r("db", Some("password"), None).select(value()).unwrap(), b"s3cr3t");
        assert_eq!(*r("db", Some("port"), None).select(value()).unwrap(), b"5432");
        assert_eq!(*r("db", None, None).select(value()).unwrap(), *value().0);
        let e = r("db", Some("host"), None).select(value()).unwrap_err();
        assert_eq!(e.code, 4);
        // The other field names are part of the secret: not in the message.
        assert!(e.message().contains("no field `host`") && !e.message().contains("user"), "{}", e.message());
        // A plain text value shows as one field, `value`.
        let text = || SecretBuf(Zeroizing::new(b"hunter2".to_vec()));
        assert_eq!(*r("pw", Some("value"), None).select(text()).unwrap(), b"hunter2");
        assert_eq!(r("pw", Some("user"), None).select(text()).unwrap_err().code, 4);
    }

    #[test]
    fn placeholders_are_found_and_other_braces_are_left_alone() {
        let t = b"a={{ tresor://db/pw }}\nb={{tresor://x#f?version=2}} c={{ .Values.x }} {{tresor://y}}";
        let places = placeholders(t).unwrap();
        let refs: Vec<&Reference> = places.iter().map(|(_, r)| r).collect();
        assert_eq!(refs, [&r("db/pw", None, None), &r("x", Some("f"), Some(2)), &r("y", None, None)]);
        let values: Vec<Zeroizing<Vec<u8>>> =
            ["P1", "P2", "P3"].iter().map(|v| Zeroizing::new(v.as_bytes().to_vec())).collect();
        let values: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        assert_eq!(rendered_len(t, &places, &values), b"a=P1\nb=P2 c={{ .Values.x }} P3".len());
        assert_eq!(&*render(t, &places, &values), b"a=P1\nb=P2 c={{ .Values.x }} P3".as_slice());
    }

    #[test]
    fn bad_placeholders_name_their_line() {
        let e = placeholders(b"ok\n\nx={{ tresor://db/pw\n}}").unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
        let e = placeholders(b"x={{ tresor://db/pw").unwrap_err();
        assert!(e.starts_with("line 1:") && e.contains("not closed"), "{e}");
        let e = placeholders(b"\nx={{ tresor://a//b }}").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }

    proptest! {
        #[test]
        fn a_reference_prints_as_text_that_parses_back(
            path in "[a-z#?% ]{1,8}(/[a-z0-9#?%]{1,8}){0,2}",
            field in proptest::option::of("[a-z#?% ]{1,6}"),
            version in proptest::option::of(1u64..1000),
        ) {
            prop_assume!(!path.split('/').any(|s| s.trim().is_empty() || s == "." || s == ".."));
            let reference = Reference { path, field, version };
            prop_assert_eq!(Reference::parse(&reference.to_string()).unwrap(), reference);
        }

        #[test]
        fn rendering_keeps_everything_but_the_placeholders(
            parts in proptest::collection::vec("[a-z{} \n]{0,12}", 1..5),
        ) {
            // Text between placeholders that holds no placeholder of its own comes out as it was.
            let mut template = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 { template.extend_from_slice(format!("{{{{ tresor://p{i} }}}}").as_bytes()); }
                template.extend_from_slice(part.as_bytes());
            }
            let places = placeholders(&template).unwrap();
            prop_assert_eq!(places.len(), parts.len() - 1);
            let values: Vec<Zeroizing<Vec<u8>>> = (1..parts.len()).map(|i| Zeroizing::new(format!("<{i}>").into_bytes())).collect();
            let mut expected = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 { expected.extend_from_slice(format!("<{i}>").as_bytes()); }
                expected.extend_from_slice(part.as_bytes());
            }
            let values: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
            prop_assert_eq!(&*render(&template, &places, &values), &expected);
        }
    }
}
