"""A KOI-net node's side of the vault-sync format, written with the `cryptography` package as
the format's own implementations are: it makes its key, opens what tresor sealed to it, and seals
its own operations.

    python koi_node.py keygen                          -> "PRIVATE_HEX PUBLIC_HEX"
    python koi_node.py open PRIVATE_HEX TRESOR_PUBLIC_HEX PEER_ID < base64 lines -> JSON lines
    python koi_node.py seal PRIVATE_HEX TRESOR_PUBLIC_HEX PEER_ID < JSON lines   -> base64 lines
"""
import base64
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def channel(private_hex, tresor_public_hex, peer_id):
    mine = X25519PrivateKey.from_private_bytes(bytes.fromhex(private_hex))
    theirs = X25519PublicKey.from_public_bytes(bytes.fromhex(tresor_public_hex))
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"koi-vault-sync:" + peer_id.encode()
    ).derive(mine.exchange(theirs))
    return AESGCM(key)


def main():
    command = sys.argv[1]
    if command == "keygen":
        key = X25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        print(private.hex(), public.hex())
        return
    aead = channel(*sys.argv[2:5])
    for line in sys.stdin.read().splitlines():
        if not line.strip():
            continue
        if command == "open":
            message = base64.b64decode(line.strip())
            print(aead.decrypt(message[:12], message[12:], None).decode())
        elif command == "seal":
            nonce = os.urandom(12)
            print(base64.b64encode(nonce + aead.encrypt(nonce, line.encode(), None)).decode())


if __name__ == "__main__":
    main()
