//! The weekly availability grid: an inline SVG (7 day columns × hour rows) drawn from a
//! [`Schedule`], the library's typed model of Cal.com's 2024-06-11 schedule
//! (`docs/calcom.md` §5: `availability: [{days: ["Monday"], startTime: "09:00", endTime:
//! "17:00"}]`, times in the schedule's `timeZone`). No JavaScript.

use calconnect::api::Schedule;
use maud::{Markup, html};
use time::{Time, Weekday};

/// The drawing's measures (SVG user units; 1 unit is 1 CSS pixel at full size).
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// Width of the hour labels' column.
    left: u32,
    /// Height of the day labels' row.
    top: u32,
    /// A day's width.
    col: u32,
    /// An hour's height.
    row: u32,
    /// Blocks say `09:00–17:00` on one line (wide) or start and end on two (compact).
    one_line: bool,
}

/// Seven columns of 118: a laptop screen.
const WIDE: Geometry = Geometry {
    left: 48,
    top: 28,
    col: 118,
    row: 26,
    one_line: true,
};

/// Seven columns of 44, 358 units in all: drawn at about full size (12 px text) on a 390 px
/// phone screen.
const COMPACT: Geometry = Geometry {
    left: 40,
    top: 24,
    col: 44,
    row: 24,
    one_line: false,
};

/// Minutes since midnight.
fn minutes(t: Time) -> u32 {
    u32::from(t.hour()) * 60 + u32::from(t.minute())
}

/// `09:00`.
fn hh_mm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// One block of availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    day: Weekday,
    start: u32,
    end: u32,
    label: String,
}

impl Block {
    /// The day's column, Monday first.
    fn column(&self) -> u32 {
        u32::from(self.day.number_days_from_monday())
    }
}

/// The blocks of a schedule's weekly availability (empty or inverted ranges are skipped).
pub(crate) fn blocks(schedule: &Schedule) -> Vec<Block> {
    schedule
        .availability
        .iter()
        .filter(|a| a.end_time > a.start_time)
        .flat_map(|a| {
            a.days.iter().map(|day| Block {
                day: *day,
                start: minutes(a.start_time),
                end: minutes(a.end_time),
                label: format!("{}–{}", hh_mm(a.start_time), hh_mm(a.end_time)),
            })
        })
        .collect()
}

/// The grid: a wide drawing and a compact one for phone screens (the page's CSS shows one of
/// them by the screen's width). Hours shown: from the earliest start to the latest end, padded
/// by an hour, at least 08:00–18:00.
pub(crate) fn svg(schedule: &Schedule) -> Markup {
    let blocks = blocks(schedule);
    html! {
        div.grid-wide { (drawing(schedule, &blocks, WIDE, "weekly-grid")) }
        div.grid-compact { (drawing(schedule, &blocks, COMPACT, "weekly-grid-compact")) }
    }
}

/// What a screen reader says for the drawing: the schedule, its zone, and every block.
fn description(schedule: &Schedule, blocks: &[Block]) -> String {
    let days: Vec<String> = blocks
        .iter()
        .map(|b| format!("{} {}", b.day, b.label))
        .collect();
    let hours = if days.is_empty() {
        "no available hours".to_owned()
    } else {
        days.join(", ")
    };
    format!(
        "Weekly availability of {} in {}: {hours}",
        schedule.name, schedule.time_zone
    )
}

