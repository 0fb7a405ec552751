//! The daemon's read-only status page (`[status] listen`, loopback by default): one server-rendered
//! HTML page, complete without JavaScript, and live with it (the page follows `/events`).
//!
//! Like the API, it reads the hub only: a browser left open for a week holds a connection and a
//! subscription, never the acquisition.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::server::{ApiBody, HEAD_TIMEOUT, error, events};
use super::{Hub, Series, Status};

/// Plot size, SVG user units.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 160.0;

/// Serves the page on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, hub: Arc<Hub>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let hub = hub.clone();
                async move {
                    let response = match (req.method(), req.uri().path()) {
                        (&Method::GET, "/") => html(&render(&hub.status(), &hub.series())),
                        (&Method::GET, "/events") => events(&hub),
                        (&Method::GET, _) => error(StatusCode::NOT_FOUND, "no such page"),
                        _ => error(StatusCode::METHOD_NOT_ALLOWED, "the page is read-only"),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn html(text: &str) -> Response<ApiBody> {
    let mut response = Response::new(ApiBody::Full(Full::new(Bytes::from(text.to_owned()))));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Text made safe inside HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One series as an SVG line with a dot per point, scaled to its own range. Each dot carries its
/// time (UTC µs) and value, so the page's script can add the live points and lay the plot out
/// again as this function does (`page.js`, `layout`).
fn plot(name: &str, series: &Series) -> String {
    let mut svg = format!(
        r#"<svg class="plot" data-series="{}" data-points="{}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{} over the last 24 h">"#,
        esc(name),
        series.len(),
        esc(name)
    );
    let (Some(first), Some(last)) = (series.front(), series.back()) else {
        svg.push_str("</svg>");
        return svg;
    };
    let (lo, hi) = series
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let span_t = (last.0 - first.0).max(1) as f64;
    let span_v = if hi > lo { hi - lo } else { 1.0 };
    let xy = |t: i64, v: f64| {
        (
            (t - first.0) as f64 / span_t * (WIDTH - 20.0) + 10.0,
            HEIGHT - 10.0 - (v - lo) / span_v * (HEIGHT - 20.0),
        )
    };
    let mut points = String::new();
    let mut dots = String::new();
    for (t, v) in series {
        let (x, y) = xy(*t, *v);
        let _ = write!(points, "{x:.1},{y:.1} ");
        let _ = write!(
            dots,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="1.5" data-t="{t}" data-v="{v:e}"/>"#
        );
    }
    let _ = write!(
        svg,
        r#"<polyline fill="none" stroke="currentColor" points="{}"/>{dots}<text class="hi" x="10" y="12" font-size="10">{}</text><text class="lo" x="10" y="{:.0}" font-size="10">{}</text></svg>"#,
        points.trim_end(),
        esc(&format!("{hi:.9}")),
        HEIGHT - 2.0,
        esc(&format!("{lo:.9}"))
    );
    svg
}

/// The page's script: live updates from `/events` (`page.js`, beside this file).
const SCRIPT: &str = include_str!("page.js");

/// The whole page. Each part the script refreshes is an element with an id (`instruments`, `run`,
/// `runs`, `plots`, `custody`, `bundles`): on a run's start or end, an instrument's change, a
/// custody event or a seal, the script fetches this page again and swaps those parts, so the
/// server's rendering is the only one.
pub fn render(s: &Status, series: &std::collections::BTreeMap<String, Series>) -> String {
    let mut p = String::new();
    let _ = write!(
        p,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tsagent — {lab}</title>
<noscript><meta http-equiv="refresh" content="60"></noscript>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:60em}}table{{border-collapse:collapse}}td,th{{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}}.offline,.failed,.interrupted{{color:#b00}}.plot circle{{fill:currentColor}}</style>
</head><body data-series-points="{points}" data-series-span-us="{span}"><h1>tsagent — lab {lab}</h1><p>daemon pid {pid}; this page is read-only.</p>"#,
        lab = esc(&s.lab),
        pid = s.pid,
        points = super::SERIES_POINTS,
        span = super::SERIES_SPAN_US,
    );
    p.push_str(r#"<section id="instruments"><h2>Instruments</h2><table><tr><th>name</th><th>state</th><th>identity</th><th>last reading</th></tr>"#);
    for i in &s.instruments {
        let last = i.last_reading.as_ref().map_or(String::from("—"), |r| {
            format!("{} {} at {} (seq {})", r.raw, r.unit, r.utc, r.seq)
        });
        let _ = write!(
            p,
            r#"<tr class="{state}" data-instrument="{name}"><td>{name}</td><td>{state}{since}</td><td>{id}</td><td class="last" data-instrument="{name}">{last}</td></tr>"#,
            state = esc(&i.state),
            name = esc(&i.name),
            since = i
                .offline_since
                .as_deref()
                .map(|t| format!(" since {}", esc(t)))
                .unwrap_or_default(),
            id = esc(i.identity.as_deref().unwrap_or("—")),
            last = esc(&last)
        );
    }
    p.push_str(r#"</table></section><section id="run"><h2>Run</h2>"#);
    match &s.run {
        Some(r) => {
            let _ = write!(
                p,
                r#"<p>run {} of {} ({}): <span id="done">{}</span>/{} readings</p>"#,
                r.run_id,
                esc(&r.sequence),
                esc(&r.trigger),
                r.done,
                r.total
            );
        }
        None => p.push_str("<p>no run in progress</p>"),
    }
    for q in &s.queue {
        let _ = write!(
            p,
            "<p>queued: ticket {} {} by {}</p>",
            q.ticket,
            esc(&q.sequence),
            esc(&q.operator)
        );
    }
    for n in &s.next_slots {
        let _ = write!(p, "<p>next {}: {}</p>", esc(&n.sequence), esc(&n.utc));
    }
    p.push_str("</section>");
    runs(&mut p, s);
    p.push_str(r#"<section id="plots"><h2>The last 24 h</h2>"#);
    if series.is_empty() {
        p.push_str(r#"<p class="empty">no readings in the last 24 h</p>"#);
    }
    for (name, points) in series {
        let _ = write!(p, "<h3>{}</h3>{}", esc(name), plot(name, points));
    }
    p.push_str(r#"</section><section id="custody"><h2>Custody</h2>"#);
    match &s.custody {
        Some(c) => {
            let _ = write!(
                p,
                "<p>state: {}{}</p><ol>",
                esc(&c.state),
                if c.damage_pending {
                    " — damage awaits the pilot's decision"
                } else {
                    ""
                }
            );
            for line in &c.timeline {
                let _ = write!(p, "<li>{} {}</li>", esc(&line.utc), esc(&line.kind));
            }
            p.push_str("</ol>");
        }
        None => p.push_str("<p>unknown</p>"),
    }
    let _ = write!(
        p,
        r#"</section><section id="bundles"><h2>Bundles</h2><p>{} sealed, not yet sent</p></section><h2>Live</h2><ol id="live"></ol>
<script>{SCRIPT}</script></body></html>"#,
        s.bundles_not_sent
    );
    p
}

/// The recent runs, newest first: a row each, with its id for the script.
fn runs(p: &mut String, s: &Status) {
    p.push_str(r#"<section id="runs"><h2>Runs</h2>"#);
    if s.runs.is_empty() {
        p.push_str("<p>no runs yet</p></section>");
        return;
    }
    p.push_str("<table><tr><th>run</th><th>sequence</th><th>operator</th><th>trigger</th><th>status</th><th>started (UTC)</th><th>ended (UTC)</th><th>readings</th><th>official</th></tr>");
    for r in &s.runs {
        let _ = write!(
            p,
            r#"<tr class="{status}" data-run="{id}"><td>{id}</td><td>{sequence}</td><td>{operator}</td><td>{trigger}</td><td class="status">{status}</td><td>{started}</td><td>{ended}</td><td class="readings">{readings}</td><td>{official}</td></tr>"#,
            id = r.run_id,
            sequence = esc(&r.sequence),
            operator = esc(r.operator.as_deref().unwrap_or("—")),
            trigger = esc(&r.trigger),
            status = esc(&r.status),
            started = esc(&r.started_utc),
            ended = esc(r.ended_utc.as_deref().unwrap_or("—")),
            readings = r.readings,
            official = if r.official { "yes" } else { "no" },
        );
    }
    p.push_str("</table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_has_a_dot_per_point_and_text_is_escaped() {
        let series: Series = (0..5).map(|i| (i * 1_000_000, 10.0 + i as f64)).collect();
        let svg = plot("dmm <V>", &series);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains(r#"data-points="5""#));
        assert!(svg.contains("dmm &lt;V&gt;"));
        assert!(!svg.contains("dmm <V>"));
        let empty = plot("x", &Series::new());
        assert!(empty.contains(r#"data-points="0""#));
    }

    #[test]
    fn the_page_shows_instruments_custody_and_each_series() {
        let status = Status {
            lab: "LAB<1>".into(),
            ..Status::default()
        };
        let mut series = std::collections::BTreeMap::new();
        series.insert("dmm (V)".to_owned(), Series::from(vec![(0, 1.0), (1, 2.0)]));
        let page = render(&status, &series);
        assert!(page.contains("LAB&lt;1&gt;"));
        assert!(page.contains(r#"data-points="2""#));
        assert!(page.contains("EventSource"));
        assert!(page.contains("no runs yet"));
    }

    #[test]
    fn the_runs_are_listed_newest_first_with_what_each_did() {
        let line = |run_id: u64, status: &str| crate::control::RunLine {
            run_id,
            sequence: "stability".into(),
            operator: Some("A. <Tech>".into()),
            trigger: "manual".into(),
            status: status.into(),
            started_utc: "2026-01-01T00:00:00.000000Z".into(),
            ended_utc: None,
            readings: 7,
            official: run_id == 2,
        };
        let status = Status {
            runs: vec![line(2, "running"), line(1, "completed")],
            ..Status::default()
        };
        let page = render(&status, &std::collections::BTreeMap::new());
        let two = page.find(r#"data-run="2""#).unwrap();
        let one = page.find(r#"data-run="1""#).unwrap();
        assert!(two < one);
        assert!(page.contains(r#"<td class="status">running</td>"#));
        assert!(page.contains("A. &lt;Tech&gt;"));
        assert!(page.contains(r#"<td class="readings">7</td><td>yes</td>"#));
        // Every part the script swaps has its id.
        for id in ["instruments", "run", "runs", "plots", "custody", "bundles"] {
            assert!(page.contains(&format!(r#"<section id="{id}">"#)), "{id}");
        }
    }
}
