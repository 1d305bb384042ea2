//! `tresor share` (create, invite, join, list, members, name, remove, relay, leave) and
//! `tresor sync`: sync groups of this vault (ARCHITECTURE.md, "Sharing and sync through a
//! relay"). Pairing and
//! changes of a group run on the vault unlocked here; `sync`, `share list` and `share members`
//! go through the agent while it holds the vault.

use crate::exit::CliError;
use crate::{Ctx, runtime};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;
use tresor::Vault;
use tresor_sync::member::MemberId;
use tresor_sync::pair::Invitation;
use tresor_sync::relay::RelayClient;
use tresor_sync::share::{self, Memo, Record, ShareError};
use tresor_wire::{GroupRound, GroupSummary, Groups, RoundReport, ShareFailure, SyncNow};

/// How long pairing waits for the other side unless told.
const DEFAULT_WAIT: &str = "10m";

/// `tresor share` subcommands.
#[derive(clap::Subcommand)]
pub enum ShareAction {
    /// Share the folder PREFIX through a relay: makes the group (you are its admin), then
    /// invites one member (as `share invite`).
    #[command(arg_required_else_help = true)]
    Create {
        /// The folder to share (its secrets go to the group).
        prefix: String,
        /// The relay: `http(s)://HOST:PORT` (`tresor relay` serves one), or a bucket
        /// (`s3://BUCKET[/PREFIX]`, with conditional writes) or a directory (an absolute path)
        /// every member reaches, used as one.
        #[arg(long, value_name = "URL")]
        relay: String,
        #[command(flatten)]
        pairing: PairingArgs,
    },
    /// Make an invitation for one more member of the group that shares PREFIX (its admin only),
    /// wait for them, and admit them once both of you confirmed the words.
    #[command(arg_required_else_help = true)]
    Invite {
        /// The shared folder.
        prefix: String,
        #[command(flatten)]
        pairing: PairingArgs,
    },
    /// Join a group with an invitation (`-` reads it from stdin); its secrets land in the folder
    /// --as, which must be empty.
    #[command(arg_required_else_help = true)]
    Join {
        /// The invitation (`tresor-invite-1:…@URL`), or `-` to read it from stdin.
        invitation: String,
        /// The folder of this vault the group's secrets land in (must be empty).
        #[arg(long = "as", value_name = "FOLDER")]
        folder: String,
        #[command(flatten)]
        pairing: PairingArgs,
    },
    /// The groups of this vault.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// The members of the group that shares PREFIX.
    #[command(arg_required_else_help = true)]
    Members {
        /// The shared folder.
        prefix: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Name a member in this vault (names are never sent: each vault names the members itself).
    #[command(arg_required_else_help = true)]
    Name {
        /// The shared folder.
        prefix: String,
        /// The member's id, the start of it, or its name here.
        member: String,
        /// Its name (what `share members` shows, and `share remove` takes).
        name: String,
    },
    /// Remove a member (its admin only): a new epoch and mailbox without it. It decrypts nothing
    /// written after, and its later writes are refused; the secrets it could read are listed,
    /// to rotate.
    #[command(arg_required_else_help = true)]
    Remove {
        /// The shared folder.
        prefix: String,
        /// The member's id, the start of it, or its name here (`share members` shows them).
        member: String,
    },
    /// Move this vault's side of the group that shares PREFIX to another relay (every member
    /// moves its own; nothing the group trusts comes from the relay); then syncs through it.
    #[command(arg_required_else_help = true)]
    Relay {
        /// The shared folder.
        prefix: String,
        /// The new relay: `http(s)://HOST:PORT`, `s3://BUCKET[/PREFIX]` or an absolute directory.
        relay: String,
        /// Trust only this CA certificate (PEM) for the relay's TLS (default: TRESOR_CACERT, else
        /// the system's roots).
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
    },
    /// Peers that speak the KOI-net vault-sync format, one by one (add, list, send, receive,
    /// remove): weaker than a group (static keys), and off unless a peer is added.
    #[command(arg_required_else_help = true)]
    Koi {
        #[command(subcommand)]
        action: super::koi::KoiAction,
    },
    /// Forget the group in this vault (the secrets stay); the admin should remove you too.
    #[command(arg_required_else_help = true)]
    Leave {
        /// The shared folder.
        prefix: String,
        /// Leave even as the admin (nobody can then admit or remove members).
        #[arg(long)]
        force: bool,
    },
}

/// What pairing takes.
#[derive(clap::Args)]
pub struct PairingArgs {
    /// A name for the other side in this vault (the new member, or the group's admin when
    /// joining), shown by `share members`; never sent.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// How long to wait for the other side (e.g. 30s, 10m).
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_WAIT)]
    wait: String,
    /// Trust only this CA certificate (PEM) for the relay's TLS (default: TRESOR_CACERT, else
    /// the system's roots).
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

