//! T15 through the real binary: four writer processes share one vault — a local directory, then an
//! S3 bucket — and make 250 acknowledged writes each, started together. Each writer is its own
//! `tresor` agent (its own `tresor unlock`, socket directory and vault handle: the process that
//! holds the commit), driven by a thread of this test running one `tresor` command after another;
//! on the local directory every 25th write of each writer is a `--no-agent` command instead, which
//! unlocks and replays the log while the others commit. The writes mix:
//!
//! - each writer's own secrets (`w<N>/s<i>`, five versions each),
//! - shared secrets all four write with plain `set` (`shared/<i>`),
//! - one shared counter, incremented with `history --json` + `get --version` + `set --cas`; exit
//!   code 6 means another writer got there first: read again and retry.
//!
//! Each writer logs every acknowledged write (the version `set` reported) to its own log file.
//! Afterwards the logs are checked against the vault: every secret's history is versions 1..=n
//! without gap or duplicate, n being the number of acknowledged writes to it; every acknowledged
//! write is at the version its writer was told, with its value; each writer's writes to a secret
//! are in its program order; counter version k holds k (no lost update), so its value is the number
//! of successful increments; every failed check-and-set was exit code 6 and is in the audit trail
//! as a failed `set`; nothing else failed; `tresor audit verify` passes.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, Out, PASSWORD};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::Instant;

const WRITERS: usize = 4;
const WRITES: usize = 250;
/// Each writer's own secrets; 100 own writes give each five versions.
const OWN_SECRETS: usize = 20;
/// Secrets every writer writes with plain `set`.
const SHARED_SECRETS: usize = 4;
/// The counter every writer increments with `set --cas`.
const COUNTER: &str = "cas/counter";
/// Attempts at one increment before the writer gives up (each failure is another's success).
const MAX_CAS_ATTEMPTS: usize = 1000;

/// One acknowledged write, as its writer logged it.
#[derive(Clone, Debug)]
struct Ack {
    writer: usize,
    path: String,
    version: u64,
    value: String,
}

/// What one writer counted besides its log.
#[derive(Debug, Default)]
struct Tally {
    increments: u64,
    conflicts: u64,
    failures: Vec<String>,
}

/// Where the vault of a run lives.
enum Place {
    Local,
    S3(String),
}

/// The version `tresor set` reported (`PATH: version N` on stderr).
fn reported_version(out: &Out, path: &str) -> Option<u64> {
    let prefix = format!("{path}: version ");
    out.stderr.lines().find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

/// The current version of the counter and its value; (0, 0) before the first increment.
fn read_counter(env: &Env) -> Result<(u64, u64), String> {
    let out = env.run(&["history", "--json", COUNTER], b"");
    match out.code {
        4 => return Ok((0, 0)),
        0 => {}
        code => return Err(format!("history exited {code}: {}", out.stderr)),
    }
    let history: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("history --json: {e}"))?;
    let version = history
        .as_array()
        .and_then(|h| h.iter().find(|v| v["current"] == true))
        .and_then(|v| v["version"].as_u64())
        .ok_or_else(|| format!("no current version in {history}"))?;
    // The value of exactly that version: a newer one may have arrived since.
    let out = env.run(&["get", "--version", &version.to_string(), COUNTER], b"");
    if out.code != 0 {
        return Err(format!("get --version {version} exited {}: {}", out.code, out.stderr));
    }
    let value = out.text().parse().map_err(|e| format!("counter value {:?}: {e}", out.text()))?;
    Ok((version, value))
}

/// One increment of the counter, retried on check-and-set conflicts: (version, value) written.
fn increment(env: &Env, tally: &mut Tally) -> Result<(u64, String), String> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (version, value) = read_counter(env)?;
        let next = (value + 1).to_string();
        let out = env.run(&["set", "--cas", &version.to_string(), COUNTER], next.as_bytes());
        match out.code {
            0 => {
                let written = reported_version(&out, COUNTER)
                    .ok_or_else(|| format!("no version in {:?}", out.stderr))?;
                tally.increments += 1;
                return Ok((written, next));
            }
            6 if out.stderr.contains("check-and-set failed") => tally.conflicts += 1,
            code => return Err(format!("set --cas {version} exited {code}: {}", out.stderr)),
        }
    }
    Err(format!("no increment in {MAX_CAS_ATTEMPTS} attempts"))
}

