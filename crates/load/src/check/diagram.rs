//! A counterexample as a space-time diagram (SVG).
//!
//! The picture distributed-systems papers draw: one horizontal line per
//! process, time running left to right. The user's client is the top line,
//! each node that answered one of the operations a line below it. Every
//! request is an arrow from the client down to the node that served it (at
//! the moment it was sent) and back up (at the moment the answer came), so
//! "the read began after the increment was acknowledged" is visible as one
//! arrow starting right of where the other one ended.
//!
//! When the nodes' event logs of the run are at hand
//! ([`super::replication`]), the copies of the user's writes are drawn too:
//! a dashed arrow from the origin node at the write to each receiving node
//! at the apply, placed by the nodes' wall clocks (the legend says so).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::Counterexample;
use super::replication::Arrow;

const WIDTH: f64 = 760.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 56.0;
const LANE: f64 = 64.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The counterexample as a standalone SVG document.
pub fn diagram(ex: &Counterexample) -> String {
    diagram_with(ex, &[])
}

/// The counterexample with the copies of its writes ([`super::replication::arrows`]).
pub fn diagram_with(ex: &Counterexample, copies: &[Arrow]) -> String {
    let clients: BTreeSet<u32> = ex.ops.iter().map(|o| o.client).collect();
    let nodes: BTreeSet<&str> = ex
        .ops
        .iter()
        .filter_map(|o| o.node.as_deref())
        .chain(copies.iter().flat_map(|a| [a.from.as_str(), a.to.as_str()]))
        .collect();
    let lanes: Vec<String> = clients
        .iter()
        .map(|c| format!("user {} client {c}", ex.user))
        .chain(nodes.iter().map(|n| n.to_string()))
        .collect();
    let lane_y = |i: usize| TOP + LANE * i as f64;
    let client_lane = |c: u32| clients.iter().position(|x| *x == c).unwrap_or(0);
    let node_lane = |n: &str| clients.len() + nodes.iter().position(|x| *x == n).unwrap_or(0);
    let legend = if copies.is_empty() { 0.0 } else { 18.0 };
    let height = lane_y(lanes.len()) + 24.0 + legend;

    // The time axis spans every operation and every copy, start to end.
    let spans = ex
        .ops
        .iter()
        .map(|o| (o.invoke_us, o.complete_us))
        .chain(copies.iter().map(|a| (a.from_us, a.to_us)));
    let t0 = spans.clone().map(|(from, _)| from).min().unwrap_or(0);
    let t1 = spans.map(|(_, to)| to).max().unwrap_or(t0).max(t0 + 1);
    let span = (t1 - t0) as f64;
    let x = |t: u64| LEFT + (t.saturating_sub(t0)) as f64 / span * (WIDTH - LEFT - RIGHT);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    s.push_str(
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"#,
    );
    s.push('\n');
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="12" y="22" font-size="14" font-weight="bold">{}</text>"#,
        escape(&format!("{} (user {})", ex.kind.name(), ex.user))
    );
    for (i, name) in lanes.iter().enumerate() {
        let y = lane_y(i);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#999"/><text x="12" y="{}">{}</text>"##,
            WIDTH - RIGHT,
            y + 4.0,
            escape(name)
        );
    }
    for (i, op) in ex.ops.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let yc = lane_y(client_lane(op.client));
        let (xi, xo) = (x(op.invoke_us), x(op.complete_us));
        let label = match op.counter {
            Some(c) => format!("{} {}", op.op.name(), c),
            None => op.op.name().to_owned(),
        };
        match op.node.as_deref() {
            Some(node) => {
                let yn = lane_y(node_lane(node));
                let xm = (xi + xo) / 2.0;
                let _ = writeln!(
                    s,
                    r#"<polyline points="{xi:.1},{yc} {xm:.1},{yn} {xo:.1},{yc}" fill="none" stroke="{color}" stroke-width="2" marker-mid="url(#arrow)" marker-end="url(#arrow)"/>"#
                );
                let _ = writeln!(
                    s,
                    r#"<text x="{xm:.1}" y="{:.1}" text-anchor="middle" fill="{color}">{}</text>"#,
                    yn + 16.0,
                    escape(&label)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    r#"<line x1="{xi:.1}" y1="{yc}" x2="{xo:.1}" y2="{yc}" stroke="{color}" stroke-width="3" stroke-dasharray="4 3"/><text x="{xi:.1}" y="{:.1}" fill="{color}">{} (no answer)</text>"#,
                    yc - 8.0,
                    escape(&label)
                );
            }
        }
    }
    for a in copies {
        let (x1, y1) = (x(a.from_us), lane_y(node_lane(&a.from)));
        let (x2, y2) = (x(a.to_us), lane_y(node_lane(&a.to)));
        let _ = writeln!(
            s,
            r##"<line class="replication" x1="{x1:.1}" y1="{y1}" x2="{x2:.1}" y2="{y2}" stroke="#ff7f0e" stroke-width="1.5" stroke-dasharray="6 3" marker-end="url(#arrow)"><title>{}</title></line>"##,
            escape(&format!(
                "copy of {} from {} to {}, {:.3} ms",
                a.version,
                a.from,
                a.to,
                a.to_us.saturating_sub(a.from_us) as f64 / 1000.0
            ))
        );
    }
    if !copies.is_empty() {
        let _ = writeln!(
            s,
            r##"<text class="legend" x="12" y="{:.1}" fill="#ff7f0e">dashed: replication of the write, from the nodes' event logs (placed by the nodes' wall clocks, ms precision)</text>"##,
            height - 26.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#555">{}</text><text x="{}" y="{:.1}" text-anchor="end" fill="#555">+{:.3} ms</text>"##,
        height - 8.0,
        super::seconds(t0),
        WIDTH - RIGHT,
        height - 8.0,
        span / 1000.0
    );
    s.push_str("</svg>\n");
    s
}
