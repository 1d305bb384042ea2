//! Throughput of tresor's sealed envelopes and the primitives under them.
//!
//! - `seal` / `open`: whole envelopes (framing, compression attempt, padding, AEAD) at 64 B,
//!   1 KiB, 64 KiB and 1 MiB of random (incompressible) data, plus a compressible 64 KiB value;
//! - `xchacha20poly1305_raw`: the bare AEAD encryption at the same sizes, for comparison;
//! - `wrap`: wrapping and unwrapping a 32-byte key (HKDF split, commitment, AEAD);
//! - `derive_kek`: Argon2id at `KdfParams::MINIMUM` and `KdfParams::DEFAULT`;
//! - `transit`: encrypt and decrypt of 1 KiB and 1 MiB under both algorithms (AES-256-GCM
//!   includes its per-message HKDF);
//! - `phrase` / `slip10`: the BIP39 seed (2048 rounds of PBKDF2-HMAC-SHA512), an identity
//!   derivation at `m/74'/0'/0'`, and one Ed25519 signature.
//!
//! Quick run: `cargo bench -p tresor-crypto --bench seal -- --quick`.
// A failed unwrap in a benchmark is a broken benchmark; panicking is the right outcome.
#![allow(clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tresor_crypto::envelope::{Context, xchacha20poly1305_raw};
use tresor_crypto::kdf::{KdfParams, SALT_LEN, derive_kek};
use tresor_crypto::phrase::{Language, Phrase};
use tresor_crypto::slip10::{Ed25519Node, identity_path};
use tresor_crypto::transit::{self, Algorithm};
use tresor_crypto::wrap::{unwrap_key, wrap_key};
use tresor_crypto::{Key, Password, open, random_array, random_bytes, seal};

const VAULT: [u8; 16] = [7; 16];

fn ctx() -> Context<'static> {
    Context { vault_id: &VAULT, role: "blob", object: "bench/object", epoch: 1, extra: b"" }
}

/// Sizes of the random inputs, with their labels.
const SIZES: [(usize, &str); 4] = [(64, "64B"), (1024, "1KiB"), (64 * 1024, "64KiB"), (1024 * 1024, "1MiB")];

/// A compressible value of `len` bytes: text-like records, as a `.env` file or a log might be.
fn compressible(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u32;
    while out.len() < len {
        out.extend_from_slice(
            format!("SERVICE_{i:05}_TOKEN=ghp_example_value_{:08x}\n", i.wrapping_mul(2_654_435_761))
                .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// The inputs of the envelope benches: every size of random data, and the compressible variant.
fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut inputs: Vec<(String, Vec<u8>)> =
        SIZES.iter().map(|&(n, label)| (format!("random/{label}"), random_bytes(n).unwrap())).collect();
    inputs.push(("compressible/64KiB".to_string(), compressible(64 * 1024)));
    inputs
}

fn bench_seal_open(c: &mut Criterion) {
    let key = Key::generate().unwrap();
    let inputs = inputs();

    let mut group = c.benchmark_group("seal");
    for (label, value) in &inputs {
        group.throughput(Throughput::Bytes(value.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), value, |b, value| {
            b.iter(|| seal(&key, &ctx(), black_box(value)).unwrap());
        });
    }
    group.finish();

    let mut group = c.benchmark_group("open");
    for (label, value) in &inputs {
        let envelope = seal(&key, &ctx(), value).unwrap();
        group.throughput(Throughput::Bytes(value.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &envelope, |b, envelope| {
            b.iter(|| open(&key, &ctx(), black_box(envelope)).unwrap());
        });
    }
    group.finish();
}

fn bench_raw_aead(c: &mut Criterion) {
    let key: [u8; 32] = random_array().unwrap();
    let nonce: [u8; 24] = random_array().unwrap();
    let aad = [0u8; 64];
    let mut group = c.benchmark_group("xchacha20poly1305_raw/encrypt");
    for (n, label) in SIZES {
        let msg = random_bytes(n).unwrap();
        group.throughput(Throughput::Bytes(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &msg, |b, msg| {
            b.iter(|| xchacha20poly1305_raw(&key, &nonce, &aad, black_box(msg), true).unwrap());
        });
    }
    group.finish();
}

fn bench_wrap(c: &mut Criterion) {
    let wrapping = Key::generate().unwrap();
    let key = Key::generate().unwrap();
    let aad = b"tresor/v1/slot/0";
    let wrapped = wrap_key(&wrapping, aad, &key).unwrap();

    let mut group = c.benchmark_group("wrap");
    group.bench_function("wrap_key", |b| b.iter(|| wrap_key(&wrapping, aad, black_box(&key)).unwrap()));
    group.bench_function("unwrap_key", |b| {
        b.iter(|| unwrap_key(&wrapping, aad, black_box(&wrapped)).unwrap())
    });
    group.finish();
}

fn bench_kdf(c: &mut Criterion) {
    let password = Password::from("correct horse battery staple".to_string());
    let salt: [u8; SALT_LEN] = random_array().unwrap();

    let mut group = c.benchmark_group("derive_kek");
    // Each run takes tens to hundreds of milliseconds: few samples, one iteration each.
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for (label, params) in [("MINIMUM", KdfParams::MINIMUM), ("DEFAULT", KdfParams::DEFAULT)] {
        let id = format!("{label}/m={}KiB,t={},p={}", params.m_kib, params.t, params.p);
        group.bench_with_input(BenchmarkId::from_parameter(id), &params, |b, params| {
            b.iter(|| derive_kek(&password, &salt, black_box(params)).unwrap());
        });
    }
    group.finish();
}

fn bench_transit(c: &mut Criterion) {
    let root = Key::generate().unwrap();
    for alg in Algorithm::ALL {
        let key = transit::derive_transit_key(&root, &VAULT, "bench", alg);
        let mut group = c.benchmark_group(format!("transit/{alg}"));
        for (n, label) in [(1024, "1KiB"), (1024 * 1024, "1MiB")] {
            let msg = random_bytes(n).unwrap();
            let ct = transit::encrypt(&key, &VAULT, "bench", alg, &msg).unwrap();
            group.throughput(Throughput::Bytes(n as u64));
            group.bench_with_input(BenchmarkId::new("encrypt", label), &msg, |b, msg| {
                b.iter(|| transit::encrypt(&key, &VAULT, "bench", alg, black_box(msg)).unwrap())
            });
            group.bench_with_input(BenchmarkId::new("decrypt", label), &ct, |b, ct| {
                b.iter(|| transit::decrypt(&key, &VAULT, black_box(ct)).unwrap())
            });
        }
        group.finish();
    }
}

fn bench_phrase_and_identity(c: &mut Criterion) {
    let phrase = Phrase::generate(24, Language::English).unwrap();
    let seed = phrase.seed("");
    let node = Ed25519Node::derive(seed.as_slice(), &identity_path(0));
    let mut group = c.benchmark_group("identity");
    group.bench_function("phrase_seed", |b| b.iter(|| phrase.seed(black_box(""))));
    group.bench_function("slip10_derive_m/74'/0'/0'", |b| {
        b.iter(|| Ed25519Node::derive(black_box(seed.as_slice()), &identity_path(0)))
    });
    group.bench_function("ed25519_sign_64B", |b| b.iter(|| node.sign(black_box(&[7u8; 64]))));
    group.finish();
}

criterion_group!(
    benches,
    bench_seal_open,
    bench_raw_aead,
    bench_wrap,
    bench_kdf,
    bench_transit,
    bench_phrase_and_identity
);
criterion_main!(benches);
