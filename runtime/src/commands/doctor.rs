//! `minibox doctor [CONTAINER] [PORT]`: prints each check of [`crate::network::doctor`], the
//! failed ones with the commands that fix them; exit code 1 when something is wrong.

use anyhow::Result;

use crate::cli::DoctorArgs;
use crate::container::state::{self, Status};
use crate::network::doctor::{self, Finding};
use crate::network::store;
use crate::paths::Paths;

pub fn doctor(paths: &Paths, explain: bool, args: &DoctorArgs) -> Result<u8> {
    let store = store(paths);
    let findings = match &args.container {
        None => {
            let mut all = Vec::new();
            for net in store.networks()? {
                all.extend(doctor::check_network(&net)?);
            }
            all
        }
        Some(what) => {
            let id = super::resolve(paths, explain, what)?;
            let st = state::load_state(paths, &id)?;
            let config = state::load_config(paths, &id)?;
            match (&st.status, store.attachment(&id)?) {
                (Status::Running, Some(att)) => {
                    doctor::check_container(&store, what, st.pid, &att, args.port)?
                }
                (Status::Running, None) => vec![Finding {
                    ok: false,
                    what: format!(
                        "{what} runs with --network {}: it has no bridge and publishes nothing",
                        config.network
                    ),
                    fix: vec![format!(
                        "minibox run --network minibox -p HOST:PORT ... # a bridged container"
                    )],
                }],
                _ => vec![Finding {
                    ok: false,
                    what: format!("{what} is not running"),
                    fix: vec![format!("minibox start {what}")],
                }],
            }
        }
    };
    let failed = findings.iter().filter(|f| !f.ok).count();
    for f in &findings {
        println!("{}  {}", if f.ok { "ok  " } else { "FAIL" }, f.what);
        for fix in &f.fix {
            println!("      fix: {fix}");
        }
    }
    match failed {
        0 => println!("no problem found"),
        n => println!("{n} problem{} found", if n == 1 { "" } else { "s" }),
    }
    Ok(u8::from(failed > 0))
}
