//! The OpenAPI 3.1 document of every route the server serves (`GET /v1/sys/internal/specs/openapi`,
//! where Vault serves its own): what each takes and answers. Answers are Vault's envelope or no
//! body on success, and `{"errors": [...]}` otherwise; a KV v2 read of a deleted or destroyed
//! version is the envelope with a 404, as in Vault. The tests run schemathesis against it.

use serde_json::{Map, Value, json};

/// The success code of an answer that is not the envelope (see [`op`]).
const RAW: u16 = 0;

/// `{"$ref": "#/components/schemas/NAME"}`.
fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A JSON body of `schema`.
fn body(schema: Value) -> Value {
    json!({ "required": false, "content": { "application/json": { "schema": schema } } })
}

/// One operation: its summary, its success answer (`200` with the envelope, `202` with the
/// envelope of an operation started in the background, or `204` empty), an
/// optional body, and every other status as Vault's error list.
/// (`RAW`: `200` with a body of its own, not the envelope.)
fn op(summary: &str, tag: &str, success: u16, request: Option<Value>, public: bool) -> Value {
    let mut responses = Map::new();
    match success {
        204 => {
            responses.insert("204".into(), json!({ "description": "done" }));
        }
        // Started in the background: the envelope, with a warning saying so.
        202 => {
            responses.insert(
                "202".into(),
                json!({ "description": "started, in Vault's envelope",
                        "content": { "application/json": { "schema": schema("Envelope") } } }),
            );
            responses.insert(
                "200".into(),
                json!({ "description": "not started: one runs already (a warning says so)",
                        "content": { "application/json": { "schema": schema("Envelope") } } }),
            );
        }
        200 => {
            responses.insert(
                "200".into(),
                json!({ "description": "the answer, in Vault's envelope",
                        "content": { "application/json": { "schema": schema("Envelope") } } }),
            );
        }
        // Not the envelope: a document of its own, or text as well as JSON.
        _ => {
            responses.insert(
                "200".into(),
                json!({ "description": "the answer",
                        "content": { "application/json": { "schema": schema("Any") },
                                     "text/plain": { "schema": { "type": "string" } } } }),
            );
        }
    }
    // Several routes answer 200 with a body or 204 without one, as Vault does.
    if success == 200 {
        responses.insert("204".into(), json!({ "description": "done, nothing to show" }));
    }
    responses.insert(
        "default".into(),
        json!({ "description": "refused or failed: why",
                "content": { "application/json": { "schema": schema("Errors") } } }),
    );
    let mut out = json!({ "summary": summary, "tags": [tag], "responses": responses });
    if let Some(request) = request {
        out["requestBody"] = body(request);
    }
    if public {
        out["security"] = json!([]);
    }
    out
}

/// A path parameter named `name`.
fn param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true,
            "schema": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$" } })
}

// (The epoch of `tresor/epochs/{epoch}/destroy` is a number; the pattern above admits it.)

/// An object schema with optional `properties`, open to more.
fn object(properties: Value) -> Value {
    json!({ "type": "object", "properties": properties })
}

/// A path item: its parameters and operations.
fn item(params: &[&str], ops: &[(&str, Value)]) -> Value {
    let mut out = Map::new();
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params.iter().map(|p| param(p)).collect()));
    }
    for (method, op) in ops {
        out.insert((*method).into(), op.clone());
    }
    Value::Object(out)
}

