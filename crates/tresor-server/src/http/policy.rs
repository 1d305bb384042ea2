//! ACL policies: Vault's path rules × capabilities, written in Vault's HCL (parsed by `hcl-rs`) or
//! JSON; deny by default. For one path, each policy's most specific matching rule applies
//! (Vault's order); a token's policies add up, and `deny` in any of them wins.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// What a rule may grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Cap {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Sudo,
    Deny,
}

impl Cap {
    fn parse(name: &str) -> Option<Cap> {
        Some(match name {
            "create" => Cap::Create,
            "read" => Cap::Read,
            "update" => Cap::Update,
            "patch" => Cap::Patch,
            "delete" => Cap::Delete,
            "list" => Cap::List,
            "sudo" => Cap::Sudo,
            "deny" => Cap::Deny,
            _ => return None,
        })
    }
}

/// A policy's text as either syntax reads it.
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    path: BTreeMap<String, RuleText>,
}

#[derive(Deserialize)]
struct RuleText {
    #[serde(default)]
    capabilities: Vec<String>,
}

/// One `path` rule.
#[derive(Clone, Debug)]
struct Rule {
    pattern: String,
    caps: BTreeSet<Cap>,
}

/// A parsed policy.
#[derive(Clone, Debug, Default)]
pub(crate) struct Policy {
    rules: Vec<Rule>,
}

/// The policy every token has besides its own (Vault's `default`, reduced to what exists here).
pub(crate) const DEFAULT: &str = r#"
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
"#;

impl Policy {
    /// Parses HCL, or JSON when the text starts with `{`; the error says what is wrong.
    pub(crate) fn parse(text: &str) -> Result<Policy, String> {
        let doc: Document = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("the policy is not valid JSON: {e}"))?
        } else {
            hcl::from_str(text).map_err(|e| format!("the policy is not valid HCL: {e}"))?
        };
        let mut rules = Vec::new();
        for (pattern, rule) in doc.path {
            check_pattern(&pattern)?;
            let mut caps = BTreeSet::new();
            for name in &rule.capabilities {
                caps.insert(
                    Cap::parse(name)
                        .ok_or_else(|| format!("path \"{pattern}\": unknown capability \"{name}\""))?,
                );
            }
            rules.push(Rule { pattern, caps });
        }
        Ok(Policy { rules })
    }

    /// This policy for one token: each `{{identity.entity.name}}` and
    /// `{{identity.entity.metadata.<key>}}` in a rule's path is replaced by the token's value
    /// (`name`, and `meta` by key). A rule whose template has no value for this token, or a value
    /// that is not one plain path segment (empty, with `/`, `*`, `+`, `{` or `}`), is dropped: a
    /// value can never widen a rule.
    pub(crate) fn for_identity(mut self, name: Option<&str>, meta: &BTreeMap<String, String>) -> Policy {
        let plain = |v: &str| !v.is_empty() && !v.contains(['/', '*', '+', '{', '}']);
        self.rules.retain_mut(|rule| {
            let mut out = String::with_capacity(rule.pattern.len());
            let mut rest = rule.pattern.as_str();
            while let Some(start) = rest.find("{{") {
                out.push_str(&rest[..start]);
                let Some(end) = rest[start..].find("}}") else { return false };
                let key = rest[start + 2..start + end].trim();
                let value = match key.strip_prefix("identity.entity.metadata.") {
                    Some(k) => meta.get(k).map(String::as_str),
                    None if key == "identity.entity.name" => name,
                    None => None,
                };
                match value.filter(|v| plain(v)) {
                    Some(v) => out.push_str(v),
                    None => return false,
                }
                rest = &rest[start + end + 2..];
            }
            out.push_str(rest);
            rule.pattern = out;
            true
        });
        self
    }

    /// The capabilities of the most specific rule matching `path`, if one does.
    fn caps_for(&self, path: &str) -> Option<&BTreeSet<Cap>> {
        self.rules
            .iter()
            .filter(|r| matches(&r.pattern, path))
            .max_by_key(|r| priority(&r.pattern))
            .map(|r| &r.caps)
    }
}

