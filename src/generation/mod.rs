//! Image and video generation: the REST job API, task updates (stored first, then delivered by the
//! TaskProgress actor only to the owner's subscribed connections), rate limits, and the built-in
//! simulated provider.

pub mod intake;
pub mod limits;
pub mod media;
pub mod progress;
pub mod rest;
pub mod simulated;
pub mod updates;

use actix_web::web;

/// The two kinds of job. They differ only in names: ids, paths, hub events and error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    Image,
    Video,
}

impl TaskKind {
    pub fn parse(s: &str) -> Option<TaskKind> {
        match s {
            "image" => Some(TaskKind::Image),
            "video" => Some(TaskKind::Video),
            _ => None,
        }
    }
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Image => "image",
            TaskKind::Video => "video",
        }
    }
    /// The id's field name in REST bodies.
    pub fn id_field(self) -> &'static str {
        match self {
            TaskKind::Image => "taskId",
            TaskKind::Video => "requestId",
        }
    }
    /// The text for an unknown (or someone else's) task.
    pub fn not_found(self) -> &'static str {
        match self {
            TaskKind::Image => "Task not found",
            TaskKind::Video => "Request not found",
        }
    }
    /// The hub error for a task owned by another key.
    pub fn not_yours(self) -> &'static str {
        match self {
            TaskKind::Image => "Unauthorized access to task",
            TaskKind::Video => "Unauthorized access to request",
        }
    }
    /// The hub error for a malformed id.
    pub fn bad_id(self) -> &'static str {
        match self {
            TaskKind::Image => "Invalid task ID format",
            TaskKind::Video => "Invalid request ID format",
        }
    }
    /// The group of a task's subscribers. Only the owner's connections can join it.
    pub fn group(self, id: &str) -> String {
        match self {
            TaskKind::Image => format!("task:{id}"),
            TaskKind::Video => format!("request:{id}"),
        }
    }
    /// Hub events: progress, completed, failed.
    pub fn events(self) -> (&'static str, &'static str, &'static str) {
        match self {
            TaskKind::Image => ("TaskProgress", "TaskCompleted", "TaskFailed"),
            TaskKind::Video => ("RequestProgress", "RequestCompleted", "RequestFailed"),
        }
    }
    /// REST base path.
    pub fn base_path(self) -> &'static str {
        match self {
            TaskKind::Image => "/v1/images/generations",
            TaskKind::Video => "/v1/videos/generations",
        }
    }
    /// Hub path.
    pub fn hub_path(self) -> &'static str {
        match self {
            TaskKind::Image => "/hubs/image-generation",
            TaskKind::Video => "/hubs/video-generation",
        }
    }
}

/// Registers the REST routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    rest::configure(cfg);
    media::configure(cfg);
}