/// Writer `w`: 250 acknowledged writes (two own, two shared, one increment in every five), each
/// logged to `log` as `writer \t path \t version \t value`. Stops at the first failure.
fn writer(
    env: &Env,
    w: usize,
    log: &Path,
    password_file: &Path,
    direct_every: Option<usize>,
    start: &Barrier,
) -> Tally {
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut tally = Tally::default();
    let (mut own, mut shared) = (0, 0);
    start.wait();
    for i in 0..WRITES {
        let result = match i % 5 {
            4 => increment(env, &mut tally).map(|(version, value)| (COUNTER.to_string(), version, value)),
            kind => {
                let (path, value) = if kind % 2 == 0 {
                    own += 1;
                    (format!("w{w}/s{}", own % OWN_SECRETS), format!("w{w}-own-{own}"))
                } else {
                    shared += 1;
                    (format!("shared/{}", (shared + w) % SHARED_SECRETS), format!("w{w}-shared-{shared}"))
                };
                // Every n-th write (an own one: n is a multiple of 5) bypasses the agent.
                let direct = direct_every.is_some_and(|n| i % n == 0);
                let out = if direct {
                    common::run(
                        env.cmd().env("TRESOR_PASSWORD_FILE", password_file).args([
                            "--no-agent",
                            "set",
                            &path,
                        ]),
                        value.as_bytes(),
                    )
                } else {
                    env.run(&["set", &path], value.as_bytes())
                };
                match (out.code, reported_version(&out, &path)) {
                    (0, Some(version)) => Ok((path, version, value)),
                    (code, _) => Err(format!("set {path} (direct: {direct}) exited {code}: {}", out.stderr)),
                }
            }
        };
        match result {
            Ok((path, version, value)) => {
                writeln!(log, "{w}\t{path}\t{version}\t{value}").unwrap();
                log.flush().unwrap();
            }
            Err(e) => {
                tally.failures.push(format!("writer {w}, write {i}: {e}"));
                break;
            }
        }
    }
    tally
}

/// Every acknowledged write in the writers' logs.
fn read_logs(logs: &[PathBuf]) -> Vec<Ack> {
    let mut acks = Vec::new();
    for log in logs {
        for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 4, "malformed log line {line:?}");
            acks.push(Ack {
                writer: f[0].parse().unwrap(),
                path: f[1].to_string(),
                version: f[2].parse().unwrap(),
                value: f[3].to_string(),
            });
        }
    }
    acks
}

/// Checks one secret through `env`'s agent: its history is 1..=n, n being its acknowledged writes,
/// and every acknowledged write reads back at its version. Problems found, as text.
fn check_secret(env: &Env, path: &str, acks: &[&Ack]) -> Vec<String> {
    let mut problems = Vec::new();
    let out = env.run(&["history", "--json", path], b"");
    if out.code != 0 {
        return vec![format!("history {path} exited {}: {}", out.code, out.stderr)];
    }
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let history = history.as_array().unwrap();
    let versions: Vec<u64> = history.iter().map(|v| v["version"].as_u64().unwrap()).collect();
    let n = acks.len() as u64;
    if versions != (1..=n).collect::<Vec<u64>>() {
        problems.push(format!("{path}: history has versions {versions:?}, expected 1..={n}"));
    }
    let current: Vec<u64> =
        history.iter().filter(|v| v["current"] == true).map(|v| v["version"].as_u64().unwrap()).collect();
    if current != [n] || history.iter().any(|v| !v["deleted_ms"].is_null()) {
        problems.push(format!("{path}: current {current:?}, expected [{n}], nothing deleted"));
    }
    let mut told: Vec<u64> = acks.iter().map(|a| a.version).collect();
    told.sort_unstable();
    if told != (1..=n).collect::<Vec<u64>>() {
        problems.push(format!("{path}: writers were told versions {told:?}, expected each of 1..={n} once"));
    }
    for ack in acks {
        let out = env.run(&["get", "--version", &ack.version.to_string(), path], b"");
        if out.code != 0 || out.stdout != ack.value.as_bytes() {
            problems.push(format!(
                "{path} version {} (writer {}): expected {:?}, got exit {} {:?} {}",
                ack.version,
                ack.writer,
                ack.value,
                out.code,
                out.text(),
                out.stderr
            ));
        }
    }
    problems
}

