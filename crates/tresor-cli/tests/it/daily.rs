//! The everyday commands through the real binary: generate, get and rm of several paths, rm -r,
//! find, list --tree, cp and mv with their versions, edit through a scripted editor.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common::{self, Env, Out, PASSWORD};

fn tresor(env: &Env, args: &[&str], stdin: &[u8]) -> Out {
    common::run(env.cmd().env("TRESOR_PASSWORD", PASSWORD).args(args), stdin)
}

fn vault() -> Env {
    let env = Env::new();
    env.init();
    env.set("db/password", b"pw-1");
    env.set("db/password", b"pw-2");
    env.set("db/user", b"admin");
    env.set("web/github", b"gh-token");
    env
}

#[test]
fn generate_stores_a_fresh_secret_and_never_replaces_one_unasked() {
    let env = vault();
    let out = tresor(&env, &["generate", "api/key", "--length", "40", "--charset", "alnum"], b"").ok();
    assert!(out.stdout.is_empty(), "printed without --print");
    assert!(out.stderr.contains("api/key: version 1 (238 bits of randomness)"), "{}", out.stderr);
    let key = env.get("api/key");
    assert_eq!(key.len(), 40);
    assert!(key.iter().all(u8::is_ascii_alphanumeric));
    let out = tresor(&env, &["generate", "api/key"], b"").expect(7);
    assert!(out.stderr.contains("api/key exists: give --force"), "{}", out.stderr);
    assert_eq!(env.get("api/key"), key, "a refused generate changed the secret");
    let out = tresor(&env, &["generate", "api/key", "--force", "--words", "5", "--print"], b"").ok();
    let phrase = out.text();
    assert_eq!(phrase.trim_end().split('-').count(), 5, "{phrase}");
    assert_eq!(env.get("api/key"), phrase.trim_end().as_bytes());
    tresor(&env, &["generate", "x", "--length", "2"], b"").expect(7);
    tresor(&env, &["generate", "x", "--words", "4", "--length", "9"], b"").expect(2);
}

#[test]
fn get_and_read_print_json_with_bytes_as_base64() {
    let env = vault();
    // JSON: one list, whatever the values hold (bytes that are not UTF-8 as Base64).
    tresor(&env, &["set", "bin/blob"], &[0xff, 0x00, b'"']).ok();
    let out =
        tresor(&env, &["get", "--json", "db/password", "bin/blob", "tresor://db/password?version=1"], b"")
            .ok();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"path": "db/password", "field": null, "version": null, "value": "pw-2"},
            {"path": "bin/blob", "field": null, "version": null, "value_base64": "/wAi"},
            {"path": "db/password", "field": null, "version": 1, "value": "pw-1"},
        ])
    );
    tresor(&env, &["get", "--json", "--clip", "db/user"], b"").expect(2);
}

#[test]
fn several_paths_at_once_and_whole_prefixes() {
    let env = vault();
    let out = tresor(&env, &["get", "db/password", "db/user"], b"").ok();
    assert_eq!(out.stdout, b"pw-2\nadmin\n");
    // One missing: nothing printed at all.
    let out = tresor(&env, &["get", "db/password", "db/nope"], b"").expect(4);
    assert!(out.stdout.is_empty());
    tresor(&env, &["get", "--version", "1", "db/password", "db/user"], b"").expect(2);
    let out = tresor(&env, &["read", "--json", "tresor://db/user"], b"").ok();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"path": "db/user", "field": null, "version": null, "value": "admin"})
    );
    assert_eq!(tresor(&env, &["find", "PASS"], b"").ok().text(), "db/password\n");
    tresor(&env, &["find", "nothing-like-it"], b"").expect(4);
    assert_eq!(
        tresor(&env, &["list", "--tree"], b"").ok().text(),
        "db\n├── password\n└── user\nweb\n└── github\n"
    );
    tresor(&env, &["rm", "db/password", "web/github"], b"").ok();
    assert_eq!(tresor(&env, &["list"], b"").ok().text(), "db/user\n");
    tresor(&env, &["rm", "-r", "web"], b"").expect(4);
    tresor(&env, &["rm", "-r", "db/"], b"").ok();
    assert_eq!(tresor(&env, &["list"], b"").ok().text(), "");
    // Deleted, not destroyed: listed as such; the history stays and undelete brings a value back.
    assert_eq!(tresor(&env, &["list", "--deleted"], b"").ok().text(), "db/password\ndb/user\nweb/github\n");
    let long = tresor(&env, &["list", "--deleted", "-l", "db/p"], b"").ok().text();
    assert!(long.starts_with("db/password\tv2\t4\tdeleted "), "{long}");
    tresor(&env, &["undelete", "db/password"], b"").ok();
    assert_eq!(tresor(&env, &["list", "--deleted"], b"").ok().text(), "db/user\nweb/github\n");
    // What rm -r deleted, undelete -r brings back.
    tresor(&env, &["rm", "-r", "db"], b"").ok();
    tresor(&env, &["undelete", "-r", "db"], b"").ok();
    assert_eq!(tresor(&env, &["list"], b"").ok().text(), "db/password\ndb/user\n");
    tresor(&env, &["undelete", "-r", "db"], b"").expect(4);
    assert_eq!(env.get("db/password"), b"pw-2");
}

