//! `tresor generate`: a random password or passphrase, stored as a new secret (or, with
//! `--force`, as a new version of one), shown only when asked.
//!
//! Characters and words are drawn from the operating system's random source without bias
//! (rejection sampling); passphrases use the BIP39 English word list (2048 words, 11 bits each).

use crate::exit::CliError;
use crate::*;
use tresor::model::AuditOp;
use tresor_wire::SecretBuf;
use zeroize::Zeroizing;

/// Character sets `--charset` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Charset {
    /// Letters, digits and punctuation (94 printable ASCII characters but space).
    Ascii,
    /// Letters and digits.
    Alnum,
    /// Lowercase hex digits.
    Hex,
    /// Digits (a PIN).
    Digits,
}

impl Charset {
    fn chars(self) -> Vec<u8> {
        match self {
            Charset::Ascii => (b'!'..=b'~').collect(),
            Charset::Alnum => (b'0'..=b'9').chain(b'A'..=b'Z').chain(b'a'..=b'z').collect(),
            Charset::Hex => (b'0'..=b'9').chain(b'a'..=b'f').collect(),
            Charset::Digits => (b'0'..=b'9').collect(),
        }
    }
}

/// What `generate` makes.
pub(crate) enum Recipe {
    /// `length` characters from `chars`.
    Chars { chars: Vec<u8>, length: usize },
    /// `count` words joined by `-`.
    Words { count: usize },
}

impl Recipe {
    /// The recipe the flags ask for, checked (the default: 24 characters of `ascii`).
    pub(crate) fn from_flags(
        length: Option<usize>,
        charset: Option<Charset>,
        chars: Option<String>,
        words: Option<usize>,
    ) -> Result<Recipe, CliError> {
        if let Some(count) = words {
            if length.is_some() || charset.is_some() || chars.is_some() {
                return Err(CliError::usage(
                    "--words makes a passphrase: it takes no --length or --charset".into(),
                ));
            }
            if !(3..=64).contains(&count) {
                return Err(CliError::input(format!("--words {count}: from 3 to 64 words")));
            }
            return Ok(Recipe::Words { count });
        }
        let length = length.unwrap_or(24);
        if !(4..=4096).contains(&length) {
            return Err(CliError::input(format!("--length {length}: from 4 to 4096 characters")));
        }
        let chars = match chars {
            Some(given) => {
                let mut set: Vec<u8> = given.bytes().collect();
                set.sort_unstable();
                set.dedup();
                if !given.is_ascii() || set.len() < 2 || set.iter().any(|c| c.is_ascii_control()) {
                    return Err(CliError::input(
                        "--chars: at least two different printable ASCII characters".into(),
                    ));
                }
                set
            }
            None => charset.unwrap_or(Charset::Ascii).chars(),
        };
        Ok(Recipe::Chars { chars, length })
    }

    /// Its strength in bits.
    pub(crate) fn bits(&self) -> f64 {
        match self {
            Recipe::Chars { chars, length } => *length as f64 * (chars.len() as f64).log2(),
            Recipe::Words { count } => *count as f64 * 11.0,
        }
    }

    /// A fresh random secret.
    pub(crate) fn make(&self) -> Result<Zeroizing<Vec<u8>>, CliError> {
        let mut out = Zeroizing::new(Vec::new());
        match self {
            Recipe::Chars { chars, length } => {
                while out.len() < *length {
                    out.push(chars[uniform(chars.len())?]);
                }
            }
            Recipe::Words { count } => {
                let list = tresor_crypto::phrase::Language::English.word_list();
                for i in 0..*count {
                    if i > 0 {
                        out.push(b'-');
                    }
                    out.extend_from_slice(list[uniform(list.len())?].as_bytes());
                }
            }
        }
        Ok(out)
    }
}

/// A uniformly random index below `n` (at most 65536), by rejection sampling.
fn uniform(n: usize) -> Result<usize, CliError> {
    let n = n as u32;
    let limit = 65536 - 65536 % n;
    loop {
        let bytes = tresor_crypto::random_array::<2>().map_err(|e| CliError::other(e.to_string()))?;
        let x = u32::from(u16::from_be_bytes(bytes));
        if x < limit {
            return Ok((x % n) as usize);
        }
    }
}