/// Whether `policies` grant `cap` on `path` (any of them grants it, none denies).
pub(crate) fn allows(policies: &[Policy], path: &str, cap: Cap) -> bool {
    let mut granted = false;
    for caps in policies.iter().filter_map(|p| p.caps_for(path)) {
        if caps.contains(&Cap::Deny) {
            return false;
        }
        granted |= caps.contains(&cap);
    }
    granted
}

/// Whether some rule of `policies` grants anything on a path that could lie under `prefix` (a
/// mount's path with its slash): whether a token may be shown that the mount exists, as Vault
/// decides it for `sys/internal/ui/mounts`. (A rule's literal start is compared; a `+` or `*`
/// after it could match anything.)
pub(crate) fn reaches_under(policies: &[Policy], prefix: &str) -> bool {
    policies.iter().flat_map(|p| &p.rules).filter(|r| r.caps.iter().any(|c| *c != Cap::Deny)).any(|r| {
        let literal = r.pattern.split(['*', '+']).next().unwrap_or_default();
        literal.starts_with(prefix) || prefix.starts_with(literal)
    })
}

/// `*` only at the end, `+` only as a whole segment (templates `{{…}}` are filled in per token).
fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.matches("{{").count() != pattern.matches("}}").count() {
        return Err(format!("path \"{pattern}\": an unclosed {{{{ template"));
    }
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    if body.contains('*') {
        return Err(format!("path \"{pattern}\": '*' may only end a path"));
    }
    if body.split('/').any(|s| s.contains('+') && s != "+") {
        return Err(format!("path \"{pattern}\": '+' must be a whole path segment"));
    }
    Ok(())
}

/// Whether `pattern` matches `path`: `+` is one segment, a final `*` any rest.
fn matches(pattern: &str, path: &str) -> bool {
    let (body, glob) = match pattern.strip_suffix('*') {
        Some(body) => (body, true),
        None => (pattern, false),
    };
    if !body.contains('+') {
        return if glob { path.starts_with(body) } else { path == body };
    }
    // Segment by segment up to the glob's start; the last segment of `body` may be a partial
    // prefix when a glob follows.
    let pattern_segments: Vec<&str> = body.split('/').collect();
    let path_segments: Vec<&str> = path.split('/').collect();
    if path_segments.len() < pattern_segments.len()
        || (!glob && path_segments.len() != pattern_segments.len())
    {
        return false;
    }
    let last = pattern_segments.len() - 1;
    for (i, (p, s)) in pattern_segments.iter().zip(&path_segments).enumerate() {
        let ok = match *p {
            "+" => !s.is_empty(),
            p if glob && i == last => s.starts_with(p),
            p => p == *s,
        };
        if !ok {
            return false;
        }
    }
    glob || path_segments.len() == pattern_segments.len()
}

