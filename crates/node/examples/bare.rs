//! The baseline for `scripts/bench-node.sh`: a bare actix-web handler with
//! no session middleware, answering `GET /api/session` with a JSON body of
//! the same shape and about the same size as the node's answer.
//!
//! Usage: `bare [ADDR] [WORKERS]` (default `127.0.0.1:0`, 1 worker); prints
//! `listening on http://ADDR` once bound.

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Serialize;

#[derive(Serialize)]
struct View {
    id_prefix: &'static str,
    user: Option<&'static str>,
    data: &'static serde_json::value::RawValue,
    created_ms: u64,
    last_access_ms: u64,
    expires_at_ms: u64,
    version: &'static str,
}

#[derive(Serialize)]
struct Reply {
    node_id: &'static str,
    session: Option<View>,
}

/// The same data the benchmark puts in the node's session, parsed once.
static DATA: std::sync::LazyLock<Box<serde_json::value::RawValue>> =
    std::sync::LazyLock::new(|| {
        serde_json::value::RawValue::from_string(r#"{"cart":{"apple":2},"counter":1}"#.into())
            .expect("valid JSON")
    });

async fn handler() -> HttpResponse {
    let data: &'static serde_json::value::RawValue = &DATA;
    HttpResponse::Ok().json(Reply {
        node_id: "bare",
        session: Some(View {
            id_prefix: "AbCdEf",
            user: Some("alice"),
            data,
            created_ms: 1_796_000_000_000,
            last_access_ms: 1_796_000_000_000,
            expires_at_ms: 1_796_001_800_000,
            version: "3@node-1",
        }),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    let listener = std::net::TcpListener::bind(&addr)?;
    println!("listening on http://{}", listener.local_addr()?);
    HttpServer::new(|| App::new().route("/api/session", web::get().to(handler)))
        .workers(workers)
        .listen(listener)?
        .run()
        .await
}