#[test]
fn cp_and_mv_carry_every_version_and_refuse_to_overwrite() {
    let env = vault();
    tresor(&env, &["cp", "db/password", "backup/"], b"").ok();
    assert_eq!(env.get("backup/password"), b"pw-2");
    assert_eq!(tresor(&env, &["get", "--version", "1", "backup/password"], b"").ok().stdout, b"pw-1");
    assert_eq!(env.get("db/password"), b"pw-2", "cp left the source");
    // The destination exists now: refused, untouched.
    let out = tresor(&env, &["cp", "db/user", "backup/password"], b"").expect(7);
    assert!(out.stderr.contains("backup/password exists"), "{}", out.stderr);
    assert_eq!(env.get("backup/password"), b"pw-2");
    tresor(&env, &["mv", "-r", "db", "app/db"], b"").ok();
    assert_eq!(
        tresor(&env, &["list"], b"").ok().text(),
        "app/db/password\napp/db/user\nbackup/password\nweb/github\n"
    );
    assert_eq!(tresor(&env, &["get", "--version", "1", "app/db/password"], b"").ok().stdout, b"pw-1");
    // The old path keeps its history, deleted.
    let history = tresor(&env, &["history", "db/password"], b"").ok().text();
    assert!(history.contains("deleted"), "{history}");
    tresor(&env, &["mv", "-r", "app", "app/inner"], b"").expect(7);
    tresor(&env, &["mv", "nothing/here", "x"], b"").expect(4);
    tresor(&env, &["cp", "web/github", "bad//path"], b"").expect(7);
}

/// A path with deleted history could never be written by `mv` or `cp`: they asked for its newest
/// version while the write compared the live one (none), so a move could not be undone and the
/// error blamed "another writer". And `cp` of a deleted secret copied nothing and said it had.
#[test]
fn regression_a_secret_could_not_be_moved_back_where_its_history_was_deleted() {
    let env = vault();
    tresor(&env, &["mv", "db/password", "db/pw"], b"").ok();
    let out = tresor(&env, &["mv", "db/pw", "db/password"], b"").ok();
    assert!(out.stderr.contains("db/password now at version 4"), "{}", out.stderr);
    assert_eq!(env.get("db/password"), b"pw-2");
    assert_eq!(tresor(&env, &["get", "--version", "3", "db/password"], b"").ok().stdout, b"pw-1");
    // A deleted source: nothing to copy, and nothing written.
    let out = tresor(&env, &["cp", "db/pw", "db/copy"], b"").expect(4);
    assert!(out.stderr.contains("db/pw was deleted"), "{}", out.stderr);
    tresor(&env, &["history", "db/copy"], b"").expect(4);
    // `set --cas` counts as Vault's KV v2 does: a deleted secret is written over by naming its
    // deleted newest version, and 0 means "never had one".
    let out = tresor(&env, &["set", "--cas", "0", "db/pw"], b"new").expect(6);
    assert!(
        out.stderr.contains("db/pw has newest version 2 (deleted or destroyed), not 0"),
        "{}",
        out.stderr
    );
    tresor(&env, &["set", "--cas", "2", "db/pw"], b"new").ok();
    assert_eq!(env.get("db/pw"), b"new");
}

