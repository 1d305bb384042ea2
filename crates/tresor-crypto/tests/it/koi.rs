//! The KOI-net wire format against a peer written in Python with the `cryptography` package (the
//! format's own implementations): each side opens what the other sealed. Runs when
//! `TRESOR_TEST_PYTHON` names a Python with `cryptography` (`.ci/run` sets it); required when
//! `TRESOR_REQUIRE_CLIENTS` is set.

use tresor_crypto::Key;
use tresor_crypto::agree::AgreementSecret;
use tresor_crypto::koi::KoiChannel;

#[test]
fn tresor_and_a_python_koi_peer_open_each_others_messages() {
    let Some(python) = std::env::var_os("TRESOR_TEST_PYTHON") else {
        assert!(std::env::var_os("TRESOR_REQUIRE_CLIENTS").is_none(), "TRESOR_TEST_PYTHON is not set");
        eprintln!("skipped: TRESOR_TEST_PYTHON is not set (bash .ci/run sets it)");
        return;
    };
    let tresor = AgreementSecret::generate().unwrap();
    let python_secret: [u8; 32] = tresor_crypto::random_array().unwrap();
    let python_public = AgreementSecret::from_key(&Key::from_bytes(&mut python_secret.clone())).public();
    let peer_id = "orn:koi-net.node:tresor-test+5b2c";
    let mut channel = KoiChannel::new(&tresor, &python_public, peer_id).unwrap();
    let payload = r#"{"op": "put", "path": "db/password", "value": "s3cr3t", "counter": 7}"#;
    let message = channel.seal(payload.as_bytes()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/koi_peer.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(hex::encode(python_secret))
        .arg(hex::encode(tresor.public()))
        .arg(peer_id)
        .arg(hex::encode(&message))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the Python peer failed: {}", String::from_utf8_lossy(&out.stderr));
    let line =
        |name: &str| stdout.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(line("opened="), payload, "Python opened something else");
    let back = hex::decode(line("sealed=")).unwrap();
    let opened = channel.open(&back).unwrap();
    let json: serde_json::Value = serde_json::from_slice(opened.as_slice()).unwrap();
    assert_eq!((json["path"].as_str(), json["counter"].as_u64()), (Some("from/python"), Some(1)));
    // Its message under another peer id opens nothing here.
    assert!(KoiChannel::new(&tresor, &python_public, "another-peer").unwrap().open(&back).is_err());
}
