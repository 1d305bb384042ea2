//! BIP39 conformance of [`tresor_crypto::phrase`], driven by the official vectors in
//! `tests/vectors/` (see its README for sources and licences):
//!
//! - Trezor's `vectors.json` (the vectors BIP39 itself points to): entropy → phrase,
//!   phrase → entropy and phrase → seed with passphrase "TREZOR", for all ten official lists;
//! - the Japanese vectors BIP39 points to (`test_JP_BIP39.json`): ideographic spaces and a
//!   passphrase that only NFKD turns into the right salt;
//! - SHA-256 of the ten official word-list files of `bitcoin/bips`.
//!
//! Negative cases are named `fail_*`. Each vector test prints one `BIP39:` summary line (run with
//! `--nocapture` to see it) and asserts that every vector ran and passed.
// A failed unwrap in a test is a test failure, which is exactly what we want.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::Value;
use tresor_crypto::phrase::{Language, Phrase, PhraseError};
use unicode_normalization::UnicodeNormalization;

const TREZOR: &str = include_str!("../vectors/bip39-trezor.json");
const JAPANESE: &str = include_str!("../vectors/bip39-japanese.json");
const WORDLIST_SHA256: &str = include_str!("../vectors/bip39-wordlists.sha256");

/// The key of each official list in Trezor's `vectors.json` and in the `bitcoin/bips` file names.
fn file_name(lang: Language) -> &'static str {
    match lang {
        Language::English => "english",
        Language::ChineseSimplified => "chinese_simplified",
        Language::ChineseTraditional => "chinese_traditional",
        Language::Czech => "czech",
        Language::French => "french",
        Language::Italian => "italian",
        Language::Japanese => "japanese",
        Language::Korean => "korean",
        Language::Portuguese => "portuguese",
        Language::Spanish => "spanish",
    }
}

fn nfkd(s: &str) -> String {
    s.nfkd().collect()
}

/// A vector's phrase as BIP39 writes it: each word NFKD, joined by the list's separator (the
/// vectors themselves are not always NFKD, and NFKD would turn U+3000 into a plain space).
fn canonical(mnemonic: &str, lang: Language) -> String {
    let words: Vec<String> = mnemonic.split_whitespace().map(nfkd).collect();
    words.join(&lang.separator().to_string())
}

fn nfc(s: &str) -> String {
    s.nfc().collect()
}

/// The English "abandon … about" phrase of the first Trezor vector (all-zero entropy).
const ZERO_12: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

#[test]
fn trezor_vectors_every_official_language() {
    let all: Value = serde_json::from_str(TREZOR).unwrap();
    let all = all.as_object().unwrap();
    // The file also carries Russian and Turkish lists that are not part of BIP39.
    let official: Vec<&str> = Language::ALL.iter().map(|&l| file_name(l)).collect();
    let extra: Vec<&String> = all.keys().filter(|k| !official.contains(&k.as_str())).collect();
    assert_eq!(extra, ["russian", "turkish"], "unexpected lists in vectors.json");

    let (mut total, mut passed, mut detected_as_other) = (0, 0, 0);
    for lang in Language::ALL {
        let vectors = all[file_name(lang)].as_array().unwrap();
        assert_eq!(vectors.len(), 24, "{lang}: expected 24 vectors");
        for v in vectors {
            let [entropy, mnemonic, seed, _xprv] = [0, 1, 2, 3].map(|i| v[i].as_str().unwrap());
            let entropy = hex::decode(entropy).unwrap();
            total += 1;

            // entropy → phrase (BIP39's sentence is NFKD; the Japanese vectors are written NFC).
            let made = Phrase::from_entropy(&entropy, lang).unwrap();
            assert_eq!(made.expose_phrase().as_str(), canonical(mnemonic, lang), "{lang}: entropy → phrase");
            assert_eq!(made.word_count(), entropy.len() * 3 / 4);

            // phrase → entropy, in the given list and detected.
            let read = Phrase::parse_in(lang, mnemonic).unwrap();
            assert_eq!(read.language(), lang);
            assert_eq!(*read.entropy(), entropy, "{lang}: phrase → entropy");
            let detected = Phrase::parse(mnemonic).unwrap();
            assert_eq!(*detected.entropy(), entropy, "{lang}: detected phrase → entropy");
            if detected.language() != lang {
                // Only the two Chinese lists share words at the same index: a traditional phrase
                // written only in shared characters reads as simplified, with the same entropy.
                assert_eq!(
                    (lang, detected.language()),
                    (Language::ChineseTraditional, Language::ChineseSimplified)
                );
                detected_as_other += 1;
            }

            // phrase → seed.
            assert_eq!(hex::encode(read.seed("TREZOR").as_slice()), seed, "{lang}: seed");
            assert_eq!(hex::encode(made.seed("TREZOR").as_slice()), seed, "{lang}: seed");
            passed += 1;
        }
    }
    println!(
        "BIP39: trezor vectors passed {passed}/{total} (10 lists × 24; {detected_as_other} traditional Chinese \
         phrases in shared characters detected as simplified, same entropy)"
    );
    assert_eq!(total, 240);
    assert_eq!(passed, total);
}

