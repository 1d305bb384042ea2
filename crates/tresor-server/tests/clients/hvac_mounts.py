"""hvac 2.4.0, unchanged: sys/mounts — the default mounts, a KV v2 mount and a transit mount
enabled at new paths and used there, tuned, refused where Vault refuses (a path in use, a nested
or reserved one, KV version 1, an engine tresor does not serve), disabled (what they held goes
with them) and enabled again empty. VAULT_ADDR and VAULT_TOKEN name the server and a root token.
Exits non-zero at the first failed check."""
import base64
import os

import hvac
from common import check, done, raises
from hvac import exceptions

client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
kv = client.secrets.kv.v2
transit = client.secrets.transit


def b64(data):
    return base64.b64encode(data).decode()


mounts = client.sys.list_mounted_secrets_engines()["data"]
check(mounts["secret/"]["type"] == "kv" and mounts["secret/"]["options"]["version"] == "2", f"secret/ is KV v2: {mounts}")
check(mounts["transit/"]["type"] == "transit", "transit/ is transit")
check(client.sys.retrieve_mount_option("secret", "version") == "2", "hvac reads the KV version of secret/")

# A KV v2 mount at a new, nested path, used as secret/ is.
client.sys.enable_secrets_engine("kv", path="team/kv", description="the team's", options={"version": "2"})
mounts = client.sys.list_mounted_secrets_engines()["data"]
check(mounts["team/kv/"]["description"] == "the team's", f"the new mount is listed: {sorted(mounts)}")
kv.create_or_update_secret(path="app/db", secret={"password": "hunter2"}, mount_point="team/kv")
read = kv.read_secret_version(path="app/db", mount_point="team/kv", raise_on_deleted_version=True)
check(read["data"]["data"] == {"password": "hunter2"}, "read back from the new mount")
check(kv.list_secrets(path="", mount_point="team/kv")["data"]["keys"] == ["app/"], "listed in the new mount")
raises(exceptions.InvalidPath, lambda: kv.read_secret_version(path="team/kv/app/db", raise_on_deleted_version=True), "not under secret/")
tune = client.sys.read_mount_configuration("team/kv")["data"]
check(tune["options"]["version"] == "2", f"tune shows the version: {tune}")
client.sys.tune_mount_configuration("team/kv", description="renamed")
check(client.sys.read_mount_configuration("team/kv")["data"]["description"] == "renamed", "tuned")
check(client.sys.retrieve_mount_option("team/kv", "version") == "2", "hvac reads the new mount's version")

