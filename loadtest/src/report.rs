//! Reports of load runs under `loadtest/reports/`: a Markdown summary, the raw figures as JSON,
//! and an SVG chart of answers per second and latency (p50, p99) per second for each run.

use plotters::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One second of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub answers: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Purchases sent again this second (`failover`: a 503 or no answer).
    pub retries: u64,
}

/// The seconds of a run that lasted `elapsed`, the last one (partial) at its true rate: counts
/// scaled to a whole second, or left out when under a quarter of one (too little to rate). A
/// partial second drawn as it was counted would show a fall that never happened.
pub fn whole_seconds(mut seconds: Vec<Second>, elapsed: std::time::Duration) -> Vec<Second> {
    let whole = elapsed.as_secs() as usize;
    let part = elapsed.as_secs_f64() - whole as f64;
    if seconds.len() > whole {
        seconds.truncate(whole + 1);
        if part < 0.25 {
            seconds.truncate(whole);
        } else if let Some(last) = seconds.last_mut() {
            last.answers = (last.answers as f64 / part).round() as u64;
            last.retries = (last.retries as f64 / part).round() as u64;
        }
    }
    seconds
}

/// The figures of one run against one server.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub label: String,
    pub mode: String,
    pub elapsed_secs: f64,
    pub attempts: u64,
    /// Answers per second (errors excluded).
    pub per_sec: f64,
    pub created: u64,
    pub sold_out: u64,
    pub limited: u64,
    pub shed: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub seconds: Vec<Second>,
    /// Purchases sent again (`failover`): after a 503 or no answer, same idempotency key.
    pub retries: u64,
    /// What happened to a node mid-run (`SIGKILL`, `drain of n1`), and when, in seconds into
    /// the run.
    pub event: String,
    pub killed_at_secs: Option<f64>,
    /// From the event to the first purchase sent after it that succeeded.
    pub gap_ms: Option<f64>,
    /// A drain: from the request until the node was `down` (it held no shard).
    pub drained_ms: Option<f64>,
    /// Server CPU per attempt, in microseconds (the server and what it started, from /proc).
    pub cpu_us: Option<f64>,
    /// Why the audit failed; `None` when it held.
    pub audit: Option<String>,
    pub audit_detail: String,
}

impl Run {
    pub fn line(&self) -> String {
        let audit = match &self.audit {
            None => format!("audit ok ({})", self.audit_detail),
            Some(why) => format!("AUDIT FAILED: {why}"),
        };
        let cpu = self.cpu_us.map_or(String::new(), |us| {
            format!("; server CPU {us:.1} µs/attempt")
        });
        format!(
            "{}: {} — {:.0} answers/s ({} attempts: {} created, {} sold out, {} limit, {} shed, {} errors in {:.1}s); latency ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.1}{cpu}; {audit}",
            self.label,
            self.mode,
            self.per_sec,
            self.attempts,
            self.created,
            self.sold_out,
            self.limited,
            self.shed,
            self.errors,
            self.elapsed_secs,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms
        )
    }
}

/// Writes `{stem}.md`, `{stem}.json` and `{stem}.svg` under `dir`; returns the Markdown path.
pub fn write(
    dir: &Path,
    stem: &str,
    title: &str,
    runs: &[Run],
    notes: &[String],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(
        &serde_json::json!({"title": title, "runs": runs, "notes": notes}),
    )?;
    std::fs::write(dir.join(format!("{stem}.json")), json)?;
    let svg = dir.join(format!("{stem}.svg"));
    chart(&svg, title, runs)?;
    let mut md = format!("# {title}\n\n");
    md.push_str("| run | mode | answers/s | 201 | sold out | limit | 429 | errors | p50 ms | p99 ms | p99.9 ms | server CPU µs/attempt | audit |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
            r.label,
            r.mode,
            r.per_sec,
            r.created,
            r.sold_out,
            r.limited,
            r.shed,
            r.errors,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.cpu_us.map_or("–".to_string(), |us| format!("{us:.1}")),
            r.audit.as_deref().unwrap_or("ok")
        ));
    }
    for n in notes {
        md.push_str(&format!("\n{n}\n"));
    }
    md.push_str(&format!(
        "\n![answers and latency per second]({stem}.svg)\n"
    ));
    let path = dir.join(format!("{stem}.md"));
    std::fs::write(&path, md)?;
    Ok(path)
}

/// Answers per second (top) and p99 latency per second (bottom), one line per run.
fn chart(path: &Path, title: &str, runs: &[Run]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (top, bottom) = root.split_vertically(310);
    let secs = runs
        .iter()
        .map(|r| r.seconds.len())
        .max()
        .unwrap_or(1)
        .max(1) as u32;
    let peak = runs
        .iter()
        .flat_map(|r| r.seconds.iter().map(|s| s.answers))
        .max()
        .unwrap_or(1)
        .max(1);
    let slowest = runs
        .iter()
        .flat_map(|r| r.seconds.iter().map(|s| s.p99_ms))
        .fold(1.0f64, f64::max);
    let mut answers = ChartBuilder::on(&top)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0u32..secs, 0u64..peak + peak / 10)?;
    answers
        .configure_mesh()
        .x_desc("second")
        .y_desc("answers/s")
        .draw()?;
    let mut latency = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0u32..secs, 0f64..slowest * 1.1)?;
    latency
        .configure_mesh()
        .x_desc("second")
        .y_desc("p99 ms")
        .draw()?;
    for (i, r) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = r
            .seconds
            .iter()
            .enumerate()
            .map(|(s, x)| (s as u32, x.answers));
        answers
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(r.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        let points = r
            .seconds
            .iter()
            .enumerate()
            .map(|(s, x)| (s as u32, x.p99_ms));
        latency.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
        if r.retries > 0 {
            let points = r
                .seconds
                .iter()
                .enumerate()
                .map(|(s, x)| (s as u32, x.retries));
            answers
                .draw_series(LineSeries::new(points, BLUE.stroke_width(1)))?
                .label(format!("{}: retries/s", r.label))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
        }
        if let Some(at) = r.killed_at_secs {
            let at = at as u32;
            let marker = || BLACK.mix(0.6).stroke_width(1);
            answers
                .draw_series(LineSeries::new([(at, 0), (at, peak)], marker()))?
                .label(format!("{} at {at} s", r.event))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], marker()));
            latency.draw_series(LineSeries::new([(at, 0.0), (at, slowest)], marker()))?;
        }
    }
    answers
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(answers: u64) -> Second {
        Second {
            answers,
            p50_ms: 1.0,
            p99_ms: 2.0,
            retries: 0,
        }
    }

    #[test]
    fn given_a_partial_last_second_then_it_is_drawn_at_its_rate_or_left_out() {
        let run = vec![second(100), second(100), second(50)];
        let half = whole_seconds(run.clone(), std::time::Duration::from_millis(2500));
        assert_eq!(
            half.iter().map(|s| s.answers).collect::<Vec<_>>(),
            [100, 100, 100]
        );
        let sliver = whole_seconds(run.clone(), std::time::Duration::from_millis(2100));
        assert_eq!(sliver.len(), 2);
        let exact = whole_seconds(run[..2].to_vec(), std::time::Duration::from_secs(2));
        assert_eq!(exact.len(), 2);
    }
}
