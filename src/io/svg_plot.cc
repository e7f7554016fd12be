// SVG rendering of line / histogram panels (see svg_plot.h).
#include "io/svg_plot.h"

#include <algorithm>
#include <cstdio>

#include "core/status.h"

namespace quamba::svg {
namespace {

// matplotlib's "tab10": distinguishable, colour-blind friendly enough, prints in grey.
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr const char* kFont = "DejaVu Sans, Helvetica, Arial, sans-serif";
// Panel margins (pixels): room for the title, tick labels and axis titles.
constexpr double kLeft = 66, kRight = 14, kTop = 30, kBottom = 48;
constexpr double kFigureTitle = 30;
constexpr double kLegendRow = 15;

std::string Num(double v) { return StrFormat("%.1f", v); }  // 0.1 px is plenty

// Approximate width of `s` in a sans-serif font of size `px` (no font metrics at hand).
double TextWidth(const std::string& s, double px) {
  double w = 0;
  for (unsigned char ch : s) {
    if ((ch & 0xC0) == 0x80) continue;  // UTF-8 continuation byte
    // DejaVu Sans advance widths, roughly: the widest of the fonts named in kFont.
    w += (ch == ' ' || ch == '.' || ch == ',' || ch == ':' || ch == 'i' || ch == 'l' ||
          ch == '|' || ch == 'j' || ch == '\'')
             ? 0.3
             : (ch == '(' || ch == ')' || ch == 'f' || ch == 't' || ch == 'r')   ? 0.42
             : (ch >= 'A' && ch <= 'Z') || ch == 'm' || ch == 'w' || ch == '%' ? 0.8
                                                                              : 0.63;
  }
  return w * px;
}

struct Range {
  double lo = NAN, hi = NAN;
  void Add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::isnan(lo) ? v : std::min(lo, v);
    hi = std::isnan(hi) ? v : std::max(hi, v);
  }
  bool empty() const { return std::isnan(lo); }
};

// Data range of an axis, widened for display: whole decades (log) or exact (linear).
void ResolveAxis(const Axis& a, Range r, double headroom, double* lo, double* hi) {
  if (r.empty()) r = a.log ? Range{1, 10} : Range{0, 1};
  if (a.log) {
    double l = std::floor(std::log10(r.lo) + 1e-9), h = std::ceil(std::log10(r.hi) - 1e-9);
    if (h <= l) h = l + 1;
    h += headroom * (h - l);
    *lo = std::pow(10.0, l);
    *hi = std::pow(10.0, h);
  } else {
    double l = r.lo, h = r.hi;
    if (h <= l) {
      l -= 0.5;
      h += 0.5;
    }
    h += headroom * (h - l);
    *lo = l;
    *hi = h;
  }
  if (!std::isnan(a.min)) *lo = a.min;
  if (!std::isnan(a.max)) *hi = a.max;
}

class PanelWriter {
 public:
  PanelWriter(const Panel& p, double ox, double oy, double w, double h, int id, std::string* out)
      : p_(p), out_(*out), id_(id) {
    left_ = ox + kLeft;
    right_ = ox + w - kRight;
    top_ = oy + kTop;
    bottom_ = oy + h - kBottom;
    ox_ = ox;
    oy_ = oy;
    w_ = w;
  }

