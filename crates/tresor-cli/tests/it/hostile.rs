//! A store that cannot hurt you (issue 12): a vault directory full of planted links, FIFOs,
//! sockets, sparse files and odd names; a swapped vault; planted epoch numbers; objects readable
//! by others; credentials in URLs; trust carried to a new machine. Every test runs the real binary
//! against a real directory, as an attacker who can write that directory would.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, KDF, PASSWORD};
use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// No command may take longer than this against a hostile directory (no hang on a FIFO).
const DEADLINE: Duration = Duration::from_secs(30);

/// Every file under `dir` with its bytes (links not followed): what must not change.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A victim outside the vault: a directory tree and a file, which nothing may touch.
fn victim(env: &Env) -> PathBuf {
    let v = env.path("victim");
    std::fs::create_dir_all(v.join("deep/er")).unwrap();
    std::fs::write(v.join("file"), b"precious").unwrap();
    std::fs::write(v.join("deep/er/notes"), b"also precious").unwrap();
    std::fs::write(env.path("victim2"), b"a lone file").unwrap();
    v
}

fn fifo(path: &Path) {
    assert!(std::process::Command::new("mkfifo").arg(path).status().unwrap().success(), "{}", path.display());
}

fn the_epoch_dir(env: &Env) -> String {
    let blob = common::rel_files(&env.vault).into_iter().find(|f| f.starts_with("blob/")).unwrap();
    blob.rsplit_once('/').unwrap().0.to_string()
}

/// Issue 12, item 1: `gc` and `epoch destroy` followed planted links and deleted the user's files
/// outside the vault. Now nothing outside changes, and `doctor` names every planted entry.
#[test]
fn regression_1_gc_and_epoch_destroy_never_delete_outside_the_vault() {
    let env = Env::new();
    env.init();
    env.set("db/password", b"v1");
    let victim = victim(&env);
    let outside = tree(env.tmp.path().join("victim").as_path());
    let epoch_dir = the_epoch_dir(&env);
    std::fs::create_dir(env.vault.join("probe")).unwrap();
    symlink("../../victim", env.vault.join("probe/0123456789abcdef0123456789abcdef")).unwrap();
    symlink("../../../victim2", env.vault.join(format!("{epoch_dir}/00112233445566778899aabbccddeeff")))
        .unwrap();
    symlink(&victim, env.vault.join(format!("{epoch_dir}/ffeeddccbbaa99887766554433221100"))).unwrap();
    let out = env.run_pw(&["gc", "--grace", "0s"], b"").ok().text();
    assert!(out.contains("left alone: 3 entries"), "{out}");
    env.run_pw(&["epoch", "destroy", "1"], b"").ok();
    assert_eq!(tree(&victim), outside, "files outside the vault changed");
    assert_eq!(std::fs::read(env.path("victim2")).unwrap(), b"a lone file");
    assert_eq!(env.get("db/password"), b"v1");
    let out = env.run(&["doctor"], b"").ok().text();
    assert!(out.contains("probe/0123456789abcdef0123456789abcdef: symbolic link"), "{out}");
    assert!(out.contains("00112233445566778899aabbccddeeff: symbolic link"), "{out}");
    // A link where a whole directory of objects belongs stops every command that needs it,
    // with the entry named (exit 5), and is never followed.
    std::fs::remove_dir_all(env.vault.join("probe")).unwrap();
    symlink("../victim", env.vault.join("probe")).unwrap();
    let out = env.run_pw(&["gc", "--grace", "0s"], b"").expect(5);
    assert!(
        out.stderr.contains("foreign entry in the vault directory: probe is a symbolic link"),
        "{}",
        out.stderr
    );
    assert_eq!(tree(&victim), outside, "files outside the vault changed");
}

