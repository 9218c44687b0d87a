//! Prompts: ready-made starts for common questions. They hold no data
//! (nothing here reads the twin, so nothing to scope or audit); they tell
//! the assistant which tools gather the context, and the tools do the
//! reading, under the token's role and host groups.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{PromptMessage, Role};
use rmcp::{prompt, prompt_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::McpServer;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DiagnoseArgs {
    /// Node id or hostname.
    pub node: String,
    /// What the person noticed, if anything ("Immich is slow").
    pub symptom: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChangedArgs {
    /// Only this host (node id or hostname); the whole fleet if absent.
    pub node: Option<String>,
    /// How far back, in minutes (default 60).
    pub minutes: Option<String>,
}

fn text(s: String) -> Vec<PromptMessage> {
    vec![PromptMessage::new_text(Role::User, s)]
}

#[prompt_router(router = "prompts", vis = "pub(crate)")]
impl McpServer {
    /// Look into one host: what is wrong, since when, and what it affects.
    #[prompt(name = "diagnose_host")]
    async fn diagnose_host(&self, Parameters(a): Parameters<DiagnoseArgs>) -> Vec<PromptMessage> {
        let node: String = a.node.chars().take(100).collect();
        let symptom = a
            .symptom
            .map(|s| format!(" The symptom: {}.", s.chars().take(500).collect::<String>()))
            .unwrap_or_default();
        text(format!(
            "Diagnose the host {node:?} in twinbay.{symptom}\n\
             1. get_host with node={node:?}, include_processes=true: containers, units, ports, \
             sources, the latest sample.\n\
             2. list_events with node={node:?}, limit=50: what changed recently (containers \
             died or restarted, units failed, ports closed, the agent disconnected).\n\
             3. query_metrics with node={node:?}, series cpu, mem_used, load1, minutes=180: \
             is it saturated, and since when?\n\
             4. list_alerts: anything firing for it.\n\
             5. get_topology with node={node:?}, then impact for what looks broken: who \
             depends on it.\n\
             Answer with the likely cause, the evidence (times, numbers), and what to do. \
             Propose run_command only for a clear fix, and say it first."
        ))
    }

    /// What changed across the fleet (or on one host) lately.
    #[prompt(name = "what_changed")]
    async fn what_changed_prompt(
        &self,
        Parameters(a): Parameters<ChangedArgs>,
    ) -> Vec<PromptMessage> {
        let minutes = a
            .minutes
            .and_then(|m| m.trim().parse::<u32>().ok())
            .unwrap_or(60)
            .clamp(1, 7 * 24 * 60);
        let (scope, host) = match a.node {
            Some(n) => {
                let n: String = n.chars().take(100).collect();
                (format!(" on the host {n:?}"), format!(", host={n:?}"))
            }
            None => (" across the fleet".to_string(), String::new()),
        };
        text(format!(
            "What changed{scope} in the last {minutes} minutes, according to twinbay?\n\
             Start with what_changed (from=\"{minutes}m ago\"{host}): every container, unit, \
             port, file and route that changed, step by step. Then \
             list_events (since = now minus {minutes} minutes, in unix ms; page back with \
             before while truncated is true), list_alerts with show=all, and for watched \
             configuration files file_history (and file_diff, with the operator role). \
             Group the changes by host, newest first; point out the ones that look like \
             causes of trouble (a container that keeps restarting, a unit that failed, a \
             risky config change)."
        ))
    }
}