  void Write() {
    ResolveRanges();
    out_ += StrFormat("<g id=\"panel%d\">\n", id_);
    if (!p_.title.empty())
      Text(ox_ + w_ / 2, oy_ + 19, p_.title, "middle", 13, "font-weight=\"bold\"");
    out_ += StrFormat("<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"white\"/>\n",
                      Num(left_).c_str(), Num(top_).c_str(), Num(right_ - left_).c_str(),
                      Num(bottom_ - top_).c_str());
    Grid();
    out_ += StrFormat("<clipPath id=\"clip%d\"><rect x=\"%s\" y=\"%s\" width=\"%s\" "
                      "height=\"%s\"/></clipPath>\n<g clip-path=\"url(#clip%d)\">\n",
                      id_, Num(left_).c_str(), Num(top_).c_str(), Num(right_ - left_).c_str(),
                      Num(bottom_ - top_).c_str(), id_);
    int palette = 0;
    colors_.clear();
    for (const Series& s : p_.series) {
      colors_.push_back(s.color.empty() ? kPalette[palette++ % 10] : s.color);
      if (s.kind == SeriesKind::kStep) Step(s, colors_.back());
      else Line(s, colors_.back());
    }
    for (const Marker& m : p_.markers) {
      if (!InX(m.x)) continue;
      out_ += StrFormat("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" "
                        "stroke-width=\"1.3\"%s/>\n",
                        Num(X(m.x)).c_str(), Num(top_).c_str(), Num(X(m.x)).c_str(),
                        Num(bottom_).c_str(), Escape(m.color).c_str(),
                        m.dashed ? " stroke-dasharray=\"5,3\"" : "");
    }
    out_ += "</g>\n";
    out_ += StrFormat("<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"none\" "
                      "stroke=\"#333333\" stroke-width=\"1\"/>\n",
                      Num(left_).c_str(), Num(top_).c_str(), Num(right_ - left_).c_str(),
                      Num(bottom_ - top_).c_str());
    TickLabels();
    Legend();
    out_ += "</g>\n";
  }

 private:
  double T(double v, bool log) const { return log ? std::log10(v) : v; }
  double X(double v) const {
    return left_ + (T(v, p_.x.log) - T(xlo_, p_.x.log)) /
                       (T(xhi_, p_.x.log) - T(xlo_, p_.x.log)) * (right_ - left_);
  }
  double Y(double v) const {
    return bottom_ - (T(v, p_.y.log) - T(ylo_, p_.y.log)) /
                         (T(yhi_, p_.y.log) - T(ylo_, p_.y.log)) * (bottom_ - top_);
  }
  bool InX(double v) const {
    return std::isfinite(v) && v >= xlo_ && v <= xhi_ && (!p_.x.log || v > 0);
  }
  bool ValidY(double v) const { return std::isfinite(v) && (!p_.y.log || v > 0); }

  void ResolveRanges() {
    Range rx, ry;  // markers do not widen the axes: they are skipped when outside
    for (const Series& s : p_.series) {
      for (double v : s.x)
        if (!p_.x.log || v > 0) rx.Add(v);
      for (double v : s.y)
        if (!p_.y.log || v > 0) ry.Add(v);
      if (s.kind == SeriesKind::kStep && !p_.y.log) ry.Add(0);
    }
    int entries = 0;  // legend rows
    for (const Series& s : p_.series) entries += !s.label.empty();
    for (const Marker& m : p_.markers) entries += !m.label.empty();
    if (p_.x.integer_ticks && !rx.empty()) {
      rx.lo -= 0.5;
      rx.hi += 0.5;
    }
    // Room above the data for the legend box: its height as a share of the plot's.
    double headroom = 0.04;
    if (entries > 0 && p_.legend != LegendPos::kNone && p_.legend_headroom) {
      const double f = std::min(0.6, (kLegendRow * entries + 14) / (bottom_ - top_));
      headroom = f / (1 - f);
    }
    ResolveAxis(p_.x, rx, 0, &xlo_, &xhi_);
    ResolveAxis(p_.y, ry, headroom, &ylo_, &yhi_);
  }

  void Text(double x, double y, const std::string& s, const char* anchor, double px,
            const char* extra = "") {
    out_ += StrFormat("<text x=\"%s\" y=\"%s\" font-size=\"%g\" "
                      "text-anchor=\"%s\" fill=\"#222222\" %s>%s</text>\n",
                      Num(x).c_str(), Num(y).c_str(), px, anchor, extra,
                      Escape(s).c_str());
  }

  // A tick label; powers of ten far from 1 as 10 with a superscript exponent.
  std::string LabelMarkup(double v, bool log) const {
    if (log) {
      const int k = (int)std::lround(std::log10(v));
      if (std::fabs(v - std::pow(10.0, k)) < 1e-9 * v && (k < -2 || k > 3))
        return StrFormat("10<tspan dy=\"-6\" font-size=\"8\">%d</tspan>", k);
    }
    return Escape(TickLabel(v));
  }

