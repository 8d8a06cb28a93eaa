//! The soak's plot: one panel per series, stacked, time across, each from
//! zero to its largest value; the restart as a grey line. The CSV beside it
//! has the numbers; the panels are, top to bottom, RSS per user (blue),
//! Redis memory per user (green), shard stream entries (orange, the
//! changelogs' in light orange), check p99 (red) and post-to-visible p99
//! (purple), with the population (light grey) behind the first two.

use std::path::Path;

use super::Sample;

const W: usize = 960;
const PANEL: usize = 150;
const PAD: usize = 12;

struct Canvas {
    px: Vec<u8>,
    h: usize,
}

impl Canvas {
    fn dot(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        if x < W && y < self.h {
            let i = (y * W + x) * 3;
            self.px[i..i + 3].copy_from_slice(&rgb);
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), rgb: [u8; 3]) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        for i in 0..=steps {
            let x = x0 + (x1 - x0) * i / steps;
            let y = y0 + (y1 - y0) * i / steps;
            for (dx, dy) in [(0, 0), (0, 1)] {
                self.dot((x + dx) as usize, (y + dy) as usize, rgb);
            }
        }
    }
}

/// Writes the plot of `samples` to `path` (PNG).
pub fn soak_png(path: &Path, samples: &[Sample], restart_at: f64) -> anyhow::Result<()> {
    type Series = (fn(&Sample) -> f64, [u8; 3]);
    let population: Series = (|s| s.users as f64, [210, 210, 210]);
    let panels: [&[Series]; 5] = [
        &[population, (|s| s.rss_per_user, [31, 119, 180])],
        &[population, (|s| s.redis_per_user, [44, 160, 44])],
        &[(|s| s.changelog_entries as f64, [255, 200, 150]), (|s| s.stream_entries as f64, [255, 127, 14])],
        &[(|s| s.check_p99_us, [214, 39, 40])],
        &[(|s| s.visible_p99_us, [148, 103, 189])],
    ];
    let h = panels.len() * (PANEL + PAD) + PAD;
    let mut c = Canvas { px: vec![255; W * h * 3], h };
    let t_max = samples.last().map_or(1.0, |s| s.t_s).max(1.0);
    let (left, right) = (PAD as i64, (W - PAD) as i64);
    let x_of = |t: f64| left + ((t / t_max) * (right - left) as f64) as i64;
    for (p, series) in panels.iter().enumerate() {
        let (top, bottom) = ((PAD + p * (PANEL + PAD)) as i64, (PAD + p * (PANEL + PAD) + PANEL) as i64);
        for (a, b) in [((left, top), (right, top)), ((left, bottom), (right, bottom))] {
            c.line(a, b, [120, 120, 120]);
        }
        c.line((left, top), (left, bottom), [120, 120, 120]);
        c.line((right, top), (right, bottom), [120, 120, 120]);
        c.line((x_of(restart_at), top), (x_of(restart_at), bottom), [160, 160, 160]);
        for (value, rgb) in series.iter() {
            let max = samples.iter().map(value).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
            let point = |s: &Sample| (x_of(s.t_s), bottom - ((value(s) / max) * (PANEL - 4) as f64) as i64);
            for pair in samples.windows(2) {
                c.line(point(&pair[0]), point(&pair[1]), *rgb);
            }
        }
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, W as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&c.px)?;
    Ok(())
}
