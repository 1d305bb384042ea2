//! BIP39 recovery phrases: entropy as 12 to 24 words from one of the ten official word lists.
//!
//! A vault's recovery phrase is the root secret itself, written as 24 English words
//! ([`Phrase::from_key`], [`Phrase::to_key`]); the same phrase also yields the BIP39 seed from
//! which SLIP-0010 identities are derived ([`Phrase::seed`], [`crate::slip10`]).
//!
//! What BIP39 specifies, and this module does:
//!
//! - entropy of 128 to 256 bits in steps of 32, followed by the first `ENT / 32` bits of its
//!   SHA-256 as a checksum, cut into 11-bit word indices;
//! - the ten official word lists (English, Chinese simplified and traditional, Czech, French,
//!   Italian, Japanese, Korean, Portuguese, Spanish), exactly as published in `bitcoin/bips`;
//! - NFKD normalisation of the phrase *and* of the passphrase before anything else, so "é" typed
//!   as one code point or as two, a full-width letter or a Japanese ideographic space (U+3000)
//!   all give the same words and the same seed;
//! - the seed: PBKDF2-HMAC-SHA512 with 2048 rounds over the NFKD sentence (words joined by
//!   U+0020), salted with `"mnemonic" || NFKD(passphrase)`, 64 bytes.
//!
//! Word lists, checksum and word look-up come from rust-bitcoin's `bip39` crate; the seed runs on
//! RustCrypto's `pbkdf2` over `hmac` and `sha2` so that the sentence, the salt and the output live
//! only in buffers that are wiped on drop. Where a phrase's words belong to more than one list
//! (English and French share words, and the two Chinese lists share characters), [`Phrase::parse`]
//! tries every list in [`Language::ALL`] order and takes the first whose checksum matches.
//!
//! Errors never contain a word of the phrase: a mistyped word is still most of a secret, so
//! [`PhraseError::UnknownWord`] carries only its position. Word look-up (binary or linear search
//! in the public lists) is not constant-time; phrases are read from a local user, never from a
//! request an attacker can time.

use crate::secret::{KEY_LEN, Key};
use sha2::Sha512;
use std::fmt;
use std::str::FromStr;
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, Zeroizing};

/// PBKDF2 rounds of the BIP39 seed.
pub const SEED_ROUNDS: u32 = 2048;
/// Length of a BIP39 seed.
pub const SEED_LEN: usize = 64;
/// The word counts BIP39 allows.
pub const WORD_COUNTS: [usize; 5] = [12, 15, 18, 21, 24];

/// One of the ten official BIP39 word lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Language {
    /// English: the default, and the language of vault recovery phrases.
    English,
    /// Chinese, simplified characters.
    ChineseSimplified,
    /// Chinese, traditional characters.
    ChineseTraditional,
    /// Czech.
    Czech,
    /// French.
    French,
    /// Italian.
    Italian,
    /// Japanese (words are written joined by the ideographic space U+3000).
    Japanese,
    /// Korean.
    Korean,
    /// Portuguese.
    Portuguese,
    /// Spanish.
    Spanish,
}

impl Language {
    /// Every list, in the order [`Phrase::parse`] tries them.
    pub const ALL: [Language; 10] = [
        Language::English,
        Language::ChineseSimplified,
        Language::ChineseTraditional,
        Language::Czech,
        Language::French,
        Language::Italian,
        Language::Japanese,
        Language::Korean,
        Language::Portuguese,
        Language::Spanish,
    ];

    /// The lowercase name: `english`, `chinese-simplified`, `chinese-traditional`, `czech`,
    /// `french`, `italian`, `japanese`, `korean`, `portuguese`, `spanish`.
    pub fn name(self) -> &'static str {
        match self {
            Language::English => "english",
            Language::ChineseSimplified => "chinese-simplified",
            Language::ChineseTraditional => "chinese-traditional",
            Language::Czech => "czech",
            Language::French => "french",
            Language::Italian => "italian",
            Language::Japanese => "japanese",
            Language::Korean => "korean",
            Language::Portuguese => "portuguese",
            Language::Spanish => "spanish",
        }
    }

    /// The 2048 words of the list, in index order and in NFKD form.
    pub fn word_list(self) -> &'static [&'static str; 2048] {
        self.bip39().word_list()
    }

    /// The separator BIP39 writes between words: the ideographic space U+3000 for Japanese, a
    /// plain space for every other list. (NFKD turns U+3000 into U+0020, so both read back.)
    pub fn separator(self) -> char {
        match self {
            Language::Japanese => '\u{3000}',
            _ => ' ',
        }
    }

    fn bip39(self) -> bip39::Language {
        match self {
            Language::English => bip39::Language::English,
            Language::ChineseSimplified => bip39::Language::SimplifiedChinese,
            Language::ChineseTraditional => bip39::Language::TraditionalChinese,
            Language::Czech => bip39::Language::Czech,
            Language::French => bip39::Language::French,
            Language::Italian => bip39::Language::Italian,
            Language::Japanese => bip39::Language::Japanese,
            Language::Korean => bip39::Language::Korean,
            Language::Portuguese => bip39::Language::Portuguese,
            Language::Spanish => bip39::Language::Spanish,
        }
    }
}