  void Grid() {
    for (double t : Ticks(xlo_, xhi_, p_.x.log, p_.x.integer_ticks))
      out_ += StrFormat("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#e3e3e3\"/>\n",
                        Num(X(t)).c_str(), Num(top_).c_str(), Num(X(t)).c_str(),
                        Num(bottom_).c_str());
    for (double t : Ticks(ylo_, yhi_, p_.y.log, p_.y.integer_ticks))
      out_ += StrFormat("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#e3e3e3\"/>\n",
                        Num(left_).c_str(), Num(Y(t)).c_str(), Num(right_).c_str(),
                        Num(Y(t)).c_str());
  }

  void TickLabels() {
    for (double t : Ticks(xlo_, xhi_, p_.x.log, p_.x.integer_ticks)) {
      out_ += StrFormat("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#333333\"/>\n",
                        Num(X(t)).c_str(), Num(bottom_).c_str(), Num(X(t)).c_str(),
                        Num(bottom_ + 4).c_str());
      out_ += StrFormat("<text x=\"%s\" y=\"%s\" font-size=\"10\" "
                        "text-anchor=\"middle\" fill=\"#222222\">%s</text>\n",
                        Num(X(t)).c_str(), Num(bottom_ + 16).c_str(),
                        LabelMarkup(t, p_.x.log).c_str());
    }
    for (double t : Ticks(ylo_, yhi_, p_.y.log, p_.y.integer_ticks)) {
      out_ += StrFormat("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#333333\"/>\n",
                        Num(left_ - 4).c_str(), Num(Y(t)).c_str(), Num(left_).c_str(),
                        Num(Y(t)).c_str());
      out_ += StrFormat("<text x=\"%s\" y=\"%s\" font-size=\"10\" "
                        "text-anchor=\"end\" fill=\"#222222\">%s</text>\n",
                        Num(left_ - 6).c_str(), Num(Y(t) + 3.5).c_str(),
                        LabelMarkup(t, p_.y.log).c_str());
    }
    // Unlabelled minor ticks at 2..9 x 10^k on log axes with few decades.
    if (p_.y.log && std::log10(yhi_ / ylo_) <= 12) {
      for (double d = ylo_; d < yhi_; d *= 10)
        for (int m = 2; m <= 9; ++m)
          if (d * m < yhi_)
            out_ += StrFormat("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" "
                              "stroke=\"#333333\"/>\n",
                              Num(left_ - 2).c_str(), Num(Y(d * m)).c_str(), Num(left_).c_str(),
                              Num(Y(d * m)).c_str());
    }
    if (!p_.x.title.empty()) Text((left_ + right_) / 2, bottom_ + 36, p_.x.title, "middle", 11.5);
    if (!p_.y.title.empty()) {
      const double x = ox_ + 15, y = (top_ + bottom_) / 2;
      out_ += StrFormat("<text x=\"%s\" y=\"%s\" font-size=\"11.5\" "
                        "text-anchor=\"middle\" fill=\"#222222\" "
                        "transform=\"rotate(-90 %s %s)\">%s</text>\n",
                        Num(x).c_str(), Num(y).c_str(), Num(x).c_str(), Num(y).c_str(),
                        Escape(p_.y.title).c_str());
    }
  }

  void Line(const Series& s, const std::string& color) {
    std::string d;
    bool pen = false;
    const size_t n = std::min(s.x.size(), s.y.size());
    for (size_t i = 0; i < n; ++i) {
      if (!ValidY(s.y[i]) || !std::isfinite(s.x[i]) || (p_.x.log && s.x[i] <= 0)) {
        pen = false;
        continue;
      }
      d += StrFormat("%s%s,%s ", pen ? "L" : "M", Num(X(s.x[i])).c_str(),
                     Num(Y(s.y[i])).c_str());
      pen = true;
    }
    if (!d.empty())
      out_ += StrFormat("<path d=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" "
                        "stroke-linejoin=\"round\"%s/>\n",
                        d.c_str(), Escape(color).c_str(),
                        s.dashed ? " stroke-dasharray=\"6,3\"" : "");
    const double radius = n > 32 ? 1.6 : 2.6;  // dots shrink on crowded lines
    if (s.markers)
      for (size_t i = 0; i < n; ++i)
        if (ValidY(s.y[i]) && std::isfinite(s.x[i]))
          out_ += StrFormat("<circle cx=\"%s\" cy=\"%s\" r=\"%.1f\" fill=\"%s\"/>\n",
                            Num(X(s.x[i])).c_str(), Num(Y(s.y[i])).c_str(), radius,
                            Escape(color).c_str());
  }