/// `tresor generate`.
pub(crate) fn generate(
    ctx: &mut Ctx,
    path: String,
    recipe: Recipe,
    force: bool,
    print: bool,
    clip: bool,
    json: bool,
) -> Result<(), CliError> {
    tresor::path::SecretPath::parse(&path).map_err(|e| CliError::from_core(&e))?;
    // Nothing is stored that no one could then see.
    if clip {
        crate::commands::clip::check()?;
    }
    let value = recipe.make()?;
    // Without --force, only a new secret: check-and-set against "does not exist".
    let cas = (!force).then_some(0);
    let exists = |e: CliError| match (cas, e.code) {
        (Some(_), 6) => CliError::input(format!("{path} exists: give --force to store a new version of it")),
        _ => e,
    };
    let versions = match &ctx.remote {
        Some(remote) => vec![runtime()?.block_on(remote.set(&path, &value, cas)).map_err(exists)?],
        None => {
            let call = tresor_wire::Set {
                op: AuditOp::Set,
                items: vec![(path.clone(), SecretBuf(value.clone()))],
                cas,
            };
            crate::call(ctx, call).map_err(exists)?
        }
    };
    errln!(
        "{path}: version {} ({:.0} bits of randomness)",
        versions.first().copied().unwrap_or(0),
        recipe.bits()
    );
    let version = versions.first().copied().unwrap_or(0);
    if clip {
        crate::commands::clip::copy(&path, &value)?;
    }
    if json {
        // The value only when asked for (--print), as without --json.
        let value = print.then(|| String::from_utf8_lossy(&value).into_owned());
        let shown = serde_json::json!({ "path": path, "version": version, "bits": recipe.bits().floor() as u64, "value": value });
        return print_json(&shown);
    }
    if print {
        let mut shown = value;
        shown.push(b'\n');
        outln_bytes(&shown)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_length_and_characters_asked_for() {
        let recipe = Recipe::from_flags(Some(40), Some(Charset::Hex), None, None).unwrap();
        let s = recipe.make().unwrap();
        assert_eq!(s.len(), 40);
        assert!(s.iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(recipe.bits(), 160.0);
        let recipe = Recipe::from_flags(None, None, Some("ab".into()), None).unwrap();
        assert!(recipe.make().unwrap().iter().all(|c| *c == b'a' || *c == b'b'));
        let words = Recipe::from_flags(None, None, None, Some(6)).unwrap().make().unwrap();
        let text = String::from_utf8(words.to_vec()).unwrap();
        let list = tresor_crypto::phrase::Language::English.word_list();
        assert_eq!(text.split('-').count(), 6);
        assert!(text.split('-').all(|w| list.contains(&w)), "{text}");
    }

    #[test]
    fn every_character_comes_up_about_as_often() {
        // 10 digits, 20,000 draws: each count within 25% of 2,000 (far beyond chance).
        let recipe = Recipe::from_flags(Some(4096), Some(Charset::Digits), None, None).unwrap();
        let mut counts = [0usize; 10];
        for _ in 0..5 {
            for c in recipe.make().unwrap().iter() {
                counts[(c - b'0') as usize] += 1;
            }
        }
        let expected = 5 * 4096 / 10;
        assert!(counts.iter().all(|n| n.abs_diff(expected) < expected / 4), "{counts:?}");
    }

    #[test]
    fn recipes_out_of_range_are_refused() {
        assert_eq!(Recipe::from_flags(Some(3), None, None, None).err().map(|e| e.code), Some(7));
        assert_eq!(Recipe::from_flags(None, None, Some("aa".into()), None).err().map(|e| e.code), Some(7));
        assert_eq!(Recipe::from_flags(None, None, None, Some(2)).err().map(|e| e.code), Some(7));
        assert_eq!(Recipe::from_flags(Some(8), None, None, Some(4)).err().map(|e| e.code), Some(2));
    }
}