/// What `tresor sync` takes.
#[derive(clap::Args)]
pub struct SyncArgs {
    /// Only the group that shares this folder (default: every group of the vault).
    prefix: Option<String>,
    /// Keep syncing, every --interval, until interrupted.
    #[arg(long)]
    watch: bool,
    /// How often --watch syncs.
    #[arg(long, value_name = "DURATION", default_value = "30s", requires = "watch")]
    interval: String,
    /// Trust only this CA certificate (PEM) for the relays' TLS (default: TRESOR_CACERT, else
    /// the system's roots).
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

/// This vault's role in a group: `admin`, `member`, or `removed`.
fn role(view: &GroupSummary) -> &'static str {
    match view.members.iter().any(|m| m.me && m.admin) {
        _ if view.removed => "removed",
        true => "admin",
        false => "member",
    }
}

/// How often the agent or the server syncs in the background: `setting` (a flag or config key),
/// else `TRESOR_SYNC_INTERVAL`, else a minute; `0` turns it off.
pub(crate) fn sync_every(setting: Option<&str>) -> Result<Option<Duration>, CliError> {
    let from_env = std::env::var("TRESOR_SYNC_INTERVAL").ok();
    let Some(text) = setting.or(from_env.as_deref()) else {
        return Ok(Some(tresor_server::sync::EVERY));
    };
    let every = crate::config::parse_duration_or_zero(text)
        .map_err(|e| CliError::input(format!("sync interval: {e}")))?;
    Ok((!every.is_zero()).then_some(every))
}

/// The CA certificate (PEM) relays are trusted by: the file `path` names, else `TRESOR_CACERT`
/// (or `VAULT_CACERT`), else none (the system's roots).
pub(crate) fn relay_ca(path: Option<PathBuf>) -> Result<Option<Vec<u8>>, CliError> {
    Ok(crate::remote::ca_pem(path)?.map(|(_, pem)| pem))
}

/// The exit code and advice for a group operation's error.
pub(crate) fn failed(e: ShareError) -> CliError {
    failure(tresor_server::sync::failure(e))
}

/// A sharing failure (here or in the agent) as the CLI's error.
pub(crate) fn failure(failure: ShareFailure) -> CliError {
    match failure {
        ShareFailure::Vault(e) => CliError::from_core(&e),
        ShareFailure::Other { exit, message, hint } => {
            let e = CliError::with_code(exit, message);
            match hint {
                Some(hint) => e.with_hint(hint),
                None => e,
            }
        }
    }
}

/// The relay `relay` names: a `tresor relay` (`http(s)://HOST:PORT`), or a bucket
/// (`s3://BUCKET[/PREFIX]`) or directory (an absolute path) used as one.
async fn relay_client(relay: &str, ca_cert: Option<PathBuf>) -> Result<RelayClient, CliError> {
    let usage = || {
        CliError::input(format!(
            "relay {relay:?}: give http(s)://HOST:PORT (a tresor relay), s3://BUCKET[/PREFIX] or an absolute \
             directory"
        ))
    };
    if relay.starts_with("http://") || relay.starts_with("https://") {
        let parsed = reqwest::Url::parse(relay).map_err(|_| usage())?;
        if parsed.host_str().is_none() {
            return Err(usage());
        }
    } else if !(relay.starts_with("s3://") || relay.starts_with('/')) {
        return Err(usage());
    }
    let http = crate::remote::client(ca_cert)?;
    RelayClient::connect(relay, &http, &crate::backend_config()).await.map_err(|e| failed(e.into()))
}

