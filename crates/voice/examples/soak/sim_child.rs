//! The simulator runs in a child process (this same binary, `--sim-child`), so the soak's RSS and
//! thread count are the engine's alone: the simulator keeps a protocol log and a nonce set per
//! session that grow with the run by design.
//!
//! Protocol, one line each way: `fault INDEX GUILD` → `ok`; `heard` → the non-silence frames
//! heard per guild; `violations` → a count and `rule=n` pairs; `rss` → the child's RSS in kB.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use voxboard_sim::{SimConfig, Simulator};

use crate::faults;
use crate::proc_stats;

pub const GUILDS: usize = 3;

/// The child's side: starts the simulator, prints its URL, then answers commands until EOF.
pub fn serve() -> ExitCode {
    let mut config = SimConfig::with_guilds(GUILDS);
    // Counted by `heard_audio_frames`; the kept frames are only for tests that look at PCM.
    config.heard_limit = 100;
    let sim = match Simulator::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: the simulator did not start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let _ = writeln!(out, "url {}", sim.gateway_url());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = answer(&sim, &line);
        if writeln!(out, "{reply}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn answer(sim: &Simulator, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["fault", index, guild] => match (index.parse::<usize>(), guild.parse::<u64>()) {
            (Ok(i), Ok(g)) if i < faults::ALL.len() => {
                faults::inject(sim, i, g);
                "ok".into()
            }
            _ => format!("error bad fault {line}"),
        },
        ["heard"] => (0..GUILDS)
            .map(|i| {
                sim.heard_audio_frames(voxboard_testkit::guild(i))
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join(" "),
        ["violations"] => {
            let all = sim.violations();
            let mut rules: std::collections::BTreeMap<String, usize> = Default::default();
            for v in &all {
                *rules.entry(v.rule.clone()).or_default() += 1;
            }
            // The details go to stderr (the soak's, inherited), the first few of them.
            for v in all.iter().take(10) {
                eprintln!("soak: simulator violation {v:?}");
            }
            let pairs: Vec<String> = rules.iter().map(|(r, n)| format!("{r}={n}")).collect();
            format!("{} {}", all.len(), pairs.join(" "))
        }
        ["rss"] => proc_stats::read().rss_kb.to_string(),
        _ => format!("error unknown command {line}"),
    }
}

/// The parent's handle on the child.
pub struct SimProcess {
    child: Child,
    to: Option<ChildStdin>,
    from: BufReader<ChildStdout>,
    pub gateway_url: String,
}

impl SimProcess {
    pub fn spawn() -> anyhow::Result<SimProcess> {
        let exe = std::env::current_exe().context("own path")?;
        let mut child = Command::new(exe)
            .arg("--sim-child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start the simulator process")?;
        let to = child.stdin.take().context("child stdin")?;
        let from = BufReader::new(child.stdout.take().context("child stdout")?);
        let mut p = SimProcess {
            child,
            to: Some(to),
            from,
            gateway_url: String::new(),
        };
        let first = p.read_line()?;
        let Some(url) = first.strip_prefix("url ") else {
            bail!("the simulator process said {first:?}");
        };
        p.gateway_url = url.to_owned();
        Ok(p)
    }

    fn read_line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.from.read_line(&mut line)? == 0 {
            bail!("the simulator process exited");
        }
        Ok(line.trim_end().to_owned())
    }

    pub fn ask(&mut self, command: &str) -> anyhow::Result<String> {
        let to = self.to.as_mut().context("closed")?;
        writeln!(to, "{command}")?;
        to.flush()?;
        let reply = self.read_line()?;
        if reply.starts_with("error") {
            bail!("the simulator process: {reply}");
        }
        Ok(reply)
    }

    pub fn heard(&mut self) -> anyhow::Result<Vec<u64>> {
        let reply = self.ask("heard")?;
        reply
            .split_whitespace()
            .map(|n| n.parse().context("heard count"))
            .collect()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        // EOF on its stdin ends the child; kill it if it does not go within a few seconds.
        drop(self.to.take());
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