#[test]
fn japanese_vectors_need_nfkd_of_phrase_and_passphrase() {
    let vectors: Value = serde_json::from_str(JAPANESE).unwrap();
    let vectors = vectors.as_array().unwrap();
    let mut passed = 0;
    for v in vectors {
        let field = |k: &str| v[k].as_str().unwrap();
        let (entropy, mnemonic, passphrase, seed) =
            (hex::decode(field("entropy")).unwrap(), field("mnemonic"), field("passphrase"), field("seed"));
        // The vectors are not NFKD: the passphrase only gives the right salt once normalised.
        assert_ne!(nfkd(passphrase), passphrase);
        assert!(mnemonic.contains('\u{3000}'), "words are joined by the ideographic space");

        let made = Phrase::from_entropy(&entropy, Language::Japanese).unwrap();
        assert_eq!(made.expose_phrase().as_str(), canonical(mnemonic, Language::Japanese));
        assert_eq!(made.expose_phrase().split('\u{3000}').count(), made.word_count());
        assert_eq!(nfc(&made.expose_phrase()), mnemonic, "the same text up to normalisation");

        let read = Phrase::parse(mnemonic).unwrap();
        assert_eq!(read.language(), Language::Japanese);
        assert_eq!(*read.entropy(), entropy);
        assert_eq!(hex::encode(read.seed(passphrase).as_slice()), seed);
        // Every spelling of the same passphrase gives the same seed.
        for spelled in
            [nfc(passphrase), nfkd(passphrase), passphrase.nfkc().collect(), passphrase.nfd().collect()]
        {
            assert_eq!(hex::encode(read.seed(&spelled).as_slice()), seed);
        }
        // The phrase read in its NFKD form, and with ASCII spaces, is the same phrase.
        let spaced = nfkd(mnemonic).replace('\u{3000}', " ");
        assert_eq!(*Phrase::parse(&spaced).unwrap().entropy(), entropy);
        passed += 1;
    }
    println!("BIP39: japanese vectors passed {passed}/{}", vectors.len());
    assert_eq!(vectors.len(), 24);
    assert_eq!(passed, 24);
}

#[test]
fn nfc_and_nfd_spellings_give_the_same_phrase_and_seed() {
    // Words with accents, kana with voicing marks, Hangul: typed precomposed (NFC) or decomposed.
    // (The Czech, Italian and Portuguese lists are plain ASCII, Chinese is unchanged by NFKD.)
    for lang in [Language::French, Language::Spanish, Language::Japanese, Language::Korean] {
        // The first phrase of entropy SHA-256(i) that normalisation changes.
        let made = (0..=255u8)
            .map(|i| Phrase::from_entropy(&tresor_crypto::hash(&[i]), lang).unwrap())
            .find(|p| nfc(&p.expose_phrase()) != *p.expose_phrase())
            .unwrap();
        let text = made.expose_phrase();
        let a = Phrase::parse(&nfc(&text)).unwrap();
        let b = Phrase::parse(&nfd_of(&text)).unwrap();
        assert_eq!(a.language(), lang);
        assert_eq!(*a.entropy(), *b.entropy());
        assert_eq!(*a.seed("Ünïcödé"), *b.seed(&nfd_of("Ünïcödé")));
        assert_ne!(*a.seed("Ünïcödé"), *a.seed("Unicode"));
    }
}

fn nfd_of(s: &str) -> String {
    s.nfd().collect()
}

