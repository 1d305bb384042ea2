//! T15 (kill -9 part): `kill -9` of the process holding a commit, on a local directory and on S3. Two clients
//! send `tresor set` after `tresor set` to one agent (the process that writes the blob, the audit
//! record and the commit, so it is almost always in the middle of a write) and log every
//! acknowledged write; the test sends the agent SIGKILL at a random moment, five times. After
//! each kill the vault must unlock again; every acknowledged write must read back at the version
//! its writer was told, with its value; every listed secret must read (nothing half-visible), with
//! either an acknowledged value or the value of a write in flight when the agent died; histories
//! stay 1..=n; `tresor audit verify` passes. Each reopening checks that round's writes; the end
//! checks everything once more, and a machine without trust state verifies the result. Two more
//! clients read all along, so kills also land in a batched audit entry of reads: every read that
//! was answered has its record in the trail afterwards.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, Out, PASSWORD};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const KILLS: usize = 5;
/// Clients writing through the agent at once, so that it is almost always in a write when killed.
const CLIENTS: usize = 2;
/// Every third write updates this secret, so kills also land on a secret with history.
const HOT: &str = "hot";
/// Clients reading [`HOT`] all along through the same agent.
const READERS: usize = 2;

/// Reads [`HOT`] until the agent is gone: how many reads were answered.
fn read_until_failure(env: &Env) -> usize {
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        match env.run(&["get", HOT], b"").code {
            0 => answered += 1,
            // Not written yet.
            4 => std::thread::sleep(Duration::from_millis(5)),
            _ => break,
        }
    }
    answered
}

/// A write the writer attempted: acknowledged with a version, or in flight when the agent died.
#[derive(Clone, Debug)]
struct Write {
    path: String,
    value: String,
    version: Option<u64>,
}

/// The version `tresor set` reported (`PATH: version N` on stderr).
fn reported_version(out: &Out, path: &str) -> Option<u64> {
    let prefix = format!("{path}: version ");
    out.stderr.lines().find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

/// A random number below `n` (from /dev/urandom).
fn random_below(n: u64) -> u64 {
    u64::from_str_radix(&common::random_hex(4), 16).unwrap() % n
}

/// Client `client` writes through the agent until a write fails (the agent is gone), logging each
/// acknowledged write to `log`: (the acknowledged writes, the write that failed, its output).
fn write_until_failure(
    env: &Env,
    round: usize,
    client: usize,
    log: &Path,
    acked: &AtomicUsize,
) -> (Vec<Write>, Write, Out) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut done = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    for i in 0.. {
        let path = if i % 3 == 2 { HOT.to_string() } else { format!("r{round}/{client}-{i}") };
        let value = format!("round {round} client {client} write {i}");
        let out = env.run(&["set", &path], value.as_bytes());
        match (out.code, reported_version(&out, &path)) {
            (0, Some(version)) if Instant::now() < deadline => {
                writeln!(file, "{path}\t{version}\t{value}").unwrap();
                file.flush().unwrap();
                done.push(Write { path, value, version: Some(version) });
                acked.fetch_add(1, Ordering::SeqCst);
            }
            _ => return (done, Write { path, value, version: None }, out),
        }
    }
    unreachable!()
}

/// Checks the vault through `env`'s (fresh) agent: the acknowledged writes `acked[from..]` read
/// back, and so does every version of every secret listed under `prefixes`, each holding a write
/// that was acknowledged at that version or was in flight (`committed`: how many of those). Problems
/// found, as text; a lost acknowledged write starts with "lost".
fn check(
    env: &Env,
    acked: &[Write],
    from: usize,
    in_flight: &[Write],
    prefixes: &[&str],
    committed: &mut usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    *committed = 0;
    for w in &acked[from..] {
        let version = w.version.unwrap();
        let out = env.run(&["get", "--version", &version.to_string(), &w.path], b"");
        if out.code != 0 || out.stdout != w.value.as_bytes() {
            problems.push(format!(
                "lost: acknowledged {} version {version} = {:?}: exit {} {:?} {}",
                w.path,
                w.value,
                out.code,
                out.text(),
                out.stderr.trim()
            ));
        }
    }
    // Every listed secret reads, every version of its history reads, and what it holds was written
    // by someone: an acknowledged write at that version, or a write that was in flight.
    let listed: Vec<Value> = prefixes
        .iter()
        .flat_map(|prefix| {
            let out = env.run(&["list", "--json", prefix], b"").ok();
            serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
        })
        .collect();
    for entry in &listed {
        let path = entry["path"].as_str().unwrap();
        let history: Value =
            serde_json::from_slice(&env.run(&["history", "--json", path], b"").ok().stdout).unwrap();
        let versions: Vec<u64> =
            history.as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
        let n = versions.len() as u64;
        if versions != (1..=n).collect::<Vec<u64>>() || entry["version"].as_u64() != Some(n) {
            problems.push(format!("{path}: history {versions:?}, listed at version {}", entry["version"]));
        }
        for version in versions {
            let out = env.run(&["get", "--version", &version.to_string(), path], b"");
            let text = out.text();
            let acknowledged =
                acked.iter().any(|w| w.path == path && w.version == Some(version) && w.value == text);
            let unacknowledged = in_flight.iter().any(|w| w.path == path && w.value == text);
            *committed += usize::from(unacknowledged);
            if out.code != 0 || !(acknowledged || unacknowledged) {
                problems.push(format!(
                    "{path} version {version}: exit {} {text:?} {}: neither acknowledged there nor in flight",
                    out.code,
                    out.stderr.trim()
                ));
            }
        }
    }
    problems
}

