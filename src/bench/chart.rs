//! The chart of a benchmark run: connections per second of each strategy against the number
//! of workers, as an SVG that stays readable on a phone (type of 18 units at the SVG's natural
//! width, a log axis for workers, the legend outside the plot, every strategy with its own
//! marker and dash so colour is not needed to tell them apart).

use super::report::Report;
use super::servers::Strategy;

impl Report {
    // ANCHOR: svg
    /// The chart: connections/s (median over rounds) of each strategy against the number of
    /// workers, on a log scale, one line per strategy, with the legend under the plot. Sized
    /// for a phone: 400 pixels wide, no text smaller than 14 pixels, and every strategy told
    /// apart by its line (solid: ours; short dashes: chapter 9's; long dashes: Node's) and its
    /// marker, not by colour alone.
    pub fn svg(&self) -> Result<String, String> {
        use plotters::prelude::*;
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        let strategies = &self.plan.strategies;
        let (lo, hi) = log2_range(&self.plan.workers);
        let top = self
            .summary
            .iter()
            .map(|s| s.conn_per_s)
            .fold(0.0, f64::max);
        let (width, title_height, plot_height, row) = (400u32, 58u32, 300u32, 26u32);
        let legend_top = title_height + plot_height;
        let height = legend_top + 24 + row * strategies.len() as u32;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(e)?;
            let (title, rest) = root.split_vertically(title_height);
            let (plot, legend) = rest.split_vertically(plot_height);
            let m = &self.machine;
            let centre = |size| {
                ("sans-serif", size)
                    .into_font()
                    .into_text_style(&title)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Top,
                    ))
            };
            let subtitle = format!("{} CPUs, {} clients, {}", m.cpus, self.plan.clients, m.date);
            let mid = width as i32 / 2;
            title
                .draw(&Text::new(
                    "New connections per second",
                    (mid, 8),
                    centre(TITLE),
                ))
                .map_err(e)?;
            title
                .draw(&Text::new(subtitle, (mid, 34), centre(TEXT)))
                .map_err(e)?;
            let mut chart = ChartBuilder::on(&plot)
                .margin(10)
                .margin_right(20)
                .x_label_area_size(56)
                .y_label_area_size(48)
                .build_cartesian_2d(lo..hi, 0f64..(top * 1.1).max(1.0))
                .map_err(e)?;
            chart
                .configure_mesh()
                .x_desc("workers (log scale)")
                // One label per power of two; only the worker counts measured are written.
                .x_labels((hi - lo).ceil() as usize + 1)
                .x_label_formatter(&|x| {
                    let w = self
                        .plan
                        .workers
                        .iter()
                        .find(|&&w| (log2(w) - x).abs() < 0.01);
                    w.map_or(String::new(), u32::to_string)
                })
                .y_labels(6)
                .y_label_formatter(&|y| match (y / 1000.0).round() {
                    0.0 => "0".to_string(),
                    k => format!("{k}k"),
                })
                .label_style(("sans-serif", TEXT))
                .axis_desc_style(("sans-serif", TEXT))
                .disable_x_mesh()
                .max_light_lines(0)
                .bold_line_style(RGBColor(225, 225, 225))
                .draw()
                .map_err(e)?;
            for &strategy in strategies {
                let points: Vec<(f64, f64)> = self
                    .summary
                    .iter()
                    .filter(|s| s.strategy == strategy)
                    .map(|s| (log2(s.workers), s.conn_per_s))
                    .collect();
                let style = ShapeStyle::from(colour(strategy)).stroke_width(2);
                match dashes(strategy) {
                    None => chart.draw_series(LineSeries::new(points.clone(), style)),
                    Some((dash, gap)) => {
                        chart.draw_series(DashedLineSeries::new(points.clone(), dash, gap, style))
                    }
                }
                .map_err(e)?;
                for p in &points {
                    draw_marker(&root, strategy, chart.backend_coord(p))?;
                }
            }
            for (i, &strategy) in strategies.iter().enumerate() {
                let y = 12 + (row * i as u32) as i32 + row as i32 / 2;
                let style = ShapeStyle::from(colour(strategy)).stroke_width(2);
                let line = [(12, y), (60, y)];
                match dashes(strategy) {
                    None => legend.draw(&PathElement::new(line, style)),
                    Some((dash, gap)) => legend.draw(&plotters::element::DashedPathElement::new(
                        line, dash, gap, style,
                    )),
                }
                .map_err(e)?;
                draw_marker(&root, strategy, (36, legend_top as i32 + y))?;
                let text = ("sans-serif", TEXT)
                    .into_font()
                    .into_text_style(&legend)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Center,
                    ));
                legend
                    .draw(&Text::new(strategy.label(), (72, y), text))
                    .map_err(e)?;
            }
            root.present().map_err(e)?;
        }
        Ok(svg)
    }
    // ANCHOR_END: svg
}

