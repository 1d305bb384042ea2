"""hvac 2.4.0, unchanged, against a tresor server on an empty location: init with unseal shares,
unseal (progress, reset, a wrong share), the root token, KV v2, seal and unseal again. VAULT_ADDR
names the server. Exits non-zero at the first failed check."""
import os
import sys

import hvac
from common import check, done, raises
from hvac import exceptions

client = hvac.Client(url=os.environ["VAULT_ADDR"])


check(not client.sys.is_initialized(), "an empty location is not initialized")
check(client.sys.read_health_status(method="GET").status_code == 501, "health: 501 before init")
result = client.sys.initialize(secret_shares=5, secret_threshold=3)
keys, keys_b64, root = result["keys"], result["keys_base64"], result["root_token"]
check(len(keys) == 5 and len(keys_b64) == 5 and root, f"five shares and a root token: {sorted(result)}")
check(client.sys.is_initialized() and client.sys.is_sealed(), "initialized, and sealed")
try:
    client.sys.initialize(secret_shares=1, secret_threshold=1)
    sys.exit("hvac check failed: a second init was accepted")
except exceptions.InvalidRequest as e:
    check("already initialized" in str(e), f"a second init is refused: {e}")

status = client.sys.read_seal_status()
check((status["t"], status["n"], status["progress"]) == (3, 5, 0), f"seal status {status}")
status = client.sys.submit_unseal_key(keys[0])
check(status["sealed"] and status["progress"] == 1, f"one share: progress 1 {status}")
status = client.sys.submit_unseal_key(reset=True)
check(status["progress"] == 0, "reset")
status = client.sys.submit_unseal_keys(keys[1:4])
check(status["sealed"] is False, f"three shares unseal: {status}")

client.token = root
check(client.is_authenticated(), "the root token from init authenticates")
kv = client.secrets.kv.v2
kv.create_or_update_secret("svc/db", {"password": "s3cr3t"})
check(kv.read_secret_version("svc/db", raise_on_deleted_version=True)["data"]["data"]["password"] == "s3cr3t", "KV")

client.sys.seal()
check(client.sys.is_sealed(), "sealed again")
# A share of this vault with one byte changed combines into a wrong key: refused, progress reset.
bad = keys[0][:-2] + ("00" if keys[0][-2:] != "00" else "01")
client.sys.submit_unseal_key(bad)
client.sys.submit_unseal_key(keys[1])
try:
    client.sys.submit_unseal_key(keys[2])
    sys.exit("hvac check failed: a wrong share unsealed")
except exceptions.InvalidRequest as e:
    check("do not open" in str(e), f"wrong shares are refused: {e}")
check(client.sys.read_seal_status()["progress"] == 0, "and the progress is reset")
check(client.sys.submit_unseal_keys(keys_b64[2:5])["sealed"] is False, "base64 shares unseal")
check(kv.read_secret_version("svc/db", raise_on_deleted_version=True)["data"]["data"]["password"] == "s3cr3t", "kept")
done()
