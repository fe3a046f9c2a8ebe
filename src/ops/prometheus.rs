//! `GET /metrics`: the process's counters in the Prometheus text exposition format (version 0.0.4).
//! On the main address it needs the master key; `ops.metrics_bind` adds a listener that serves it
//! openly, for a scraper on a trusted network. Scraping reads atomics and asks each HubActor for its
//! counts; nothing on the hot path waits for a scrape.

use std::fmt::Write;

use actix_web::{web, HttpResponse};

use crate::auth::AdminAuth;
use crate::ops::metrics::{self, LATENCY_BUCKETS};
use crate::signalr::hub_actor::GetStats;
use crate::state::AppState;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Registers `GET /metrics` behind the master key.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(guarded));
}

/// Registers `GET /metrics` without a key (only for the listener on `ops.metrics_bind`).
pub fn configure_open(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(open));
}

async fn guarded(_: AdminAuth, state: web::Data<AppState>) -> HttpResponse {
    open(state).await
}

async fn open(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(render(&state).await)
}

/// Escapes a label value as the format requires.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The whole exposition text.
pub async fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(4096);
    let mut hubs = Vec::with_capacity(state.hubs.len());
    for hub in &state.hubs {
        if let Ok(stats) = hub.addr.send(GetStats).await {
            hubs.push(stats);
        }
    }

    header(&mut out, "switchyard_connections", "gauge", "Live SignalR connections by hub and transport.");
    for hub in &hubs {
        let mut transports: Vec<_> = hub.by_transport.iter().collect();
        transports.sort();
        for (transport, n) in transports {
            let transport = if transport.is_empty() { "negotiating" } else { transport };
            let _ = writeln!(
                out,
                "switchyard_connections{{hub=\"{}\",transport=\"{}\"}} {n}",
                label(&hub.path),
                label(transport)
            );
        }
    }
    header(&mut out, "switchyard_hub_fanout_messages_total", "counter", "Messages a hub handed to its connections.");
    for hub in &hubs {
        let _ = writeln!(
            out,
            "switchyard_hub_fanout_messages_total{{hub=\"{}\"}} {}",
            label(&hub.path),
            hub.messages_delivered
        );
    }
    single(
        &mut out,
        "switchyard_connection_actors",
        "gauge",
        "Live connection actors.",
        metrics::CONNECTIONS_OPEN.get(),
    );
    single(
        &mut out,
        "switchyard_messages_received_total",
        "counter",
        "Hub protocol messages received from clients.",
        metrics::MESSAGES_IN.get(),
    );
    single(
        &mut out,
        "switchyard_messages_sent_total",
        "counter",
        "Messages written to clients' transports.",
        metrics::MESSAGES_OUT.get(),
    );

    header(&mut out, "switchyard_invocations_total", "counter", "Hub method invocations by hub, method and outcome.");
    let mut invocations = metrics::INVOCATIONS_BY_METHOD.snapshot();
    invocations.sort();
    for ([hub, method, outcome], n) in invocations {
        let _ = writeln!(
            out,
            "switchyard_invocations_total{{hub=\"{}\",method=\"{}\",outcome=\"{}\"}} {n}",
            label(hub),
            label(method),
            label(outcome)
        );
    }
    header(&mut out, "switchyard_auth_failures_total", "counter", "Refused credentials by reason.");
    let mut failures = metrics::AUTH_FAILURES_BY_REASON.snapshot();
    failures.sort();
    for ([reason], n) in failures {
        let _ = writeln!(out, "switchyard_auth_failures_total{{reason=\"{}\"}} {n}", label(reason));
    }
    single(
        &mut out,
        "switchyard_metric_label_overflow_total",
        "counter",
        "Counts dropped because a labelled metric ran out of label slots.",
        metrics::INVOCATIONS_BY_METHOD.overflow() + metrics::AUTH_FAILURES_BY_REASON.overflow(),
    );
    single(
        &mut out,
        "switchyard_connection_cap_refusals_total",
        "counter",
        "Connections refused because their principal was at its cap.",
        metrics::CONNECTION_CAP_REFUSALS.get(),
    );
    single(
        &mut out,
        "switchyard_task_updates_published_total",
        "counter",
        "Task updates handed to the hubs for delivery.",
        metrics::TASK_UPDATES_PUBLISHED.get(),
    );
    single(
        &mut out,
        "switchyard_task_updates_delivered_total",
        "counter",
        "Task updates handed to subscribed connections (one per recipient).",
        metrics::TASK_UPDATES_DELIVERED.get(),
    );

    let name = "switchyard_task_delivery_latency_seconds";
    header(&mut out, name, "histogram", "From a task update being stored to its fan-out.");
    let (buckets, sum, count) = metrics::DELIVERY_LATENCY.snapshot();
    for (i, n) in buckets.iter().enumerate() {
        match LATENCY_BUCKETS.get(i) {
            Some(le) => {
                let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
            }
            None => {
                let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
            }
        }
    }
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {count}");

    for (name, help, value) in [
        ("switchyard_tickets_issued_total", "Chat tickets issued.", metrics::TICKETS_ISSUED.get()),
        ("switchyard_tickets_consumed_total", "Chat tickets exchanged for a socket.", metrics::TICKETS_CONSUMED.get()),
        (
            "switchyard_tickets_rejected_total",
            "Presented chat tickets refused (unknown, used, expired or malformed).",
            metrics::TICKETS_REJECTED.get(),
        ),
    ] {
        single(&mut out, name, "counter", help, value);
    }
    single(
        &mut out,
        "switchyard_slow_consumers_dropped_total",
        "counter",
        "Connections closed because they could not keep up.",
        metrics::SLOW_CONSUMERS.get(),
    );
    single(
        &mut out,
        "switchyard_storage_errors_total",
        "counter",
        "Failed storage operations.",
        metrics::STORAGE_ERRORS.get(),
    );
    single(
        &mut out,
        "switchyard_redis_errors_total",
        "counter",
        "Failed Redis operations.",
        metrics::REDIS_ERRORS.get(),
    );
    for (name, help, value) in [
        (
            "switchyard_backplane_sent_total",
            "Broadcasts appended to the backplane for other nodes.",
            metrics::BACKPLANE_SENT.get(),
        ),
        (
            "switchyard_backplane_received_total",
            "Broadcasts from other nodes delivered here.",
            metrics::BACKPLANE_RECEIVED.get(),
        ),
        (
            "switchyard_backplane_dropped_total",
            "Broadcasts that reached this node only (Redis behind or unavailable).",
            metrics::BACKPLANE_DROPPED.get(),
        ),
    ] {
        single(&mut out, name, "counter", help, value);
    }
    single(
        &mut out,
        "switchyard_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        state.started_at.elapsed().as_secs_f64(),
    );
    out
}
