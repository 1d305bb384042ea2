//! The agent through the real binary: `tresor unlock` starts it, later commands need no password,
//! `tresor lock` and the idle timeout stop it; its socket is private; the process is hardened (T20).
//! Every test that starts an agent holds a guard that stops it, whatever happens.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{AgentGuard, Env, Out, PASSWORD, alive, run, wait_for};
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// `tresor unlock ARGS` with the password in `TRESOR_PASSWORD_FILE`.
fn unlock(env: &Env, args: &[&str]) -> Out {
    let file = env.password_file(PASSWORD);
    run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).arg("unlock").args(args), b"")
}

/// The one agent serving `env`'s vault.
fn agent_pid(env: &Env) -> u32 {
    let pids = env.agent_pids();
    assert_eq!(pids.len(), 1, "expected exactly one agent, found {pids:?}");
    pids[0]
}

/// A vault with secret `a` = `one`, and a guard for the agent the test will start.
fn setup(env: &Env) -> AgentGuard<'_> {
    env.init();
    env.set("a", b"one");
    env.agent_guard()
}

#[test]
fn agent_serves_commands_without_a_password() {
    let env = Env::new();
    let _guard = setup(&env);
    let out = unlock(&env, &[]).ok();
    assert!(out.stderr.contains("unlocked; the agent locks after 900s idle"), "{}", out.stderr);
    let pid = agent_pid(&env);

    // No password source from here on.
    assert_eq!(env.run(&["get", "a"], b"").ok().stdout, b"one");
    env.run(&["set", "b"], b"two\x00\n").ok();
    env.run(&["set", "c", "three"], b"").ok();
    assert_eq!(env.run(&["get", "b"], b"").ok().stdout, b"two\x00\n");
    assert_eq!(env.run(&["list"], b"").ok().text(), "a\nb\nc\n");
    env.run(&["rm", "c"], b"").ok();
    env.run(&["get", "c"], b"").expect(4);
    env.run(&["get", "a//b"], b"").expect(7);
    assert_eq!(env.run(&["get", "--version", "1", "c"], b"").ok().stdout, b"three");
    assert!(env.run(&["history", "c"], b"").ok().text().contains("deleted"));
    assert!(env.run(&["audit", "verify"], b"").ok().text().contains("verified"));
    let status = env.run(&["status"], b"").ok().text();
    assert!(status.contains("state: unlocked"), "{status}");
    assert!(status.contains("secrets: 2"), "{status}");
    let json: Value = serde_json::from_slice(&env.run(&["status", "--json"], b"").ok().stdout).unwrap();
    assert_eq!(json["state"], "unlocked");
    let audit: Value = serde_json::from_slice(&env.run(&["audit", "--json"], b"").ok().stdout).unwrap();
    assert!(
        audit.as_array().unwrap().iter().any(|r| r["op"] == "set"
            && r["path"] == "b"
            && r["actor"].as_str().unwrap().starts_with("local uid=")
            && r["actor"].as_str().unwrap().contains(" pid=")
            && !r["actor"].as_str().unwrap().ends_with(&format!(" pid={pid}"))),
        "writes through the agent are audited under the client process that sent them, not the agent"
    );
    // --no-agent bypasses it, and then needs a password.
    env.run(&["--no-agent", "get", "a"], b"").expect(7);
    assert_eq!(env.run_pw(&["--no-agent", "get", "b"], b"").ok().stdout, b"two\x00\n");

    // A second unlock reuses the agent, with or without a password.
    let out = unlock(&env, &[]).ok();
    assert!(out.stderr.contains(&format!("already unlocked (agent pid {pid})")), "{}", out.stderr);
    let out = env.run(&["unlock"], b"").ok();
    assert!(out.stderr.contains("already unlocked"), "{}", out.stderr);
    assert_eq!(env.agent_pids(), [pid]);

    let out = env.run(&["lock"], b"").ok();
    assert!(out.stderr.contains("locked"), "{}", out.stderr);
    assert!(wait_for(Duration::from_secs(5), || !alive(pid)), "the agent still runs after lock");
    assert!(wait_for(Duration::from_secs(2), || env.socket().is_none()), "the socket outlives the agent");
    let out = env.run(&["get", "a"], b"");
    assert_ne!(out.code, 0, "get without a password succeeded after lock");
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("no password given"), "{}", out.stderr);
    assert!(env.run(&["status"], b"").ok().text().contains("state: locked"));
    let out = env.run(&["lock"], b"").ok();
    assert!(out.stderr.contains("nothing to lock"), "{}", out.stderr);
}