  void Step(const Series& s, const std::string& color) {
    const size_t n = s.y.size();
    if (s.x.size() != n + 1 || n == 0) return;
    const double base = bottom_ + 1;  // zero counts sit on the axis (log axes have no zero)
    auto y_of = [&](double c) { return ValidY(c) ? std::min(Y(c), base) : base; };
    std::string d = StrFormat("M%s,%s ", Num(X(s.x[0])).c_str(), Num(base).c_str());
    for (size_t i = 0; i < n; ++i) {
      const double y = y_of(s.y[i]);
      d += StrFormat("L%s,%s L%s,%s ", Num(X(s.x[i])).c_str(), Num(y).c_str(),
                     Num(X(s.x[i + 1])).c_str(), Num(y).c_str());
    }
    d += StrFormat("L%s,%s", Num(X(s.x[n])).c_str(), Num(base).c_str());
    if (s.fill_opacity > 0)
      out_ += StrFormat("<path d=\"%s Z\" fill=\"%s\" fill-opacity=\"%.2f\" stroke=\"none\"/>\n",
                        d.c_str(), Escape(color).c_str(), s.fill_opacity);
    out_ += StrFormat("<path d=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.2\"%s/>\n",
                      d.c_str(), Escape(color).c_str(),
                      s.dashed ? " stroke-dasharray=\"6,3\"" : "");
  }

  void Legend() {
    if (p_.legend == LegendPos::kNone) return;
    struct Entry {
      std::string label, color;
      bool dashed, patch;
      double opacity;
    };
    std::vector<Entry> e;
    for (size_t i = 0; i < p_.series.size(); ++i) {
      const Series& s = p_.series[i];
      if (!s.label.empty())
        e.push_back({s.label, colors_[i], s.dashed, s.kind == SeriesKind::kStep,
                     s.fill_opacity});
    }
    for (const Marker& m : p_.markers)
      if (!m.label.empty()) e.push_back({m.label, m.color, m.dashed, false, 0});
    if (e.empty()) return;
    constexpr double kRow = kLegendRow, kPx = 10.5;
    double w = 0;
    for (const Entry& x : e) w = std::max(w, TextWidth(x.label, kPx));
    w += 40;
    const double h = kRow * e.size() + 8;
    const double x0 = p_.legend == LegendPos::kTopLeft ? left_ + 6 : right_ - w - 6;
    const double y0 = top_ + 6;
    out_ += StrFormat("<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"white\" "
                      "fill-opacity=\"0.88\" stroke=\"#bbbbbb\" rx=\"3\"/>\n",
                      Num(x0).c_str(), Num(y0).c_str(), Num(w).c_str(), Num(h).c_str());
    for (size_t i = 0; i < e.size(); ++i) {
      const double y = y0 + 4 + kRow * i + kRow / 2;
      const std::string c = Escape(e[i].color);
      if (e[i].patch) {
        out_ += StrFormat("<rect x=\"%s\" y=\"%s\" width=\"22\" height=\"9\" fill=\"%s\" "
                          "fill-opacity=\"%.2f\" stroke=\"%s\"/>\n",
                          Num(x0 + 7).c_str(), Num(y - 4.5).c_str(), c.c_str(),
                          e[i].opacity > 0 ? e[i].opacity : 0.0, c.c_str());
      } else {
        out_ += StrFormat("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" "
                          "stroke-width=\"1.8\"%s/>\n",
                          Num(x0 + 7).c_str(), Num(y).c_str(), Num(x0 + 29).c_str(),
                          Num(y).c_str(), c.c_str(),
                          e[i].dashed ? " stroke-dasharray=\"5,3\"" : "");
      }
      Text(x0 + 35, y + 3.6, e[i].label, "start", kPx);
    }
  }