fn kill_rounds(env: &Env, label: &str) {
    let started = Instant::now();
    env.init();
    let password_file = env.password_file(PASSWORD);
    let _guard = env.agent_guard();
    let (mut acked, mut in_flight) = (Vec::new(), Vec::new());
    let (mut reopened, mut verified, mut mid_request, mut committed) = (0, 0, 0, 0);
    let mut delays = Vec::new();
    let mut problems = Vec::new();
    let mut reads_answered = 0;
    env.unlock_with_file(&password_file, &["--idle-timeout", "10m"]).ok();
    for round in 0..KILLS {
        let pids = env.agent_pids();
        assert_eq!(pids.len(), 1, "round {round}: expected one agent, found {pids:?}");
        let count = AtomicUsize::new(0);
        let (ended, read) = std::thread::scope(|s| {
            let readers: Vec<_> = (0..READERS).map(|_| s.spawn(|| read_until_failure(env))).collect();
            let writers: Vec<_> = (0..CLIENTS)
                .map(|client| {
                    let (log, count) = (env.path(&format!("client-{client}.log")), &count);
                    s.spawn(move || write_until_failure(env, round, client, &log, count))
                })
                .collect();
            // A few acknowledged writes first, then the kill at a random moment of the stream.
            assert!(
                common::wait_for(Duration::from_secs(120), || count.load(Ordering::SeqCst) > round
                    || writers.iter().any(|w| w.is_finished())),
                "round {round}: the writers made no progress"
            );
            let delay = Duration::from_millis(random_below(500));
            std::thread::sleep(delay);
            delays.push(delay.as_millis());
            assert!(common::kill_hard(pids[0]), "round {round}: the agent survived SIGKILL");
            let ended = writers.into_iter().map(|w| w.join().unwrap()).collect::<Vec<_>>();
            (ended, readers.into_iter().map(|r| r.join().unwrap()).sum::<usize>())
        });
        reads_answered += read;
        // The writes in flight were not acknowledged: the agent died under them (exit 1), or they
        // found no agent and no password (exit 7).
        let mut under_the_kill = false;
        let from = acked.len();
        for (client, (done, failed, out)) in ended.into_iter().enumerate() {
            match out.code {
                1 if out.stderr.contains("the agent failed") => under_the_kill = true,
                7 if out.stderr.contains("no password given") => {}
                code => panic!(
                    "round {round} client {client}: the write in flight ended with exit {code}: {}",
                    out.stderr
                ),
            }
            acked.extend(done);
            in_flight.push(failed);
        }
        mid_request += usize::from(under_the_kill);

        // Reopen: a fresh agent unlocks, everything acknowledged is there, the chains verify.
        let out = env.unlock_with_file(&password_file, &["--idle-timeout", "10m"]);
        if out.code != 0 {
            problems
                .push(format!("round {round}: unlock after the kill exited {}: {}", out.code, out.stderr));
            break;
        }
        reopened += 1;
        // This round's writes here; everything once more at the end.
        let found = check(env, &acked, from, &in_flight, &[&format!("r{round}/"), HOT], &mut committed);
        problems.extend(found.into_iter().map(|p| format!("round {round}: {p}")));
        let out = env.run(&["audit", "verify"], b"");
        if out.code == 0 && out.text().contains("verified") {
            verified += 1;
        } else {
            problems.push(format!(
                "round {round}: audit verify exited {}: {} {}",
                out.code,
                out.text(),
                out.stderr
            ));
        }
    }
    if reopened == KILLS {
        let found = check(env, &acked, 0, &in_flight, &[""], &mut committed);
        problems.extend(found.into_iter().map(|p| format!("at the end: {p}")));
    }
    // Every read that was answered before a kill has its audit record (written before the value
    // went out): the trail holds at least as many answered reads of HOT as the readers counted.
    let audit: Value = serde_json::from_slice(&env.run(&["audit", "--json"], b"").ok().stdout).unwrap();
    let recorded = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["op"] == "get" && r["path"] == HOT && r["outcome"] == "ok")
        .count();
    if recorded < reads_answered {
        problems.push(format!("{reads_answered} reads answered, only {recorded} in the audit trail"));
    }
    env.run(&["lock"], b"").ok();
    // The log on disk is the writer's word: it matches what was checked.
    let logged: usize = (0..CLIENTS)
        .map(|c| {
            std::fs::read_to_string(env.path(&format!("client-{c}.log"))).unwrap_or_default().lines().count()
        })
        .sum();
    assert_eq!(logged, acked.len());
    // Another machine (no trust state) opens and verifies the result too.
    let mut other = env.sibling();
    other.state = other.path("other-state");
    let out = other.run_pw(&["audit", "verify"], b"");
    if out.code != 0 {
        problems.push(format!("fresh machine: audit verify exited {}: {}", out.code, out.stderr));
    }
    let lost = problems.iter().filter(|p| p.contains("lost: ")).count();
    println!(
        "{label}: {KILLS} kills ({}): vault reopened {reopened}/{KILLS}, acknowledged writes lost {lost} of {}, \
         audit verify {verified}/{KILLS}, kills mid-request {mid_request}/{KILLS}, in-flight writes committed \
         {committed}/{}, reads answered {reads_answered} all audited (delays {delays:?} ms, {:.1} s)",
        if label.contains("s3") { "S3" } else { "local" },
        acked.len(),
        in_flight.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(problems.is_empty(), "{} problems after kill -9: {problems:#?}", problems.len());
}

#[test]
fn t15_kill_9_of_the_writing_agent_on_a_directory() {
    let env = Env::new();
    kill_rounds(&env, "T15-kill");
}

#[test]
fn t15_kill_9_of_the_writing_agent_on_s3() {
    let Some(location) = common::s3_location("t15-kill") else { return };
    let mut env = Env::new();
    env.vault = location.into();
    kill_rounds(&env, "T15-s3-kill");
}
