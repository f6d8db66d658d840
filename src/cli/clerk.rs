//! `yizhan clerk add|list|disable`: who may log in at the kiosk.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};

use super::{ClerkCommand, CliError, Output, open_db};
use crate::clerk::{self, ClerkError};
use crate::config::Config;

pub fn run(config: &Config, cmd: ClerkCommand, out: Output) -> Result<()> {
    match cmd {
        ClerkCommand::Add { id, name } => {
            if !clerk::valid_id(&id) {
                bail!(ClerkError::InvalidId(id));
            }
            let pin = read_pin()?;
            let db = open_db(config, true)?;
            let added = db.with_writer_blocking(|c| clerk::add(c, &id, &name, &pin))?;
            out.print(&added, |c| {
                println!(
                    "clerk {} ({}) added; they log in at the kiosk with their PIN",
                    c.id, c.name
                );
            })
        }
        ClerkCommand::List => {
            let db = open_db(config, false)?;
            let clerks = db.read_blocking(clerk::list)?;
            out.print(&serde_json::json!({ "clerks": clerks }), |_| {
                if clerks.is_empty() {
                    println!("no clerks yet: add one with `yizhan clerk add ID --name NAME`");
                }
                for c in &clerks {
                    let state = c
                        .disabled_at
                        .as_deref()
                        .map_or_else(|| "enabled".to_owned(), |at| format!("disabled {at}"));
                    println!("{:<16} {:<24} {state}", c.id, c.name);
                }
            })
        }
        ClerkCommand::Disable { id } => {
            let db = open_db(config, true)?;
            db.with_writer_blocking(|c| clerk::disable(c, &id))?;
            // The running daemon ends their sessions now (issue 24). If it
            // cannot be reached it looks at the clerk again within a second
            // of their next request anyway.
            let token = std::fs::read_to_string(config.operator_token_path()).ok();
            let ended = super::daemon::call(
                config.api.listen,
                reqwest::Method::DELETE,
                &format!("/api/v1/clerks/{id}/sessions"),
                token.as_deref(),
            )
            .is_ok_and(|(code, _)| code == 204);
            out.print(
                &serde_json::json!({ "disabled": id, "sessions_ended": ended }),
                |_| {
                    if ended {
                        println!("clerk {id} disabled; their sessions have ended");
                    } else {
                        println!("clerk {id} disabled; the daemon was not reachable, so their sessions end at their next request");
                    }
                },
            )
        }
    }
}

/// The PIN: typed twice without echo at a terminal, or one line on stdin
/// (for provisioning scripts: `echo 2468 | yizhan clerk add …`).
fn read_pin() -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the PIN from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = prompt_hidden("PIN (4-12 digits): ")?;
    let again = prompt_hidden("PIN again: ")?;
    if first != again {
        return Err(CliError::BadArgument("the two PINs differ; nothing added".to_owned()).into());
    }
    Ok(first)
}

fn prompt_hidden(prompt: &str) -> Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let saved = tcgetattr(&stdin).context("cannot read the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("cannot turn off echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read.context("cannot read the PIN")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
