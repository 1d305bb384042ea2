"""hvac 2.4.0, unchanged: AppRole, the usual way machines and CI log in — a role with a policy, its
role ID and a secret ID, the login, what the token may do, and the role's removal. VAULT_ADDR and
VAULT_TOKEN name the server and a root token. Exits non-zero at the first failed check."""
import os

import hvac
from common import check, done, raises
from hvac import exceptions

addr = os.environ["VAULT_ADDR"]
root = hvac.Client(url=addr, token=os.environ["VAULT_TOKEN"])



root.sys.enable_auth_method("approle")
check("approle/" in root.sys.list_auth_methods()["data"], "approle is an auth method")
root.sys.create_or_update_acl_policy(name="ci", policy='path "secret/data/ci/*" { capabilities = ["read"] }')
root.secrets.kv.v2.create_or_update_secret("ci/deploy-key", {"key": "k1"})
root.secrets.kv.v2.create_or_update_secret("prod/db", {"password": "p"})
root.auth.approle.create_or_update_approle("deployer", token_policies=["ci"], token_ttl="10m")
check(root.auth.approle.list_roles()["data"]["keys"] == ["deployer"], "the role is listed")
role_id = root.auth.approle.read_role_id("deployer")["data"]["role_id"]
secret_id = root.auth.approle.generate_secret_id("deployer")["data"]["secret_id"]

machine = hvac.Client(url=addr)
machine.auth.approle.login(role_id=role_id, secret_id=secret_id)
check(machine.is_authenticated(), "the machine logged in")
me = machine.auth.token.lookup_self()["data"]
check(sorted(me["policies"]) == ["ci", "default"] and 0 < me["ttl"] <= 600, f"its token: {me}")
check(me["meta"] == {"role_name": "deployer"}, "its token names the role")
data = machine.secrets.kv.v2.read_secret_version("ci/deploy-key", raise_on_deleted_version=True)["data"]["data"]
check(data == {"key": "k1"}, "it reads what the role's policy grants")
raises(exceptions.Forbidden, lambda: machine.secrets.kv.v2.read_secret_version("prod/db", raise_on_deleted_version=True), "and nothing else")
raises(exceptions.Forbidden, lambda: machine.secrets.kv.v2.create_or_update_secret("ci/deploy-key", {"key": "x"}), "or writes")
other = hvac.Client(url=addr)
raises(exceptions.InvalidRequest, lambda: other.auth.approle.login(role_id=role_id, secret_id="0" * 36), "a wrong secret ID")
raises(exceptions.InvalidRequest, lambda: other.auth.approle.login(role_id="nope", secret_id=secret_id), "a wrong role ID")
raises(exceptions.Forbidden, lambda: machine.auth.approle.generate_secret_id("deployer"), "the machine issuing secret IDs")
root.auth.approle.delete_role("deployer")
raises(exceptions.InvalidRequest, lambda: other.auth.approle.login(role_id=role_id, secret_id=secret_id), "login to a deleted role")
done()
