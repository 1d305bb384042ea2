//! RFC 9106 §5.3 known-answer test for Argon2id (version 0x13) through
//! `tresor_crypto::kdf::argon2id`, the sensitivity of the tag to every input, and the refusal of
//! the RFC's toy parameters by tresor's own bounds (`KdfParams::check`, `derive_kek`).
// A failed unwrap in a test is a test failure, which is exactly what we want.
#![allow(clippy::unwrap_used)]

use tresor_crypto::kdf::{KdfParams, SALT_LEN, argon2id, derive_kek};
use tresor_crypto::{CryptoError, Password};

/// The inputs of RFC 9106 §5.3.
struct Inputs {
    password: Vec<u8>,
    salt: Vec<u8>,
    secret: Vec<u8>,
    ad: Vec<u8>,
    params: KdfParams,
    tag_len: usize,
}

impl Inputs {
    fn rfc() -> Self {
        Inputs {
            password: vec![0x01; 32],
            salt: vec![0x02; 16],
            secret: vec![0x03; 8],
            ad: vec![0x04; 12],
            params: RFC_PARAMS,
            tag_len: 32,
        }
    }

    fn tag(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.tag_len];
        argon2id(&self.password, &self.salt, &self.params, &self.secret, &self.ad, &mut out).unwrap();
        out
    }
}

/// m = 32 KiB, t = 3, p = 4.
const RFC_PARAMS: KdfParams = KdfParams { m_kib: 32, t: 3, p: 4 };

/// The tag printed in RFC 9106 §5.3.
const RFC_TAG: &str = "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659";

#[test]
fn argon2id_rfc9106_section_5_3() {
    let tag = Inputs::rfc().tag();
    assert_eq!(hex::encode(&tag), RFC_TAG);
    println!("T10: argon2id rfc9106 §5.3 passed 1/1");
}

#[test]
fn fail_any_changed_input_changes_the_tag() {
    let reference = hex::decode(RFC_TAG).unwrap();
    let mut variants: Vec<(String, Inputs)> = Vec::new();

    // One bit flipped at every byte position of every byte-string input (the bit rotates so all
    // eight bit positions are exercised).
    type Field = fn(&mut Inputs) -> &mut Vec<u8>;
    let fields: [(&str, Field); 4] = [
        ("password", |i| &mut i.password),
        ("salt", |i| &mut i.salt),
        ("secret", |i| &mut i.secret),
        ("associated data", |i| &mut i.ad),
    ];
    for (name, field) in fields {
        let len = field(&mut Inputs::rfc()).len();
        for pos in 0..len {
            let mut inputs = Inputs::rfc();
            field(&mut inputs)[pos] ^= 1 << (pos % 8);
            variants.push((format!("{name} byte {pos}"), inputs));
        }
        // Dropping the last byte (a length change) must also change the tag.
        let mut inputs = Inputs::rfc();
        field(&mut inputs).pop();
        variants.push((format!("{name} shortened"), inputs));
    }

    // Each cost parameter, one step up.
    for (name, params) in [
        ("m_kib", KdfParams { m_kib: 33, ..RFC_PARAMS }),
        ("t", KdfParams { t: 4, ..RFC_PARAMS }),
        ("p", KdfParams { p: 3, ..RFC_PARAMS }),
    ] {
        variants.push((name.to_string(), Inputs { params, ..Inputs::rfc() }));
    }

    let mut changed = 0;
    for (what, inputs) in &variants {
        let tag = inputs.tag();
        assert_ne!(tag, reference, "changing the {what} left the tag unchanged");
        changed += 1;
    }

    // The tag length is an input to H0 too: a 31-byte tag is not a prefix of the 32-byte one.
    let short = Inputs { tag_len: 31, ..Inputs::rfc() }.tag();
    assert_ne!(short[..], reference[..31], "the tag length is not bound into the tag");
    changed += 1;

    assert!(changed > 70, "only {changed} variants were tried");
    println!("T10: argon2id rfc9106 input sensitivity: {changed}/{changed} variants changed the tag");
}

#[test]
fn fail_rfc_params_are_below_tresors_floor() {
    assert!(matches!(RFC_PARAMS.check(), Err(CryptoError::KdfParams)));
    let password = Password::from("correct horse battery staple".to_string());
    assert_eq!(derive_kek(&password, &[0x02; SALT_LEN], &RFC_PARAMS).err(), Some(CryptoError::KdfParams));
}

#[test]
fn fail_derive_kek_refuses_before_computing() {
    // Parameters over the ceiling that would need more than 4 GiB and 16 passes if Argon2 ran:
    // the test finishing at once shows the check comes first.
    let huge = KdfParams { m_kib: KdfParams::CEIL_M_KIB + 1024, t: KdfParams::CEIL_T, p: 1 };
    let password = Password::from("correct horse battery staple".to_string());
    let started = std::time::Instant::now();
    assert_eq!(derive_kek(&password, &[0; SALT_LEN], &huge).err(), Some(CryptoError::KdfParams));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "derive_kek ran Argon2 first");
}