/// The hostile directory: links (to files and directories, relative and absolute), FIFOs,
/// sockets, an oversized sparse file, unparsable names and huge sequence numbers in every folder
/// of a vault; every command either works or names the foreign entry, within a deadline, and
/// nothing outside the vault changes.
#[test]
fn hostile_directory_every_command_works_or_reports_and_nothing_outside_changes() {
    let env = Env::new();
    env.init();
    env.set("db/password", b"v1");
    env.set("api/token", b"t1");
    let victim = victim(&env);
    let outside = tree(&victim);
    let epoch_dir = the_epoch_dir(&env);
    let _socket;
    {
        let v = &env.vault;
        for dir in ["log", "audit", "keyfile", "epoch", "snap", &epoch_dir, "probe"] {
            std::fs::create_dir_all(v.join(dir)).unwrap();
            symlink("../../victim/file", v.join(dir).join("rel-file-link")).unwrap();
            symlink(&victim, v.join(dir).join("abs-dir-link")).unwrap();
            fifo(&v.join(dir).join("a-fifo"));
            std::fs::write(v.join(dir).join("not a name"), b"x").unwrap();
        }
        // Links and special files named exactly like objects tresor would read or delete.
        symlink(victim.join("file"), v.join("log/99999999999999999999")).unwrap();
        symlink(victim.join("file"), v.join("audit/18446744073709551615")).unwrap();
        fifo(&v.join("snap/00000000000000000099-00000-00001"));
        symlink(&victim, v.join(format!("{epoch_dir}/00112233445566778899aabbccddeeff"))).unwrap();
        symlink("../victim2", v.join("probe/0123456789abcdef0123456789abcdef")).unwrap();
        _socket = std::os::unix::net::UnixListener::bind(v.join("epoch/0000000077")).unwrap();
        // A sparse "blob" far larger than any object may be.
        let sparse =
            std::fs::File::create(v.join(format!("{epoch_dir}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"))).unwrap();
        sparse.set_len(3 << 30).unwrap();
        symlink("/", v.join("root-link")).unwrap();
        std::fs::create_dir_all(v.join("log/nested/deeper/still")).unwrap();
    }
    let backup = env.path("backup.tresor");
    let backup_arg = backup.to_str().unwrap().to_string();
    let restore = env.path("restore");
    let restore_arg = restore.to_str().unwrap().to_string();
    let runs: Vec<(Vec<&str>, &[u8])> = vec![
        (vec!["get", "db/password"], b""),
        (vec!["list"], b""),
        (vec!["set", "db/password"], b"v2"),
        (vec!["status"], b""),
        (vec!["audit", "verify"], b""),
        (vec!["export", "--out", &backup_arg], b""),
        (vec!["gc", "--grace", "0s"], b""),
        (vec!["epoch", "rotate"], b""),
        (vec!["epoch", "destroy", "1"], b""),
        (vec!["doctor"], b""),
    ];
    for (args, stdin) in runs {
        let started = Instant::now();
        let out = if args[0] == "doctor" { env.run(&args, stdin) } else { env.run_pw(&args, stdin) };
        assert!(started.elapsed() < DEADLINE, "{args:?} took {:?}", started.elapsed());
        assert_eq!(out.code, 0, "{args:?} failed: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
    // And a re-key, among all of it: the planted entries stay where they are, untouched.
    let started = Instant::now();
    let out = common::run(
        env.cmd()
            .args(["--password-stdin", "rekey", "--new-password-stdin", "--no-recovery-phrase"])
            .args(KDF),
        format!("{PASSWORD}\nthe new password 2\n").as_bytes(),
    )
    .ok();
    assert!(started.elapsed() < DEADLINE, "rekey took {:?}", started.elapsed());
    assert!(out.stderr.contains("root era 2 replaces era 1"), "{}", out.stderr);
    assert_eq!(env.run_pw_as("the new password 2", &["get", "db/password"], b"").ok().stdout, b"v2");
    assert_eq!(env.run_pw_as("the new password 2", &["get", "api/token"], b"").ok().stdout, b"t1");
    // The backup holds the vault's objects only, and imports elsewhere.
    env.run_pw(&["--vault", &restore_arg, "import", &backup_arg], b"").ok();
    let imported = common::rel_files(&restore);
    assert!(
        imported.iter().all(|n| !n.contains("link") && !n.contains("fifo") && !n.contains(' ')),
        "{imported:?}"
    );
    let doctor = env.run(&["doctor"], b"").ok().text();
    for planted in [
        "root-link: symbolic link",
        "log/a-fifo: FIFO",
        "epoch/0000000077: socket",
        "log/nested/deeper: directory nested too deep",
    ] {
        assert!(doctor.contains(planted), "doctor does not name {planted}:\n{doctor}");
    }
    // The oversized sparse blob is not a referenced object: gc took it (it is inside the vault),
    // or it is still there; either way it was never read whole.
    assert_eq!(tree(&victim), outside, "files outside the vault changed");
    assert_eq!(std::fs::read(env.path("victim2")).unwrap(), b"a lone file");
    // A FIFO where the next commit would go is named, not waited on.
    let era_dir = env.vault.join("root/0000000002");
    fifo(&era_dir.join("log").join(next_commit(&era_dir)));
    let started = Instant::now();
    let out = env.run_pw_as("the new password 2", &["get", "db/password"], b"").expect(5);
    assert!(started.elapsed() < DEADLINE);
    assert!(out.stderr.contains("is a FIFO, not a regular file"), "{}", out.stderr);
}

/// The name of the commit after the newest one in `vault`.
fn next_commit(vault: &Path) -> String {
    let newest = common::rel_files(vault)
        .into_iter()
        .filter_map(|n| n.strip_prefix("log/").and_then(|s| s.parse::<u64>().ok()).filter(|s| *s < 1 << 40))
        .max()
        .unwrap();
    format!("{:020}", newest + 1)
}

/// Issue 12, item 7: objects were world-readable when the vault directory already existed.
#[test]
fn regression_7_objects_private_whatever_the_umask_and_an_open_directory_is_reported() {
    let env = Env::new();
    std::fs::create_dir(&env.vault).unwrap();
    std::fs::set_permissions(&env.vault, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The binary inherits the umask of the shell that starts it.
    let mut sh = env.std_cmd("sh");
    sh.arg("-c")
        .arg(format!("umask 000; exec '{}' \"$@\"", common::bin().display()))
        .arg("tresor")
        .arg("--password-stdin")
        .args([&["init"], &KDF[..]].concat());
    let out = common::run(&mut assert_cmd::Command::from_std(sh), format!("{PASSWORD}\n").as_bytes()).ok();
    assert!(out.stderr.contains("accessible to other users (mode 755)"), "{}", out.stderr);
    assert!(out.stderr.contains("chmod 700"), "{}", out.stderr);
    for entry in common::files_under(&env.vault) {
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", entry.display());
        let dir = entry.parent().unwrap();
        if dir != env.vault {
            assert_eq!(
                std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
                0o700,
                "{}",
                dir.display()
            );
        }
    }
    let doctor = env.run(&["doctor"], b"").ok().text();
    assert!(doctor.contains("permissions: the vault directory"), "{doctor}");
}

/// A vault made where another one had been, then `trust forget`: what this machine had seen of
/// the older vault stayed, and named the location as the older vault's once the pin was gone —
/// exit 13, with a hint to run the very command that had just been run (found by review).
#[test]
fn regression_trust_forget_brought_back_the_vault_that_was_there_before() {
    let env = Env::new();
    env.init();
    env.set("a", b"old vault");
    std::fs::rename(&env.vault, env.path("old")).unwrap();
    env.init();
    env.set("a", b"new vault");
    env.run(&["trust", "forget"], b"").ok();
    let out = env.run_pw(&["get", "a"], b"").ok();
    assert_eq!(out.stdout, b"new vault");
    assert!(out.stderr.contains("first use of the vault"), "{}", out.stderr);
}

/// Issue 12, item 2: another vault opened with the same password at a known location was read
/// without a word. It is refused (exit 13) until the location is re-trusted.
#[test]
fn regression_2_a_swapped_vault_is_refused_until_re_trusted() {
    let env = Env::new();
    env.init();
    env.set("prod/db", b"prod secret");
    let staging = env.path("staging");
    let staging_arg = staging.to_str().unwrap();
    env.run_pw(&[&["--vault", staging_arg, "init"], &KDF[..]].concat(), b"").ok();
    env.run_pw(&["--vault", staging_arg, "set", "prod/db"], b"staging secret").ok();
    std::fs::rename(&env.vault, env.path("prod-away")).unwrap();
    std::fs::rename(&staging, &env.vault).unwrap();
    let out = env.run_pw(&["get", "prod/db"], b"").expect(13);
    assert!(out.stderr.contains("another vault is at"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    env.run(&["trust", "forget"], b"").ok();
    let out = env.run_pw(&["get", "prod/db"], b"").ok();
    assert_eq!(out.stdout, b"staging secret");
    assert!(out.stderr.contains("first use of the vault"), "{}", out.stderr);
    // Said once.
    let out = env.run_pw(&["get", "prod/db"], b"").ok();
    assert!(!out.stderr.contains("first use"), "{}", out.stderr);
    // A machine that saw the vault before location pins existed (trust state, no pin) still
    // refuses the swap.
    for entry in std::fs::read_dir(&env.state)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).into_iter().flatten())
    {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_str().unwrap().starts_with("location-") {
            std::fs::remove_file(path).unwrap();
        }
    }
    std::fs::rename(&env.vault, &staging).unwrap();
    std::fs::rename(env.path("prod-away"), &env.vault).unwrap();
    let out = env.run_pw(&["get", "prod/db"], b"").expect(13);
    assert!(out.stderr.contains("another vault is at"), "{}", out.stderr);
}

/// Issue 12, item 5: one planted `epoch/4294967295` switched rotation off. Numbers now come from
/// the log; and an automatic rotation that fails is visible on stderr and in `status`.
#[test]
fn regression_5_planted_epoch_names_do_not_stop_rotation_and_failures_are_visible() {
    let env = Env::new();
    env.init();
    env.set("a", b"1");
    std::fs::write(env.vault.join("epoch/4294967295"), [0u8; 104]).unwrap();
    let out = env.run_pw(&["epoch", "rotate"], b"").ok();
    assert!(out.text().contains('2') || out.stderr.contains('2'), "{} {}", out.text(), out.stderr);
    // Epoch numbers 3.. all taken by planted objects: the policy rotation cannot run, and says so.
    for n in 3..=80u32 {
        std::fs::write(env.vault.join(format!("epoch/{n:010}")), [0u8; 104]).unwrap();
    }
    // A policy already due. The CLI refuses periods under an hour, so it is set in process, as a
    // policy an hour old would be.
    rotation_policy_in_process(&env, Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(20));
    let out = env.run_pw(&["set", "b"], b"2").ok();
    assert!(out.stderr.contains("automatic epoch rotation failed"), "{}", out.stderr);
    assert_eq!(env.get("b"), b"2", "the write went on in the current epoch");
    let audit = env.run_pw(&["audit"], b"").ok().text();
    assert!(
        audit.lines().any(|l| l.contains("epoch rotate") && l.contains("failed") && l.contains("by policy")),
        "{audit}"
    );
}

/// Issue 12, item 8: credentials in an endpoint URL reached error messages.
#[test]
fn regression_8_credentials_in_an_endpoint_url_are_refused_and_never_shown() {
    let env = Env::new();
    let out = run_s3(&env, "https://AKIAEXAMPLE:hunter2secret@127.0.0.1:9/", &["doctor"]).expect(7);
    assert!(out.stderr.contains("user information"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2secret"), "{}", out.stderr);
    let out = run_s3_location(&env, "s3://user:hunter2secret@bucket/p", &["doctor"]).expect(7);
    assert!(!out.stderr.contains("hunter2secret"), "{}", out.stderr);
}

fn run_s3(env: &Env, endpoint: &str, args: &[&str]) -> common::Out {
    let mut cmd = env.cmd();
    cmd.env("TRESOR_VAULT", "s3://tresor-test/x").env("AWS_ENDPOINT_URL", endpoint);
    cmd.env("AWS_ACCESS_KEY_ID", "k").env("AWS_SECRET_ACCESS_KEY", "s").env("AWS_REGION", "us-east-1");
    common::run(cmd.args(args), b"")
}

fn run_s3_location(env: &Env, location: &str, args: &[&str]) -> common::Out {
    let mut cmd = env.cmd();
    cmd.env("TRESOR_VAULT", location).env("AWS_ACCESS_KEY_ID", "k").env("AWS_SECRET_ACCESS_KEY", "s");
    common::run(cmd.args(args), b"")
}

/// Trust on a new machine: a fingerprint pinned before first use refuses a root that does not
/// match (exactly as a wrong password), and pins carried by `trust export`/`import` make a
/// rollback below what the trusted machine saw detectable on the new one.
#[test]
fn trust_pinned_before_first_use_and_carried_to_a_new_machine() {
    let env = Env::new();
    env.init();
    env.set("a", b"1");
    let status = env.run_pw(&["status"], b"").ok().text();
    let fingerprint = status.lines().find_map(|l| l.strip_prefix("fingerprint: ")).unwrap();
    let fingerprint = fingerprint.split_whitespace().next().unwrap().to_string();
    let old = env.path("old-copy");
    common::copy_dir(&env.vault, &old);
    env.set("a", b"2");
    env.set("b", b"3");
    let export = env.run(&["trust", "export"], b"").ok().stdout;

    // A new machine: same vault directory, its own (empty) state.
    let new = env.new_machine();
    let wrong = "0000-0000-0000-0000-0000-0000-0000-0000";
    let out = new.run(&["trust", wrong], b"").ok();
    assert!(out.stderr.contains("pinned vault"), "{}", out.stderr);
    let out = new.run_pw(&["get", "a"], b"").expect(3);
    assert!(out.stderr.contains("authentication failed"), "{}", out.stderr);
    let out = new.run(&["trust", &fingerprint], b"").ok();
    assert!(out.stderr.contains("re-trusted"), "{}", out.stderr);
    let out = new.run_pw(&["get", "a"], b"").ok();
    assert_eq!(out.stdout, b"2");
    assert!(!out.stderr.contains("first use"), "a pinned fingerprint is no first use: {}", out.stderr);

    // Another new machine takes the first one's pins, then the store rolls back.
    let third = env.new_machine();
    let file = third.path("trust.json");
    std::fs::write(&file, &export).unwrap();
    third.run(&["trust", "import", file.to_str().unwrap()], b"").ok();
    // From stdin too (`-`): it used to deadlock on the stdin lock the CLI already held.
    let out = env.new_machine().run(&["trust", "import", "-"], &export).ok();
    assert!(out.stderr.contains("pinned vault"), "{}", out.stderr);
    std::fs::remove_dir_all(&env.vault).unwrap();
    common::copy_dir(&old, &env.vault);
    let out = third.run_pw(&["get", "a"], b"").expect(5);
    assert!(out.stderr.contains("rollback detected"), "{}", out.stderr);
    // A machine with neither state nor pins cannot tell (documented in SECURITY.md).
    let fourth = env.new_machine();
    assert_eq!(fourth.run_pw(&["get", "a"], b"").ok().stdout, b"1");
    // TRESOR_VAULT_FINGERPRINT binds the agent's unlock too.
    let fifth = env.new_machine();
    let _agent = fifth.agent_guard();
    let out = common::run(
        fifth
            .cmd()
            .env("TRESOR_VAULT_FINGERPRINT", wrong)
            .env("TRESOR_PASSWORD_FILE", fifth.password_file(PASSWORD))
            .arg("unlock"),
        b"",
    )
    .expect(3);
    assert!(out.stderr.contains("authentication failed"), "{}", out.stderr);
    // TRESOR_VAULT_FINGERPRINT that does not parse is a usage mistake, not a silent pass.
    let out =
        common::run(fourth.cmd().env("TRESOR_VAULT_FINGERPRINT", "nope").args(["status"]), b"").expect(7);
    assert!(out.stderr.contains("TRESOR_VAULT_FINGERPRINT"), "{}", out.stderr);
}

/// Issue 12, item 6: `audit verify` never read value blobs, so flipped or deleted ones still
/// verified. It authenticates every referenced value and names each damaged path and version.
#[test]
fn regression_6_audit_verify_reads_every_value_and_names_the_damaged_ones() {
    let env = Env::new();
    env.init();
    for (path, value) in [("a", "1"), ("b", "2"), ("c", "3")] {
        env.set(path, value.as_bytes());
    }
    env.set("a", b"1 again");
    let out = env.run_pw(&["audit", "verify"], b"").ok().text();
    assert!(out.contains("values verified: 4 versions in 4 blobs"), "{out}");
    let blobs: Vec<String> =
        common::rel_files(&env.vault).into_iter().filter(|f| f.starts_with("blob/")).collect();
    assert_eq!(blobs.len(), 4);
    common::flip_byte(&env.vault.join(&blobs[0]), -5);
    std::fs::remove_file(env.vault.join(&blobs[1])).unwrap();
    let out = env.run_pw(&["audit", "verify"], b"").expect(5);
    let damaged: Vec<&str> = out.text().leak().lines().filter(|l| l.starts_with("DAMAGED ")).collect();
    assert_eq!(damaged.len(), 2, "{damaged:?}");
    assert!(damaged.iter().any(|l| l.contains("does not authenticate")), "{damaged:?}");
    assert!(damaged.iter().any(|l| l.contains("value blob is missing")), "{damaged:?}");
    assert!(out.stderr.contains("2 of 4 versions"), "{}", out.stderr);
}

/// Issue 12, item 10: `s3://b//p` and `s3://b/p` had separate trust states (and agents). One
/// location, one spelling.
#[test]
fn regression_10_s3_locations_have_one_spelling() {
    let env = Env::new();
    for spelling in
        ["s3://tresor-test//team/prod/", "s3://tresor-test/team//prod", "s3://tresor-test/team/prod"]
    {
        let out =
            common::run(env.cmd().env("TRESOR_VAULT", spelling).args(["trust", "show"]), b"").ok().text();
        assert!(out.contains("location: s3://tresor-test/team/prod\n"), "{spelling}: {out}");
    }
}

#[test]
fn regression_an_audit_record_the_store_refuses_is_exit_9_with_the_reason_and_changes_nothing() {
    let env = Env::new();
    env.init();
    env.set("a", b"one");
    let guard = env.agent_guard();
    let file = env.password_file(PASSWORD);
    for through_agent in [false, true] {
        if through_agent {
            common::run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).arg("unlock"), b"").ok();
        }
        let sealed = common::Immutable::set(env.vault.join("audit"));
        for (args, stdin) in
            [(vec!["get", "a"], &b""[..]), (vec!["set", "a"], b"two"), (vec!["rm", "a"], b"")]
        {
            let out = env.run_pw(&args, stdin).expect(9);
            assert!(out.stderr.contains("its audit record could not be written"), "{args:?}: {}", out.stderr);
            assert!(out.stderr.contains("check that the vault location is writable"), "{}", out.stderr);
            assert!(out.stdout.is_empty(), "{args:?} returned data without its audit record");
        }
        drop(sealed);
        assert_eq!(env.get("a"), b"one", "a refused write changed the vault (agent: {through_agent})");
    }
    drop(guard);
    assert!(env.run_pw(&["audit", "verify"], b"").ok().text().contains("verified"));
}

/// Sets the vault's rotation policy to `every` through the library (with the test password and
/// the environment's trust state), below the minimum the CLI accepts.
fn rotation_policy_in_process(env: &Env, every: Duration) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = tresor::Store::open(&env.vault.display().to_string(), false).unwrap();
        let opts = tresor::Options::new(env.state.join("trust"), "test");
        let vault =
            tresor::Vault::unlock(store, &tresor::Password::from(PASSWORD.to_string()), opts).await.unwrap();
        vault.set_rotation_policy(Some(every)).await.unwrap();
        vault.lock("test done").await.unwrap();
    });
}