fn wait(text: &str) -> Result<Duration, CliError> {
    crate::config::parse_duration(text, "--wait").map_err(CliError::input)
}

/// Opens the vault here (pairing and changes of a group need its keys in this process).
pub(crate) fn open(ctx: &mut Ctx, rt: &tokio::runtime::Runtime) -> Result<Vault, CliError> {
    let store = crate::open_existing(rt, &ctx.location)?;
    let vault = crate::unlock_here(ctx, rt, store).map_err(|e| {
        match e.message().starts_with("no password given") {
        true => CliError::input(
            "this sharing command opens the vault in this process (it pairs or changes the group), so it needs \
             the vault's password even while the agent is unlocked: give it at a prompt, with \
             TRESOR_PASSWORD_FILE or --password-stdin (`tresor sync`, `share list` and `share members` go \
             through the agent)"
                .into(),
        ),
        false => e,
    }
    })?;
    crate::report_unlocked(&vault);
    Ok(vault)
}

/// The vault's groups as it last saw them: from the agent, or from the vault opened here.
pub(crate) fn groups(ctx: &mut Ctx) -> Result<Vec<GroupSummary>, CliError> {
    let mut session = crate::Session::new(ctx)?;
    let groups = session.call(Groups)?;
    session.finish();
    groups.map_err(failure)
}

/// When something new last came from another member of `group` (seconds since the Unix epoch).
pub(crate) fn last_heard(group: &GroupSummary) -> Option<u64> {
    group.members.iter().filter(|m| !m.me).filter_map(|m| m.heard).max()
}

/// A time in seconds since the Unix epoch, as the CLI shows times (`never` for none).
fn shown_time(at: Option<u64>) -> String {
    at.map_or_else(|| "never".to_string(), |at| tresor::vault::format_time(at.saturating_mul(1000)))
}

/// `share list`.
fn list(groups: &[GroupSummary], json: bool) -> Result<(), CliError> {
    if json {
        let out: Vec<serde_json::Value> = groups
            .iter()
            .map(|g| {
                serde_json::json!({
                    "prefix": g.prefix,
                    "members": g.members.len(),
                    "epoch": g.epoch,
                    "role": role(g),
                    "heard_ms": last_heard(g).map(|at| at.saturating_mul(1000)),
                    "conflicts": g.conflicts.iter().map(|(path, others)| {
                        serde_json::json!({ "path": path, "others": others })
                    }).collect::<Vec<_>>(),
                    "unacknowledged": g.unacknowledged,
                    "relay": g.relay,
                })
            })
            .collect();
        return crate::print_json(&out);
    }
    if groups.is_empty() {
        errln!("this vault is in no sync group (`tresor share create FOLDER --relay URL` makes one)");
        return Ok(());
    }
    outln!("PREFIX               MEMBERS  EPOCH  ROLE     CONFLICTS  LAST HEARD           RELAY");
    for g in groups {
        outln!(
            "{:<20} {:<8} {:<6} {:<8} {:<10} {:<20} {}",
            format!("{}/", g.prefix),
            g.members.len(),
            g.epoch,
            role(g),
            g.conflicts.len(),
            shown_time(last_heard(g)),
            g.relay
        );
    }
    for g in groups {
        for (path, others) in &g.conflicts {
            crate::ctx::warn_conflict(path, *others);
        }
    }
    Ok(())
}

/// `share members`.
fn members(group: GroupSummary, json: bool) -> Result<(), CliError> {
    if json {
        let members: Vec<serde_json::Value> = group
            .members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": hex::encode(m.id),
                    "admin": m.admin,
                    "me": m.me,
                    "heard_ms": m.heard.filter(|_| !m.me).map(|at| at.saturating_mul(1000)),
                    "name": m.name,
                })
            })
            .collect();
        return crate::print_json(&serde_json::json!({
            "epoch": group.epoch,
            "removed": group.removed,
            "members": members,
        }));
    }
    if group.removed {
        errln!("the group's admin removed this vault: these are the members it last saw");
    }
    outln!("MEMBER            NAME             ROLE            LAST HEARD (epoch {})", group.epoch);
    for m in group.members {
        let role = match (m.admin, m.me) {
            (true, true) => "admin (you)",
            (true, false) => "admin",
            (false, true) => "member (you)",
            (false, false) => "member",
        };
        let heard = match m.me {
            true => "-".to_string(),
            false => shown_time(m.heard),
        };
        let name = m.name.clone().unwrap_or_else(|| "-".into());
        outln!("{:<17} {:<16} {:<15} {}", MemberId(m.id).to_string(), name, role, heard);
    }
    Ok(())
}