/// The whole document.
pub(crate) fn document() -> Value {
    let kv_write = object(json!({
        "data": { "type": "object" },
        "options": object(json!({ "cas": { "type": "integer", "minimum": 0 } })),
    }));
    let versions =
        object(json!({ "versions": { "type": "array", "items": { "type": "integer", "minimum": 0 } } }));
    let settings = object(json!({
        "max_versions": { "type": "integer", "minimum": 0 },
        "cas_required": { "type": "boolean" },
        "delete_version_after": { "type": "string" },
        "custom_metadata": { "type": "object", "additionalProperties": { "type": "string" } },
    }));
    let token_create = object(json!({
        "policies": { "type": "array", "items": { "type": "string" } },
        "ttl": { "type": ["string", "integer"] },
        "explicit_max_ttl": { "type": ["string", "integer"] },
        "period": { "type": ["string", "integer"] },
        "num_uses": { "type": "integer", "minimum": 0 },
        "renewable": { "type": "boolean" },
        "no_parent": { "type": "boolean" },
        "display_name": { "type": "string" },
        "meta": { "type": "object", "additionalProperties": { "type": "string" } },
    }));
    let token = object(json!({ "token": { "type": "string" } }));
    let accessor = object(json!({ "accessor": { "type": "string" } }));
    let policy = object(json!({ "policy": { "type": "string" } }));
    let plaintext = object(json!({
        "plaintext": { "type": "string" },
        "batch_input": { "type": "array", "items": { "type": "object" } },
        "type": { "type": "string" },
    }));
    let ciphertext = object(json!({
        "ciphertext": { "type": "string" },
        "batch_input": { "type": "array", "items": { "type": "object" } },
    }));
    let sign = object(json!({
        "input": { "type": "string" },
        "batch_input": { "type": "array", "items": { "type": "object" } },
    }));
    let verify = object(json!({
        "input": { "type": "string" },
        "signature": { "type": "string" },
        "batch_input": { "type": "array", "items": { "type": "object" } },
    }));
    let role = object(json!({
        "token_policies": { "type": "array", "items": { "type": "string" } },
        "token_ttl": { "type": ["string", "integer"] },
        "token_max_ttl": { "type": ["string", "integer"] },
        "token_explicit_max_ttl": { "type": ["string", "integer"] },
        "token_num_uses": { "type": "integer", "minimum": 0 },
        "secret_id_num_uses": { "type": "integer", "minimum": 0 },
        "secret_id_ttl": { "type": ["string", "integer"] },
    }));
    let list = json!({ "name": "list", "in": "query", "required": false, "schema": { "type": "string", "enum": ["true"] } });
    let version = json!({ "name": "version", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 } });

    let mut paths = Map::new();
    let mut add = |path: &str, value: Value| {
        paths.insert(path.to_string(), value);
    };
    // The system backend.
    add("/sys/health", item(&[], &[("get", op("Health, as load balancers ask it", "sys", 200, None, true))]));
    add(
        "/sys/seal-status",
        item(&[], &[("get", op("Seal state and unseal progress", "sys", 200, None, true))]),
    );
    add(
        "/sys/leader",
        item(&[], &[("get", op("Which server leads (every one serves)", "sys", 200, None, true))]),
    );
    add(
        "/sys/init",
        item(
            &[],
            &[
                ("get", op("Whether the vault exists", "sys", 200, None, true)),
                (
                    "put",
                    op(
                        "Create the vault: unseal shares and a root token",
                        "sys",
                        200,
                        Some(object(
                            json!({ "secret_shares": { "type": "integer" }, "secret_threshold": { "type": "integer" } }),
                        )),
                        true,
                    ),
                ),
            ],
        ),
    );
    add(
        "/sys/unseal",
        item(
            &[],
            &[(
                "put",
                op(
                    "Give one unseal share (or reset)",
                    "sys",
                    200,
                    Some(object(json!({ "key": { "type": "string" }, "reset": { "type": "boolean" } }))),
                    true,
                ),
            )],
        ),
    );
    add("/sys/seal", item(&[], &[("put", op("Seal: wipe every key", "sys", 204, None, false))]));
    add(
        "/sys/mounts",
        item(
            &[],
            &[(
                "get",
                op("The mounts (by default KV v2 at secret/, transit at transit/)", "sys", 200, None, false),
            )],
        ),
    );
    let mount = object(json!({
        "type": { "type": "string" },
        "description": { "type": "string" },
        "options": { "type": ["object", "null"] },
    }));
    add(
        "/sys/mounts/{path}",
        item(
            &["path"],
            &[
                ("get", op("A mount", "sys", 200, None, false)),
                (
                    "post",
                    op(
                        "Enable a secrets engine (kv version 2, or transit) at a path",
                        "sys",
                        204,
                        Some(mount),
                        false,
                    ),
                ),
                ("delete", op("Disable a mount: what it held goes with it", "sys", 204, None, false)),
            ],
        ),
    );
    add(
        "/sys/mounts/{path}/tune",
        item(
            &["path"],
            &[
                ("get", op("A mount's settings", "sys", 200, None, false)),
                (
                    "post",
                    op(
                        "Change a mount's description",
                        "sys",
                        204,
                        Some(object(json!({ "description": { "type": "string" } }))),
                        false,
                    ),
                ),
            ],
        ),
    );
    add(
        "/sys/metrics",
        item(&[], &[("get", op("Counters for Prometheus (`?format=prometheus`)", "sys", RAW, None, false))]),
    );
    add(
        "/sys/internal/ui/mounts/{path}",
        item(&["path"], &[("get", op("The mount a path lies in", "sys", 200, None, false))]),
    );
    add("/sys/internal/specs/openapi", item(&[], &[("get", op("This document", "sys", RAW, None, true))]));
    add("/sys/policies/acl", item(&[], &[("get", op("List ACL policies", "sys", 200, None, false))]));
    add(
        "/sys/policies/acl/{name}",
        item(
            &["name"],
            &[
                ("get", op("Read an ACL policy", "sys", 200, None, false)),
                ("put", op("Write an ACL policy (HCL or JSON)", "sys", 204, Some(policy.clone()), false)),
                ("delete", op("Delete an ACL policy", "sys", 204, None, false)),
            ],
        ),
    );
    add("/sys/policy", item(&[], &[("get", op("List policies (older route)", "sys", 200, None, false))]));
    add(
        "/sys/policy/{name}",
        item(
            &["name"],
            &[
                ("get", op("Read a policy (older route)", "sys", 200, None, false)),
                ("put", op("Write a policy (older route)", "sys", 204, Some(policy), false)),
                ("delete", op("Delete a policy (older route)", "sys", 204, None, false)),
            ],
        ),
    );
    add("/sys/auth", item(&[], &[("get", op("The auth methods (token, approle)", "sys", 200, None, false))]));
    // Tokens.
    let token_ops: [(&str, &str, u16, Option<Value>); 10] = [
        ("create", "Create a child token", 200, Some(token_create.clone())),
        ("create-orphan", "Create an orphan token", 200, Some(token_create)),
        ("lookup", "Look a token up", 200, Some(token.clone())),
        ("lookup-accessor", "Look a token up by accessor", 200, Some(accessor.clone())),
        ("renew", "Renew a token", 200, Some(token.clone())),
        (
            "renew-self",
            "Renew the calling token",
            200,
            Some(object(json!({ "increment": { "type": ["string", "integer"] } }))),
        ),
        ("revoke", "Revoke a token and its children", 204, Some(token)),
        ("revoke-accessor", "Revoke a token by accessor", 204, Some(accessor)),
        ("revoke-self", "Revoke the calling token", 204, None),
        ("tidy", "Remove expired and orphaned token records, in the background", 202, None),
    ];
    for (name, summary, success, request) in token_ops {
        add(
            &format!("/auth/token/{name}"),
            item(&[], &[("post", op(summary, "auth", success, request, false))]),
        );
    }
    add(
        "/auth/approle/tidy/secret-id",
        item(
            &[],
            &[(
                "post",
                op("Remove expired and used-up secret IDs, in the background", "auth", 202, None, false),
            )],
        ),
    );
    add(
        "/auth/token/lookup-self",
        item(&[], &[("get", op("Look the calling token up", "auth", 200, None, false))]),
    );
    // AppRole.
    add(
        "/auth/approle/login",
        item(
            &[],
            &[(
                "post",
                op(
                    "Log in: role_id and secret_id for a token",
                    "auth",
                    200,
                    Some(object(
                        json!({ "role_id": { "type": "string" }, "secret_id": { "type": "string" } }),
                    )),
                    true,
                ),
            )],
        ),
    );
    add(
        "/auth/approle/role",
        item(
            &[],
            &[("get", {
                let mut o = op("List roles", "auth", 200, None, false);
                o["parameters"] = json!([list.clone()]);
                o
            })],
        ),
    );
    add(
        "/auth/approle/role/{name}",
        item(
            &["name"],
            &[
                ("get", op("Read a role", "auth", 200, None, false)),
                ("post", op("Write a role", "auth", 204, Some(role), false)),
                ("delete", op("Delete a role", "auth", 204, None, false)),
            ],
        ),
    );
    add(
        "/auth/approle/role/{name}/role-id",
        item(&["name"], &[("get", op("A role's role_id", "auth", 200, None, false))]),
    );
    add(
        "/auth/approle/role/{name}/secret-id",
        item(
            &["name"],
            &[
                ("post", op("A new secret_id for a role", "auth", 200, Some(object(json!({}))), false)),
                ("get", {
                    let mut o = op("List the accessors of a role's secret IDs", "auth", 200, None, false);
                    o["parameters"] = json!([list.clone()]);
                    o
                }),
            ],
        ),
    );
    add(
        "/auth/approle/role/{name}/secret-id/destroy",
        item(
            &["name"],
            &[(
                "post",
                op(
                    "Revoke a secret ID",
                    "auth",
                    204,
                    Some(object(json!({ "secret_id": { "type": "string" } }))),
                    false,
                ),
            )],
        ),
    );
    add(
        "/auth/approle/role/{name}/secret-id-accessor/destroy",
        item(
            &["name"],
            &[(
                "post",
                op(
                    "Revoke a secret ID by its accessor",
                    "auth",
                    204,
                    Some(object(json!({ "secret_id_accessor": { "type": "string" } }))),
                    false,
                ),
            )],
        ),
    );
    // KV v2 at secret/.
    add(
        "/secret/data/{path}",
        item(
            &["path"],
            &[
                ("get", {
                    let mut o = op("Read a version (the newest by default)", "kv", 200, None, false);
                    o["parameters"] = json!([version]);
                    o["responses"]["404"] = json!({ "description": "no such secret or version; a deleted or destroyed one answers its metadata",
                        "content": { "application/json": { "schema": { "anyOf": [schema("Errors"), schema("Envelope")] } } } });
                    o
                }),
                ("post", op("Write a new version", "kv", 200, Some(kv_write.clone()), false)),
                ("put", op("Write a new version", "kv", 200, Some(kv_write.clone()), false)),
                (
                    "patch",
                    op("Merge-patch the newest version into a new one", "kv", 200, Some(kv_write), false),
                ),
                ("delete", op("Delete the newest version", "kv", 204, None, false)),
            ],
        ),
    );
    add(
        "/secret/subkeys/{path}",
        item(
            &["path"],
            &[("get", {
                let mut o =
                    op("A version's keys, every value null (the newest by default)", "kv", 200, None, false);
                let depth = json!({ "name": "depth", "in": "query", "required": false,
                                    "schema": { "type": "integer", "minimum": 0 } });
                o["parameters"] = json!([version.clone(), depth]);
                o["responses"]["404"] = json!({ "description": "no such secret or version; a deleted or destroyed one answers its metadata",
                    "content": { "application/json": { "schema": { "anyOf": [schema("Errors"), schema("Envelope")] } } } });
                o
            })],
        ),
    );
    add(
        "/secret/metadata/{path}",
        item(
            &["path"],
            &[
                ("get", {
                    let mut o = op(
                        "A secret's metadata and versions (with `list=true`: the names under it)",
                        "kv",
                        200,
                        None,
                        false,
                    );
                    o["parameters"] = json!([list.clone()]);
                    o
                }),
                ("post", op("Change a secret's settings", "kv", 204, Some(settings.clone()), false)),
                ("patch", op("Change a secret's settings", "kv", 204, Some(settings), false)),
                ("delete", op("Delete the settings and destroy every version", "kv", 204, None, false)),
            ],
        ),
    );
    for (name, summary) in [
        ("delete", "Delete chosen versions"),
        ("undelete", "Undelete chosen versions"),
        ("destroy", "Destroy chosen versions: their values leave the store"),
    ] {
        add(
            &format!("/secret/{name}/{{path}}"),
            item(&["path"], &[("post", op(summary, "kv", 204, Some(versions.clone()), false))]),
        );
    }
    let config = object(json!({
        "max_versions": { "type": "integer", "minimum": 0 },
        "cas_required": { "type": "boolean" },
        "delete_version_after": { "type": "string" },
    }));
    add(
        "/secret/config",
        item(
            &[],
            &[
                ("get", op("The mount's settings", "kv", 200, None, false)),
                ("post", op("Change the mount's settings", "kv", 204, Some(config), false)),
            ],
        ),
    );
    // Transit.
    add(
        "/transit/keys",
        item(
            &[],
            &[("get", {
                let mut o = op("List keys", "transit", 200, None, false);
                o["parameters"] = json!([list]);
                o
            })],
        ),
    );
    add(
        "/transit/keys/{name}",
        item(
            &["name"],
            &[
                (
                    "get",
                    op("Read a key: its versions (public keys of signing keys)", "transit", 200, None, false),
                ),
                (
                    "post",
                    op(
                        "Create a key",
                        "transit",
                        204,
                        Some(object(json!({ "type": { "type": "string" } }))),
                        false,
                    ),
                ),
            ],
        ),
    );
    add(
        "/transit/keys/{name}/rotate",
        item(&["name"], &[("post", op("Rotate a key", "transit", 200, None, false))]),
    );
    add(
        "/transit/keys/{name}/config",
        item(
            &["name"],
            &[(
                "post",
                op(
                    "Set a key's minimum decryption version",
                    "transit",
                    200,
                    Some(object(json!({ "min_decryption_version": { "type": "integer" } }))),
                    false,
                ),
            )],
        ),
    );
    for (name, summary, request) in [
        ("encrypt", "Encrypt (one or a batch)", plaintext),
        ("decrypt", "Decrypt (one or a batch)", ciphertext.clone()),
        ("rewrap", "Encrypt again under the newest version", ciphertext),
        ("sign", "Sign with an Ed25519 key", sign),
        ("verify", "Verify an Ed25519 signature", verify),
    ] {
        let mut post = op(summary, "transit", 200, Some(request), false);
        post["responses"]["400"] = json!({ "description": "refused; or a batch with failed items: its results, each failure with its error",
            "content": { "application/json": { "schema": { "anyOf": [schema("Errors"), schema("Envelope")] } } } });
        if matches!(name, "sign" | "verify") {
            // `<name>/<hash_algorithm>`: named as Vault's, and ignored by an Ed25519 key.
            let hash = json!({ "name": "hash", "in": "path", "required": true,
                               "schema": { "type": "string", "enum": super::transit::HASHES } });
            let mut item_with_hash = item(&["name"], &[("post", post.clone())]);
            if let Some(params) = item_with_hash["parameters"].as_array_mut() {
                params.push(hash);
            }
            add(&format!("/transit/{name}/{{name}}/{{hash}}"), item_with_hash);
        }
        add(&format!("/transit/{name}/{{name}}"), item(&["name"], &[("post", post)]));
    }
    add(
        "/transit/datakey/{kind}/{name}",
        item(
            &["kind", "name"],
            &[(
                "post",
                op(
                    "A new data key, wrapped (and in plaintext)",
                    "transit",
                    200,
                    Some(object(json!({ "bits": { "type": "integer" } }))),
                    false,
                ),
            )],
        ),
    );
    // tresor's own.
    add(
        "/tresor/unseal",
        item(
            &[],
            &[(
                "put",
                op(
                    "Unseal with the vault's password",
                    "tresor",
                    200,
                    Some(object(json!({ "password": { "type": "string" } }))),
                    true,
                ),
            )],
        ),
    );
    add(
        "/tresor/token/revoke",
        item(
            &[],
            &[(
                "post",
                op(
                    "Revoke a token, report what it could read, optionally start a new key epoch",
                    "tresor",
                    200,
                    Some(object(
                        json!({ "accessor": { "type": "string" }, "rotate": { "type": "boolean" } }),
                    )),
                    false,
                ),
            )],
        ),
    );

    add(
        "/tresor/status",
        item(&[], &[("get", op("The vault's status, with its fingerprint", "tresor", 200, None, false))]),
    );
    add(
        "/tresor/epochs",
        item(
            &[],
            &[(
                "get",
                op("Key epochs: current, live, destroyed, the rotation policy", "tresor", 200, None, false),
            )],
        ),
    );
    add(
        "/tresor/epochs/rotate",
        item(
            &[],
            &[(
                "post",
                op(
                    "Start a new key epoch (and re-encrypt older values)",
                    "tresor",
                    200,
                    Some(object(json!({ "reencrypt": { "type": "boolean" } }))),
                    false,
                ),
            )],
        ),
    );
    add(
        "/tresor/epochs/reencrypt",
        item(
            &[],
            &[("post", op("Seal every older value again in the current epoch", "tresor", 200, None, false))],
        ),
    );
    add(
        "/tresor/epochs/policy",
        item(
            &[],
            &[(
                "post",
                op(
                    "Rotate every so long (or never)",
                    "tresor",
                    204,
                    Some(object(json!({ "rotate_every": { "type": ["string", "integer", "null"] } }))),
                    false,
                ),
            )],
        ),
    );
    add(
        "/tresor/epochs/{epoch}/destroy",
        item(
            &["epoch"],
            &[(
                "post",
                op(
                    "Destroy an epoch: its values move, its key and ciphertexts leave the store",
                    "tresor",
                    200,
                    None,
                    false,
                ),
            )],
        ),
    );
    add(
        "/tresor/audit",
        item(
            &[],
            &[("get", {
                let mut o = op("The audit trail, filtered", "tresor", 200, None, false);
                let text = |name: &str| json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" } });
                o["parameters"] = json!([text("path"), text("actor"), text("op"), text("since"), text("until"),
                { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 } }]);
                o
            })],
        ),
    );
    add(
        "/tresor/audit/verify",
        item(
            &[],
            &[("post", {
                let mut o = op("Verify the logs and every value", "tresor", 200, None, false);
                o["responses"]["409"] = json!({ "description": "some values are damaged: the report names them",
                "content": { "application/json": { "schema": schema("Envelope") } } });
                o
            })],
        ),
    );
    let path = object(json!({ "path": { "type": "string" } }));
    add(
        "/tresor/keys/derive",
        item(
            &[],
            &[("post", op("The public key of a SLIP-0010 identity", "tresor", 200, Some(path), false))],
        ),
    );
    add(
        "/tresor/keys/sign",
        item(
            &[],
            &[(
                "post",
                op(
                    "Sign with a SLIP-0010 identity",
                    "tresor",
                    200,
                    Some(object(json!({ "path": { "type": "string" }, "input": { "type": "string" } }))),
                    false,
                ),
            )],
        ),
    );

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tresor server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "HashiCorp Vault's HTTP API on a tresor vault (KV v2 at secret/, transit at transit/, tokens, AppRole, ACL policies), and tresor's own routes under tresor/.",
        },
        "servers": [{ "url": "/v1" }],
        "security": [{ "token": [] }, { "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": { "type": "apiKey", "in": "header", "name": "X-Vault-Token" },
                "bearer": { "type": "http", "scheme": "bearer" },
            },
            "schemas": {
                "Errors": {
                    "type": "object",
                    "required": ["errors"],
                    "properties": { "errors": { "type": "array", "items": { "type": "string" } } },
                },
                "Envelope": {
                    "type": "object",
                    "properties": {
                        "request_id": { "type": "string" },
                        "lease_id": { "type": "string" },
                        "renewable": { "type": "boolean" },
                        "lease_duration": { "type": "integer" },
                        "data": { "type": ["object", "null"] },
                        "auth": { "type": ["object", "null"] },
                        "warnings": { "type": ["array", "null"] },
                        "wrap_info": { "type": ["object", "null"] },
                        "mount_type": { "type": "string" },
                    },
                },
                "Any": {},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_route_and_each_operation_answers_errors() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for route in [
            "/secret/data/{path}",
            "/secret/destroy/{path}",
            "/transit/sign/{name}",
            "/auth/token/create",
            "/sys/policies/acl/{name}",
            "/tresor/token/revoke",
        ] {
            assert!(paths.contains_key(route), "{route}");
        }
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap().iter().filter(|(k, _)| *k != "parameters") {
                assert!(op["responses"]["default"].is_object(), "{method} {path} answers errors");
                for p in path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
                    let declared =
                        item["parameters"].as_array().is_some_and(|ps| ps.iter().any(|x| x["name"] == p));
                    assert!(declared, "{path}: parameter {p}");
                }
            }
        }
    }
}