#[test]
fn lock_unlock_cycles() {
    let env = Env::new();
    let _guard = setup(&env);
    let mut pids = Vec::new();
    for cycle in 0..3 {
        let out = unlock(&env, &[]);
        assert_eq!(out.code, 0, "cycle {cycle}: {}", out.stderr);
        let pid = agent_pid(&env);
        pids.push(pid);
        assert_eq!(env.run(&["get", "a"], b"").ok().stdout, b"one", "cycle {cycle}");
        env.run(&["lock"], b"").ok();
        assert!(wait_for(Duration::from_secs(5), || !alive(pid)), "cycle {cycle}: the agent still runs");
        assert_ne!(env.run(&["get", "a"], b"").code, 0, "cycle {cycle}: get after lock succeeded");
    }
    pids.dedup();
    assert_eq!(pids.len(), 3, "each unlock starts a new agent");
    let audit: Value = serde_json::from_slice(&env.run_pw(&["audit", "--json"], b"").ok().stdout).unwrap();
    let records = audit.as_array().unwrap();
    // Each unlock is audited under the client that sent the password, not the agent (found by
    // review: it named the agent's own process).
    let unlocks: Vec<&str> = records
        .iter()
        .filter(|r| r["op"] == "unlock")
        .map(|r| r["actor"].as_str().unwrap())
        .filter(|actor| !actor.ends_with("(cli)"))
        .collect();
    assert_eq!(unlocks.len(), 3, "{unlocks:?}");
    for actor in &unlocks {
        assert!(actor.starts_with("local uid=") && !actor.contains("(agent)"), "{actor}");
        assert!(pids.iter().all(|pid| !actor.contains(&format!("pid={pid}"))), "{actor} is an agent");
    }
    let locks = records.iter().filter(|r| r["op"] == "lock" && r["detail"] == "lock requested");
    assert_eq!(locks.count(), 3);
}

/// The lock immediately followed by an unlock must start a working agent every time (the old agent
/// removes its socket after it stopped, and must not remove the new agent's).
#[test]
fn lock_then_immediate_unlock_leaves_a_working_agent() {
    let env = Env::new();
    let _guard = setup(&env);
    for round in 0..5 {
        let out = unlock(&env, &[]);
        assert_eq!(out.code, 0, "round {round}: {}", out.stderr);
        assert_eq!(env.run(&["get", "a"], b"").ok().stdout, b"one", "round {round}");
        env.run(&["lock"], b"").ok();
    }
    assert!(wait_for(Duration::from_secs(5), || env.agent_pids().is_empty()), "an agent outlived its lock");
}

#[test]
fn fail_unlock_with_the_wrong_password_leaves_no_agent() {
    let env = Env::new();
    let _guard = setup(&env);
    let file = env.password_file("not the password");
    let out = run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).arg("unlock"), b"").expect(3);
    assert!(out.stderr.contains("authentication failed"), "{}", out.stderr);
    assert!(
        wait_for(Duration::from_secs(5), || env.agent_pids().is_empty()),
        "a failed unlock left an agent"
    );
    let out = unlock(&env, &[]).ok();
    assert!(out.stderr.contains("1 failed unlock attempt since"), "{}", out.stderr);
}

#[test]
fn idle_timeout_stops_the_agent() {
    let env = Env::new();
    let _guard = setup(&env);
    let out = unlock(&env, &["--idle-timeout", "2s"]).ok();
    assert!(out.stderr.contains("locks after 2s idle"), "{}", out.stderr);
    let pid = agent_pid(&env);
    assert!(env.socket().is_some());
    std::thread::sleep(Duration::from_secs(4));
    assert!(!alive(pid), "the agent still runs 4 s into a 2 s idle timeout");
    assert!(env.socket().is_none(), "the socket outlives the agent");
    assert_ne!(env.run(&["get", "a"], b"").code, 0);
    let audit: Value = serde_json::from_slice(&env.run_pw(&["audit", "--json"], b"").ok().stdout).unwrap();
    assert!(audit.as_array().unwrap().iter().any(|r| r["op"] == "lock" && r["detail"] == "idle timeout"));
}