/// Asks the person whether both screens show `words` (a line of stdin: the terminal, or a
/// script's answer).
fn confirm(words: &[&str], stdin: &mut impl BufRead) -> bool {
    errln!("Compare these words with the other screen, by voice or in person:");
    errln!();
    errln!("    {}", words.join(" "));
    errln!();
    errprint!("Are they the same? [y/N] ");
    let _ = std::io::stderr().flush();
    let yes = crate::input::read_line_limited(stdin, 4096)
        .is_ok_and(|line| matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"));
    if yes {
        errln!("waiting for the other side's answer...");
    }
    yes
}

/// Runs `tresor share ACTION`.
pub fn run(ctx: &mut Ctx, action: ShareAction, stdin: &mut impl BufRead) -> Result<(), CliError> {
    // What the vault last saw needs no relay: the agent answers, or the vault opened here.
    match &action {
        ShareAction::List { json } => return list(&groups(ctx)?, *json),
        ShareAction::Members { prefix, json } => {
            let wanted = share::folder(prefix).map_err(failed)?;
            let groups = groups(ctx)?;
            let Some(group) = groups.into_iter().find(|g| g.prefix == wanted) else {
                return Err(failed(ShareError::NoGroup(wanted)));
            };
            return members(group, *json);
        }
        _ => {}
    }
    if let ShareAction::Koi { action } = action {
        return super::koi::run(ctx, action, stdin);
    }
    let rt = runtime()?;
    let vault = open(ctx, &rt)?;
    let actor = vault.actor().to_string();
    rt.block_on(async {
        match action {
            ShareAction::Create { prefix, relay, pairing } => {
                let client = relay_client(&relay, pairing.ca_cert.clone()).await?;
                let wait = wait(&pairing.wait)?;
                // Reachable, before anything is made.
                client.health().await.map_err(|e| failed(e.into()))?;
                let record = share::create(&vault, &prefix, &relay, &actor).await.map_err(failed)?;
                errln!("made a sync group for {}/ through {relay}; you are its admin", record.prefix);
                let inviting = invite(&vault, &client, record.clone(), &actor, (wait, pairing.name.as_deref()), stdin);
                // Interrupted while it waits: the group nobody joined is not kept either.
                let invited = tokio::select! {
                    invited = inviting => invited,
                    _ = tokio::signal::ctrl_c() => Err(CliError::with_code(130, "interrupted".into())),
                };
                if invited.is_err() {
                    // A group nobody joined is not kept: `share create` again starts afresh.
                    let alone = share::view(&vault, record.clone()).await.is_ok_and(|v| v.members.len() == 1);
                    if alone && share::leave(&vault, record, &actor).await.is_ok() {
                        errln!("nobody joined: the group was not kept");
                    }
                }
                invited
            }
            ShareAction::Invite { prefix, pairing } => {
                let record = share::find(&vault, &prefix).await.map_err(failed)?;
                let client = relay_client(&record.relay, pairing.ca_cert.clone()).await?;
                invite(&vault, &client, record, &actor, (wait(&pairing.wait)?, pairing.name.as_deref()), stdin).await
            }
            ShareAction::Join { invitation, folder, pairing } => {
                let from_stdin = invitation == "-";
                let text = if from_stdin {
                    // An invitation is a few hundred bytes; a longer line is not one.
                    crate::input::read_line_limited(stdin, 64 << 10).map_err(CliError::input)?.to_string()
                } else {
                    invitation
                };
                let invitation = Invitation::parse(&text).map_err(|e| failed(e.into()))?;
                let client = relay_client(&invitation.relay, pairing.ca_cert.clone()).await?;
                share::joinable(&vault, &folder).await.map_err(failed)?;
                errln!(
                    "waiting for the group's admin (its `share create` or `share invite` must be waiting too)..."
                );
                // The invitation came on stdin: the person answers at the terminal.
                let mut tty = match from_stdin {
                    true => std::fs::File::open("/dev/tty").ok().map(std::io::BufReader::new),
                    false => None,
                };
                let record = share::join(&vault, &client, &invitation, &folder, &actor, wait(&pairing.wait)?, |w| {
                    match tty.as_mut() {
                        Some(tty) => confirm(w, tty),
                        None => confirm(w, stdin),
                    }
                })
                .await
                .map_err(failed)?;
                errln!("joined: the group's secrets land in {}/", record.prefix);
                let record = match &pairing.name {
                    Some(name) => {
                        let view = share::view(&vault, record.clone()).await.map_err(failed)?;
                        let admin = view.members.iter().find(|m| m.admin).map(|m| hex::encode(m.id.0));
                        let admin = admin.unwrap_or_default();
                        share::rename(&vault, record, &admin, name, &actor).await.map_err(failed)?.1
                    }
                    None => record,
                };
                let report = share::sync(&vault, &client, record.clone(), &actor, &mut share::Memo::default()).await.map_err(failed)?;
                print_report(&record.prefix, &tresor_server::sync::round_report(report), false);
                Ok(())
            }
            // Answered above.
            ShareAction::List { .. } | ShareAction::Members { .. } | ShareAction::Koi { .. } => Ok(()),
            ShareAction::Relay { prefix, relay, ca_cert } => {
                let record = share::find(&vault, &prefix).await.map_err(failed)?;
                let client = relay_client(&relay, ca_cert).await?;
                // Reachable, before anything changes.
                client.health().await.map_err(|e| failed(e.into()))?;
                let problems = share::move_relay(&vault, record, &relay, &actor).await.map_err(failed)?;
                for problem in problems {
                    errln!("tresor: warning: {problem}");
                }
                let record = share::find(&vault, &prefix).await.map_err(failed)?;
                errln!(
                    "the group that shares {0}/ now syncs through {relay} from this vault; each other member \
                     moves too (`tresor share relay FOLDER {relay}` on its side) and hears nothing from here until then",
                    record.prefix
                );
                let report = share::sync(&vault, &client, record.clone(), &actor, &mut Memo::default())
                    .await
                    .map_err(failed)?;
                print_report(&record.prefix, &tresor_server::sync::round_report(report), false);
                Ok(())
            }
            ShareAction::Name { prefix, member, name } => {
                let record = share::find(&vault, &prefix).await.map_err(failed)?;
                let (id, _) = share::rename(&vault, record, &member, &name, &actor).await.map_err(failed)?;
                errln!("member {id} is {name} in this vault");
                Ok(())
            }
            ShareAction::Remove { prefix, member } => {
                let record = share::find(&vault, &prefix).await.map_err(failed)?;
                let client = relay_client(&record.relay, None).await?;
                // A round first: the removal starts from what the group holds now, and an older
                // copy of this vault (a restored backup) learns it is one before it signs a rekey.
                let report = share::sync(&vault, &client, record.clone(), &actor, &mut Memo::default())
                    .await
                    .map_err(failed)?;
                print_report(&record.prefix, &tresor_server::sync::round_report(report), false);
                let record = share::find(&vault, &prefix).await.map_err(failed)?;
                let (id, readable, problems) =
                    share::remove(&vault, &client, record, &member, &actor).await.map_err(failed)?;
                errln!("removed member {id}: a new epoch and mailbox without it; its later writes are refused");
                for problem in problems {
                    errln!("tresor: warning: {problem}");
                }
                if !readable.is_empty() {
                    errln!("it could read {} secrets; rotate them (it may have kept copies):", readable.len());
                    for path in readable {
                        outln!("{path}");
                    }
                }
                Ok(())
            }
            ShareAction::Leave { prefix, force } => {
                let record = share::find(&vault, &prefix).await.map_err(failed)?;
                let view = share::view(&vault, record.clone()).await.map_err(failed)?;
                let admin = view.members.iter().any(|m| m.me && m.admin);
                let alone = view.members.len() == 1;
                if admin && !alone && !force {
                    return Err(CliError::input(format!(
                        "you are the admin of the group that shares {}/: without you nobody can admit or remove \
                         members (--force leaves anyway)",
                        record.prefix
                    )));
                }
                let prefix = record.prefix.clone();
                let (id, problems) = share::leave(&vault, record, &actor).await.map_err(failed)?;
                for problem in problems {
                    errln!("tresor: warning: {problem}");
                }
                if alone || view.removed {
                    errln!("left the group that shared {prefix}/; the secrets stay here");
                } else {
                    errln!(
                        "left the group that shared {prefix}/ (the secrets stay here); ask the group's admin to \
                         remove member {id} (`tresor share remove FOLDER {id}` on its side)"
                    );
                }
                Ok(())
            }
        }
    })
}

async fn invite(
    vault: &Vault,
    client: &RelayClient,
    record: Record,
    actor: &str,
    (wait, name): (Duration, Option<&str>),
    stdin: &mut impl BufRead,
) -> Result<(), CliError> {
    // What the folder holds goes to the group first, so the new member starts with it.
    let report = share::sync(vault, client, record.clone(), actor, &mut share::Memo::default())
        .await
        .map_err(failed)?;
    if !report.sent.is_empty() {
        errln!("sent {} to the group", crate::plural(report.sent.len(), "secret"));
    }
    let shown = |text: &str| {
        errln!("Pass this invitation on privately (it serves once, and only while this command waits):");
        errln!();
        outln!("{text}");
        errln!();
        if std::io::stderr().is_terminal() {
            errln!("{}", qr(text));
        }
        errln!("On the other machine: tresor share join - --as FOLDER   (then paste it: it stays out of");
        errln!("the shell's history and the process list)");
        errln!("waiting for them...");
    };
    let prefix = record.prefix.clone();
    // A name is checked before anyone pairs: a refused one must not come after the admission.
    if let Some(name) = name {
        share::check_name(&record, name).map_err(failed)?;
    }
    let (id, problems) =
        share::invite(vault, client, record.clone(), actor, wait, shown, |w| confirm(w, stdin))
            .await
            .map_err(failed)?;
    errln!("admitted member {id} into the group that shares {prefix}/");
    for problem in problems {
        errln!("tresor: warning: {problem}");
    }
    if let Some(name) = name {
        share::rename(vault, record, &hex::encode(id.0), name, actor).await.map_err(failed)?;
    }
    Ok(())
}

/// `text` as a QR code of text blocks, light on dark (as terminals mostly are); empty if it does
/// not fit one.
fn qr(text: &str) -> String {
    use qrcode::render::unicode::Dense1x2;
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).build(),
        Err(_) => String::new(),
    }
}

