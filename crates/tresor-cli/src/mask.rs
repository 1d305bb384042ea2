//! Masking secret values in a stream (`tresor run --mask`): every occurrence of a value is
//! replaced by [`CONCEALED`], even one split across reads.
//!
//! Only the end of what was read that could still begin a value is held back; everything before
//! it is passed on at once, so an interactive program's prompt shows without delay. Values are
//! matched with trailing whitespace trimmed (a value stored with `echo` ends in a newline the
//! program may not print), and values shorter than [`MIN_MASKED`] bytes are not masked: they
//! would mask ordinary text.

use zeroize::Zeroizing;

/// What a value is replaced with.
pub(crate) const CONCEALED: &[u8] = b"<concealed by tresor>";

/// Shortest value masked, in bytes.
pub(crate) const MIN_MASKED: usize = 4;

/// The values to mask, and what of the stream is held back.
pub(crate) struct Masker {
    /// Longest first, so that a value containing another is masked whole.
    values: Vec<Zeroizing<Vec<u8>>>,
    pending: Zeroizing<Vec<u8>>,
}

impl Masker {
    pub(crate) fn new<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> Masker {
        let mut values: Vec<Zeroizing<Vec<u8>>> = values
            .into_iter()
            .map(|v| v.trim_ascii_end())
            .filter(|v| v.len() >= MIN_MASKED)
            .map(|v| Zeroizing::new(v.to_vec()))
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Masker { values, pending: Zeroizing::new(Vec::new()) }
    }

    /// Takes the next bytes of the stream; returns what can be passed on now.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let (out, consumed) = self.scan(false);
        self.pending.drain(..consumed);
        out
    }

    /// The end of the stream: everything held back, masked.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let (out, _) = self.scan(true);
        self.pending.clear();
        out
    }

    /// Masks the pending bytes; returns the output and how many pending bytes it accounts for
    /// (all of them at the end, else all but a tail that may begin a value).
    fn scan(&self, end: bool) -> (Vec<u8>, usize) {
        let data = &self.pending[..];
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        'outer: while i < data.len() {
            for value in &self.values {
                if data[i..].starts_with(value) {
                    out.extend_from_slice(CONCEALED);
                    i += value.len();
                    continue 'outer;
                }
                // The rest may be the beginning of this value: wait for more.
                if !end && value.starts_with(&data[i..]) {
                    return (out, i);
                }
            }
            out.push(data[i]);
            i += 1;
        }
        (out, data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn masked(values: &[&str], chunks: &[&str]) -> String {
        let mut m = Masker::new(values.iter().map(|v| v.as_bytes()));
        let mut out = Vec::new();
        for c in chunks {
            out.extend(m.push(c.as_bytes()));
        }
        out.extend(m.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_masked_even_across_reads() {
        assert_eq!(masked(&["hunter2"], &["pw=hunter2\n"]), "pw=<concealed by tresor>\n");
        assert_eq!(masked(&["hunter2"], &["pw=hun", "te", "r2 ok"]), "pw=<concealed by tresor> ok");
        assert_eq!(masked(&["hunter2\n"], &["hunter2hunter2"]), "<concealed by tresor><concealed by tresor>");
        // The longer of two overlapping values is masked whole.
        assert_eq!(masked(&["abcd", "abcdef"], &["xabcdefx"]), "x<concealed by tresor>x");
        // Short values would mask ordinary text.
        assert_eq!(masked(&["abc"], &["abc"]), "abc");
        // A stream that ends on the start of a value shows it: it is not the value.
        assert_eq!(masked(&["hunter2"], &["say hunt"]), "say hunt");
    }

    #[test]
    fn only_what_may_begin_a_value_is_held_back() {
        let mut m = Masker::new([b"hunter2".as_slice()]);
        assert_eq!(m.push(b"Password: "), b"Password: ");
        assert_eq!(m.push(b"xhun"), b"x");
        assert_eq!(m.push(b"gry"), b"hungry");
    }

    proptest! {
        #[test]
        fn no_value_survives_however_the_stream_is_cut(
            value in "[a-c]{4,8}",
            text in "[a-d]{0,60}",
            cuts in proptest::collection::vec(0usize..70, 0..6),
        ) {
            let mut stream = text.clone().into_bytes();
            let mid = stream.len() / 2;
            stream.splice(mid..mid, value.bytes());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut m = Masker::new([value.as_bytes()]);
            let mut out = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([stream.len()]) {
                out.extend(m.push(&stream[at..c]));
                at = c;
            }
            out.extend(m.finish());
            prop_assert!(!out.windows(value.len()).any(|w| w == value.as_bytes()));
            // Unmasking gives back the stream.
            let restored = String::from_utf8(out).unwrap().replace("<concealed by tresor>", &value);
            // (Masking may have matched elsewhere; unmasked, every match is the value again.)
            prop_assert_eq!(restored.into_bytes(), stream);
        }
    }
}