#[test]
fn edit_goes_through_a_private_file_that_is_gone_afterwards() {
    let env = vault();
    let script = env.path("editor.sh");
    let seen = env.path("seen-path");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" > {}\nprintf -- '-edited' >> \"$1\"\n", seen.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let edit = |editor: &str, path: &str| {
        common::run(
            env.cmd().env("TRESOR_PASSWORD", PASSWORD).env("EDITOR", editor).args(["edit", path]),
            b"",
        )
    };
    let out = edit(script.to_str().unwrap(), "db/user").ok();
    assert!(out.stderr.contains("db/user: version 2"), "{}", out.stderr);
    assert_eq!(env.get("db/user"), b"admin-edited");
    let file = std::fs::read_to_string(&seen).unwrap();
    let file = std::path::Path::new(file.trim());
    assert!(
        file.starts_with("/dev/shm") || !file.starts_with("/tmp"),
        "edited on a disk: {}",
        file.display()
    );
    assert!(!file.exists() && !file.parent().unwrap().exists(), "{} left behind", file.display());
    // Unchanged: nothing written; a failing editor: nothing saved.
    let out = edit("true", "db/user").ok();
    assert!(out.stderr.contains("unchanged"), "{}", out.stderr);
    edit("false", "db/user").expect(1);
    assert_eq!(tresor(&env, &["history", "db/user"], b"").ok().text().lines().count(), 2);
    // A new secret starts empty.
    edit(script.to_str().unwrap(), "brand/new").ok();
    assert_eq!(env.get("brand/new"), b"-edited");
}

#[test]
fn completions_complete_secret_paths_from_the_agent_and_the_man_page_renders() {
    let env = vault();
    for shell in ["bash", "zsh", "fish"] {
        let out = common::run(env.cmd().args(["completions", shell]), b"").ok();
        let script = out.text();
        assert!(script.contains("__complete-paths"), "{shell}: no path completion");
        assert!(script.contains("generate") && script.contains("inject"), "{shell}: commands missing");
        // The hidden helpers are not offered (clap_complete would).
        assert!(
            !script.contains("__clip-clear") && !script.contains("'__complete-paths"),
            "{shell}: offers a hidden command"
        );
    }
    let man = common::run(env.cmd().arg("man"), b"").ok().text();
    assert!(man.contains(".TH tresor 1"), "{man}");
    assert!(man.contains("inject"), "the man page lists the commands");
    // Paths come only from an unlocked agent: without one, nothing, and no prompt.
    let out = common::run(env.cmd().args(["__complete-paths", "db/"]), b"").ok();
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{}", out.stderr);
    let _guard = env.agent_guard();
    let file = env.password_file(PASSWORD);
    common::run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).arg("unlock"), b"").ok();
    assert_eq!(
        common::run(env.cmd().args(["__complete-paths", "db/"]), b"").ok().text(),
        "db/password\ndb/user\n"
    );
    // And bash, given the script, offers them.
    let bash = format!(
        "source <({bin} completions bash | sed 's/tresor __complete-paths/{bin_esc} __complete-paths/'); \
         COMP_WORDS=(tresor get db/p); COMP_CWORD=2; _tresor_with_paths; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bin = common::bin().display(),
        bin_esc = common::bin().display().to_string().replace('/', "\\/"),
    );
    let out = common::run(&mut env.cmd_via(&["bash".into(), "-c".into(), bash, "bash".into()]), b"");
    assert_eq!(out.text(), "db/password\n", "{}", out.stderr);
    // fish, given its script, offers them too; zsh loads its script and defines the hook. (Both
    // shells are installed by .ci/run; elsewhere a missing shell is said and skipped.)
    let sed = format!(
        "sed 's/tresor __complete-paths/{}/'",
        common::bin().display().to_string().replace('/', "\\/") + " __complete-paths"
    );
    let bin = common::bin().display().to_string();
    if has("fish") {
        let fish = format!("{bin} completions fish | {sed} | source; complete -C 'tresor get db/p'");
        let out =
            common::run(&mut env.cmd_via(&["fish".into(), "--no-config".into(), "-c".into(), fish]), b"");
        assert_eq!(out.text(), "db/password\n", "{}", out.stderr);
        let fish = format!("{bin} completions fish | {sed} | source; complete -C 'tresor '");
        let offered =
            common::run(&mut env.cmd_via(&["fish".into(), "--no-config".into(), "-c".into(), fish]), b"")
                .text();
        assert!(offered.lines().any(|l| l.starts_with("generate\t")), "{offered}");
        assert!(!offered.contains("__"), "a hidden command offered: {offered}");
    }
    if has("zsh") {
        let zsh = format!(
            "autoload -U compinit && compinit -u -D; source <({bin} completions zsh | {sed}); whence -w _tresor_with_paths _tresor"
        );
        let out = common::run(&mut env.cmd_via(&["zsh".into(), "-f".into(), "-c".into(), zsh]), b"");
        assert_eq!(out.text(), "_tresor_with_paths: function\n_tresor: function\n", "{}", out.stderr);
    }
}