/// Vault's order between matching rules: a later first wildcard, no final `*`, fewer `+`, a
/// longer pattern, then the greater text wins.
fn priority(pattern: &str) -> (usize, bool, std::cmp::Reverse<usize>, usize, &str) {
    let first_wildcard = pattern.find(['*', '+']).unwrap_or(usize::MAX);
    let plus = pattern.split('/').filter(|s| *s == "+").count();
    (first_wildcard, !pattern.ends_with('*'), std::cmp::Reverse(plus), pattern.len(), pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_and_json_say_the_same() {
        let hcl = r#"
            # app's own secrets
            path "secret/data/app/*" { capabilities = ["read", "create", "update"] }
            path "secret/metadata/app/*" { capabilities = ["list"] }
        "#;
        let json = r#"{"path": {"secret/data/app/*": {"capabilities": ["read", "create", "update"]},
                        "secret/metadata/app/*": {"capabilities": ["list"]}}}"#;
        for text in [hcl, json] {
            let p = [Policy::parse(text).unwrap()];
            assert!(allows(&p, "secret/data/app/db", Cap::Read));
            assert!(allows(&p, "secret/metadata/app/", Cap::List));
            assert!(!allows(&p, "secret/data/other/db", Cap::Read));
            assert!(!allows(&p, "secret/data/app/db", Cap::Delete));
        }
    }

    #[test]
    fn the_most_specific_rule_wins_and_deny_wins_across_policies() {
        let p = Policy::parse(
            r#"
            path "secret/data/*" { capabilities = ["read"] }
            path "secret/data/app/secret" { capabilities = ["deny"] }
            path "secret/data/+/shared" { capabilities = ["read", "update"] }
            "#,
        )
        .unwrap();
        let p = [p];
        assert!(allows(&p, "secret/data/x", Cap::Read));
        assert!(!allows(&p, "secret/data/app/secret", Cap::Read));
        assert!(allows(&p, "secret/data/team/shared", Cap::Update));
        assert!(!allows(&p, "secret/data/team/other", Cap::Update));
        // `+` is exactly one segment.
        assert!(!allows(&p, "secret/data/a/b/shared", Cap::Update));
        let deny = Policy::parse(r#"path "secret/data/x" { capabilities = ["deny"] }"#).unwrap();
        let both = [Policy::parse(r#"path "secret/*" { capabilities = ["read"] }"#).unwrap(), deny];
        assert!(!allows(&both, "secret/data/x", Cap::Read));
        assert!(allows(&both, "secret/data/y", Cap::Read));
        // Nothing matches: denied.
        assert!(!allows(&[Policy::default()], "secret/data/x", Cap::Read));
    }

    #[test]
    fn a_mount_is_shown_only_to_a_token_reaching_under_it() {
        let p = |text: &str| vec![Policy::parse(text).unwrap()];
        let kv = p(r#"path "secret/data/a/*" { capabilities = ["read"] }"#);
        assert!(reaches_under(&kv, "secret/"));
        assert!(
            !reaches_under(&kv, "transit/")
                && !reaches_under(&kv, "secre/")
                && !reaches_under(&kv, "secretx/")
        );
        assert!(reaches_under(&p(r#"path "sec*" { capabilities = ["list"] }"#), "secret/"));
        assert!(reaches_under(&p(r#"path "+/data/x" { capabilities = ["read"] }"#), "team/kv/"));
        assert!(!reaches_under(&p(r#"path "secret/*" { capabilities = ["deny"] }"#), "secret/"));
    }

    #[test]
    fn templates_give_each_identity_its_own_prefix_and_never_more() {
        let text = r#"
            path "secret/data/agents/{{identity.entity.name}}/*" { capabilities = ["read"] }
            path "secret/data/teams/{{identity.entity.metadata.team}}/*" { capabilities = ["read"] }
            path "secret/data/public/*" { capabilities = ["read"] }
        "#;
        let meta = BTreeMap::from([("team".to_string(), "blue".to_string())]);
        let a = [Policy::parse(text).unwrap().for_identity(Some("a"), &meta)];
        assert!(allows(&a, "secret/data/agents/a/key", Cap::Read));
        assert!(!allows(&a, "secret/data/agents/b/key", Cap::Read));
        assert!(allows(&a, "secret/data/teams/blue/x", Cap::Read));
        // No value: the rule is gone, the others stay.
        let none = [Policy::parse(text).unwrap().for_identity(None, &BTreeMap::new())];
        assert!(!allows(&none, "secret/data/agents/a/key", Cap::Read));
        assert!(!allows(&none, "secret/data/teams/blue/x", Cap::Read));
        assert!(allows(&none, "secret/data/public/x", Cap::Read));
        // A value that would widen the rule is never used.
        for evil in ["*", "a/b", "+", "", "{{x}}"] {
            let p = [Policy::parse(text).unwrap().for_identity(Some(evil), &BTreeMap::new())];
            assert!(!allows(&p, "secret/data/agents/a/key", Cap::Read), "{evil:?}");
            assert!(!allows(&p, &format!("secret/data/agents/{evil}/key"), Cap::Read), "{evil:?}");
        }
        assert!(Policy::parse(r#"path "a/{{x" { capabilities = ["read"] }"#).is_err());
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        for (text, says) in [
            (r#"path "a/*/b" { capabilities = ["read"] }"#, "'*' may only end"),
            (r#"path "a/b+" { capabilities = ["read"] }"#, "'+' must be a whole"),
            (r#"path "a" { capabilities = ["reed"] }"#, "unknown capability"),
            ("path \"a\" {", "not valid HCL"),
            ("{\"path\": 3}", "not valid JSON"),
        ] {
            let e = Policy::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(Policy::parse(DEFAULT).is_ok());
    }
}
