//! `chart`: the same results as `table`, drawn as an SVG bar chart of server
//! CPU per player-second for each case and server, so a reader sees at a
//! glance where ringcast stands against its peer and the raw limit.
//!
//! Hand-written SVG (a few rectangles and labels) rather than a plotting
//! crate: the figure is small and the file stays diffable.

use std::fmt::Write as _;

use crate::table::{self, Case, Results};

/// Colours per server, in the order bars are drawn within a case.
const SERVERS: [(&str, &str); 5] = [
    ("ringcast", "#1f77b4"),
    ("ringcast-1shard", "#6baed6"),
    ("ringcast-nagle", "#9ecae1"),
    ("nginx-rtmp", "#d62728"),
    ("raw", "#7f7f7f"),
];

const WIDTH: f64 = 1120.0;
const LABEL_W: f64 = 480.0;
const RIGHT_PAD: f64 = 90.0;
const BAR_H: f64 = 11.0;
const GROUP_GAP: f64 = 9.0;
const TOP: f64 = 58.0;
const BOTTOM: f64 = 34.0;

/// One case's bars: (server, colour, median CPU ms per player-second).
struct Group {
    label: String,
    bars: Vec<(&'static str, &'static str, f64)>,
    vs_nginx: Option<f64>,
}

fn groups(res: &Results) -> Vec<Group> {
    res.cases
        .iter()
        .filter(|(name, case)| table::in_main_table(name, case))
        .filter_map(|(name, case)| group(name, case))
        .collect()
}

fn group(name: &str, case: &Case) -> Option<Group> {
    let bars: Vec<_> = SERVERS
        .iter()
        .filter_map(|&(server, colour)| {
            let cpu = table::med(case.runs(server)?, |r| r.cpu)?;
            Some((server, colour, cpu))
        })
        .collect();
    if bars.is_empty() {
        return None;
    }
    let vs_nginx = case
        .runs("ringcast")
        .zip(case.runs("nginx-rtmp"))
        .and_then(|(own, peer)| table::paired_ratio(own, peer, |r| r.cpu));
    Some(Group {
        label: table::label(name, case),
        bars,
        vs_nginx,
    })
}

/// A round axis end and tick step for values up to `max`.
fn axis(max: f64) -> (f64, f64) {
    let raw = (max / 5.0).max(1e-6);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil().max(1.0) * step, step)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the whole SVG document (an empty chart says so when no case has
/// CPU figures).
pub fn render(input: &str) -> String {
    let res = table::parse(input);
    let groups = groups(&res);
    let mut s = String::new();
    let _ = write_svg(&mut s, &groups);
    s
}

fn write_svg(s: &mut String, groups: &[Group]) -> std::fmt::Result {
    let rows: usize = groups.iter().map(|g| g.bars.len()).sum();
    let height = TOP + BOTTOM + rows as f64 * BAR_H + groups.len() as f64 * GROUP_GAP;
    let max = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.2))
        .fold(0.0, f64::max);
    let (end, step) = axis(max);
    let plot_w = WIDTH - LABEL_W - RIGHT_PAD;
    let x = |v: f64| LABEL_W + v / end * plot_w;
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11">"#
    )?;
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#)?;
    writeln!(
        s,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">Server CPU per player-second (ms; lower is better), medians of the repetitions</text>"#
    )?;
    let mut lx = 10.0;
    for (server, colour) in SERVERS {
        writeln!(
            s,
            r#"<rect x="{lx}" y="28" width="12" height="10" fill="{colour}"/><text x="{}" y="37">{server}</text>"#,
            lx + 16.0
        )?;
        lx += 40.0 + server.len() as f64 * 7.0;
    }
    writeln!(
        s,
        r##"<text x="{lx}" y="37" fill="#444">× = ringcast ÷ nginx-rtmp, same run</text>"##
    )?;
    let axis_y = height - BOTTOM + 4.0;
    let mut tick = 0.0;
    while tick <= end + step / 2.0 {
        let tx = x(tick);
        writeln!(
            s,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{axis_y:.1}" stroke="#ddd"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            axis_y + 14.0,
            trim(tick)
        )?;
        tick += step;
    }
    let mut y = TOP;
    if groups.is_empty() {
        writeln!(
            s,
            r#"<text x="{LABEL_W}" y="{}">no case with CPU figures</text>"#,
            TOP + 12.0
        )?;
    }
    for g in groups {
        let mid = y + g.bars.len() as f64 * BAR_H / 2.0 + 4.0;
        writeln!(
            s,
            r#"<text x="{:.1}" y="{mid:.1}" text-anchor="end">{}</text>"#,
            LABEL_W - 6.0,
            escape(&g.label)
        )?;
        for &(server, colour, cpu) in &g.bars {
            let w = (x(cpu) - LABEL_W).max(0.5);
            let ratio = match (server, g.vs_nginx) {
                ("ringcast", Some(r)) => format!("  {r:.2}×"),
                _ => String::new(),
            };
            writeln!(
                s,
                r#"<rect x="{LABEL_W}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{colour}"><title>{server}: {cpu:.3}</title></rect><text x="{:.1}" y="{:.1}" font-size="9">{cpu:.3}{ratio}</text>"#,
                y + 1.0,
                BAR_H - 2.0,
                LABEL_W + w + 3.0,
                y + BAR_H - 2.5,
            )?;
            y += BAR_H;
        }
        y += GROUP_GAP;
    }
    writeln!(s, "</svg>")
}

/// A tick label without trailing zeros.
fn trim(v: f64) -> String {
    let t = format!("{v:.3}");
    t.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(case: &str, server: &str, rep: u64, cpu: f64) -> String {
        format!(
            r#"{{"case":"{case}","title":"T <{case}>","server":"{server}","rep":{rep},"report":{{"players":10,"ok":10,"server":{{"cpu_ms_per_player_second":{cpu}}}}}}}"#
        )
    }

    #[test]
    fn draws_a_bar_per_server_and_the_ratio() {
        let input = [
            line("rtmp-200k-1000", "ringcast", 1, 0.05),
            line("rtmp-200k-1000", "nginx-rtmp", 1, 0.5),
            line("rtmp-200k-1000", "raw", 1, 0.04),
        ]
        .join("\n");
        let svg = render(&input);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("ringcast: 0.050"));
        assert!(svg.contains("nginx-rtmp: 0.500"));
        assert!(svg.contains("0.10×"), "{svg}");
        assert!(
            svg.contains("T &lt;rtmp-200k-1000&gt;"),
            "labels are escaped"
        );
    }

    #[test]
    fn leaves_out_the_curve_and_says_when_empty() {
        let svg = render(&line("mw-rtmp-40", "ringcast", 1, 0.1));
        assert!(svg.contains("no case with CPU figures"));
        assert_eq!(svg.matches("<title>").count(), 0);
    }

    #[test]
    fn axis_ends_round_above_the_largest_value() {
        assert_eq!(axis(0.452), (0.5, 0.1));
        let (end, step) = axis(0.03);
        assert!(end >= 0.03 && step > 0.0);
    }
}