/// `count` English BIP39 words (11 bits each, at most 23) read from the first bits of `digest`:
/// a short authentication string people compare aloud (four words carry 44 bits).
pub fn digest_words(digest: &[u8; 32], count: usize) -> Vec<&'static str> {
    let list = bip39::Language::English.word_list();
    (0..count.min(23))
        .map(|i| {
            let bit = i * 11;
            let window = u32::from_be_bytes([
                digest[bit / 8],
                digest.get(bit / 8 + 1).copied().unwrap_or(0),
                digest.get(bit / 8 + 2).copied().unwrap_or(0),
                0,
            ]);
            let index = (window >> (32 - 11 - bit % 8)) & 0x7ff;
            list[index as usize]
        })
        .collect()
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Language {
    type Err = UnknownLanguage;

    /// Reads a [`Language::name`], ignoring ASCII case; `_` may stand for `-`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Language::ALL.into_iter().find(|l| l.name() == wanted).ok_or_else(|| UnknownLanguage(s.to_string()))
    }
}

/// A word-list name that is not one of [`Language::ALL`] (the name is not secret: it is echoed).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown BIP39 word list {0:?}: expected english, chinese-simplified, chinese-traditional, czech, \
     french, italian, japanese, korean, portuguese or spanish"
)]
pub struct UnknownLanguage(pub String);

/// Why a phrase could not be made or read. No variant contains a word of the phrase.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhraseError {
    /// The phrase (or the requested length) does not have 12, 15, 18, 21 or 24 words.
    #[error("a recovery phrase has 12, 15, 18, 21 or 24 words, not {0}")]
    WordCount(usize),
    /// A word is in none of the word lists; `position` counts from 1. The word itself is left
    /// out on purpose: a typo of a secret word is nearly the secret word.
    #[error("word {position} is not in the BIP39 word list")]
    UnknownWord {
        /// 1-based position of the word in the phrase.
        position: usize,
    },
    /// Every word is known but the checksum does not match.
    #[error("the phrase's checksum does not match: a word is wrong or the order is changed")]
    Checksum,
    /// Entropy of a length BIP39 does not allow (16 to 32 bytes in steps of 4).
    #[error("BIP39 entropy is 16, 20, 24, 28 or 32 bytes, not {0}")]
    EntropyLength(usize),
    /// The operating system's random number generator failed; no phrase was made.
    #[error("the system random number generator failed")]
    Random,
}

impl PhraseError {
    fn from_bip39(e: bip39::Error) -> Self {
        match e {
            bip39::Error::BadWordCount(n) => PhraseError::WordCount(n),
            bip39::Error::UnknownWord(i) => PhraseError::UnknownWord { position: i + 1 },
            bip39::Error::BadEntropyBitCount(bits) => PhraseError::EntropyLength(bits / 8),
            // `parse_in_normalized` is always given the language, so the crate never has to guess
            // one; a checksum mismatch is the only other outcome.
            bip39::Error::InvalidChecksum | bip39::Error::AmbiguousLanguages(_) => PhraseError::Checksum,
        }
    }
}

/// A BIP39 phrase: its word list and word indices. Wiped on drop; no `Clone`; `Debug` shows only
/// the language and the number of words.
pub struct Phrase {
    lang: Language,
    // `bip39::Mnemonic` holds only the language and the word indices, and (with its `zeroize`
    // feature) wipes them on drop.
    inner: bip39::Mnemonic,
}

impl Phrase {
    /// A fresh phrase of `words` words (12, 15, 18, 21 or 24) from the operating system's random
    /// number generator.
    pub fn generate(words: usize, lang: Language) -> Result<Phrase, PhraseError> {
        if !WORD_COUNTS.contains(&words) {
            return Err(PhraseError::WordCount(words));
        }
        let mut entropy = Zeroizing::new([0u8; 32]);
        let len = words / 3 * 4;
        getrandom::fill(&mut entropy[..len]).map_err(|_| PhraseError::Random)?;
        Phrase::from_entropy(&entropy[..len], lang)
    }

    /// The phrase that encodes `entropy` (16 to 32 bytes, a multiple of 4) in `lang`.
    pub fn from_entropy(entropy: &[u8], lang: Language) -> Result<Phrase, PhraseError> {
        let inner =
            bip39::Mnemonic::from_entropy_in(lang.bip39(), entropy).map_err(PhraseError::from_bip39)?;
        Ok(Phrase { lang, inner })
    }

