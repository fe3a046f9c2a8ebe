//! The simulated provider: runs `sim-…` jobs inside the server, reporting progress in steps and then a
//! result whose picture Switchyard serves. `sim-fail…` models fail halfway. It reports through the same
//! path as an external worker, so it exercises storage and delivery exactly as they run in production.
//!
//! A job lives in the process that runs it, so a restart (or a crashed node) would leave it "processing"
//! for ever. Each step stores the task, touching it; [`resume_abandoned`] takes over unfinished `sim-…`
//! tasks nobody touched for a while and runs them on from their stored progress, so that a client that
//! reconnects after a restart still gets its completion.

use std::time::Duration;

use actix_web::web;
use serde_json::json;

use super::updates::{self, TaskUpdate, UpdateKind};
use super::{media, TaskKind};
use crate::db::now_ms;
use crate::db::tasks::{self as repo, TaskRow};
use crate::state::AppState;

/// Whether a model is run by the simulated provider.
pub fn handles(model: &str) -> bool {
    model.to_ascii_lowercase().starts_with("sim-")
}

/// One simulated job: what to run, and from which step.
#[derive(Debug, Clone)]
pub struct Job {
    pub kind: TaskKind,
    pub task_id: String,
    pub model: String,
    /// Where the client reaches this server: the result's picture URL starts with it.
    pub base_url: String,
    pub n: u32,
    /// Steps already done (0 for a new job; more for a resumed one).
    pub steps_done: u32,
}

impl Job {
    /// A new job, from its first step.
    pub fn new(kind: TaskKind, task_id: &str, model: &str, base_url: &str, n: u32) -> Job {
        Job {
            kind,
            task_id: task_id.to_string(),
            model: model.to_string(),
            base_url: base_url.to_string(),
            n,
            steps_done: 0,
        }
    }

    /// The job of a stored task, continuing after the steps its stored progress shows.
    fn resumed(row: &TaskRow, steps: u32, fallback_base: &str) -> Option<Job> {
        let kind = TaskKind::parse(&row.kind)?;
        let request: serde_json::Value = serde_json::from_str(&row.request).unwrap_or_default();
        let n = request.get("n").and_then(serde_json::Value::as_u64).and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
        let progress = u32::try_from(row.progress.clamp(0, 100)).unwrap_or(0);
        Some(Job {
            kind,
            task_id: row.id.clone(),
            model: row.model.clone(),
            base_url: row.base_url.clone().unwrap_or_else(|| fallback_base.to_string()),
            n,
            // Step s reported s*100/steps %, rounded down: this inverts it.
            steps_done: ((progress * steps).div_ceil(100)).min(steps.saturating_sub(1)),
        })
    }
}

/// Runs one job to its end (or until it is cancelled or finished by someone else).
pub fn spawn(state: web::Data<AppState>, job: Job) {
    actix_web::rt::spawn(async move {
        let Job { kind, task_id, model, base_url, n, steps_done } = job;
        let cfg = &state.config.generation;
        let steps = cfg.simulated_steps.max(1);
        let pause = step_pause(&state);
        let failing = model.to_ascii_lowercase().starts_with("sim-fail");
        for step in (steps_done + 1)..=steps {
            tokio::time::sleep(pause).await;
            if failing && step * 2 >= steps {
                let _ =
                    updates::apply(&state, &task_id, update(UpdateKind::Failed("Simulated provider failure".into())))
                        .await;
                return;
            }
            if step == steps {
                break;
            }
            let progress = (step * 100 / steps) as i32;
            match updates::apply(&state, &task_id, update(UpdateKind::Progress(progress))).await {
                Ok(Some(_)) => {}
                // Cancelled or finished elsewhere: stop working on it.
                Ok(None) => return,
                Err(e) => {
                    crate::ops::metrics::STORAGE_ERRORS.inc();
                    tracing::error!(task = %task_id, error = %e, "simulated job cannot store progress");
                    return;
                }
            }
        }
        let url = format!("{base_url}{}", media::path_for(&task_id));
        let result = match kind {
            TaskKind::Image => json!({
                "imageUrl": url,
                "images": (0..n.max(1)).map(|_| json!({ "url": url })).collect::<Vec<_>>(),
                "model": model,
            }),
            TaskKind::Video => json!({ "videoUrl": url, "model": model }),
        };
        let cost = Some(cfg.simulated_cost * f64::from(n.max(1)));
        if let Err(e) = updates::apply(&state, &task_id, update(UpdateKind::Completed { result, cost })).await {
            crate::ops::metrics::STORAGE_ERRORS.inc();
            tracing::error!(task = %task_id, error = %e, "simulated job cannot store its result");
        }
    });
}