/// Whether `shell` is installed (a shell `.ci/run` installs must be there in CI).
fn has(shell: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {shell}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{shell} is not installed: .ci/run installs it");
        eprintln!("skipped: {shell} is not installed");
    }
    found
}

#[test]
fn audit_filters_by_path_operation_actor_time_and_count() {
    let env = vault();
    tresor(&env, &["get", "db/user"], b"").ok();
    tresor(&env, &["get", "web/github"], b"").ok();
    let lines = |args: &[&str]| -> Vec<String> {
        let all: Vec<&str> = ["audit"].iter().chain(args).copied().collect();
        tresor(&env, &all, b"").ok().text().lines().map(str::to_string).collect()
    };
    let gets = lines(&["--op", "get"]);
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(gets[0].contains("get db/user") && gets[1].contains("get web/github"), "{gets:?}");
    // A path filter takes the path and what is under it, never a mere prefix of a name.
    let db = lines(&["--path", "db"]);
    assert!(!db.is_empty() && db.iter().all(|l| l.contains(" db/")), "{db:?}");
    assert!(lines(&["--path", "d"]).is_empty());
    assert_eq!(lines(&["--op", "set", "--limit", "1"]).len(), 1);
    assert!(lines(&["--since", "1h", "--op", "get"]).len() == 2);
    assert!(lines(&["--until", "2000-01-01"]).is_empty());
    assert!(lines(&["--actor", "no such actor"]).is_empty());
    let json: serde_json::Value = serde_json::from_slice(
        &tresor(&env, &["audit", "--json", "--op", "get", "-n", "1"], b"").ok().stdout,
    )
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["path"], "web/github");
    tresor(&env, &["audit", "--since", "last tuesday"], b"").expect(7);
    // An operation that does not exist is refused, not answered with nothing (found by review).
    let out = tresor(&env, &["audit", "--op", "frob"], b"").expect(7);
    assert!(out.stderr.contains("--op frob: no such operation (one of: "), "{}", out.stderr);
}

#[test]
fn json_shapes_of_the_commands_that_change_things() {
    let env = vault();
    let json = |args: &[&str], stdin: &[u8]| -> serde_json::Value {
        let out = tresor(&env, args, stdin).ok();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out.text()))
    };
    assert_eq!(json(&["set", "j/a", "--json"], b"v"), serde_json::json!({"path": "j/a", "version": 1}));
    let generated = json(&["generate", "j/b", "--json", "--length", "10", "--charset", "digits"], b"");
    assert_eq!(generated["path"], "j/b");
    assert_eq!(generated["bits"], 33);
    assert!(generated["value"].is_null(), "the value shows only with --print");
    let printed = json(&["generate", "j/b", "-f", "--json", "--print"], b"");
    assert_eq!(printed["value"].as_str().unwrap().as_bytes(), env.get("j/b"));
    let found = json(&["find", "j/", "--json"], b"");
    assert_eq!(
        found.as_array().unwrap().iter().map(|e| e["path"].clone()).collect::<Vec<_>>(),
        ["j/a", "j/b"]
    );
    assert_eq!(json(&["find", "zzz", "--json"], b""), serde_json::json!([]));
    assert_eq!(
        json(&["rm", "-r", "j", "--json"], b""),
        serde_json::json!([{"path": "j/a", "version": 1}, {"path": "j/b", "version": 2}])
    );
    assert_eq!(
        json(&["undelete", "j/a", "--json"], b""),
        serde_json::json!({"path": "j/a", "undeleted": [1]})
    );
    assert_eq!(
        json(&["cp", "j/a", "k/a", "--json"], b""),
        serde_json::json!([{"from": "j/a", "to": "k/a", "versions": 1, "version": 1}])
    );
    assert_eq!(
        json(&["destroy", "j/a", "--version", "1", "--json"], b"")["destroyed"],
        serde_json::json!([1])
    );
    let verified = json(&["audit", "verify", "--json"], b"");
    assert!(
        verified["commits"].as_u64().unwrap() > 0 && verified["damaged"] == serde_json::json!([]),
        "{verified}"
    );
}

/// An X server of the test's own (Xvfb) on a free display, stopped on drop; `None` when Xvfb or
/// xclip is missing and CI does not require them.
struct Display {
    child: std::process::Child,
    name: String,
}

