//! The simulated provider: runs `sim-…` jobs inside the server, reporting progress in steps and then a
//! result whose picture Switchyard serves. `sim-fail…` models fail halfway. It reports through the same
//! path as an external worker, so it exercises storage and delivery exactly as they run in production.

use std::time::Duration;

use actix_web::web;
use serde_json::json;

use super::updates::{self, TaskUpdate, UpdateKind};
use super::{media, TaskKind};
use crate::state::AppState;

/// Whether a model is run by the simulated provider.
pub fn handles(model: &str) -> bool {
    model.to_ascii_lowercase().starts_with("sim-")
}

/// Runs one job to its end (or until it is cancelled or finished by someone else).
pub fn spawn(state: web::Data<AppState>, kind: TaskKind, task_id: String, model: String, base_url: String, n: u32) {
    actix_web::rt::spawn(async move {
        let cfg = &state.config.generation;
        let steps = cfg.simulated_steps.max(1);
        let pause = Duration::from_millis(cfg.simulated_duration_ms / u64::from(steps));
        let failing = model.to_ascii_lowercase().starts_with("sim-fail");
        for step in 1..=steps {
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

fn update(kind: UpdateKind) -> TaskUpdate {
    TaskUpdate { kind, message: None }
}