#[test]
fn requests_reset_the_idle_timeout() {
    let env = Env::new();
    let _guard = setup(&env);
    // The timeout from the environment, then the config file's is overridden by the flag.
    let out = run(
        env.cmd()
            .env("TRESOR_PASSWORD_FILE", env.password_file(PASSWORD))
            .env("TRESOR_IDLE_TIMEOUT", "3s")
            .arg("unlock"),
        b"",
    )
    .ok();
    assert!(out.stderr.contains("locks after 3s idle"), "{}", out.stderr);
    let pid = agent_pid(&env);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(env.run(&["get", "a"], b"").ok().stdout, b"one", "the agent timed out while in use");
    }
    assert!(alive(pid));
    assert!(wait_for(Duration::from_secs(8), || !alive(pid)), "the agent never timed out");
}

/// The effective uid of this test process.
fn euid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// Makes `dir` and everything in it belong to `uid`.
fn chown_tree(dir: &Path, uid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(uid)).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            chown_tree(&p, uid);
        } else {
            std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
        }
    }
}

/// T20: core dumps off, key pages locked (or a warning), process not dumpable, socket and its
/// directory private, other users refused. As root, the agent runs as `nobody` (via `setpriv`) so
/// that non-dumpability and the peer check can be observed; without `setpriv` those are skipped.
#[test]
fn t20_agent_hardening() {
    const NOBODY: u32 = 65534;
    let env = Env::new();
    let as_root = euid() == 0;
    let setpriv = Path::new("/usr/bin/setpriv").exists();
    let wrapper: Vec<String> = if as_root && setpriv {
        let id = NOBODY.to_string();
        ["/usr/bin/setpriv", &format!("--reuid={id}"), &format!("--regid={id}"), "--clear-groups"]
            .map(String::from)
            .to_vec()
    } else {
        Vec::new()
    };
    let file = env.password_file(PASSWORD);
    if !wrapper.is_empty() {
        chown_tree(env.tmp.path(), NOBODY);
    }
    let pw = format!("{PASSWORD}\n");
    run(env.cmd_via(&wrapper).arg("--password-stdin").arg("init").args(common::KDF), pw.as_bytes()).ok();
    run(env.cmd_via(&wrapper).args(["--password-stdin", "set", "a"]), format!("{pw}one").as_bytes()).ok();
    let _guard = env.agent_guard_via(&wrapper);
    let out = run(env.cmd_via(&wrapper).env("TRESOR_PASSWORD_FILE", &file).arg("unlock"), b"").ok();
    let pid = agent_pid(&env);
    assert_eq!(run(env.cmd_via(&wrapper).args(["get", "a"]), b"").ok().stdout, b"one");

    let mut checks: Vec<(String, bool)> = Vec::new();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    let soft = core.trim_start_matches("Max core file size").split_whitespace().next().unwrap();
    checks.push((format!("RLIMIT_CORE soft limit is 0 (found {soft})"), soft == "0"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let vm_lck: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let warned = out.stderr.contains("could not be locked");
    checks.push((
        format!("key pages locked (VmLck {vm_lck} kB) or a warning ({warned})"),
        vm_lck > 0 || warned,
    ));
    if !wrapper.is_empty() || !as_root {
        // The kernel gives /proc/<pid> of a non-dumpable process to root.
        let process_uid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap();
        let owner = std::fs::metadata(format!("/proc/{pid}/status")).unwrap().uid();
        assert_ne!(process_uid, 0, "the agent runs as root: the ownership check proves nothing");
        checks.push((
            format!("not dumpable (agent uid {process_uid}, /proc/<pid> owned by {owner})"),
            owner == 0,
        ));
    }
    let socket = env.socket().unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    checks.push((format!("socket mode 0600 (found {mode:o})"), mode == 0o600));
    let dir_mode = std::fs::metadata(socket.parent().unwrap()).unwrap().permissions().mode() & 0o777;
    checks.push((format!("socket directory mode 0700 (found {dir_mode:o})"), dir_mode == 0o700));
    if !wrapper.is_empty() {
        // Root connecting to nobody's agent is refused (peer credentials), so gets nothing.
        let out = env.run(&["get", "a"], b"");
        let status = env.run(&["status"], b"").text();
        checks.push((
            "another user's requests refused".to_string(),
            out.code != 0 && out.stdout.is_empty() && status.contains("state: locked"),
        ));
    }

    let passed = checks.iter().filter(|(_, ok)| *ok).count();
    println!("T20: checks passed {passed}/{}", checks.len());
    for (name, ok) in &checks {
        println!("  {} {name}", if *ok { "pass" } else { "FAIL" });
    }
    if wrapper.is_empty() && as_root {
        println!("  skipped: non-dumpable and peer checks (root without setpriv)");
    }
    assert_eq!(passed, checks.len(), "hardening checks failed: {checks:?}");
}

/// Regression (issue 15, bug 8): `status --json` changed shape between locked and unlocked (the
/// KDF a list or a string, whole keys missing), and its values differed from the text. Now one
/// shape with the same keys either way (`null` where a locked vault cannot say), and the text says
/// the same values.
#[test]
fn regression_status_has_one_shape_locked_or_unlocked_and_the_text_agrees() {
    let env = Env::new();
    env.init();
    env.set("a", b"one");
    let status = |json: bool| {
        let args: &[&str] = if json { &["status", "--json"] } else { &["status"] };
        env.run(args, b"").ok()
    };
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let locked: Value = serde_json::from_slice(&status(true).stdout).unwrap();
    let locked_text = status(false).text();
    unlock(&env, &[]).ok();
    let unlocked: Value = serde_json::from_slice(&status(true).stdout).unwrap();
    let unlocked_text = status(false).text();
    env.run(&["lock"], b"").ok();
    assert_eq!(keys(&locked), keys(&unlocked), "{locked}\n{unlocked}");
    assert_eq!((locked["state"].as_str(), unlocked["state"].as_str()), (Some("locked"), Some("unlocked")));
    assert!(locked["kdf"].is_array() && unlocked["kdf"].is_array());
    assert!(locked["secrets"].is_null() && unlocked["secrets"] == 1);
    assert_eq!(locked["fingerprint"], unlocked["fingerprint"], "the pin is the vault's fingerprint");
    for (json, text) in [(&locked, &locked_text), (&unlocked, &unlocked_text)] {
        for key in ["vault_id", "location", "cipher", "era", "keyfile_generation"] {
            let value = match &json[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert!(text.contains(&value), "{key}: {value} not in\n{text}");
        }
        let kdf = json["kdf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(", ");
        assert!(text.contains(&format!("kdf: {kdf}")), "{text}");
    }
    assert!(unlocked_text.contains("secrets: 1"), "{unlocked_text}");
    assert!(locked_text.contains("secrets: (unlock to see)"), "{locked_text}");
}

#[test]
fn regression_a_runtime_dir_too_long_for_a_socket_made_unlock_wait_and_fail_vaguely() {
    let env = Env::new();
    let _guard = setup(&env);
    let long = env.path(&"r".repeat(110));
    std::fs::create_dir(&long).unwrap();
    std::fs::set_permissions(&long, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = env.password_file(PASSWORD);
    let started = std::time::Instant::now();
    let out =
        run(env.cmd().env("TRESOR_RUNTIME_DIR", &long).env("TRESOR_PASSWORD_FILE", &file).arg("unlock"), b"")
            .expect(7);
    assert!(out.stderr.contains("longer than a Unix socket path may be"), "{}", out.stderr);
    assert!(out.stderr.contains("TRESOR_RUNTIME_DIR"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(4), "unlock waited for an agent that could not start");
    assert!(env.agent_pids().is_empty());
    // Every other command works without an agent there.
    let out = run(
        env.cmd().env("TRESOR_RUNTIME_DIR", &long).env("TRESOR_PASSWORD_FILE", &file).args(["get", "a"]),
        b"",
    );
    assert_eq!(out.ok().stdout, b"one");
}

#[test]
fn regression_the_agents_status_was_stale_after_a_key_file_change_made_elsewhere() {
    let env = Env::new();
    let _guard = setup(&env);
    unlock(&env, &[]).ok();
    let generation = |env: &Env| {
        let out = run(env.cmd().args(["status", "--json"]), b"").ok();
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["unlocked_by"], "agent", "{status}");
        status["keyfile_generation"].as_u64().unwrap()
    };
    let before = generation(&env);
    // A new password slot, added by a process of its own (not through the agent).
    let input = format!("{PASSWORD}\nanother good password 7\n");
    let args = ["--no-agent", "--password-stdin", "keyslot", "add", "--new-password-stdin"];
    run(env.cmd().args(args).args(common::KDF), input.as_bytes()).ok();
    assert_eq!(generation(&env), before + 1);
}

#[test]
fn regression_an_agent_kept_serving_a_vault_directory_that_was_removed() {
    let env = Env::new();
    let _guard = setup(&env);
    unlock(&env, &[]).ok();
    let pid = agent_pid(&env);
    std::fs::remove_dir_all(&env.vault).unwrap();
    // The agent does not serve what is gone: the command finds no vault there.
    let out = run(env.cmd().args(["get", "a"]), b"").expect(8);
    assert!(out.stderr.contains("no vault at"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    // It locked itself and stopped, writing nothing into the location.
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)), "the agent still runs");
    assert!(!env.vault.exists(), "something recreated the removed directory");
    // A new vault can be made there, and is the one commands reach.
    env.init();
    env.set("a", b"new");
    assert_eq!(env.get("a"), b"new");
}

/// Found by review: a vault directory renamed while its agent ran (and a new vault made at its
/// location) was still served under the location's name: reads gave the old vault's values and
/// writes went into the moved directory. The agent now sees its path lead elsewhere and locks.
#[test]
fn regression_an_agent_kept_serving_a_vault_directory_that_was_moved_away() {
    let env = Env::new();
    let _guard = setup(&env);
    unlock(&env, &[]).ok();
    let pid = agent_pid(&env);
    let moved = env.path("vault.old");
    std::fs::rename(&env.vault, &moved).unwrap();
    env.init();
    env.set("a", b"new");
    assert_eq!(env.get("a"), b"new");
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)), "the agent still runs");
    // The moved vault kept its own value, untouched.
    let out = env.run_pw(&["--no-agent", "get", "--vault", moved.to_str().unwrap(), "a"], b"");
    assert_eq!(out.ok().stdout, b"one");
}

/// Found by review: a frame header announcing a gigabyte made the agent allocate it at once, and
/// wipe it all when the connection ended: a 5-byte request cost 1 GiB of memory. The buffer now
/// grows as the bytes arrive.
#[test]
fn regression_a_frame_header_alone_made_the_agent_take_a_gigabyte() {
    use std::io::Write;
    let env = Env::new();
    let _guard = setup(&env);
    assert_eq!(unlock(&env, &[]).code, 0);
    let pid = agent_pid(&env);
    let peak = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    let before = peak();
    for _ in 0..3 {
        let mut stream = std::os::unix::net::UnixStream::connect(env.socket().unwrap()).unwrap();
        stream.write_all(&(1u32 << 30).to_be_bytes()).unwrap();
        stream.write_all(&[3, 0, 0, 0, 0]).unwrap();
    }
    // The agent still serves, and took no more than a little.
    assert_eq!(env.run(&["get", "a"], b"").ok().stdout, b"one");
    let grown = peak().saturating_sub(before);
    assert!(grown < 64 << 20, "the agent's peak memory grew by {} MiB", grown >> 20);
}

/// Found by review: with its descriptors used up (connections that send half a frame and stall),
/// the agent's accept loop retried at once, for ever, burning a core until they timed out. It
/// now waits between attempts, and serves again once the stalled connections go.
#[test]
fn regression_an_agent_out_of_descriptors_spun_on_accept() {
    use std::io::Write;
    let env = Env::new();
    let _guard = setup(&env);
    assert_eq!(unlock(&env, &[]).code, 0);
    let pid = agent_pid(&env);
    let limited = std::process::Command::new("prlimit")
        .args([format!("--pid={pid}"), "--nofile=48:48".into()])
        .status()
        .expect("prlimit (util-linux), installed by .ci/run");
    assert!(limited.success());
    let stalled: Vec<_> = (0..64)
        .filter_map(|_| {
            let mut s = std::os::unix::net::UnixStream::connect(env.socket().unwrap()).ok()?;
            s.write_all(&[0, 0]).ok()?;
            Some(s)
        })
        .collect();
    assert!(!stalled.is_empty());
    let cpu = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu() - before;
    assert!(used < 50, "the agent used {used} clock ticks in 2 s with its descriptors used up");
    drop(stalled);
    assert_eq!(env.run(&["get", "a"], b"").ok().stdout, b"one");
}

/// Found by review: the agent kept `TRESOR_TOKEN` (a server token) in its environment for its
/// whole life, as it had kept the password variables before they were removed.
#[test]
fn regression_tokens_in_the_environment_of_unlock_reached_the_agent() {
    let env = Env::new();
    let _guard = setup(&env);
    let file = env.password_file(PASSWORD);
    let out = run(
        env.cmd()
            .env("TRESOR_PASSWORD_FILE", &file)
            .env("TRESOR_TOKEN", "tvs.a-server-token")
            .env("VAULT_TOKEN", "hvs.another-token")
            .arg("unlock"),
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let environ = std::fs::read(format!("/proc/{}/environ", agent_pid(&env))).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for secret in ["tvs.a-server-token", "hvs.another-token", "TRESOR_PASSWORD_FILE"] {
        assert!(!environ.contains(secret), "the agent's environment holds {secret}");
    }
}