fn t15(place: Place) {
    let started = Instant::now();
    let mut env = Env::new();
    let (label, direct_every, readers) = match &place {
        Place::Local => ("T15-cli", Some(25), WRITERS),
        // A `--no-agent` command replays the whole log: through moto, seconds each. More readers
        // at once mostly race to append their audit records there: two are fastest.
        Place::S3(location) => {
            env.vault = location.clone().into();
            ("T15-s3-cli", None, 2)
        }
    };
    env.init();
    let password_file = env.password_file(PASSWORD);
    let writers: Vec<Env> = (0..WRITERS).map(|_| env.sibling()).collect();
    let _guards: Vec<_> = writers.iter().map(Env::agent_guard).collect();
    for w in &writers {
        w.unlock_with_file(&password_file, &["--idle-timeout", "10m"]).ok();
    }
    let agents: BTreeSet<u32> = env.agent_pids().into_iter().collect();
    assert_eq!(agents.len(), WRITERS, "one agent per writer");

    // The writes, all four writers at once.
    let logs: Vec<PathBuf> = (0..WRITERS).map(|w| env.path(&format!("writer-{w}.log"))).collect();
    let start = Barrier::new(WRITERS);
    let write_started = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = writers
            .iter()
            .zip(&logs)
            .enumerate()
            .map(|(w, (writer_env, log))| {
                let (start, password_file) = (&start, &password_file);
                s.spawn(move || writer(writer_env, w, log, password_file, direct_every, start))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let write_time = write_started.elapsed();
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    assert!(failures.is_empty(), "writes failed (other than check-and-set conflicts): {failures:#?}");
    let increments: u64 = tallies.iter().map(|t| t.increments).sum();
    let conflicts: u64 = tallies.iter().map(|t| t.conflicts).sum();

    let acks = read_logs(&logs);
    let total = WRITERS * WRITES;
    assert_eq!(acks.len(), total, "every writer logged {WRITES} acknowledged writes");
    let mut by_path: BTreeMap<&str, Vec<&Ack>> = BTreeMap::new();
    for ack in &acks {
        by_path.entry(&ack.path).or_default().push(ack);
    }
    // Program order: a writer's later write to a secret got a later version.
    for (path, path_acks) in &by_path {
        for w in 0..WRITERS {
            let own: Vec<u64> = path_acks.iter().filter(|a| a.writer == w).map(|a| a.version).collect();
            assert!(
                own.windows(2).all(|p| p[0] < p[1]),
                "{path}: writer {w} got versions {own:?} out of order"
            );
        }
    }
    // No lost update: version k of the counter holds k.
    let counter = &by_path[COUNTER];
    assert_eq!(counter.len() as u64, increments);
    for ack in counter {
        assert_eq!(ack.value, ack.version.to_string(), "counter version {} holds {}", ack.version, ack.value);
    }
    // The writers really ran together: the shared secrets' versions switch between writers.
    let switches: usize = (0..SHARED_SECRETS)
        .map(|i| {
            let mut order = by_path[format!("shared/{i}").as_str()].clone();
            order.sort_by_key(|a| a.version);
            order.windows(2).filter(|p| p[0].writer != p[1].writer).count()
        })
        .sum();
    assert!(switches > 20, "the writers barely overlapped ({switches} switches): the test proves little");

    // Every secret, read back through `readers` of the agents at once, each checking its share.
    let check_started = Instant::now();
    let paths: Vec<(&str, Vec<&Ack>)> = by_path.iter().map(|(p, a)| (*p, a.clone())).collect();
    let problems: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = writers[..readers]
            .iter()
            .enumerate()
            .map(|(w, reader)| {
                let mine: Vec<&(&str, Vec<&Ack>)> = paths.iter().skip(w).step_by(readers).collect();
                s.spawn(move || {
                    mine.iter().flat_map(|(path, acks)| check_secret(reader, path, acks)).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(problems.is_empty(), "{} problems: {problems:#?}", problems.len());
    for w in &writers {
        w.run(&["lock"], b"").ok();
    }

    // A fresh unlock sees exactly these secrets, the chains verify, every conflict is on record.
    let listed: Value = serde_json::from_slice(&env.run_pw(&["list", "--json"], b"").ok().stdout).unwrap();
    let listed: BTreeMap<&str, u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["version"].as_u64().unwrap()))
        .collect();
    let expected: BTreeMap<&str, u64> = by_path.iter().map(|(p, a)| (*p, a.len() as u64)).collect();
    assert_eq!(listed, expected, "list shows exactly the secrets written, at their last version");
    let out = env.run_pw(&["audit", "verify"], b"").ok();
    assert!(out.text().contains("verified"), "{}", out.text());
    let audit: Value = serde_json::from_slice(&env.run_pw(&["audit", "--json"], b"").ok().stdout).unwrap();
    let sets: Vec<&Value> = audit.as_array().unwrap().iter().filter(|r| r["op"] == "set").collect();
    let failed_cas = sets
        .iter()
        .filter(|r| r["path"] == COUNTER && r["outcome"].as_str().unwrap().contains("check-and-set failed"))
        .count() as u64;
    assert_eq!(failed_cas, conflicts, "every conflict reported as exit 6 is in the audit trail");
    let ok = sets.iter().filter(|r| r["outcome"] == "ok").count() as u64;
    assert_eq!(ok, total as u64 + conflicts, "one `ok` record per write attempt");
    assert_eq!(sets.len() as u64, total as u64 + 2 * conflicts, "no other failed writes on record");

    println!(
        "{label}: {WRITERS} processes x {WRITES} writes: {}/{total} present, histories linearizable, \
         CAS conflicts {conflicts}, increments {increments} (writes {:.1} s, checks {:.1} s, total {:.1} s)",
        acks.len(),
        write_time.as_secs_f64(),
        check_started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn t15_cli_four_writer_processes_on_a_directory() {
    t15(Place::Local);
}

#[test]
fn t15_s3_cli_four_writer_processes_on_a_bucket() {
    let Some(location) = common::s3_location("t15") else { return };
    t15(Place::S3(location));
}