    /// The 24 English words that encode a 256-bit key: the vault's recovery phrase for its root
    /// secret. [`Phrase::to_key`] turns them back into the same key.
    pub fn from_key(key: &Key) -> Phrase {
        Phrase::from_entropy(key.expose_secret(), Language::English)
            .unwrap_or_else(|_| unreachable!("32 bytes is valid BIP39 entropy"))
    }

    /// Reads a phrase in any of the ten word lists.
    ///
    /// The text is NFKD-normalised; words may be separated by any run of Unicode white space
    /// (spaces, tabs, new lines, the ideographic space U+3000), with any amount before and after.
    /// Word lists are tried in [`Language::ALL`] order and the first in which every word is known
    /// and the checksum matches wins, so a phrase whose words are shared by two lists is still
    /// read (as the first of them, English before French, simplified before traditional Chinese).
    /// When no list accepts it: a wrong word count is [`PhraseError::WordCount`]; a phrase whose
    /// words are all in some list but whose checksum fails there is [`PhraseError::Checksum`];
    /// otherwise [`PhraseError::UnknownWord`] names the first unknown word of the list that knows
    /// the most of the words (the first such list in [`Language::ALL`] on a tie).
    pub fn parse(text: &str) -> Result<Phrase, PhraseError> {
        let normalized = nfkd(text);
        check_word_count(&normalized)?;
        let mut checksum_failed = false;
        for lang in Language::ALL {
            match bip39::Mnemonic::parse_in_normalized(lang.bip39(), &normalized) {
                Ok(inner) => return Ok(Phrase { lang, inner }),
                Err(bip39::Error::UnknownWord(_)) => {}
                Err(_) => checksum_failed = true,
            }
        }
        if checksum_failed {
            return Err(PhraseError::Checksum);
        }
        // No list knows every word. The phrase was most likely meant in the list that knows the
        // most of them (the first such list on a tie): report that list's first unknown word.
        // A typo that happens to be a word of another list does not move the blame elsewhere.
        let mut best: Option<(usize, usize)> = None; // (words known, first unknown word)
        for lang in Language::ALL {
            let known = |w: &str| lang.bip39().find_word(w).is_some();
            let count = normalized.split_whitespace().filter(|w| known(w)).count();
            if best.is_none_or(|(most, _)| count > most) {
                let first_unknown = normalized.split_whitespace().position(|w| !known(w)).unwrap_or(0);
                best = Some((count, first_unknown));
            }
        }
        let first_unknown = best.map_or(0, |(_, i)| i);
        Err(PhraseError::UnknownWord { position: first_unknown + 1 })
    }

    /// Reads a phrase in the given word list only (NFKD-normalised, any white space between
    /// words, as [`Phrase::parse`]).
    pub fn parse_in(lang: Language, text: &str) -> Result<Phrase, PhraseError> {
        let normalized = nfkd(text);
        check_word_count(&normalized)?;
        let inner = bip39::Mnemonic::parse_in_normalized(lang.bip39(), &normalized)
            .map_err(PhraseError::from_bip39)?;
        Ok(Phrase { lang, inner })
    }

    /// The phrase's word list.
    pub fn language(&self) -> Language {
        self.lang
    }

    /// The number of words: 12, 15, 18, 21 or 24.
    pub fn word_count(&self) -> usize {
        self.inner.word_count()
    }

    /// The words as BIP39 writes them: NFKD, joined by one space (the ideographic space U+3000
    /// for Japanese). This is the secret itself: show it once, never log it.
    pub fn expose_phrase(&self) -> Zeroizing<String> {
        join(&self.inner, self.lang.separator())
    }

    /// The entropy the words encode (16 to 32 bytes).
    pub fn entropy(&self) -> Zeroizing<Vec<u8>> {
        let (mut all, len) = self.inner.to_entropy_array();
        let out = Zeroizing::new(all[..len].to_vec());
        all.zeroize();
        out
    }

    /// The 256-bit key a 24-word phrase encodes; `None` for shorter phrases, which carry less
    /// than a key's worth of entropy.
    pub fn to_key(&self) -> Option<Key> {
        let (mut all, len) = self.inner.to_entropy_array();
        let key = (len == KEY_LEN).then(|| {
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            bytes.copy_from_slice(&all[..KEY_LEN]);
            Key::from_bytes(&mut bytes)
        });
        all.zeroize();
        key
    }