  const Panel& p_;
  std::string& out_;
  int id_;
  double ox_, oy_, w_;
  double left_, right_, top_, bottom_;
  double xlo_ = 0, xhi_ = 1, ylo_ = 0, yhi_ = 1;
  std::vector<std::string> colors_;
};

}  // namespace

std::string Escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string TickLabel(double v) {
  if (v == 0) return "0";
  std::string s = StrFormat("%.4g", v);
  // 1e+06 -> 1e6, 2.5e-05 -> 2.5e-5
  const size_t e = s.find('e');
  if (e != std::string::npos) {
    std::string mant = s.substr(0, e), exp = s.substr(e + 1);
    const bool neg = exp[0] == '-';
    size_t i = (exp[0] == '+' || exp[0] == '-') ? 1 : 0;
    while (i + 1 < exp.size() && exp[i] == '0') ++i;
    s = mant + "e" + (neg ? "-" : "") + exp.substr(i);
  }
  return s;
}

std::vector<double> Ticks(double lo, double hi, bool log, bool integer_only) {
  std::vector<double> t;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return t;
  if (log) {
    if (lo <= 0) return t;
    const int a = (int)std::ceil(std::log10(lo) - 1e-9), b = (int)std::floor(std::log10(hi) + 1e-9);
    const int decades = b - a;
    if (decades < 2) {
      // Under two decades: 1, 2, 5 x 10^k.
      for (int k = a - 1; k <= b; ++k)
        for (int m : {1, 2, 5}) {
          const double v = m * std::pow(10.0, k);
          if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) t.push_back(v);
        }
    } else {
      // At most ~8 labelled decades, at multiples of the step (1e-10, 1e-5, 1, 1e5, ...).
      const int step = decades <= 8 ? 1 : decades <= 16 ? 2 : decades <= 40 ? 5 : 10;
      for (int k = a; k <= b; ++k)
        if (k % step == 0) t.push_back(std::pow(10.0, k));
    }
    return t;
  }
  const double raw = (hi - lo) / 5;
  int k = (int)std::floor(std::log10(raw));
  const double norm = raw / std::pow(10.0, k);
  double m = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  if (integer_only && k < 0) {
    m = 1;
    k = 0;
  }
  // Tick i is i * m * 10^k, computed so that 0.6 prints as 0.6 (no accumulated error).
  const double scale = std::pow(10.0, std::abs(k));
  auto value = [&](int64_t i) { return k >= 0 ? (double)i * m * scale : (double)i * m / scale; };
  const double step = value(1);
  for (int64_t i = (int64_t)std::ceil(lo / step - 1e-9); value(i) <= hi + step * 1e-9; ++i)
    t.push_back(value(i));
  return t;
}

std::string RenderSvg(const Figure& fig) {
  const int cols = std::max(1, fig.columns);
  const int n = (int)fig.panels.size();
  const int rows = std::max(1, (n + cols - 1) / cols);
  const double top = fig.title.empty() ? 0 : kFigureTitle;
  const double width = (double)cols * fig.panel_width;
  const double height = top + (double)rows * fig.panel_height;
  std::string out = StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" font-family=\"%s\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n",
      (int)width, (int)height, (int)width, (int)height, kFont);
  if (!fig.title.empty())
    out += StrFormat("<text x=\"%s\" y=\"21\" font-size=\"15\" "
                     "font-weight=\"bold\" text-anchor=\"middle\" fill=\"#111111\">%s</text>\n",
                     Num(width / 2).c_str(), Escape(fig.title).c_str());
  for (int i = 0; i < n; ++i) {
    PanelWriter w(fig.panels[i], (double)(i % cols) * fig.panel_width,
                  top + (double)(i / cols) * fig.panel_height, fig.panel_width,
                  fig.panel_height, i, &out);
    w.Write();
  }
  out += "</svg>\n";
  return out;
}

}  // namespace quamba::svg
