//! Text from the vault, a server or a sync peer as a terminal shows it: control characters
//! (terminal escapes), bidirectional overrides and invisible characters escaped as `\u{…}`, so a
//! path, an actor or an audit detail cannot rewrite the screen or pass for another.
//!
//! Paths, actors (a local process's name is its own to choose) and details come from whoever
//! wrote them. The human listings show them through [`text`]; `--json` gives them as they are.

use std::borrow::Cow;

/// Whether `c` would change what a terminal shows around it rather than show itself: controls
/// (escape sequences, carriage returns), the bidirectional marks, embeddings, overrides and
/// isolates, and the zero-width characters.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `s` with every [`hidden`] character written as `\u{…}` (unchanged, not copied, when it has none).
pub(crate) fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| if hidden(c) { format!("\\u{{{:x}}}", u32::from(c)) } else { c.to_string() })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_would_rewrite_the_screen_and_nothing_else() {
        assert!(matches!(text("db/password"), Cow::Borrowed("db/password")));
        assert_eq!(text("café/パス"), "café/パス");
        // A path that reads "prod/secret.txt" on a terminal but is not.
        assert_eq!(text("prod/\u{202E}txt.terces"), "prod/\\u{202e}txt.terces");
        assert_eq!(text("uid 0 (\u{1b}[2Jx)"), "uid 0 (\\u{1b}[2Jx)");
        assert_eq!(text("a\u{200B}b\r\n"), "a\\u{200b}b\\u{d}\\u{a}");
    }
}