/// A small tmpfs mounted at a directory while it lives (tests run as root in CI, as for
/// [`common::Immutable`]), lazily unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    const PAGE: u64 = 4096;

    fn mount(dir: PathBuf, size: &str) -> SmallFs {
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=700"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs at {} failed: the tests run as root in CI", dir.display());
        SmallFs(dir)
    }

    /// Fills the file system but for `pages` free pages; returns the filler file.
    fn fill_leaving(&self, pages: u64) -> PathBuf {
        let filler = self.0.join("filler");
        let st = rustix::fs::statvfs(&self.0).unwrap();
        let free = st.f_bavail * st.f_frsize;
        let size = free.checked_sub(pages * Self::PAGE).expect("the file system is fuller than asked for");
        let file = std::fs::File::create(&filler).unwrap();
        // Written, not truncated to size: a sparse file would take no pages.
        let chunk = vec![0u8; 1 << 16];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            std::io::Write::write_all(&mut &file, &chunk[..n]).unwrap();
            left -= n as u64;
        }
        let st = rustix::fs::statvfs(&self.0).unwrap();
        assert_eq!(st.f_bavail * st.f_frsize, pages * Self::PAGE, "free space after filling");
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_each_step_of_a_write_clearly_and_loses_nothing() {
    // The vault on a 2 MiB tmpfs; the trust state where it always is. A `set` is tried with 0, 1,
    // 2... free pages, so the file system fills up at each of its steps in turn (the open's
    // probe, the value's blob, the audit entry, the commit): each attempt either lands whole or
    // is refused with the reason and advice, and nothing of it shows afterwards.
    let mut env = Env::new();
    let fs = SmallFs::mount(env.path("fs"), "2m");
    env.vault = fs.0.join("vault");
    env.init();
    env.set("kept", b"one");
    let guard = env.agent_guard();
    let file = env.password_file(PASSWORD);
    let mut outcomes = Vec::new();
    for through_agent in [false, true] {
        if through_agent {
            common::run(env.cmd().env("TRESOR_PASSWORD_FILE", &file).arg("unlock"), b"").ok();
            // A read on a full disk: refused, as its audit record cannot be written.
            let filler = fs.fill_leaving(0);
            let out = env.run(&["get", "kept"], b"").expect(9);
            assert!(out.stdout.is_empty(), "a read returned data without its audit record");
            assert!(out.stderr.contains("the filesystem holding the vault is full"), "{}", out.stderr);
            std::fs::remove_file(filler).unwrap();
        }
        for pages in 0..8 {
            let path = format!("p/{through_agent}-{pages}");
            let value = format!("canary-{}", common::random_hex(8));
            let filler = fs.fill_leaving(pages);
            let out = env.run_pw(&["set", &path], value.as_bytes());
            std::fs::remove_file(filler).unwrap();
            assert!(!out.stderr.contains(&value) && !out.text().contains(&value), "{}", out.stderr);
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
            if out.code == 0 {
                assert_eq!(env.get(&path), value.as_bytes(), "{path}: acknowledged, then not there");
            } else {
                assert!(matches!(out.code, 1 | 9), "{path}: exit {}: {}", out.code, out.stderr);
                assert!(out.stderr.contains("No space left on device"), "{path}: {}", out.stderr);
                assert!(
                    out.stderr.contains("hint:")
                        && out.stderr.contains("the filesystem holding the vault is full"),
                    "{path}: {}",
                    out.stderr
                );
                // Refused means not there: no version, not listed.
                env.run_pw(&["get", &path], b"").expect(4);
                assert!(!env.run_pw(&["list"], b"").ok().text().contains(&path), "{path} is listed");
            }
            let staged: Vec<String> = env
                .vault_files()
                .into_iter()
                .filter(|f| f.rsplit('/').next().is_some_and(|n| n.starts_with(".tmp")))
                .collect();
            assert!(staged.is_empty(), "{path}: staging files left behind: {staged:?}");
            let step = out.stderr.lines().next().unwrap_or("").to_string();
            outcomes.push((through_agent, pages, out.code, step));
        }
        assert_eq!(env.get("kept"), b"one", "a refused write changed the vault (agent: {through_agent})");
        assert!(env.run_pw(&["audit", "verify"], b"").ok().text().contains("verified"));
    }
    drop(guard);
    // The sweep met the disk filling up at the audit entry (exit 9), at the commit after the blob
    // and the audit entry were written (exit 1, naming the log), and writes that landed.
    let seen = |code: i32, step: &str| outcomes.iter().any(|(_, _, c, s)| *c == code && s.contains(step));
    assert!(seen(9, "audit record could not be written"), "{outcomes:#?}");
    assert!(seen(1, "cannot write log/"), "{outcomes:#?}");
    assert!(outcomes.iter().filter(|(agent, _, c, _)| *agent && *c == 0).count() >= 3, "{outcomes:#?}");
    assert!(outcomes.iter().filter(|(agent, _, c, _)| !*agent && *c == 0).count() >= 3, "{outcomes:#?}");
}

