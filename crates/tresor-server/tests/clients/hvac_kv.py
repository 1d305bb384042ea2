"""hvac 2.4.0, unchanged, against tresor server: seal status, health, the token, KV v2 (write,
cas, read, versions, list, metadata, patch, delete, undelete, destroy, delete_version_after, the
mount's config) and
sealing. VAULT_ADDR and VAULT_TOKEN name
the server and a root token. Exits non-zero at the first failed check."""
import os

import hvac
from common import check, done, raises
from hvac import exceptions

addr, token = os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"]
client = hvac.Client(url=addr, token=token)
kv = client.secrets.kv.v2



check(client.is_authenticated(), "the root token authenticates")
check(not hvac.Client(url=addr, token="tvs.not-a-token").is_authenticated(), "a made-up token does not")
check(client.sys.is_initialized(), "initialized")
check(not client.sys.is_sealed(), "unsealed")
health = client.sys.read_health_status(method="GET")
check(health["sealed"] is False and health["initialized"] is True, f"health {health}")
me = client.auth.token.lookup_self()["data"]
check(me["id"] == token and me["type"] == "service" and "root" in me["policies"], f"lookup-self {me}")
check("expire_time" in me and isinstance(me["ttl"], int), "lookup-self has expire_time and ttl")

written = kv.create_or_update_secret("app/db", {"user": "u", "pw": "p1"})
check(written["data"]["version"] == 1, f"first write is version 1: {written}")
check(kv.create_or_update_secret("app/db", {"user": "u", "pw": "p2"}, cas=1)["data"]["version"] == 2, "cas=1")
err = raises(exceptions.InvalidRequest, lambda: kv.create_or_update_secret("app/db", {"x": "y"}, cas=1), "stale cas")
check("check-and-set" in str(err), f"the cas error says so: {err}")
raises(exceptions.InvalidRequest, lambda: kv.create_or_update_secret("app/new", {"x": "y"}, cas=1), "cas on a new secret")
check(kv.create_or_update_secret("app/new", {"x": "y"}, cas=0)["data"]["version"] == 1, "cas=0 creates")

read = kv.read_secret_version("app/db", raise_on_deleted_version=True)
check(read["data"]["data"] == {"user": "u", "pw": "p2"}, f"read {read}")
check(read["data"]["metadata"]["version"] == 2, "read names its version")
old = kv.read_secret_version("app/db", version=1, raise_on_deleted_version=True)
check(old["data"]["data"]["pw"] == "p1", "version 1 is kept")
raises(exceptions.InvalidPath, lambda: kv.read_secret_version("app/none", raise_on_deleted_version=True), "missing")

check(kv.list_secrets("")["data"]["keys"] == ["app/"], "list at the mount's root (LIST without a slash)")
check(kv.list_secrets("app")["data"]["keys"] == ["db", "new"], "list a folder")
raises(exceptions.InvalidPath, lambda: kv.list_secrets("nothing/here"), "an empty list is a 404")
meta = kv.read_secret_metadata("app/db")["data"]
check(meta["current_version"] == 2 and sorted(meta["versions"]) == ["1", "2"], f"metadata {meta}")

kv.patch("app/db", {"pw": "p3"})
patched = kv.read_secret_version("app/db", raise_on_deleted_version=True)["data"]
check(patched["data"] == {"user": "u", "pw": "p3"} and patched["metadata"]["version"] == 3, f"patch {patched}")

kv.delete_latest_version_of_secret("app/db")
raises(exceptions.InvalidPath, lambda: kv.read_secret_version("app/db", raise_on_deleted_version=True), "deleted")
gone = kv.read_secret_version("app/db", raise_on_deleted_version=False)
check(gone["data"]["data"] is None and gone["data"]["metadata"]["deletion_time"], f"deleted, with metadata: {gone}")

# Metadata settings: custom metadata shown with every version, cas required, max versions.
kv.update_metadata("app/meta", custom_metadata={"owner": "team-a"}, cas_required=True, max_versions=2)
err = raises(exceptions.InvalidRequest, lambda: kv.create_or_update_secret("app/meta", {"v": "1"}), "cas required")
check("check-and-set parameter required" in str(err), f"it says so: {err}")
for i in range(3):
    kv.create_or_update_secret("app/meta", {"v": str(i)}, cas=i)
meta = kv.read_secret_metadata("app/meta")["data"]
check(meta["custom_metadata"] == {"owner": "team-a"} and meta["cas_required"] is True, f"settings kept {meta}")
check(sorted(meta["versions"]) == ["2", "3"] and meta["current_version"] == 3, f"two versions shown {meta}")
read = kv.read_secret_version("app/meta", raise_on_deleted_version=True)["data"]
check(read["metadata"]["custom_metadata"] == {"owner": "team-a"}, "custom metadata on a read")
raises(exceptions.InvalidPath, lambda: kv.read_secret_version("app/meta", version=1, raise_on_deleted_version=True), "a version past max_versions")
kv.delete_metadata_and_all_versions("app/meta")
raises(exceptions.InvalidPath, lambda: kv.read_secret_version("app/meta", raise_on_deleted_version=True), "deleted with its metadata")