# What Vault refuses.
raises(exceptions.InvalidRequest, lambda: client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"}), "a path in use")
raises(exceptions.InvalidRequest, lambda: client.sys.enable_secrets_engine("kv-v2", path="team/kv/inner"), "a path inside a mount")
raises(exceptions.InvalidRequest, lambda: client.sys.enable_secrets_engine("kv-v2", path="team"), "a path around a mount")
raises(exceptions.InvalidRequest, lambda: client.sys.enable_secrets_engine("kv-v2", path="sys/x"), "a reserved path")
raises(exceptions.InvalidRequest, lambda: client.sys.enable_secrets_engine("kv", path="v1"), "KV version 1")
raises(exceptions.InvalidRequest, lambda: client.sys.enable_secrets_engine("pki", path="pki"), "an engine tresor does not serve")
raises(exceptions.InvalidRequest, lambda: client.sys.enable_secrets_engine("kv-v2", path="bad.path"), "a bad path")

# A second transit mount: its keys are its own.
client.sys.enable_secrets_engine("transit", path="t2")
ct_default = transit.encrypt_data("k", plaintext=b64(b"one"))["data"]["ciphertext"]
ct_t2 = transit.encrypt_data("k", plaintext=b64(b"two"), mount_point="t2")["data"]["ciphertext"]
check(transit.list_keys(mount_point="t2")["data"]["keys"] == ["k"], "t2 lists its key")
check(transit.read_key("k", mount_point="t2")["data"]["name"] == "k", "a key shows its own name")
raises(exceptions.InvalidRequest, lambda: transit.decrypt_data("k", ciphertext=ct_default, mount_point="t2"), "the default mount's k is not t2's")
raises(exceptions.InvalidRequest, lambda: transit.decrypt_data("k", ciphertext=ct_t2), "t2's k is not the default mount's")
check(base64.b64decode(transit.decrypt_data("k", ciphertext=ct_t2, mount_point="t2")["data"]["plaintext"]) == b"two", "t2 round trip")
dk = transit.generate_data_key("k", key_type="plaintext", mount_point="t2")["data"]
check(transit.decrypt_data("k", ciphertext=dk["ciphertext"], mount_point="t2")["data"]["plaintext"] == dk["plaintext"], "t2 data key")

# Disabled: what a mount held goes with it; enabled again, it is empty.
client.sys.disable_secrets_engine("team/kv")
check("team/kv/" not in client.sys.list_mounted_secrets_engines()["data"], "team/kv/ is gone")
raises(exceptions.InvalidPath, lambda: kv.read_secret_version(path="app/db", mount_point="team/kv", raise_on_deleted_version=True), "no mount, no secret")
client.sys.enable_secrets_engine("kv-v2", path="team/kv")
raises(exceptions.InvalidPath, lambda: kv.read_secret_version(path="app/db", mount_point="team/kv", raise_on_deleted_version=True), "enabled again: empty")
kv.undelete_secret_versions(path="app/db", versions=[1], mount_point="team/kv")
raises(exceptions.InvalidPath, lambda: kv.read_secret_version(path="app/db", mount_point="team/kv", raise_on_deleted_version=True), "destroyed: undelete brings nothing back")
raises(exceptions.InvalidPath, lambda: kv.list_secrets(path="", mount_point="team/kv"), "enabled again: nothing listed")
client.sys.disable_secrets_engine("t2")
client.sys.enable_secrets_engine("transit", path="t2")
raises(exceptions.InvalidRequest, lambda: transit.decrypt_data("k", ciphertext=ct_t2, mount_point="t2"), "the old key is gone")
ct_new = transit.encrypt_data("k", plaintext=b64(b"two"), mount_point="t2")["data"]["ciphertext"]
raises(exceptions.InvalidRequest, lambda: transit.decrypt_data("k", ciphertext=ct_t2, mount_point="t2"), "a new k: the old ciphertext stays shut")
check(transit.decrypt_data("k", ciphertext=ct_new, mount_point="t2")["data"]["plaintext"] == b64(b"two"), "the new k works")
client.sys.disable_secrets_engine("never-mounted")
check(True, "disabling what is not mounted is fine")

# The default KV mount too can go and come back (empty), as in Vault.
kv.create_or_update_secret(path="x", secret={"a": "b"})
client.sys.disable_secrets_engine("secret")
raises(exceptions.InvalidPath, lambda: kv.read_secret_version(path="x", raise_on_deleted_version=True), "secret/ disabled")
client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
raises(exceptions.InvalidPath, lambda: kv.read_secret_version(path="x", raise_on_deleted_version=True), "secret/ again: empty")
kv.create_or_update_secret(path="x", secret={"a": "c"})
check(kv.read_secret_version(path="x", raise_on_deleted_version=True)["data"]["data"] == {"a": "c"}, "secret/ works again")
# Regression: settings written again after their metadata was deleted were refused as a stale
# check-and-set (the deleted entry's version was given, where the live one, none, is compared).
kv.update_metadata("meta", max_versions=2)
kv.delete_metadata_and_all_versions("meta")
kv.update_metadata("meta", max_versions=3)
check(kv.read_secret_metadata("meta")["data"]["max_versions"] == 3, "settings after a delete")
done()