fn drawing(schedule: &Schedule, blocks: &[Block], g: Geometry, test_id: &str) -> Markup {
    let first = blocks.iter().map(|b| b.start / 60).min().unwrap_or(8);
    let last = blocks
        .iter()
        .map(|b| b.end.div_ceil(60))
        .max()
        .unwrap_or(18);
    let from = first.saturating_sub(1).min(8);
    let to = (last + 1).clamp(18, 24);
    let hours = to - from;
    let width = g.left + g.col * 7 + 2;
    let height = g.top + g.row * hours + 2;
    let name = &schedule.name;
    let tz = &schedule.time_zone;
    let days = (0..7u8).map(|n| Weekday::Monday.nth_next(n));
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" data-testid=(test_id)
            viewBox={ "0 0 " (width) " " (height) } width="100%"
            style={ "max-width:" (width) "px;font:12px system-ui,sans-serif" }
            aria-label=(description(schedule, blocks)) {
            title { (name) ": weekly availability (" (tz) ")" }
            @for (i, d) in (0u32..).zip(days) {
                @let day = d.to_string();
                text x=(g.left + g.col * i + g.col / 2) y=(g.top - 10) text-anchor="middle" fill="#374151" font-weight="600" {
                    (day.get(..3).unwrap_or(&day))
                }
            }
            @for h in 0..=hours {
                line x1=(g.left) y1=(g.top + g.row * h) x2=(width - 2) y2=(g.top + g.row * h) stroke="#e5e7eb" {}
                @if h < hours {
                    text x=(g.left - 6) y=(g.top + g.row * h + 13) text-anchor="end" fill="#4b5563" {
                        (format!("{:02}:00", from + h))
                    }
                }
            }
            @for i in 0..=7u32 {
                line x1=(g.left + g.col * i) y1=(g.top) x2=(g.left + g.col * i) y2=(height - 2) stroke="#e5e7eb" {}
            }
            @for b in blocks {
                @let x = g.left + g.col * b.column() + 2;
                @let w = g.col - 4;
                @let y0 = g.top + (b.start - from * 60) * g.row / 60;
                @let y1 = g.top + (b.end - from * 60) * g.row / 60;
                @let mid = x + w / 2;
                g.avail data-day=(b.day.to_string()) data-start=(b.start) data-end=(b.end) {
                    rect x=(x) y=(y0) width=(w) height=((y1 - y0).max(4)) rx="5" fill="#111827" fill-opacity="0.85" {}
                    @if g.one_line {
                        text x=(mid) y=(y0 + 16) text-anchor="middle" fill="#fff" { (b.label) }
                    } @else {
                        text x=(mid) y=(y0 + 15) text-anchor="middle" fill="#fff" { (hh_mm_of(b.start)) }
                        @if y1 - y0 >= 40 {
                            text x=(mid) y=(y1 - 6) text-anchor="middle" fill="#fff" { (hh_mm_of(b.end)) }
                        }
                    }
                }
            }
        }
    }
}

/// `09:00` from minutes since midnight (`24:00` for the day's end).
fn hh_mm_of(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(json: serde_json::Value) -> Schedule {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn blocks_follow_the_schedule() {
        let s = schedule(serde_json::json!({
            "id": 1, "name": "Working hours", "timeZone": "Europe/London",
            "availability": [
                {"days": ["Monday", "Tuesday"], "startTime": "09:00", "endTime": "17:00"},
                {"days": ["Friday"], "startTime": "13:00", "endTime": "09:00"}
            ]
        }));
        let b = blocks(&s);
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].column(), b[0].start, b[0].end), (0, 540, 1020));
        let svg = svg(&s).into_string();
        assert!(svg.contains("data-day=\"Tuesday\""));
        assert!(svg.contains("09:00–17:00"));
        assert!(svg.contains("Europe/London"));
        // Both drawings, and a description that names every block.
        assert!(svg.contains("data-testid=\"weekly-grid\""));
        assert!(svg.contains("data-testid=\"weekly-grid-compact\""));
        assert!(
            svg.contains("aria-label=\"Weekly availability of Working hours in Europe/London: Monday 09:00–17:00, Tuesday 09:00–17:00\""),
            "{svg}"
        );
        // SVG elements are closed explicitly (inline SVG has no void elements).
        assert!(svg.contains("stroke=\"#e5e7eb\"></line>"), "{svg}");
        // An unknown day is not a schedule at all: the typed model refuses it.
        let funday = serde_json::json!({
            "id": 1, "name": "x", "timeZone": "UTC",
            "availability": [{"days": ["Funday"], "startTime": "09:00", "endTime": "10:00"}]
        });
        assert!(serde_json::from_value::<Schedule>(funday).is_err());
    }

    #[test]
    fn names_are_escaped() {
        let s = schedule(serde_json::json!({
            "id": 1, "name": "<script>\"'", "timeZone": "UTC", "availability": []
        }));
        let svg = svg(&s).into_string();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;&quot;'"), "{svg}");
    }
}