# Versions one by one: delete, undelete, destroy (its value taken out of the store).
for n in range(1, 4):
    kv.create_or_update_secret("app/ver", {"n": str(n)})
kv.delete_secret_versions("app/ver", versions=[1, 3])
gone = kv.read_secret_version("app/ver", raise_on_deleted_version=False)["data"]
check(gone["data"] is None and gone["metadata"]["deletion_time"] and not gone["metadata"]["destroyed"], f"3 deleted: {gone}")
check(kv.read_secret_version("app/ver", version=2, raise_on_deleted_version=True)["data"]["data"] == {"n": "2"}, "2 kept")
kv.undelete_secret_versions("app/ver", versions=[3])
check(kv.read_secret_version("app/ver", raise_on_deleted_version=True)["data"]["data"] == {"n": "3"}, "3 undeleted")
kv.destroy_secret_versions("app/ver", versions=[2])
# A destroyed version is a 404 with its metadata (hvac raises: it forgives only a deletion time).
err = raises(exceptions.InvalidPath, lambda: kv.read_secret_version("app/ver", version=2, raise_on_deleted_version=False), "2 destroyed")
destroyed = err.json["data"]
check(destroyed["data"] is None and destroyed["metadata"]["destroyed"] is True, f"2 destroyed: {destroyed}")
meta = kv.read_secret_metadata("app/ver")["data"]["versions"]
check(meta["2"]["destroyed"] is True and meta["1"]["deletion_time"] and not meta["3"]["deletion_time"], f"metadata {meta}")
kv.undelete_secret_versions("app/ver", versions=[2])
raises(exceptions.InvalidPath, lambda: kv.read_secret_version("app/ver", version=2, raise_on_deleted_version=False), "destroyed stays destroyed")
raises(exceptions.InvalidRequest, lambda: client.adapter.post("/v1/secret/destroy/app/ver", json={"versions": []}), "no versions named")
kv.delete_secret_versions("app/never-written", versions=[1])  # nothing to delete: 204, as Vault

# delete_version_after: shown in Go's notation, and a version past it reads as deleted.
kv.update_metadata("app/short", delete_version_after="1h30m")
check(kv.read_secret_metadata("app/short")["data"]["delete_version_after"] == "1h30m0s", "1h30m shown as Vault does")
kv.create_or_update_secret("app/short", {"k": "v"})
fresh = kv.read_secret_version("app/short", raise_on_deleted_version=True)["data"]["metadata"]
check(fresh["deletion_time"], f"the deletion time is known from the write on: {fresh}")
# A new setting applies to the versions written after it (Vault sets a version's deletion time
# when it is written), not to those already there.
kv.update_metadata("app/short", delete_version_after="1s")
kv.create_or_update_secret("app/short", {"k": "w"})
import time as _time
_time.sleep(1.2)
expired = kv.read_secret_version("app/short", raise_on_deleted_version=False)["data"]
check(expired["data"] is None and expired["metadata"]["deletion_time"], f"past delete_version_after: {expired}")
first = kv.read_secret_version("app/short", version=1, raise_on_deleted_version=True)["data"]
check(first["data"] == {"k": "v"} and first["metadata"]["deletion_time"] == fresh["deletion_time"], f"the version before it keeps its own: {first}")
raises(exceptions.InvalidRequest, lambda: kv.update_metadata("app/short", delete_version_after="soon"), "a bad duration")

# The mount's settings (secret/config): every secret gets them, within its own.
kv.configure(max_versions=2, cas_required=True, delete_version_after="0s")
config = kv.read_configuration()["data"]
check(config["max_versions"] == 2 and config["cas_required"] is True and config["delete_version_after"] == "0s", f"config {config}")
raises(exceptions.InvalidRequest, lambda: kv.create_or_update_secret("app/cfg", {"n": "0"}), "the mount requires cas")
for n in range(3):
    kv.create_or_update_secret("app/cfg", {"n": str(n)}, cas=n)
kv.configure(max_versions=0, cas_required=False, delete_version_after="0s")
cfg = kv.read_secret_metadata("app/cfg")["data"]
check(cfg["versions"]["1"]["destroyed"] is True and not cfg["versions"]["2"]["destroyed"], f"the mount's max_versions destroyed version 1: {cfg}")
kv.create_or_update_secret("app/cfg", {"n": "3"})

bad = hvac.Client(url=addr, token="tvs.not-a-token")
raises(exceptions.Forbidden, lambda: bad.secrets.kv.v2.read_secret_version("app/new", raise_on_deleted_version=True), "no token, no read")

client.sys.seal()
check(client.sys.is_sealed(), "sealed")
raises(exceptions.VaultDown, lambda: kv.read_secret_version("app/new", raise_on_deleted_version=True), "sealed: 503")
done()