/// Text in the chart, as plotters sizes it: it writes `font-size` as this over 1.24, so 18
/// is 14.5 pixels.
const TEXT: u32 = 18;
const TITLE: u32 = 21;

fn log2(workers: u32) -> f64 {
    f64::from(workers.max(1)).log2()
}

/// The x axis: the worker counts' logarithms, with some room on either side.
fn log2_range(workers: &[u32]) -> (f64, f64) {
    let lo = workers.iter().copied().min().unwrap_or(1);
    let hi = workers.iter().copied().max().unwrap_or(1);
    (log2(lo) - 0.35, log2(hi) + 0.35)
}

/// Each strategy's line: solid for our cluster, short dashes for chapter 9's models, long
/// dashes for Node's cluster (dash and gap, in pixels).
fn dashes(strategy: Strategy) -> Option<(i32, i32)> {
    match strategy {
        Strategy::Rr | Strategy::None => None,
        Strategy::Prefork | Strategy::Reuseport | Strategy::Fork => Some((5, 4)),
        Strategy::NodeRr | Strategy::NodeNone => Some((14, 6)),
    }
}

/// Each strategy's marker, centred on `at` (pixels): round robin a circle and `SCHED_NONE` a
/// square (filled: ours, hollow: Node's); pre-fork a triangle, `SO_REUSEPORT` a diamond, fork
/// per connection a cross.
fn draw_marker(
    area: &plotters::prelude::DrawingArea<
        plotters::prelude::SVGBackend<'_>,
        plotters::coord::Shift,
    >,
    strategy: Strategy,
    at: (i32, i32),
) -> Result<(), String> {
    use plotters::prelude::*;
    let colour = colour(strategy);
    let filled = ShapeStyle::from(colour).filled();
    let hollow = ShapeStyle::from(colour).stroke_width(2);
    let at = EmptyElement::at(at);
    let square = [(-5, -5), (5, 5)];
    match strategy {
        Strategy::Rr => area.draw(&(at + Circle::new((0, 0), 5, filled))),
        Strategy::NodeRr => area.draw(&(at + Circle::new((0, 0), 5, hollow))),
        Strategy::None => area.draw(&(at + Rectangle::new(square, filled))),
        Strategy::NodeNone => area.draw(&(at + Rectangle::new(square, hollow))),
        Strategy::Prefork => {
            area.draw(&(at + Polygon::new(vec![(0, -7), (6, 5), (-6, 5)], filled)))
        }
        Strategy::Reuseport => {
            area.draw(&(at + Polygon::new(vec![(0, -7), (7, 0), (0, 7), (-7, 0)], filled)))
        }
        Strategy::Fork => area.draw(
            &(at + PathElement::new(vec![(-5, -5), (5, 5)], hollow)
                + PathElement::new(vec![(-5, 5), (5, -5)], hollow)),
        ),
    }
    .map_err(|e| e.to_string())
}

/// Each strategy's colour in the chart: ours warm, the kernel's models cool, Node's violet.
fn colour(strategy: Strategy) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match strategy {
        Strategy::Rr => RGBColor(214, 39, 40),
        Strategy::None => RGBColor(255, 127, 14),
        Strategy::Prefork => RGBColor(44, 160, 44),
        Strategy::Reuseport => RGBColor(31, 119, 180),
        Strategy::Fork => RGBColor(127, 127, 127),
        Strategy::NodeRr => RGBColor(148, 103, 189),
        Strategy::NodeNone => RGBColor(227, 119, 194),
    }
}
