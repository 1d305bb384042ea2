//! How a KV v2 data object and a vault value's bytes map to each other, both ways, in one place:
//! the server shows values as data and stores data as values, and `tresor` as a server's client
//! turns the data it reads back into the value's bytes.
//!
//! - Bytes that are exactly the JSON this module writes for an object show as that object.
//! - Any other bytes show as `{"value": text}`, or `{"value_base64": b64}` when not UTF-8.
//! - Writing data stores the bytes that show as that data when there are such bytes (a lone
//!   `value` text is stored as the text itself, a lone `value_base64` as the bytes it encodes);
//!   any other object is stored as its JSON.
//!
//! So bytes set with `tresor set` read back as they are through the API and through the CLI, and
//! data written through the API reads back as written (except a lone `value_base64` of text,
//! which reads back as `value`).

use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

/// The bytes to store for KV v2 `data` (the inverse of [`decode`]); an error names what is wrong.
pub fn encode(data: &Map<String, Value>) -> Result<Zeroizing<Vec<u8>>, String> {
    use base64ct::Encoding;
    if data.len() == 1 {
        match data.iter().next() {
            // The text itself, unless those bytes would show as something else (an object's
            // exact JSON): then the object holding it, as JSON.
            Some((key, Value::String(text)))
                if key == "value" && decode(text.as_bytes()) == json!({ "value": text }) =>
            {
                return Ok(Zeroizing::new(text.as_bytes().to_vec()));
            }
            Some((key, Value::String(b64))) if key == "value_base64" => {
                return base64ct::Base64::decode_vec(b64)
                    .map(Zeroizing::new)
                    .map_err(|_| "value_base64 is not Base64".to_string());
            }
            _ => {}
        }
    }
    serde_json::to_vec(data).map(Zeroizing::new).map_err(|e| e.to_string())
}

/// A stored value as KV v2 data (see the module doc).
pub fn decode(bytes: &[u8]) -> Value {
    use base64ct::Encoding;
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes)
        && serde_json::to_vec(&map).is_ok_and(|again| again == bytes)
        && !lone_text(&map)
    {
        return Value::Object(map);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "value": text }),
        Err(_) => json!({ "value_base64": base64ct::Base64::encode_string(bytes) }),
    }
}

/// Whether `map` is what [`encode`] never stores as JSON: a lone `value_base64` text, or a lone
/// `value` text that is not itself an object's exact JSON.
fn lone_text(map: &Map<String, Value>) -> bool {
    if map.len() != 1 {
        return false;
    }
    match map.iter().next() {
        Some((key, Value::String(_))) if key == "value_base64" => true,
        Some((key, Value::String(text))) if key == "value" => {
            !matches!(serde_json::from_str::<Value>(text), Ok(Value::Object(inner))
                if serde_json::to_vec(&inner).is_ok_and(|again| again == text.as_bytes()) && !lone_text(&inner))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn bytes_read_back_as_they_are() {
        for raw in [
            &br#"{"value":"x"}"#[..],
            br#"{"value_base64":"eA=="}"#,
            br#"{"b":1,"a":2}"#,
            b"{\"a\": 1}\n",
            br#"{"a":1}"#,
            br#"{"value":"{\"a\":1}"}"#,
            br#"{"value":"{\"value\":\"x\"}"}"#,
            b"plain text",
            b"",
            &[0xff, 0xfe],
        ] {
            let shown = decode(raw);
            let Value::Object(map) = &shown else { panic!("{shown}") };
            assert_eq!(encode(map).unwrap().as_slice(), raw, "{shown}");
        }
    }

    #[test]
    fn data_reads_back_as_written() {
        for data in [
            json!({ "value": "hunter2" }),
            json!({ "value": "{\"a\":1}" }),
            json!({ "value": "{\"value\":\"x\"}" }),
            json!({ "value": "{\"b\":1,\"a\":2}" }),
            json!({ "user": "u", "pw": "p" }),
            json!({ "value": "x", "other": "y" }),
            json!({ "value": 5 }),
            json!({ "value_base64": "/wBh" }),
            json!({}),
        ] {
            let stored = encode(&object(data.clone())).unwrap();
            assert_eq!(decode(&stored), data, "{data}");
        }
        assert_eq!(encode(&object(json!({ "value": "hunter2" }))).unwrap().as_slice(), b"hunter2");
        assert_eq!(
            encode(&object(json!({ "value_base64": "/wBh" }))).unwrap().as_slice(),
            [0xff, 0x00, b'a']
        );
        assert!(encode(&object(json!({ "value_base64": "not base64!" }))).is_err());
        assert_eq!(
            decode(br#"{"user":"a","n":1}"#),
            json!({ "value": r#"{"user":"a","n":1}"# }),
            "not exact JSON"
        );
        assert_eq!(decode(br#"{"n":1,"user":"a"}"#), json!({ "n": 1, "user": "a" }));
        assert_eq!(decode(b"[1,2]"), json!({ "value": "[1,2]" }));
    }

    proptest! {
        #[test]
        fn any_bytes_read_back_as_they_are(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let shown = decode(&raw);
            let map = shown.as_object().cloned().unwrap_or_default();
            let stored = encode(&map).unwrap();
            prop_assert_eq!(stored.as_slice(), raw.as_slice());
        }

        #[test]
        fn any_text_reads_back_as_it_is(text in "[ -~]{0,40}") {
            let shown = decode(text.as_bytes());
            let map = shown.as_object().cloned().unwrap_or_default();
            let stored = encode(&map).unwrap();
            prop_assert_eq!(stored.as_slice(), text.as_bytes());
        }
    }
}
