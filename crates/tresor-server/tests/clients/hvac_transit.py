"""hvac 2.4.0, unchanged: transit — a key made on first encrypt, encrypt/decrypt (single and
batch), rotation with versioned ciphertexts, rewrap, a minimum decryption version, and refusals
(another key's ciphertext, a tampered one). VAULT_ADDR and VAULT_TOKEN name the server and a root
token. Exits non-zero at the first failed check."""
import base64
import os

import hvac
from common import check, done, raises
from hvac import exceptions

client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
transit = client.secrets.transit


def b64(data):
    return base64.b64encode(data).decode()



card = b"4111 1111 1111 1111"
ct = transit.encrypt_data("payments", plaintext=b64(card))["data"]["ciphertext"]
check(ct.startswith("vault:v1:"), f"a v1 ciphertext: {ct[:20]}")
check(base64.b64decode(transit.decrypt_data("payments", ciphertext=ct)["data"]["plaintext"]) == card, "round trip")
key = transit.read_key("payments")["data"]
check(key["latest_version"] == 1 and key["type"] == "aes256-gcm96", f"the key made on first use, of Vault's default type: {key}")
transit.create_key("cards", key_type="aes256-gcm96")
check("cards" in transit.list_keys()["data"]["keys"], "keys listed")
ct2 = transit.encrypt_data("cards", plaintext=b64(b"x"))["data"]["ciphertext"]
raises(exceptions.InvalidRequest, lambda: transit.decrypt_data("payments", ciphertext=ct2), "another key's ciphertext")
tampered = ct[:-4] + ("AAAA" if ct[-4:] != "AAAA" else "BBBB")
raises(exceptions.InvalidRequest, lambda: transit.decrypt_data("payments", ciphertext=tampered), "a tampered ciphertext")

batch = transit.encrypt_data("payments", batch_input=[{"plaintext": b64(b"a")}, {"plaintext": b64(b"b")}])["data"]["batch_results"]
check(len(batch) == 2 and all(r["ciphertext"].startswith("vault:v1:") for r in batch), "batch encrypt")
out = transit.decrypt_data("payments", batch_input=[{"ciphertext": r["ciphertext"]} for r in batch])["data"]["batch_results"]
check([base64.b64decode(r["plaintext"]) for r in out] == [b"a", b"b"], "batch decrypt")

transit.rotate_key("payments")
ct_v2 = transit.encrypt_data("payments", plaintext=b64(card))["data"]["ciphertext"]
check(ct_v2.startswith("vault:v2:"), "after rotation: v2")
check(base64.b64decode(transit.decrypt_data("payments", ciphertext=ct)["data"]["plaintext"]) == card, "v1 still decrypts")
rewrapped = transit.rewrap_data("payments", ciphertext=ct)["data"]["ciphertext"]
check(rewrapped.startswith("vault:v2:"), "rewrap moves v1 to v2")
transit.update_key_configuration("payments", min_decryption_version=2)
raises(exceptions.InvalidRequest, lambda: transit.decrypt_data("payments", ciphertext=ct), "v1 below the minimum")
check(base64.b64decode(transit.decrypt_data("payments", ciphertext=rewrapped)["data"]["plaintext"]) == card, "the rewrapped one decrypts")

# Data keys: fresh random keys under a key, in the clear only when asked.
dk = transit.generate_data_key("payments", key_type="plaintext")["data"]
check(len(base64.b64decode(dk["plaintext"])) == 32 and dk["ciphertext"].startswith("vault:v2:"), f"a data key: {sorted(dk)}")
opened = transit.decrypt_data("payments", ciphertext=dk["ciphertext"])["data"]["plaintext"]
check(opened == dk["plaintext"], "the data key decrypts to itself")
wrapped = transit.generate_data_key("payments", key_type="wrapped", bits=512)["data"]
check("plaintext" not in wrapped or not wrapped["plaintext"], "a wrapped data key is not shown")
check(len(base64.b64decode(transit.decrypt_data("payments", ciphertext=wrapped["ciphertext"])["data"]["plaintext"])) == 64, "512 bits")

