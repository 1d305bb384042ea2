"""hvac 2.4.0 over HTTPS, verifying the server's certificate against TRESOR_CA (a generated
self-signed one): it authenticates, writes and reads; without the CA it refuses the server."""
import os
import sys

import hvac
import requests

addr, token, ca = os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"], os.environ["TRESOR_CA"]
client = hvac.Client(url=addr, token=token, verify=ca)
if not client.is_authenticated():
    sys.exit("hvac check failed: the token does not authenticate over HTTPS")
client.secrets.kv.v2.create_or_update_secret("tls/check", {"over": "https"})
if client.secrets.kv.v2.read_secret_version("tls/check", raise_on_deleted_version=True)["data"]["data"] != {"over": "https"}:
    sys.exit("hvac check failed: KV over HTTPS")
try:
    hvac.Client(url=addr, token=token, verify=True).is_authenticated()
    sys.exit("hvac check failed: a certificate no CA vouches for was accepted")
except requests.exceptions.SSLError:
    pass
print("hvac over HTTPS: 3 checks passed")
