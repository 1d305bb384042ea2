//! Request body fields as Vault takes them: a number as a JSON number or decimal text, a flag as
//! a JSON boolean or `true`/`false` text (what `vault write path key=value` sends), and anything
//! else refused with 400 — a setting is never taken and silently ignored.

use super::reply::ApiError;
use serde_json::Value;

/// The whole number `field` of `body`; `None` when absent or null.
pub(crate) fn whole(body: &Value, field: &str) -> Result<Option<u64>, ApiError> {
    let bad = || ApiError::invalid(format!("{field} must be a whole number"));
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
        Some(Value::String(text)) => decimal(text).map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// A number as a path segment or a text field gives it: plain decimal digits, no sign, no
/// leading zero (`01`, `+1`, `1.0` and ` 1` are not numbers here).
pub(crate) fn decimal(text: &str) -> Option<u64> {
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain.then(|| text.parse().ok()).flatten()
}

/// The flag `field` of `body`; `None` when absent or null.
pub(crate) fn flag(body: &Value, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(text)) if text == "true" || text == "1" => Ok(Some(true)),
        Some(Value::String(text)) if text == "false" || text == "0" => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid(format!("{field} must be true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_flags_come_as_json_or_as_text_and_nothing_else() {
        let body = json!({ "a": 2, "b": "2", "c": "2.0", "d": -1, "e": 1.5, "f": "", "g": null, "h": "99999999999999999999999", "i": "02" });
        assert_eq!(whole(&body, "a").unwrap(), Some(2));
        assert_eq!(whole(&body, "b").unwrap(), Some(2));
        assert_eq!(whole(&body, "g").unwrap(), None);
        assert_eq!(whole(&body, "absent").unwrap(), None);
        for bad in ["c", "d", "e", "f", "h", "i"] {
            assert!(whole(&body, bad).is_err(), "{bad}");
        }
        let body = json!({ "a": true, "b": "false", "c": "1", "d": "yes", "e": 1, "f": null });
        assert_eq!(flag(&body, "a").unwrap(), Some(true));
        assert_eq!(flag(&body, "b").unwrap(), Some(false));
        assert_eq!(flag(&body, "c").unwrap(), Some(true));
        assert_eq!(flag(&body, "f").unwrap(), None);
        assert!(flag(&body, "d").is_err() && flag(&body, "e").is_err());
    }
}
