// The outlier inspector's outputs (see inspect.h): outliers.json, the table `quamba inspect
// --calib` prints, and the three SVG plots.
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/mapped_file.h"
#include "io/svg_plot.h"
#include "quant/inspect.h"

namespace quamba {
namespace {

constexpr int kP = kNumInspectPoints;

// Round to `digits` significant digits (JSON stays short; scales use 9: float round trip).
double Sig(double v, int digits = 6) {
  if (!std::isfinite(v)) return v;
  return std::strtod(StrFormat("%.*g", digits, v).c_str(), nullptr);
}

// 4 significant digits; 1e4..1e7 without an exponent (a kurtosis of 11595 stays 5 wide).
std::string Short(double v) {
  if (!std::isfinite(v)) return "-";
  if (std::fabs(v) >= 1e4 && std::fabs(v) < 1e7) return StrFormat("%.0f", v);
  return StrFormat("%.4g", v);
}

}  // namespace

std::string OutliersJson(const InspectReport& r) {
  using Json = nlohmann::ordered_json;
  const MambaConfig& c = r.config;
  Json j;
  j["format"] = "quamba-outliers/1";
  j["model"] = r.model_dir;
  j["config"] = {{"n_layer", c.n_layer}, {"d_model", c.d_model}, {"d_inner", c.d_inner},
                 {"d_state", c.d_state}, {"dt_rank", c.dt_rank}, {"vocab_size", c.vocab_size}};
  j["calibration"] = {{"files", r.calib_files},
                      {"samples", r.samples},
                      {"calib_len", r.calib_len},
                      {"tokens", r.tokens}};
  j["method"] = {
      {"percentiles",
       "torch.quantile (linear interpolation) of |x| over all tokens of all samples"},
      {"percentile_values", r.subsample_stride == 1
                                ? std::string("exact: every value")
                                : StrFormat("subsampled: every %lld-th value (memory budget)",
                                            (long long)r.subsample_stride)},
      {"subsample_stride", r.subsample_stride},
      {"kurtosis", "Pearson m4 / m2^2 of the signed values (Gaussian: 3)"},
      {"scale_minmax", "max|x| / 127"},
      {"scale_quamba",
       "x_proj:input: EMA over samples of the per-sample percentile of |x| (alpha, sigma "
       "below) / 127; out_proj:input: max|H x| / 127 (after the Hadamard rotation); "
       "elsewhere max|x| / 127"},
      {"percentile_alpha", r.percentile_alpha},
      {"percentile_sigma", r.percentile_sigma}};
  j["hadamard"] = r.hadamard;
  Json layers = Json::array();
  for (size_t l = 0; l < r.layers.size(); ++l) {
    Json points = Json::object();
    for (int p = 0; p < kP; ++p) {
      const PointStats& s = r.layers[l][p];
      if (s.count == 0) continue;
      Json o;
      o["count"] = s.count;
      o["min"] = Sig(s.min);
      o["max"] = Sig(s.max);
      o["absmax"] = Sig(s.absmax);
      o["mean"] = Sig(s.mean);
      o["std"] = Sig(s.std);
      o["kurtosis"] = Sig(s.kurtosis);
      for (size_t i = 0; i < kInspectPercentiles.size(); ++i)
        o[kInspectPercentileNames[i]] = Sig(s.pct[i]);
      o["percentile_count"] = s.pct_count;
      o["scale_minmax"] = Sig(s.scale_minmax, 9);
      o["scale_quamba"] = Sig(s.scale_quamba, 9);
      if (p == (int)InspectPoint::kXProjIn) {
        o["quamba_percentile_ema"] = Sig(r.pct_ema[l], 9);
        o["clipped_quamba"] = Sig(s.clipped_quamba);
      }
      points[InspectPointName(static_cast<InspectPoint>(p), r.config.arch)] = o;
    }
    layers.push_back({{"layer", l}, {"points", points}});
  }
  j["layers"] = layers;
  const PointStats& x = r.layers[r.ssm_layer][(int)InspectPoint::kXProjIn];
  const PointStats& o = r.layers[r.kurt_layer][(int)InspectPoint::kOutProjIn];
  const PointStats& h = r.layers[r.kurt_layer][(int)InspectPoint::kOutProjInHad];
  j["summary"] = {{"ssm_input_layer", r.ssm_layer},
                  {"ssm_input_max_over_p99.99", Sig(x.pct[2] > 0 ? x.absmax / x.pct[2] : NAN)},
                  {"out_proj_kurtosis_layer", r.kurt_layer},
                  {"out_proj_kurtosis", Sig(o.kurtosis)},
                  {"out_proj_kurtosis_hadamard", Sig(r.hadamard ? h.kurtosis : NAN)}};
  j["plots"] = {{"ranges", "ranges.svg"}, {"ssm_input", "ssm_input.svg"},
                {"hadamard", "hadamard.svg"}};
  auto hist = [](const Histogram& hh) {
    Json e = Json::array(), cts = Json::array();
    for (double v : hh.edges) e.push_back(Sig(v));
    for (double v : hh.counts) cts.push_back((int64_t)v);
    return Json{{"layer", hh.layer}, {"point", hh.point}, {"edges", e}, {"counts", cts}};
  };
  j["histograms"] = {{"ssm_input", hist(r.ssm_hist)}, {"out_proj_input", hist(r.out_hist)}};
  if (r.hadamard) j["histograms"]["out_proj_input_hadamard"] = hist(r.had_hist);
  return j.dump(1, ' ', false, Json::error_handler_t::replace) + "\n";  // paths are bytes
}

std::string OutliersTable(const InspectReport& r) {
  std::string t = StrFormat(
      "activation outliers over %lld samples, %lld tokens (percentiles of |x|: %s)\n",
      (long long)r.samples, (long long)r.tokens,
      r.subsample_stride == 1
          ? "exact over all values"
          : StrFormat("every %lld-th value", (long long)r.subsample_stride).c_str());
  const std::string x_name =
      std::string("SSM input x (") + InspectPointName(InspectPoint::kXProjIn, r.config.arch) + ")";
  t += StrFormat("%5s | %-30s | %-37s | %s\n", "", x_name.c_str(),
                 "out_proj:input", "out_proj:input after Hadamard");
  t += StrFormat("%5s | %9s %9s %10s | %9s %9s %9s %7s | %9s %9s %9s %7s\n", "layer", "max",
                 "p99.99", "max/p99.99", "max", "p99.9", "max/p99.9", "kurt", "max", "p99.9",
                 "max/p99.9", "kurt");
  auto ratio = [](double a, double b) { return b > 0 ? a / b : NAN; };
  for (size_t l = 0; l < r.layers.size(); ++l) {
    const PointStats& x = r.layers[l][(int)InspectPoint::kXProjIn];
    const PointStats& o = r.layers[l][(int)InspectPoint::kOutProjIn];
    const PointStats& h = r.layers[l][(int)InspectPoint::kOutProjInHad];
    const bool had = h.count > 0;
    t += StrFormat("%5zu | %9s %9s %10s | %9s %9s %9s %7s | %9s %9s %9s %7s\n", l,
                   Short(x.absmax).c_str(), Short(x.pct[2]).c_str(),
                   Short(ratio(x.absmax, x.pct[2])).c_str(), Short(o.absmax).c_str(),
                   Short(o.pct[1]).c_str(), Short(ratio(o.absmax, o.pct[1])).c_str(),
                   Short(o.kurtosis).c_str(), had ? Short(h.absmax).c_str() : "-",
                   had ? Short(h.pct[1]).c_str() : "-",
                   had ? Short(ratio(h.absmax, h.pct[1])).c_str() : "-",
                   had ? Short(h.kurtosis).c_str() : "-");
  }
  const PointStats& x = r.layers[r.ssm_layer][(int)InspectPoint::kXProjIn];
  const PointStats& o = r.layers[r.kurt_layer][(int)InspectPoint::kOutProjIn];
  const PointStats& h = r.layers[r.kurt_layer][(int)InspectPoint::kOutProjInHad];
  t += StrFormat("largest SSM-input max/p99.99: layer %d (%s; quamba clips at %s, %s of "
                 "values)\n",
                 r.ssm_layer, Short(ratio(x.absmax, x.pct[2])).c_str(),
                 Short(r.pct_ema[r.ssm_layer]).c_str(),
                 std::isfinite(x.clipped_quamba)
                     ? StrFormat("%.3g%%", 100 * x.clipped_quamba).c_str()
                     : "an unknown share");
  t += StrFormat("largest out_proj:input kurtosis: layer %d (%s; after Hadamard %s)\n",
                 r.kurt_layer, Short(o.kurtosis).c_str(),
                 r.hadamard ? Short(h.kurtosis).c_str() : "n/a");
  return t;
}

namespace {

const char* kRed = "#d62728";
const char* kBlue = "#1f77b4";
const char* kGreen = "#2ca02c";
const char* kOrange = "#ff7f0e";
const char* kPurple = "#9467bd";

// "p99.999" for the percentile observer's alpha.
std::string PctName(const InspectReport& r) {
  return StrFormat("p%.10g", 100 * r.percentile_alpha);
}

std::string BaseName(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return std::filesystem::path(d).filename().string();
}

}  // namespace

std::string RangesSvg(const InspectReport& r) {
  svg::Figure f;
  f.title = StrFormat("Activation ranges per layer: %s, %lld samples, %lld tokens",
                      BaseName(r.model_dir).c_str(), (long long)r.samples, (long long)r.tokens);
  f.columns = 4;
  f.panel_width = 400;
  f.panel_height = 290;
  std::vector<double> layers;
  for (size_t l = 0; l < r.layers.size(); ++l) layers.push_back((double)l);
  auto series = [&](const std::string& label, const std::string& color, bool dashed,
                    auto value) {
    svg::Series s;
    s.label = label;
    s.color = color;
    s.dashed = dashed;
    s.markers = true;
    s.x = layers;
    for (size_t l = 0; l < r.layers.size(); ++l) s.y.push_back(value(l));
    return s;
  };
  for (int p = 0; p < kP; ++p) {
    if (p == (int)InspectPoint::kOutProjInHad && !r.hadamard) continue;
    svg::Panel pn;
    pn.title = p == (int)InspectPoint::kOutProjInHad ? "out_proj:input after Hadamard"
                                                     : InspectPointName((InspectPoint)p, r.config.arch);
    if (p == (int)InspectPoint::kXProjIn) pn.title += " (SSM input x)";
    pn.x.title = "layer";
    pn.x.integer_ticks = true;
    pn.y.title = "|x|";
    pn.y.log = true;
    pn.series.push_back(series("max |x|", kRed, false,
                               [&](size_t l) { return r.layers[l][p].absmax; }));
    pn.series.push_back(series("p99.99", kBlue, true,
                               [&](size_t l) { return r.layers[l][p].pct[2]; }));
    pn.series.push_back(series("p99", kGreen, true,
                               [&](size_t l) { return r.layers[l][p].pct[0]; }));
    if (p == (int)InspectPoint::kXProjIn)
      pn.series.push_back(series(StrFormat("quamba clip (%s EMA)", PctName(r).c_str()), kOrange,
                                 false,
                                 [&](size_t l) { return (double)r.pct_ema[l]; }));
    pn.legend = svg::LegendPos::kTopRight;
    f.panels.push_back(std::move(pn));
  }
  svg::Panel k;
  k.title = "kurtosis (Gaussian = 3)";
  k.x.title = "layer";
  k.x.integer_ticks = true;
  k.y.title = "kurtosis";
  k.y.log = true;
  k.series.push_back(series("out_proj:input", kRed, false, [&](size_t l) {
    return r.layers[l][(int)InspectPoint::kOutProjIn].kurtosis;
  }));
  if (r.hadamard)
    k.series.push_back(series("after Hadamard", kBlue, false, [&](size_t l) {
      return r.layers[l][(int)InspectPoint::kOutProjInHad].kurtosis;
    }));
  k.series.push_back(series(InspectPointName(InspectPoint::kXProjIn, r.config.arch), kPurple, true, [&](size_t l) {
    return r.layers[l][(int)InspectPoint::kXProjIn].kurtosis;
  }));
  f.panels.push_back(std::move(k));
  return svg::RenderSvg(f);
}

std::string SsmInputSvg(const InspectReport& r) {
  const int l = r.ssm_layer;
  const PointStats& x = r.layers[l][(int)InspectPoint::kXProjIn];
  svg::Figure f;
  f.panel_width = 800;
  f.panel_height = 440;
  svg::Panel p;
  p.title = StrFormat("SSM input x (%s), layer %d of %s: %lld values, max/p99.99 = %.3g",
                      InspectPointName(InspectPoint::kXProjIn, r.config.arch), l, BaseName(r.model_dir).c_str(), (long long)x.count,
                      x.pct[2] > 0 ? x.absmax / x.pct[2] : 0.0);
  p.x.title = "x";
  p.y.title = "count (log)";
  p.y.log = true;
  p.y.min = 0.5;  // a count of 1 stands clear of the axis
  p.legend_headroom = false;  // the legend sits over the sparse right tail
  svg::Series h;
  h.kind = svg::SeriesKind::kStep;
  h.label = "histogram of x";
  h.color = kBlue;
  h.fill_opacity = 0.3;
  h.x = r.ssm_hist.edges;
  h.y = r.ssm_hist.counts;
  p.series.push_back(h);
  auto mark = [&](double v, const std::string& label, const char* color) {
    p.markers.push_back({v, label, color, true});
    p.markers.push_back({-v, "", color, true});
  };
  mark(x.pct[2], StrFormat("p99.99 of |x| = %.4g", x.pct[2]), kGreen);
  mark(r.pct_ema[l], StrFormat("quamba clip (%s EMA) = %.4g", PctName(r).c_str(), r.pct_ema[l]),
       kOrange);
  mark(x.absmax, StrFormat("minmax clip (max |x|) = %.4g", x.absmax), kRed);
  f.panels.push_back(std::move(p));
  return svg::RenderSvg(f);
}

std::string HadamardSvg(const InspectReport& r) {
  const int l = r.kurt_layer;
  const PointStats& o = r.layers[l][(int)InspectPoint::kOutProjIn];
  const PointStats& h = r.layers[l][(int)InspectPoint::kOutProjInHad];
  svg::Figure f;
  f.panel_width = 800;
  f.panel_height = 440;
  svg::Panel p;
  p.title = StrFormat("out_proj:input before vs after the Hadamard rotation, layer %d of %s",
                      l, BaseName(r.model_dir).c_str());
  p.x.title = "value";
  p.y.title = "count (log)";
  p.y.log = true;
  p.y.min = 0.5;  // a count of 1 stands clear of the axis
  p.legend_headroom = false;  // the legend sits over the sparse right tail
  svg::Series a;
  a.kind = svg::SeriesKind::kStep;
  a.label = StrFormat("before: max |x| %.4g, kurtosis %.4g", o.absmax, o.kurtosis);
  a.color = kRed;
  a.fill_opacity = 0.22;
  a.x = r.out_hist.edges;
  a.y = r.out_hist.counts;
  p.series.push_back(a);
  if (r.hadamard) {
    svg::Series b;
    b.kind = svg::SeriesKind::kStep;
    b.label = StrFormat("after: max |x| %.4g, kurtosis %.4g", h.absmax, h.kurtosis);
    b.color = kBlue;
    b.fill_opacity = 0.3;
    b.x = r.had_hist.edges;
    b.y = r.had_hist.counts;
    p.series.push_back(b);
  } else {
    p.title += " (d_inner admits no Hadamard transform)";
  }
  f.panels.push_back(std::move(p));
  return svg::RenderSvg(f);
}

Status WriteInspectReport(const InspectReport& r, const std::string& out_dir,
                          std::vector<std::string>* written) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec || !std::filesystem::is_directory(out_dir))
    return Status::Error(StrFormat("%s: expected an output directory, cannot create it: %s",
                                   out_dir.c_str(), ec ? ec.message().c_str() : "not a directory"));
  const std::pair<const char*, std::string> files[] = {{"outliers.json", OutliersJson(r)},
                                                       {"ranges.svg", RangesSvg(r)},
                                                       {"ssm_input.svg", SsmInputSvg(r)},
                                                       {"hadamard.svg", HadamardSvg(r)}};
  for (const auto& [name, text] : files) {
    const std::string path = out_dir + "/" + name;
    QM_RETURN_IF_ERROR(WriteFileAtomic(path, text.data(), text.size()));
    if (written) written->push_back(path);
  }
  return Status::Ok();
}

}  // namespace quamba