#[test]
fn word_lists_are_the_official_ones() {
    let mut checked = 0;
    for line in WORDLIST_SHA256.lines() {
        let (hash, file) = line.split_once("  ").unwrap();
        let lang = Language::ALL.into_iter().find(|&l| format!("{}.txt", file_name(l)) == file).unwrap();
        let words = lang.word_list();
        assert_eq!(words.len(), 2048);
        let mut unique: Vec<&str> = words.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 2048, "{lang}: duplicate words");
        assert!(words.iter().all(|w| nfkd(w) == *w), "{lang}: words are NFKD");
        // The official files are the words, one per line, each line ending in "\n".
        let file_text: String = words.iter().map(|w| format!("{w}\n")).collect();
        assert_eq!(
            hex::encode(tresor_crypto::hash(file_text.as_bytes())),
            hash,
            "{lang}: differs from {file}"
        );
        checked += 1;
    }
    println!("BIP39: word lists identical to bitcoin/bips {checked}/10");
    assert_eq!(checked, 10);
}

#[test]
fn generate_makes_every_length_in_every_language() {
    for lang in Language::ALL {
        for words in [12, 15, 18, 21, 24] {
            let p = Phrase::generate(words, lang).unwrap();
            assert_eq!((p.word_count(), p.language(), p.entropy().len()), (words, lang, words / 3 * 4));
            assert_eq!(*Phrase::parse_in(lang, &p.expose_phrase()).unwrap().entropy(), *p.entropy());
        }
    }
    let a = Phrase::generate(24, Language::English).unwrap();
    let b = Phrase::generate(24, Language::English).unwrap();
    assert_ne!(*a.entropy(), *b.entropy());
}

#[test]
fn recovery_phrase_round_trips_the_root_key() {
    let key = tresor_crypto::Key::generate().unwrap();
    let phrase = Phrase::from_key(&key);
    assert_eq!((phrase.language(), phrase.word_count()), (Language::English, 24));
    let back = Phrase::parse(&phrase.expose_phrase()).unwrap().to_key().unwrap();
    assert!(back.ct_eq(&key));
    assert_eq!(*phrase.entropy(), key.expose_secret());
    assert!(Phrase::parse(ZERO_12).unwrap().to_key().is_none(), "12 words are not a key");
}

#[test]
fn any_white_space_separates_words() {
    let expected = Phrase::parse(ZERO_12).unwrap().entropy();
    for sep in ["  ", "\t", "\n", "\r\n", "\u{3000}", " \u{3000}\t"] {
        let text = format!("  {}\n", ZERO_12.replace(' ', sep));
        assert_eq!(Phrase::parse(&text).unwrap().entropy(), expected, "{sep:?}");
        assert_eq!(Phrase::parse_in(Language::English, &text).unwrap().entropy(), expected);
    }
}

#[test]
fn fail_wrong_checksum() {
    let words: Vec<&str> = ZERO_12.split(' ').collect();
    // Twelve "abandon": every word known, checksum wrong.
    assert_eq!(Phrase::parse(&["abandon"; 12].join(" ")).unwrap_err(), PhraseError::Checksum);
    // Order changed.
    let mut swapped = words.clone();
    swapped.swap(0, 11);
    assert_eq!(Phrase::parse(&swapped.join(" ")).unwrap_err(), PhraseError::Checksum);
    // Last word changed to another valid word.
    let mut changed = words.clone();
    changed[11] = "zoo";
    assert_eq!(Phrase::parse(&changed.join(" ")).unwrap_err(), PhraseError::Checksum);
    assert_eq!(Phrase::parse_in(Language::English, &changed.join(" ")).unwrap_err(), PhraseError::Checksum);
    assert_eq!(
        PhraseError::Checksum.to_string(),
        "the phrase's checksum does not match: a word is wrong or the order is changed"
    );
}

#[test]
fn fail_unknown_word_is_reported_by_position_without_the_word() {
    let words: Vec<&str> = ZERO_12.split(' ').collect();
    for k in 1..=12 {
        // "abeille" is French: a typo that is a word of another list is still blamed correctly
        // (except as the last word, where the phrase would be all French and fail on its checksum).
        let typos: &[&str] =
            if k < 12 { &["abandonn", "zzzz", "Abandon", "abeille"] } else { &["abandonn", "zzzz"] };
        for &typo in typos {
            let mut w = words.clone();
            w[k - 1] = typo;
            let text = w.join(" ");
            let err = Phrase::parse(&text).unwrap_err();
            assert_eq!(err, PhraseError::UnknownWord { position: k }, "{typo} at {k}");
            assert_eq!(err.to_string(), format!("word {k} is not in the BIP39 word list"));
            assert!(!format!("{err} {err:?}").contains(typo), "the error must not echo the word");
            assert_eq!(Phrase::parse_in(Language::English, &text).unwrap_err(), err);
        }
    }
    // In a 24-word phrase too, and past the first word of a Japanese one.
    let long = Phrase::from_entropy(&[7u8; 32], Language::Japanese).unwrap().expose_phrase();
    let mut w: Vec<&str> = long.split('\u{3000}').collect();
    w[19] = "xyz";
    assert_eq!(Phrase::parse(&w.join(" ")).unwrap_err(), PhraseError::UnknownWord { position: 20 });
}