/// Runs `tresor sync`: through the agent while it holds the vault (no password here), else on
/// the vault opened here.
pub fn sync(ctx: &mut Ctx, args: SyncArgs) -> Result<(), CliError> {
    let interval = crate::config::parse_duration(&args.interval, "--interval").map_err(CliError::input)?;
    let ca_cert = relay_ca(args.ca_cert.clone())?;
    let rt = runtime()?;
    let mut here: Option<(Vault, reqwest::Client)> = None;
    let mut memo = Memo::default();
    // With --watch, what was said last per group: the same conflict or error is not said again
    // every round.
    let mut said: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    let mut alarmed = false;
    let mut first = true;
    loop {
        let call = SyncNow { prefix: args.prefix.clone(), ca_cert: ca_cert.clone() };
        let through_agent = match (&here, ctx.no_agent) {
            (None, false) => crate::ctx::agent_call(ctx, &call)?,
            _ => None,
        };
        let rounds = match through_agent {
            Some(rounds) => rounds,
            None => {
                if here.is_none() {
                    here = Some((
                        open(ctx, &rt)?,
                        tresor_server::sync::http_client(ca_cert.as_deref()).map_err(failure)?,
                    ));
                }
                let Some((vault, http)) = &here else { return Err(CliError::other("no vault".into())) };
                let relays = (http, &crate::backend_config());
                rt.block_on(tresor_server::sync::sync_now(vault, relays, args.prefix.as_deref(), &mut memo))
            }
        };
        if rounds.is_empty() {
            return Err(CliError::with_code(4, "this vault is in no sync group".into()).with_hint(
                "`tresor share create FOLDER --relay URL` makes one; `tresor share join` joins one".into(),
            ));
        }
        if args.watch && first {
            errln!(
                "syncing {} every {} (Ctrl-C stops)",
                crate::plural(rounds.len(), "group"),
                humantime::format_duration(interval)
            );
        }
        first = false;
        let mut failed = None;
        for GroupRound { prefix, outcome } in rounds {
            match outcome {
                Ok(mut report) => {
                    if args.watch {
                        let now = format!("{:?}", report.conflicts);
                        if said.insert(prefix.clone(), now.clone()).as_deref() == Some(now.as_str()) {
                            report.conflicts.clear();
                        }
                    }
                    alarmed |= print_report(&prefix, &report, args.watch);
                }
                Err(e) if args.watch => {
                    let now = failure(e).message().to_string();
                    if said.insert(prefix.clone(), now.clone()).as_deref() != Some(now.as_str()) {
                        let at = tresor::vault::format_time(tresor::model::now_ms());
                        errln!("{at}\ntresor: {prefix}/: {now}");
                    }
                }
                // Every group had its round; the first failure is the command's, the others said.
                Err(e) => match failed {
                    None => failed = Some(failure(e)),
                    Some(_) => errln!("tresor: {prefix}/: {}", failure(e).message()),
                },
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !args.watch {
            break;
        }
        let interrupted = rt.block_on(async {
            tokio::select! {
                () = tokio::time::sleep(interval) => false,
                _ = tokio::signal::ctrl_c() => true,
            }
        });
        if interrupted {
            break;
        }
    }
    if alarmed {
        return Err(CliError::with_code(
            5,
            "the relay or a member did what an honest group and relay never do (see the warnings above)"
                .into(),
        ));
    }
    Ok(())
}

/// Prints what a round of the group sharing `prefix` did (with `watch`: only if it did or saw
/// something, after the time); whether it saw an attack.
fn print_report(prefix: &str, report: &RoundReport, watch: bool) -> bool {
    let eventful = !report.received.is_empty()
        || !report.sent.is_empty()
        || !report.conflicts.is_empty()
        || !report.warnings.is_empty()
        || !report.skipped.is_empty()
        || !report.problems.is_empty()
        || report.removed;
    if watch && !eventful {
        return false;
    }
    if watch {
        errln!("{}", tresor::vault::format_time(tresor::model::now_ms()));
    }
    for path in &report.received {
        errln!("  ← {path}");
    }
    for path in &report.sent {
        errln!("  → {path}");
    }
    errln!(
        "{prefix}/: {} received, {} sent{}",
        report.received.len(),
        report.sent.len(),
        match report.unacknowledged {
            0 => String::new(),
            n => format!(", {} not yet acknowledged by every member", crate::plural(n as usize, "write")),
        }
    );
    for (path, others) in &report.conflicts {
        errln!(
            "tresor: conflict: {path} was written concurrently ({} kept in `tresor history {path}`); \
             every member shows the same one (by clock, then member), and writing it again settles it",
            crate::plural(*others as usize, "other version")
        );
    }
    for (path, why) in &report.skipped {
        errln!("tresor: warning: {path} is not carried: {why}");
    }
    for problem in &report.problems {
        errln!("tresor: warning: {prefix}/: {problem}");
    }
    if report.removed {
        errln!(
            "tresor: the group's admin removed this vault from the group that shares {prefix}/: nothing more \
             comes or goes (`tresor share leave {prefix}` forgets it)"
        );
    }
    let mut alarmed = false;
    for warning in &report.warnings {
        // Told above, in words of its own.
        if report.removed && warning.text == tresor_sync::peer::Warning::Removed.to_string() {
            continue;
        }
        alarmed |= warning.attack;
        errln!("tresor: warning: {prefix}/: {}", warning.text);
    }
    alarmed
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_invitation_fits_a_qr_code_of_text_blocks() {
        let text = format!("tresor-invite-1:{}@https://relay.example.org:8250", "ab".repeat(16));
        let code = super::qr(&text);
        let lines: Vec<&str> = code.lines().collect();
        assert!(lines.len() > 10, "{code}");
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width), "not square rows: {code}");
        assert!(code.chars().all(|c| matches!(c, ' ' | '█' | '▀' | '▄' | '\n')), "{code}");
    }
}
