// A tiny SVG plotter for the outlier inspector: line and histogram (step) series on linear or
// log axes, with ticks, tick labels, axis titles, a legend and vertical markers; several panels
// on a grid in one file. Output is plain SVG 1.1 text, no dependencies.
#pragma once

#include <cmath>
#include <string>
#include <vector>

namespace quamba::svg {

enum class SeriesKind {
  kLine,  // points (x[i], y[i]) joined by straight segments; non-finite or (log) <= 0 y breaks it
  kStep,  // histogram: x = n+1 bin edges, y = n counts; drawn as an outline from the axis floor
};

struct Series {
  std::string label;  // legend text; empty: left out of the legend
  std::vector<double> x, y;
  SeriesKind kind = SeriesKind::kLine;
  std::string color;  // any SVG colour; empty: the next one of the palette
  bool dashed = false;
  bool markers = false;       // a dot at every point (kLine)
  double fill_opacity = 0.0;  // kStep: area under the outline filled at this opacity
};

// A vertical line across the plot area at x (a clipping threshold, a percentile).
struct Marker {
  double x = 0;
  std::string label;  // legend text; empty: left out of the legend
  std::string color = "#444444";
  bool dashed = true;
};

struct Axis {
  std::string title;
  bool log = false;
  double min = NAN, max = NAN;  // NaN: from the data (log axes widen to whole decades)
  bool integer_ticks = false;   // ticks only at integers (layer indices)
};

enum class LegendPos { kTopRight, kTopLeft, kNone };

struct Panel {
  std::string title;
  Axis x, y;
  std::vector<Series> series;
  std::vector<Marker> markers;
  LegendPos legend = LegendPos::kTopRight;
  // Widen the y axis so that the legend box sits above the data; off where the data is low
  // under the legend anyway (the tail of a histogram).
  bool legend_headroom = true;
};

struct Figure {
  std::string title;         // above all panels; empty: none
  std::vector<Panel> panels;
  int columns = 1;           // panels per row
  int panel_width = 560, panel_height = 360;  // pixels per panel, margins included
};

// The figure as a complete SVG document.
std::string RenderSvg(const Figure& fig);

// Tick positions for [lo, hi]: "nice" steps (1, 2, 5 x 10^k) on linear axes, decades (with
// 2 and 5 when the range spans under two decades) on log axes. Exposed for tests.
std::vector<double> Ticks(double lo, double hi, bool log, bool integer_only);
// A tick label: shortest of %g forms, "0" for zero.
std::string TickLabel(double v);

// Text made safe for SVG character data and attribute values.
std::string Escape(const std::string& s);

}  // namespace quamba::svg