# Ed25519 signing keys: sign, verify, a changed message or signature, rotation, and no encryption.
transit.create_key("release", key_type="ed25519")
msg = b64(b"release 1.2.3 sha256:abcdef")
sig = transit.sign_data("release", hash_input=msg)["data"]["signature"]
check(sig.startswith("vault:v1:"), f"an ed25519 signature: {sig[:16]}")
check(transit.verify_signed_data("release", hash_input=msg, signature=sig)["data"]["valid"] is True, "it verifies")
check(transit.verify_signed_data("release", hash_input=b64(b"release 6.6.6"), signature=sig)["data"]["valid"] is False, "another message does not")
raw = bytearray(base64.b64decode(sig.split(":")[2]))
raw[0] ^= 1
forged = "vault:v1:" + base64.b64encode(bytes(raw)).decode()
check(transit.verify_signed_data("release", hash_input=msg, signature=forged)["data"]["valid"] is False, "a changed signature does not")
pub1 = transit.read_key("release")["data"]["keys"]["1"]["public_key"]
check(len(base64.b64decode(pub1)) == 32, "the public key is shown")
transit.rotate_key("release")
sig2 = transit.sign_data("release", hash_input=msg)["data"]["signature"]
check(sig2.startswith("vault:v2:") and sig2 != sig, "after rotation: a v2 signature")
check(transit.verify_signed_data("release", hash_input=msg, signature=sig)["data"]["valid"] is True, "v1 still verifies")
pub2 = transit.read_key("release")["data"]["keys"]["2"]["public_key"]
check(pub2 != pub1, "each version its own key")
raises(exceptions.InvalidRequest, lambda: transit.encrypt_data("release", plaintext=msg), "a signing key does not encrypt")
raises(exceptions.InvalidRequest, lambda: transit.sign_data("payments", hash_input=msg), "an encryption key does not sign")

# A batch signs every input in one request (one audit record); a hash named in the path or the
# body is ignored by an Ed25519 key, as by Vault's.
batch = [{"input": b64(b"a"), "reference": "first"}, {"input": b64(b"b")}]
signed = transit.sign_data("release", batch_input=batch, hash_algorithm="sha2-256")["data"]["batch_results"]
check(len(signed) == 2 and signed[0]["reference"] == "first" and all(r["signature"].startswith("vault:v2:") for r in signed), f"batch signed {signed}")
to_check = [{"input": b64(b"a"), "signature": signed[0]["signature"]}, {"input": b64(b"a"), "signature": signed[1]["signature"]}]
verified = client.adapter.post("/v1/transit/verify/release/sha2-256", json={"batch_input": to_check})["data"]["batch_results"]
check([r["valid"] for r in verified] == [True, False], f"each verified on its own {verified}")
one = client.adapter.post("/v1/transit/sign/release/sha2-512", json={"input": msg})["data"]
check(transit.verify_signed_data("release", hash_input=msg, signature=one["signature"])["data"]["valid"] is True, "a hash in the path changes nothing")
raises(exceptions.InvalidRequest, lambda: transit.sign_data("release", hash_input=msg, prehashed=True), "a prehashed input is refused")
# A batch with a bad item answers 200, as Vault's sign/verify: each item its result.
mixed = transit.sign_data("release", batch_input=[{"input": b64(b"ok")}, {"input": "not base64!"}])["data"]["batch_results"]
check(mixed[0]["signature"].startswith("vault:v2:") and "error" in mixed[1] and mixed[1]["reference"] == "", f"a mixed batch {mixed}")
bad_sig = [{"input": b64(b"ok"), "signature": "vault:v1:AAAA"}]
check(client.adapter.post("/v1/transit/verify/release", json={"batch_input": bad_sig})["data"]["batch_results"][0]["valid"] is False, "a malformed signature verifies false")
raises(exceptions.InvalidRequest, lambda: client.adapter.post("/v1/transit/sign/release/md5", json={"input": msg}), "an unknown hash")
done()