#[test]
fn fail_wrong_word_counts() {
    for n in [0usize, 1, 3, 11, 13, 14, 23, 25, 27, 48] {
        let text = vec!["abandon"; n].join(" ");
        assert_eq!(Phrase::parse(&text).unwrap_err(), PhraseError::WordCount(n));
        assert_eq!(Phrase::parse_in(Language::Korean, &text).unwrap_err(), PhraseError::WordCount(n));
    }
    assert_eq!(Phrase::parse(" \t\u{3000}\n").unwrap_err(), PhraseError::WordCount(0));
    assert_eq!(
        PhraseError::WordCount(13).to_string(),
        "a recovery phrase has 12, 15, 18, 21 or 24 words, not 13"
    );
    for n in [0, 1, 11, 13, 25] {
        assert_eq!(Phrase::generate(n, Language::English).unwrap_err(), PhraseError::WordCount(n));
    }
}

#[test]
fn fail_wrong_entropy_lengths() {
    for len in [0, 4, 12, 15, 17, 18, 30, 33, 36, 64] {
        assert_eq!(
            Phrase::from_entropy(&vec![0; len], Language::English).unwrap_err(),
            PhraseError::EntropyLength(len)
        );
    }
}

#[test]
fn ambiguous_languages_are_tried_in_order() {
    // English and French share 100 words, at different indices. Build 12-word phrases from
    // shared words only, varying the last two, and sort them by which lists accept the checksum.
    let english = Language::English.word_list();
    let shared: Vec<&str> =
        Language::French.word_list().iter().copied().filter(|w| english.contains(w)).collect();
    assert_eq!(shared.len(), 100);
    let (mut both, mut only_french) = (None, None);
    'search: for a in &shared {
        for b in &shared {
            let mut w = shared[..10].to_vec();
            w.extend([*a, *b]);
            let text = w.join(" ");
            let en = Phrase::parse_in(Language::English, &text).is_ok();
            let fr = Phrase::parse_in(Language::French, &text).is_ok();
            match (en, fr) {
                (true, true) if both.is_none() => both = Some(text),
                (false, true) if only_french.is_none() => only_french = Some(text),
                _ => {}
            }
            if both.is_some() && only_french.is_some() {
                break 'search;
            }
        }
    }
    // Valid in both lists: English, the first in order, wins; French still reads it when asked.
    let both = both.expect("a phrase valid in English and French");
    let parsed = Phrase::parse(&both).unwrap();
    assert_eq!(parsed.language(), Language::English);
    let french = Phrase::parse_in(Language::French, &both).unwrap();
    assert_ne!(*parsed.entropy(), *french.entropy(), "different lists, different indices");
    assert_eq!(*parsed.seed(""), *french.seed(""), "the seed depends only on the words");
    // Every word also English, checksum only French: detection moves on to French.
    let only_french = only_french.expect("a phrase valid only in French");
    assert_eq!(Phrase::parse_in(Language::English, &only_french).unwrap_err(), PhraseError::Checksum);
    assert_eq!(Phrase::parse(&only_french).unwrap().language(), Language::French);
}

proptest! {
    #[test]
    fn from_entropy_parse_round_trip(lang in prop::sample::select(Language::ALL.to_vec()),
                                     quarter in 4usize..=8,
                                     seed in any::<[u8; 32]>()) {
        let entropy = &seed[..quarter * 4];
        let phrase = Phrase::from_entropy(entropy, lang).unwrap();
        prop_assert_eq!(phrase.word_count(), quarter * 3);
        let text = phrase.expose_phrase();
        let read = Phrase::parse_in(lang, &text).unwrap();
        prop_assert_eq!(read.language(), lang);
        prop_assert_eq!(read.entropy().to_vec(), entropy);
        let detected = Phrase::parse(&text).unwrap();
        prop_assert_eq!(detected.entropy().to_vec(), entropy);
        // A traditional Chinese phrase in shared characters reads as simplified (same indices).
        prop_assert!(detected.language() == lang
            || (lang, detected.language()) == (Language::ChineseTraditional, Language::ChineseSimplified));
        // Normalisation of the text does not change what is read.
        prop_assert_eq!(Phrase::parse(&nfc(&text)).unwrap().entropy().to_vec(), entropy);
    }
}
