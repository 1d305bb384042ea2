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
check(key["latest_version"] == 1 and key["type"] == "chacha20-poly1305", f"the key made on first use: {key}")
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
done()