/// Found by review: paths, actors and audit details were printed as they were, so a path with
/// a right-to-left override read as another name (`prod/\u{202E}txt.terces` shows as
/// `prod/secret.txt`), and an escape sequence in one (a process name, a path) reached the
/// terminal. The human listings escape them now; `--json` keeps them as they are.
#[test]
fn regression_a_path_with_a_bidi_override_passed_for_another_in_listings() {
    let env = Env::new();
    env.init();
    let spoof = "prod/\u{202E}txt.terces";
    env.set(spoof, b"v");
    env.set("prod/a\u{200B}b", b"w");
    let listed = env.run_pw(&["list"], b"").ok().text();
    assert!(listed.contains("prod/\\u{202e}txt.terces"), "{listed}");
    assert!(listed.contains("prod/a\\u{200b}b"), "{listed}");
    assert!(!listed.contains('\u{202E}') && !listed.contains('\u{200B}'), "{listed}");
    for args in [&["list", "--tree"][..], &["find", "terces"][..], &["audit"][..]] {
        let out = env.run_pw(args, b"").ok().text();
        assert!(!out.contains('\u{202E}'), "{args:?}: {out}");
    }
    let json = env.run_pw(&["list", "--json"], b"").ok().text();
    assert!(json.contains("\\u202e") || json.contains('\u{202E}'), "--json keeps the path: {json}");
    // The escaped name is what it is: the real path still reads.
    assert_eq!(env.get(spoof), b"v");
}
