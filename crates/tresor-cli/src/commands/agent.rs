//! `tresor unlock`, `lock` and `agent`: starting, feeding and stopping the agent.

use crate::exit::CliError;
use crate::*;
use secrecy::ExposeSecret;
use std::path::Path;
use std::time::Duration;
use tresor::Options;
use tresor_wire::{Failure, SecretBuf, client};

pub(crate) fn cmd_unlock(ctx: &mut Ctx) -> Result<(), CliError> {
    let socket = ctx.socket();
    if let Ok(Some(Ok(tresor_wire::Pong { unlocked: true, pid }))) =
        client::call(&socket, &tresor_wire::Ping, Duration::from_secs(5))
    {
        errln!("already unlocked (agent pid {pid})");
        return Ok(());
    }
    // The vault must exist before a password is asked for or an agent started, and the agent's
    // settings must be right (it would only say so in its own log).
    open_existing(&runtime()?, &ctx.location)?;
    crate::commands::share::sync_every(None)?;
    let prompts = ctx.password_prompts();
    let mut attempt = 1;
    let mut password = ctx.password()?;
    if client::call(&socket, &tresor_wire::Ping, Duration::from_secs(5)).ok().flatten().is_none() {
        spawn_agent(ctx, &socket)?;
    }
    let reply = loop {
        let unlock =
            tresor_wire::Unlock { password: SecretBuf::new(password.expose_secret().as_bytes().to_vec()) };
        let reply = client::call(&socket, &unlock, Duration::from_secs(120))
            .map_err(|e| CliError::other(e.to_string()))?;
        // A person who typed a wrong password is asked again.
        if prompts
            && attempt < crate::password::ATTEMPTS
            && matches!(reply, Some(Err(Failure::Error(tresor::Error::AuthFailed))))
        {
            attempt += 1;
            errln!("tresor: wrong password; try again ({attempt} of {})", crate::password::ATTEMPTS);
            password = ctx.password()?;
            continue;
        }
        break reply;
    };
    match reply {
        Some(Ok(tresor_wire::Unlocked { failed_attempts, warnings })) => {
            for w in warnings {
                errln!("tresor: warning: {w}");
            }
            report_failed(&failed_attempts);
            errln!("unlocked; the agent locks after {}s idle", ctx.idle.as_secs());
            Ok(())
        }
        Some(Err(failure)) => {
            // A failed unlock leaves no agent behind.
            let _ = client::call(&socket, &tresor_wire::Lock, Duration::from_secs(5));
            Err(match failure {
                Failure::Error(e) => CliError::from_core(&e),
                Failure::Locked => CliError::other("the agent did not unlock".into()),
            })
        }
        None => Err(CliError::other("the agent did not start".into())),
    }
}

pub(crate) fn spawn_agent(ctx: &Ctx, socket: &Path) -> Result<(), CliError> {
    use std::os::unix::process::CommandExt;
    // A Unix socket path holds at most 107 bytes: an agent could not listen there at all.
    let len = socket.as_os_str().len();
    if len > client::MAX_SOCKET_PATH {
        return Err(CliError::input(format!(
            "the agent's socket path would be {len} bytes, longer than a Unix socket path may be \
             ({}): set TRESOR_RUNTIME_DIR to a shorter directory ({})",
            client::MAX_SOCKET_PATH,
            socket.display()
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::other(format!("cannot find the tresor binary: {e}")))?;
    let mut agent = std::process::Command::new(exe)
        .arg("agent")
        .arg("--vault")
        .arg(&ctx.location)
        .arg("--idle-timeout")
        .arg(format!("{}s", ctx.idle.as_secs()))
        // Credentials the agent does not need stay out of its environment (it lives long).
        .env_remove("TRESOR_PASSWORD")
        .env_remove("TRESOR_PASSWORD_FILE")
        .env_remove("TRESOR_TOKEN")
        .env_remove("VAULT_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::other(format!("cannot start the agent: {e}")))?;
    for _ in 0..500 {
        if client::call(socket, &tresor_wire::Ping, Duration::from_secs(5)).ok().flatten().is_some() {
            return Ok(());
        }
        // An agent that ended is not waited for.
        if let Ok(Some(status)) = agent.try_wait() {
            return Err(CliError::other(format!(
                "the agent ended as it started ({status}); `tresor agent` in the foreground shows why"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(CliError::other("the agent did not start within 5 s".into()))
}

pub(crate) fn cmd_agent(ctx: &Ctx) -> Result<(), CliError> {
    let hardening = tresor_server::harden::apply();
    crate::commands::log_to_stderr();
    for w in tresor_server::harden::report(&hardening) {
        tracing::warn!("{w}");
    }
    let socket = ctx.socket();
    // Clients are served concurrently on the shared vault handle, on every core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tresor-agent")
        .build()
        .map_err(|e| CliError::other(e.to_string()))?;
    let location = ctx.location.clone();
    // The fingerprint the user expects binds the agent's unlocks too (it inherits the variable).
    let expect_fingerprint = ctx.expect_fingerprint;
    let sync_every = crate::commands::share::sync_every(None)?;
    let relay_ca = crate::commands::share::relay_ca(None)?;
    let result = rt.block_on(async {
        let listener = tresor_server::bind(&socket)
            .map_err(|e| CliError::other(format!("{}: {e}", socket.display())))?;
        let config = tresor_server::AgentConfig {
            location,
            // The agent opens the store with the environment it was started with (`tresor unlock`
            // passes its own down).
            backend: backend_config(),
            options: Box::new(move || {
                let mut o = Options::new(config::state_dir().join("trust"), actor("agent"));
                // The user's limit is the client's to check, as each value is read (issue 15,
                // bug 10): a limit raised in the config needs no new unlock.
                o.max_value = config::MAX_VALUE_CEILING;
                o.expect_fingerprint = expect_fingerprint;
                o
            }),
            idle: ctx.idle,
            sync_every,
            relay_ca,
        };
        let result = tresor_server::agent::serve(listener, config).await;
        let _ = std::fs::remove_file(&socket);
        result.map_err(|e| CliError::other(e.to_string()))
    });
    // A store read stuck in a blocking thread must not keep the process alive.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

pub(crate) fn cmd_lock(ctx: &Ctx) -> Result<(), CliError> {
    match client::call(&ctx.socket(), &tresor_wire::Lock, Duration::from_secs(30)) {
        Ok(Some(_)) => {
            errln!("locked: the agent wiped its keys and stopped");
            Ok(())
        }
        Ok(None) => {
            errln!("no agent is running: nothing to lock");
            Ok(())
        }
        Err(e) => Err(CliError::other(e.to_string())),
    }
}