fn step_pause(state: &AppState) -> Duration {
    let cfg = &state.config.generation;
    Duration::from_millis(cfg.simulated_duration_ms / u64::from(cfg.simulated_steps.max(1)))
}

/// How long a running job may go without touching its task: three of its steps, and at least 5 s.
fn abandoned_after(state: &AppState) -> Duration {
    (step_pause(state) * 3).max(Duration::from_secs(5))
}

/// Takes over simulated jobs whose runner stopped, for the server's lifetime: every second or so it
/// looks for unfinished `sim-…` tasks untouched for [`abandoned_after`], claims each in storage (so that
/// one node only runs it) and runs it on from its stored progress.
pub async fn resume_abandoned(state: web::Data<AppState>) {
    let after = abandoned_after(&state);
    let mut tick = tokio::time::interval((after / 4).max(Duration::from_millis(250)));
    let fallback_base = fallback_base_url(&state);
    loop {
        tick.tick().await;
        let now = now_ms();
        let cutoff = now.saturating_sub(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
        let rows = match repo::abandoned_simulated(&state.db, cutoff, 100).await {
            Ok(rows) => rows,
            Err(e) => {
                crate::ops::metrics::STORAGE_ERRORS.inc();
                tracing::debug!(error = %e, "cannot look for abandoned simulated jobs; retrying");
                continue;
            }
        };
        for row in rows {
            let Some(job) = Job::resumed(&row, state.config.generation.simulated_steps.max(1), &fallback_base) else {
                continue;
            };
            match repo::claim_abandoned(&state.db, &row.id, row.updated_at, now).await {
                Ok(true) => {
                    tracing::info!(task = %row.id, progress = row.progress, "resuming an abandoned simulated job");
                    spawn(state.clone(), job);
                }
                Ok(false) => {}
                Err(e) => {
                    crate::ops::metrics::STORAGE_ERRORS.inc();
                    tracing::debug!(task = %row.id, error = %e, "cannot claim an abandoned simulated job");
                }
            }
        }
    }
}

/// For tasks stored before their base URL was: the configured public URL, else the listen address.
fn fallback_base_url(state: &AppState) -> String {
    match state.config.server.public_url.trim_end_matches('/') {
        "" => format!("http://{}", state.config.server.bind),
        url => url.to_string(),
    }
}

fn update(kind: UpdateKind) -> TaskUpdate {
    TaskUpdate { kind, message: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(progress: i32) -> TaskRow {
        TaskRow {
            id: "t".into(),
            kind: "image".into(),
            virtual_key_id: 1,
            model: "sim-image".into(),
            request: r#"{"n":2}"#.into(),
            status: "processing".into(),
            progress,
            message: None,
            result: None,
            error: None,
            cost: None,
            created_at: 0,
            updated_at: 0,
            base_url: Some("http://h".into()),
        }
    }

    #[test]
    fn a_resumed_job_continues_after_its_stored_progress() {
        for steps in [1u32, 2, 3, 5, 7] {
            for done in 0..steps {
                let progress = (done * 100 / steps) as i32;
                let job = Job::resumed(&row(progress), steps, "x").unwrap();
                assert_eq!(job.steps_done, done, "steps {steps}, progress {progress}");
            }
        }
        let job = Job::resumed(&row(100), 5, "x").unwrap();
        assert_eq!(job.steps_done, 4, "a job that reported everything still makes its result");
        assert_eq!((job.n, job.base_url.as_str()), (2, "http://h"));
    }
}
