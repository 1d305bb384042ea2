"""A KOI-net vault-sync peer written with the `cryptography` package, as the format's first
implementations are: it opens the message tresor sealed to it and seals one back.

    python koi_peer.py PRIVATE_HEX TRESOR_PUBLIC_HEX PEER_ID MESSAGE_HEX

prints `opened=<payload>` and `sealed=<hex of nonce || ciphertext || tag>`.
"""
import json
import os
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def main():
    private_hex, tresor_public_hex, peer_id, message_hex = sys.argv[1:5]
    mine = X25519PrivateKey.from_private_bytes(bytes.fromhex(private_hex))
    theirs = X25519PublicKey.from_public_bytes(bytes.fromhex(tresor_public_hex))
    shared = mine.exchange(theirs)
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"koi-vault-sync:" + peer_id.encode()
    ).derive(shared)
    aead = AESGCM(key)
    message = bytes.fromhex(message_hex)
    opened = aead.decrypt(message[:12], message[12:], None)
    print("opened=" + opened.decode())
    payload = json.dumps({"op": "put", "path": "from/python", "value": "koi", "counter": 1}).encode()
    nonce = os.urandom(12)
    print("sealed=" + (nonce + aead.encrypt(nonce, payload, None)).hex())


if __name__ == "__main__":
    main()
