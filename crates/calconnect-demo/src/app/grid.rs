//! The weekly availability grid: an inline SVG (7 day columns × hour rows) drawn from a Cal.com
//! schedule in the 2024-06-11 shape (`docs/calcom.md` §5: `availability: [{days: ["Monday"],
//! startTime: "09:00", endTime: "17:00"}]`, times in the schedule's `timeZone`). No JavaScript.

use super::html::esc;
use serde_json::Value;

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const LEFT: u32 = 48;
const TOP: u32 = 28;
const COL: u32 = 118;
const ROW: u32 = 26;

/// Minutes since midnight of `HH:MM` (`24:00` allowed).
fn minutes(t: &str) -> Option<u32> {
    let (h, m) = t.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.get(..2).unwrap_or(m).parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

/// One block of availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    day: usize,
    start: u32,
    end: u32,
    label: String,
}

/// The blocks of a schedule's `availability` (unknown days and bad times are skipped).
pub(crate) fn blocks(schedule: &Value) -> Vec<Block> {
    let mut out = Vec::new();
    for a in schedule["availability"].as_array().into_iter().flatten() {
        let (Some(s), Some(e)) = (a["startTime"].as_str(), a["endTime"].as_str()) else {
            continue;
        };
        let (Some(start), Some(end)) = (minutes(s), minutes(e)) else {
            continue;
        };
        if end <= start {
            continue;
        }
        for d in a["days"].as_array().into_iter().flatten() {
            if let Some(day) = d.as_str().and_then(|d| DAYS.iter().position(|x| *x == d)) {
                out.push(Block {
                    day,
                    start,
                    end,
                    label: format!("{s}–{e}"),
                });
            }
        }
    }
    out
}

/// The SVG. Hours shown: from the earliest start to the latest end, padded by an hour, at least
/// 08:00–18:00.
pub(crate) fn svg(schedule: &Value) -> String {
    let blocks = blocks(schedule);
    let first = blocks.iter().map(|b| b.start / 60).min().unwrap_or(8);
    let last = blocks
        .iter()
        .map(|b| b.end.div_ceil(60))
        .max()
        .unwrap_or(18);
    let from = first.saturating_sub(1).min(8);
    let to = (last + 1).clamp(18, 24);
    let hours = to - from;
    let width = LEFT + COL * 7 + 2;
    let height = TOP + ROW * hours + 2;
    let tz = schedule["timeZone"].as_str().unwrap_or("UTC");
    let name = schedule["name"].as_str().unwrap_or("Schedule");
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" data-testid=\"weekly-grid\" \
         viewBox=\"0 0 {width} {height}\" width=\"100%\" style=\"max-width:{width}px;font:12px system-ui,sans-serif\" \
         aria-label=\"Weekly availability of {n} in {tz}\"><title>{n}: weekly availability ({tz})</title>",
        n = esc(name),
        tz = esc(tz),
    );
    for (i, d) in DAYS.iter().enumerate() {
        let x = LEFT + COL * u32::try_from(i).unwrap_or(0);
        s.push_str(&format!(
            "<text x=\"{}\" y=\"18\" text-anchor=\"middle\" fill=\"#374151\" font-weight=\"600\">{}</text>",
            x + COL / 2,
            &d[..3]
        ));
    }
    for h in 0..=hours {
        let y = TOP + ROW * h;
        s.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#e5e7eb\"/>",
            width - 2
        ));
        if h < hours {
            s.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#6b7280\">{:02}:00</text>",
                LEFT - 6,
                y + 13,
                from + h
            ));
        }
    }
    for i in 0..=7u32 {
        let x = LEFT + COL * i;
        s.push_str(&format!(
            "<line x1=\"{x}\" y1=\"{TOP}\" x2=\"{x}\" y2=\"{}\" stroke=\"#e5e7eb\"/>",
            height - 2
        ));
    }
    for b in &blocks {
        let x = LEFT + COL * u32::try_from(b.day).unwrap_or(0) + 3;
        let y0 = TOP + (b.start - from * 60) * ROW / 60;
        let y1 = TOP + (b.end - from * 60) * ROW / 60;
        s.push_str(&format!(
            "<g class=\"avail\" data-day=\"{day}\" data-start=\"{st}\" data-end=\"{en}\">\
             <rect x=\"{x}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\" rx=\"5\" fill=\"#111827\" fill-opacity=\"0.85\"/>\
             <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"middle\" fill=\"#fff\">{label}</text></g>",
            day = DAYS[b.day],
            st = b.start,
            en = b.end,
            w = COL - 6,
            h = (y1 - y0).max(4),
            tx = x + (COL - 6) / 2,
            ty = y0 + 16,
            label = esc(&b.label),
        ));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_the_schedule() {
        let schedule = serde_json::json!({
            "name": "Working hours", "timeZone": "Europe/London",
            "availability": [
                {"days": ["Monday", "Tuesday"], "startTime": "09:00", "endTime": "17:00"},
                {"days": ["Funday"], "startTime": "09:00", "endTime": "10:00"},
                {"days": ["Friday"], "startTime": "13:00", "endTime": "09:00"}
            ]
        });
        let b = blocks(&schedule);
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].day, b[0].start, b[0].end), (0, 540, 1020));
        let svg = svg(&schedule);
        assert!(svg.contains("data-day=\"Tuesday\""));
        assert!(svg.contains("09:00–17:00"));
        assert!(svg.contains("Europe/London"));
    }

    #[test]
    fn names_are_escaped() {
        let svg =
            svg(&serde_json::json!({"name": "<script>", "timeZone": "UTC", "availability": []}));
        assert!(!svg.contains("<script>"));
    }
}