impl Display {
    fn start() -> Option<Display> {
        let have = |p: &str| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !have("Xvfb") || !have("xclip") {
            assert!(
                std::env::var_os("TRESOR_REQUIRE_CLIENTS").is_none(),
                "Xvfb and xclip are required (.ci/run installs them)"
            );
            eprintln!("skipped: no Xvfb or xclip here");
            return None;
        }
        for n in 0..20 {
            let name = format!(":{}", 90 + (std::process::id() % 400) + n);
            let child = std::process::Command::new("Xvfb")
                .args([name.as_str(), "-nolisten", "tcp"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let mut display = Display { child, name };
            let up = common::wait_for(std::time::Duration::from_secs(10), || {
                display.child.try_wait().unwrap().is_none()
                    && std::process::Command::new("xclip")
                        .args(["-selection", "clipboard", "-o"])
                        .env("DISPLAY", &display.name)
                        .output()
                        .is_ok_and(|o| !String::from_utf8_lossy(&o.stderr).contains("Can't open display"))
            });
            if up {
                return Some(display);
            }
        }
        panic!("Xvfb did not start");
    }

    fn clipboard(&self) -> Vec<u8> {
        let out = std::process::Command::new("xclip")
            .args(["-selection", "clipboard", "-o"])
            .env("DISPLAY", &self.name)
            .output()
            .unwrap();
        out.stdout
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn clip_copies_a_value_and_clears_it_only_while_the_clipboard_still_holds_it() {
    let Some(display) = Display::start() else { return };
    let env = vault();
    let clip = |args: &[&str]| {
        let mut cmd = env.cmd();
        cmd.env("TRESOR_PASSWORD", PASSWORD)
            .env("DISPLAY", &display.name)
            .env("TRESOR_CLIP_TIME", "1")
            .args(args);
        common::run(&mut cmd, b"")
    };
    let out = clip(&["get", "db/password", "--clip"]).ok();
    assert!(out.stdout.is_empty(), "printed as well as copied");
    assert!(out.stderr.contains("db/password: copied to the clipboard; cleared in 1s"), "{}", out.stderr);
    assert_eq!(display.clipboard(), b"pw-2");
    assert!(
        common::wait_for(std::time::Duration::from_secs(10), || display.clipboard().is_empty()),
        "never cleared"
    );
    // Something else copied meanwhile is left alone.
    clip(&["generate", "web/new", "--clip"]).ok();
    assert_eq!(display.clipboard(), env.get("web/new"));
    let mut other = std::process::Command::new("xclip")
        .args(["-selection", "clipboard", "-in"])
        .env("DISPLAY", &display.name)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut other.stdin.take().unwrap(), b"mine").unwrap();
    other.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(display.clipboard(), b"mine");
    // No clipboard: an error, and nothing printed instead.
    let mut cmd = env.cmd();
    cmd.env("TRESOR_PASSWORD", PASSWORD).env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY").args([
        "get",
        "db/password",
        "--clip",
    ]);
    let out = common::run(&mut cmd, b"").expect(1);
    assert!(out.stdout.is_empty() && out.stderr.contains("no clipboard here"), "{}", out.stderr);
    clip(&["get", "db/password", "db/user", "--clip"]).expect(2);
}

#[test]
fn regression_bash_completion_ran_commands_planted_in_secret_paths() {
    let env = vault();
    let marker = env.path("pwned");
    let planted = format!("x$(touch {})", marker.display());
    env.set(&planted, b"v");
    let _guard = env.agent_guard();
    let file = env.password_file(PASSWORD);
    common::run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).arg("unlock"), b"").ok();
    let bash = format!(
        "source <({bin} completions bash | sed 's/tresor __complete-paths/{bin_esc} __complete-paths/'); \
         COMP_WORDS=(tresor get x); COMP_CWORD=2; _tresor_with_paths; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bin = common::bin().display(),
        bin_esc = common::bin().display().to_string().replace('/', "\\/"),
    );
    let out = common::run(&mut env.cmd_via(&["bash".into(), "-c".into(), bash, "bash".into()]), b"");
    assert!(!marker.exists(), "completion ran a command from a path name");
    assert_eq!(out.text(), format!("{planted}\n"), "{}", out.stderr);
}

