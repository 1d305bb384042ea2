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
# Secret IDs are listed by accessor and revoked one by one, by the ID or by its accessor.
second = root.auth.approle.generate_secret_id("deployer")["data"]
third = root.auth.approle.generate_secret_id("deployer")["data"]
accessors = root.auth.approle.list_secret_id_accessors("deployer")["data"]["keys"]
check(len(accessors) == 3 and second["secret_id_accessor"] in accessors, f"three secret IDs listed: {accessors}")
root.auth.approle.destroy_secret_id("deployer", second["secret_id"])
raises(exceptions.InvalidRequest, lambda: other.auth.approle.login(role_id=role_id, secret_id=second["secret_id"]), "a destroyed secret ID")
root.auth.approle.destroy_secret_id_accessor("deployer", third["secret_id_accessor"])
raises(exceptions.InvalidRequest, lambda: other.auth.approle.login(role_id=role_id, secret_id=third["secret_id"]), "one destroyed by accessor")
check(root.auth.approle.list_secret_id_accessors("deployer")["data"]["keys"] == [a for a in accessors if a not in (second["secret_id_accessor"], third["secret_id_accessor"])], "the rest is listed")
check(other.auth.approle.login(role_id=role_id, secret_id=secret_id)["auth"]["client_token"], "the first still logs in")

# Deleting a role revokes its secret IDs: a role made again under its name takes none of them.
root.auth.approle.delete_role("deployer")
raises(exceptions.InvalidRequest, lambda: other.auth.approle.login(role_id=role_id, secret_id=secret_id), "login to a deleted role")
root.auth.approle.create_or_update_approle("deployer", token_policies=["ci"])
new_role_id = root.auth.approle.read_role_id("deployer")["data"]["role_id"]
check(new_role_id != role_id, "a role made again has another role ID")
raises(exceptions.InvalidRequest, lambda: other.auth.approle.login(role_id=new_role_id, secret_id=secret_id), "an old secret ID on the new role")
raises(exceptions.InvalidPath, lambda: root.auth.approle.list_secret_id_accessors("deployer"), "the new role has no secret ID")

# What a role sets is enforced: secret IDs of limited uses, tokens of limited life and uses.
root.auth.approle.create_or_update_approle("limited", token_policies=["ci"], secret_id_num_uses=2, token_ttl="1h", token_max_ttl="2h", token_num_uses=3)
role = root.auth.approle.read_role("limited")["data"]
check((role["secret_id_num_uses"], role["token_max_ttl"], role["token_num_uses"]) == (2, 7200, 3), f"the role reads back: {role}")
limited_id = root.auth.approle.read_role_id("limited")["data"]["role_id"]
limited_secret = root.auth.approle.generate_secret_id("limited")["data"]["secret_id"]
tokens = [other.auth.approle.login(role_id=limited_id, secret_id=limited_secret)["auth"] for _ in range(2)]
raises(exceptions.InvalidRequest, lambda: other.auth.approle.login(role_id=limited_id, secret_id=limited_secret), "a secret ID past its uses")
check(tokens[0]["num_uses"] == 3, f"the token's uses: {tokens[0]}")
limited = hvac.Client(url=addr, token=tokens[1]["client_token"])
renewed = limited.auth.token.renew_self(increment="10h")["auth"]
check(0 < renewed["lease_duration"] <= 3600, f"renewed within its TTL: {renewed}")
lookup = root.auth.token.lookup(tokens[1]["client_token"])["data"]
check(lookup["explicit_max_ttl"] == 7200, f"its max TTL: {lookup}")

# What is not enforced here is refused, not ignored.
for settings in ({"secret_id_bound_cidrs": ["10.0.0.0/8"]}, {"token_bound_cidrs": ["10.0.0.0/8"]}, {"bind_secret_id": False}, {"token_period": "1h"}, {"token_type": "batch"}):
    raises(exceptions.InvalidRequest, lambda: root.auth.approle.create_or_update_approle("limited", **settings), f"refused: {settings}")
check(root.auth.approle.read_role("limited")["data"]["secret_id_num_uses"] == 2, "a refused write changed nothing")
root.auth.approle.create_or_update_approle("limited", bind_secret_id=True, token_bound_cidrs=[], token_type="service")
raises(exceptions.InvalidRequest, lambda: root.auth.approle.generate_secret_id("limited", cidr_list=["10.0.0.0/8"]), "a secret ID bound to addresses")
done()
