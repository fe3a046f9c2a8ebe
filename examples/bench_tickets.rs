//! Ticket throughput: how many tickets per second are issued and then consumed (one issue plus one
//! consume each), through the same `Tickets` service the server uses, over Redis (GETDEL, and the Lua
//! fallback) and over the in-process TicketActor.
//!
//! `cargo run --release --example bench_tickets -- [--seconds 5] [--concurrency 64] [--redis-url URL]`
//! (scripts/bench-tickets runs it). Redis defaults to REDIS_URL or redis://127.0.0.1:6379; without a
//! reachable Redis only the TicketActor is measured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::auth::jwt::ChatIdentity;
use switchyard::chat::ticket_actor::ActorTicketStore;
use switchyard::chat::tickets::{ConsumeMode, RedisTicketStore, TicketStore, Tickets};
use switchyard::config::RedisConfig;

struct Args {
    seconds: u64,
    concurrency: usize,
    redis_url: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 5,
        concurrency: 64,
        redis_url: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => args.seconds = value.parse().map_err(|_| "--seconds: a number")?,
            "--concurrency" => args.concurrency = value.parse().map_err(|_| "--concurrency: a number")?,
            "--redis-url" => args.redis_url = value,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

/// Runs `concurrency` loops of issue-then-consume for `seconds`; tickets per second.
async fn measure(store: Arc<dyn TicketStore>, args: &Args) -> Result<f64, String> {
    let tickets = Tickets::new(store, Duration::from_secs(60), Duration::from_secs(120));
    let identity =
        ChatIdentity { tenant_id: "bench-tenant".into(), user_id: "bench-user".into(), session_id: "bench".into() };
    // Warm up connections and the GETDEL detection.
    for _ in 0..10 {
        let t = tickets.issue(&identity, None).await.map_err(|e| e.to_string())?;
        tickets.consume(&t.ticket).await.map_err(|e| e.to_string())?;
    }
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (tickets, identity) = (tickets.clone(), identity.clone());
            let (done, failed) = (done.clone(), failed.clone());
            actix_rt::spawn(async move {
                while Instant::now() < deadline {
                    let ok = match tickets.issue(&identity, None).await {
                        Ok(t) => tickets.consume(&t.ticket).await.is_ok(),
                        Err(_) => false,
                    };
                    if ok { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let failures = failed.load(Ordering::Relaxed);
    if failures > 0 {
        eprintln!("  ({failures} failed issue/consume pairs)");
    }
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed)
}

fn report(name: &str, result: Result<f64, String>) {
    match result {
        Ok(rate) => println!("{name:<28} {rate:>10.0} tickets/s issued+consumed"),
        Err(e) => println!("{name:<28} unavailable: {e}"),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_tickets: {e}");
            std::process::exit(2);
        }
    };
    actix_rt::System::new().block_on(async move {
        println!(
            "ticket benchmark: {} s per store, {} concurrent issue+consume loops, one client thread",
            args.seconds, args.concurrency
        );
        let pool = switchyard::redis_pool::connect(&RedisConfig {
            url: args.redis_url.clone(),
            pool_size: args.concurrency.max(1),
            key_prefix: "switchyard".into(),
            timeout_ms: 2000,
            backplane_stream: "backplane".into(),
        });
        match pool {
            Ok(Some(pool)) => {
                for (name, mode) in [("redis (GETDEL)", ConsumeMode::GetDel), ("redis (Lua GET+DEL)", ConsumeMode::Lua)]
                {
                    let store = Arc::new(RedisTicketStore::new(pool.clone(), Duration::from_secs(2), mode));
                    report(name, measure(store, &args).await);
                }
            }
            Ok(None) => println!("redis: no URL given"),
            Err(e) => println!("redis: {e}"),
        }
        report("memory (TicketActor)", measure(Arc::new(ActorTicketStore::start()), &args).await);
    });
}