    /// The 64-byte BIP39 seed: PBKDF2-HMAC-SHA512, 2048 rounds, password the NFKD sentence
    /// (words joined by U+0020), salt `"mnemonic" || NFKD(passphrase)`. An empty passphrase is
    /// allowed and usual; a different passphrase gives an unrelated seed, with no error.
    pub fn seed(&self, passphrase: &str) -> Zeroizing<[u8; SEED_LEN]> {
        let sentence = join(&self.inner, ' ');
        let mut salt = Zeroizing::new(String::with_capacity(8 + passphrase.len()));
        salt.push_str("mnemonic");
        push_nfkd(&mut salt, passphrase);
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        pbkdf2::pbkdf2_hmac::<Sha512>(sentence.as_bytes(), salt.as_bytes(), SEED_ROUNDS, seed.as_mut());
        seed
    }
}

impl fmt::Debug for Phrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phrase([REDACTED], {} {} words)", self.word_count(), self.lang)
    }
}

fn check_word_count(normalized: &str) -> Result<(), PhraseError> {
    let n = normalized.split_whitespace().count();
    if WORD_COUNTS.contains(&n) { Ok(()) } else { Err(PhraseError::WordCount(n)) }
}

/// The words of `m` joined by `sep`, in a buffer sized up front so that it never reallocates
/// (a reallocation would leave an unwiped copy behind).
fn join(m: &bip39::Mnemonic, sep: char) -> Zeroizing<String> {
    let len: usize = m.words().map(|w| w.len() + sep.len_utf8()).sum();
    let mut out = Zeroizing::new(String::with_capacity(len));
    for (i, word) in m.words().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.push_str(word);
    }
    out
}

/// NFKD of `text` into a wiped buffer.
fn nfkd(text: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    push_nfkd(&mut out, text);
    out
}

/// Appends NFKD of `text` to `out`. NFKD may lengthen the text; when `out` is full it moves into a
/// buffer twice the size and the old one is wiped, so no copy is left behind by a reallocation.
fn push_nfkd(out: &mut Zeroizing<String>, text: &str) {
    for c in text.nfkd() {
        if out.len() + c.len_utf8() > out.capacity() {
            let mut bigger = Zeroizing::new(String::with_capacity(2 * out.capacity() + 4 * c.len_utf8()));
            bigger.push_str(out.as_str());
            *out = bigger;
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_words_read_eleven_bits_each_from_the_start() {
        // The first word is bits 0..11: index 0 ("abandon"); bits 11..22 are 0b0000_0000_001
        // = 1 ("ability"); all ones give "zoo".
        let mut digest = [0u8; 32];
        digest[1] = 0b0000_0000;
        digest[2] = 0b0000_0100;
        assert_eq!(digest_words(&digest, 2), ["abandon", "ability"]);
        assert_eq!(digest_words(&[0xff; 32], 4), ["zoo"; 4]);
        assert_ne!(digest_words(&[1; 32], 4), digest_words(&[2; 32], 4));
    }

    #[test]
    fn names_round_trip_and_parse_leniently() {
        for lang in Language::ALL {
            assert_eq!(lang.name().parse::<Language>(), Ok(lang));
            assert_eq!(lang.to_string(), lang.name());
        }
        assert_eq!("Chinese_Simplified".parse::<Language>(), Ok(Language::ChineseSimplified));
        assert_eq!("klingon".parse::<Language>(), Err(UnknownLanguage("klingon".into())));
    }

    #[test]
    fn debug_is_redacted() {
        let p = Phrase::from_entropy(&[0u8; 16], Language::English).unwrap();
        let shown = format!("{p:?}");
        assert_eq!(shown, "Phrase([REDACTED], 12 english words)");
        assert!(!shown.contains("abandon"));
    }

    #[test]
    fn push_nfkd_grows_without_losing_text() {
        // U+FDFA (one code point, 3 bytes) decomposes to 18 code points (33 bytes).
        let mut out = Zeroizing::new(String::with_capacity(1));
        push_nfkd(&mut out, "x\u{FDFA}\u{FDFA}é");
        let expected: String = "x\u{FDFA}\u{FDFA}é".nfkd().collect();
        assert_eq!(out.as_str(), expected);
        assert!(out.len() > 60);
    }

    #[test]
    fn seed_agrees_with_the_bip39_crate() {
        // Two independent PBKDF2 implementations (RustCrypto's here, bitcoin_hashes' inside the
        // bip39 crate) must agree, passphrase normalisation included.
        for (lang, pass) in
            [(Language::English, ""), (Language::Japanese, "㍍ガバヴァ"), (Language::French, "é")]
        {
            let p = Phrase::from_entropy(&[0x5a; 24], lang).unwrap();
            assert_eq!(p.seed(pass).as_slice(), p.inner.to_seed(pass).as_slice(), "{lang}");
        }
    }

    #[test]
    fn to_key_only_for_24_words() {
        let key = Key::generate().unwrap();
        let p = Phrase::from_key(&key);
        assert_eq!(p.word_count(), 24);
        assert!(p.to_key().unwrap().ct_eq(&key));
        assert!(Phrase::from_entropy(&[1u8; 28], Language::English).unwrap().to_key().is_none());
    }
}
