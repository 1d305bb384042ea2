"""hvac 2.4.0, unchanged: policies in HCL, tokens made from them, per-principal isolation, and the
token life cycle (lookup, renew, revoke with children, revoke by accessor). VAULT_ADDR and
VAULT_TOKEN name the server and a root token. Exits non-zero at the first failed check."""
import os

import hvac
from common import check, done, raises
from hvac import exceptions

addr = os.environ["VAULT_ADDR"]
root = hvac.Client(url=addr, token=os.environ["VAULT_TOKEN"])



AGENT = """
path "secret/data/agents/{p}/*" {{ capabilities = ["create", "read", "update", "delete"] }}
path "secret/metadata/agents/{p}/*" {{ capabilities = ["list", "read"] }}
path "auth/token/create" {{ capabilities = ["update"] }}
"""
for p in ["a", "b"]:
    root.sys.create_or_update_acl_policy(name=f"agent-{p}", policy=AGENT.format(p=p))
check({"agent-a", "agent-b", "default", "root"} <= set(root.sys.list_acl_policies()["data"]["keys"]), "policies listed")
check("agents/a" in root.sys.read_acl_policy("agent-a")["data"]["policy"], "a policy reads back")
raises(exceptions.InvalidRequest, lambda: root.sys.create_or_update_acl_policy(name="bad", policy='path "a" { capabilities = ["reed"] }'),
       "an invalid policy")


def agent(p, **kw):
    auth = root.auth.token.create(policies=[f"agent-{p}"], ttl="1h", meta={"agent": p}, **kw)["auth"]
    return hvac.Client(url=addr, token=auth["client_token"]), auth["accessor"]


a, a_accessor = agent("a")
b, b_accessor = agent("b")
a.secrets.kv.v2.create_or_update_secret("agents/a/key", {"v": "a-secret"})
b.secrets.kv.v2.create_or_update_secret("agents/b/key", {"v": "b-secret"})
check(a.secrets.kv.v2.read_secret_version("agents/a/key", raise_on_deleted_version=True)["data"]["data"]["v"] == "a-secret", "A reads its own")
raises(exceptions.Forbidden, lambda: a.secrets.kv.v2.read_secret_version("agents/b/key", raise_on_deleted_version=True), "A reading B's secret")
raises(exceptions.Forbidden, lambda: a.secrets.kv.v2.read_secret_version("agents/b/none", raise_on_deleted_version=True), "A probing B's names")
check(a.secrets.kv.v2.list_secrets("agents/a")["data"]["keys"] == ["key"], "A lists its own")
raises(exceptions.Forbidden, lambda: a.secrets.kv.v2.list_secrets("agents/b"), "A listing B's")
raises(exceptions.Forbidden, lambda: a.secrets.kv.v2.list_secrets("agents"), "A listing everyone's")
raises(exceptions.Forbidden, lambda: a.secrets.kv.v2.create_or_update_secret("agents/b/key", {"v": "overwritten"}), "A writing B's")
check(b.secrets.kv.v2.read_secret_version("agents/b/key", raise_on_deleted_version=True)["data"]["data"]["v"] == "b-secret", "B's is untouched")
raises(exceptions.Forbidden, lambda: a.auth.token.create(policies=["agent-b"]), "A making a token with B's policy")
raises(exceptions.Forbidden, lambda: a.sys.seal(), "A sealing")

me = a.auth.token.lookup_self()["data"]
check(sorted(me["policies"]) == ["agent-a", "default"] and 0 < me["ttl"] <= 3600, f"A's lookup-self {me}")
check(me["meta"] == {"agent": "a"} and me["accessor"] == a_accessor, "A's meta and accessor")
check(a.auth.token.renew_self(increment="30m")["auth"]["lease_duration"] <= 1800, "A renews itself within 30m")
seen = root.auth.token.lookup_accessor(a_accessor)["data"]
check(seen["id"] == "" and seen["meta"] == {"agent": "a"}, f"lookup by accessor shows no token: {seen}")
check(root.auth.token.lookup(a.token)["data"]["accessor"] == a_accessor, "root looks A up")

child_auth = a.auth.token.create(policies=["agent-a"], ttl="10m")["auth"]
child = hvac.Client(url=addr, token=child_auth["client_token"])
check(child.secrets.kv.v2.read_secret_version("agents/a/key", raise_on_deleted_version=True)["data"]["data"]["v"] == "a-secret", "A's child reads")
root.auth.token.revoke(a.token)
check(not a.is_authenticated() and not child.is_authenticated(), "revoking A revokes its child")
b.auth.token.revoke_self()
check(not b.is_authenticated(), "B revoked itself")
c, c_accessor = agent("a")
root.auth.token.revoke_accessor(c_accessor)
check(not c.is_authenticated(), "revoked by accessor")
# One templated policy gives every agent its own prefix; a child cannot claim another identity.
root.sys.create_or_update_acl_policy(name="agents", policy="""
path "secret/data/agents/{{identity.entity.name}}/*" { capabilities = ["create", "read", "update"] }
path "auth/token/create" { capabilities = ["update"] }
""")
tokens = {n: root.auth.token.create(policies=["agents"], meta={"entity": n})["auth"]["client_token"] for n in ["c", "d"]}
c, d = (hvac.Client(url=addr, token=tokens[n]) for n in ["c", "d"])
c.secrets.kv.v2.create_or_update_secret("agents/c/key", {"v": "c"})
d.secrets.kv.v2.create_or_update_secret("agents/d/key", {"v": "d"})
raises(exceptions.Forbidden, lambda: c.secrets.kv.v2.read_secret_version("agents/d/key", raise_on_deleted_version=True), "templated: C reading D's")
forged = hvac.Client(url=addr, token=c.auth.token.create(policies=["agents"], meta={"entity": "d"})["auth"]["client_token"])
check(forged.auth.token.lookup_self()["data"]["meta"]["entity"] == "c", "a child keeps its parent's identity")
raises(exceptions.Forbidden, lambda: forged.secrets.kv.v2.read_secret_version("agents/d/key", raise_on_deleted_version=True), "a child claiming D's identity")
check(forged.secrets.kv.v2.read_secret_version("agents/c/key", raise_on_deleted_version=True)["data"]["data"]["v"] == "c", "and reads C's")
# A tidy is started in the background, as Vault answers it.
tidy = root.auth.token.tidy()
check(tidy.status_code == 202 and "Tidy operation" in tidy.json()["warnings"][0], f"a tidy starts: {tidy.status_code}")
check(c.is_authenticated() and forged.is_authenticated(), "live tokens survive a tidy")
done()