#[test]
fn regression_edit_left_the_plaintext_behind_when_tresor_was_hung_up() {
    let env = vault();
    let seen = env.path("seen");
    let script = env.path("slow-editor.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$1\" > {}\nexec sleep 30\n", seen.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut child = env
        .std_cmd(common::bin())
        .env("TRESOR_PASSWORD", PASSWORD)
        .env("EDITOR", &script)
        .args(["edit", "db/user"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(common::wait_for(std::time::Duration::from_secs(20), || std::fs::read_to_string(&seen)
        .is_ok_and(|s| s.ends_with('\n'))));
    let file = std::path::PathBuf::from(std::fs::read_to_string(&seen).unwrap().trim());
    assert!(file.exists());
    // A Ctrl-C is the editor's: tresor stays.
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "tresor died of SIGINT while the editor ran");
    // A hang-up ends the edit: nothing saved, the file wiped and gone.
    std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(129));
    assert!(!file.exists() && !file.parent().unwrap().exists(), "{} left behind", file.display());
    assert_eq!(env.get("db/user"), b"admin");
}

#[test]
fn what_a_new_user_tripped_on_says_what_to_do() {
    let env = vault();
    // References where paths go; another tool's references named as such.
    assert_eq!(tresor(&env, &["get", "tresor://db/password?version=1"], b"").ok().stdout, b"pw-1");
    let out = tresor(&env, &["read", "op://vault/item/field"], b"").expect(7);
    assert!(out.stderr.contains("op:// references are not tresor's"), "{}", out.stderr);
    let out = tresor(&env, &["get", "--version", "9", "db/password"], b"").expect(4);
    assert!(out.stderr.contains("`tresor history db/password` lists its versions"), "{}", out.stderr);
    // A folder where a secret was meant: the hint says -r; rm checks every path first.
    let out = tresor(&env, &["rm", "db/user", "db"], b"").expect(4);
    assert!(out.stderr.contains("db/ holds 2 secrets: give -r"), "{}", out.stderr);
    assert_eq!(env.get("db/user"), b"admin", "rm deleted a path before finding a bad one");
    let out = tresor(&env, &["cp", "db", "x"], b"").expect(4);
    assert!(out.stderr.contains("give -r"), "{}", out.stderr);
    // cp -r a/b c/ puts b under c, as cp does.
    tresor(&env, &["cp", "-r", "db", "backup/"], b"").ok();
    assert_eq!(env.get("backup/db/user"), b"admin");
    // generate --clip with no clipboard stores nothing no one could see.
    let mut cmd = env.cmd();
    cmd.env("TRESOR_PASSWORD", PASSWORD).env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    common::run(cmd.args(["generate", "unseen", "--clip"]), b"").expect(1);
    tresor(&env, &["get", "unseen"], b"").expect(4);
    // pass habits, and the man page of a command.
    tresor(&env, &["insert", "p/x"], b"from insert").ok();
    assert_eq!(tresor(&env, &["show", "p/x"], b"").ok().stdout, b"from insert");
    assert!(tresor(&env, &["man", "run"], b"").ok().text().contains(".TH tresor-run 1"));
    tresor(&env, &["man", "nope"], b"").expect(2);
    // Filters do not quietly apply to what they cannot.
    tresor(&env, &["audit", "--since", "1h", "verify"], b"").expect(2);
}

/// A directory of other files named as the vault (`--vault /etc`) was "an interrupted init" with
/// a hint to remove it, and a warning to chmod it (found by review).
#[test]
fn regression_a_directory_of_other_files_was_called_an_interrupted_init_to_remove() {
    let env = Env::new();
    let other = env.path("documents");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = tresor(&env, &["--vault", other.to_str().unwrap(), "list"], b"").expect(8);
    assert!(out.stderr.contains("is not a tresor vault: it holds other files"), "{}", out.stderr);
    for wrong in ["interrupted init", "remove the location", "chmod"] {
        assert!(!out.stderr.contains(wrong), "{wrong}: {}", out.stderr);
    }
    assert_eq!(std::fs::read(other.join("notes.txt")).unwrap(), b"mine");
}

/// `tresor list > inventory.json` on a full disk exited 0 with nothing written (found by review):
/// every command's output is checked as `get`'s was.
#[test]
fn regression_output_lost_to_a_full_disk_exited_0() {
    let env = vault();
    for args in [&["list"][..], &["list", "--json"], &["history", "db/password"], &["status"], &["audit"]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = env
            .std_cmd(common::bin())
            .env("TRESOR_PASSWORD", PASSWORD)
            .args(args)
            .stdout(full)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("cannot write the output"), "{args:?}: {stderr}");
    }
}
