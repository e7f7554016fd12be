#include "quant/calib_data.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <algorithm>

#include "core/progress.h"
#include "io/json_util.h"
#include "io/mapped_file.h"
#include "model/runtime.h"

namespace quamba {

StatusOr<std::vector<std::vector<int32_t>>> LoadCalibrationSamples(
    const std::vector<std::string>& files, const Tokenizer& tok, int64_t n_samples,
    int64_t calib_len, std::vector<std::string>* used_files) {
  std::vector<std::vector<int32_t>> samples;
  if (files.empty())
    return Status::Error("--calib: expected at least one calibration file, found none");
  // Every named file must exist, even one the samples will not reach: a typo is an error, not a
  // file silently recorded as used.
  for (const std::string& f : files) {
    struct stat st;
    if (::stat(f.c_str(), &st) != 0)
      return Status::Error(StrFormat("%s: cannot open: %s", f.c_str(), std::strerror(errno)));
    if (!S_ISREG(st.st_mode))
      return Status::Error(StrFormat("%s: expected a calibration text file, found %s", f.c_str(),
                                     S_ISDIR(st.st_mode) ? "a directory" : "another kind of file"));
  }
  if (used_files) used_files->clear();
  for (const std::string& f : files) {
    if ((int64_t)samples.size() >= n_samples) break;
    const size_t before = samples.size();
    QM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(f));
    const bool jsonl = f.size() >= 6 && f.compare(f.size() - 6, 6, ".jsonl") == 0;
    if (jsonl) {
      size_t pos = 0;
      int64_t line_no = 0;
      while (pos < text.size() && (int64_t)samples.size() < n_samples) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        ++line_no;
        const std::string_view line(text.data() + pos, end - pos);
        pos = end + 1;
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
        const std::string where = StrFormat("%s:%lld", f.c_str(), (long long)line_no);
        QM_ASSIGN_OR_RETURN(const Json j, ParseJson(line, where));
        QM_ASSIGN_OR_RETURN(const JsonObject o, JsonObject::Of(j, where, ""));
        std::string doc;
        QM_RETURN_IF_ERROR(o.String("text", &doc));
        std::vector<int32_t> ids = tok.Encode(doc);
        if (ids.size() < 2) continue;
        if ((int64_t)ids.size() > calib_len) ids.resize(calib_len);
        samples.push_back(std::move(ids));
      }
    } else {
      const std::vector<int32_t> ids = tok.Encode(text);
      for (size_t s = 0; s + calib_len <= ids.size() && (int64_t)samples.size() < n_samples;
           s += calib_len)
        samples.emplace_back(ids.begin() + s, ids.begin() + s + calib_len);
    }
    if (used_files && samples.size() > before) used_files->push_back(f);
  }
  if (samples.empty())
    return Status::Error(StrFormat("%s: expected calibration text of at least %lld tokens, "
                                   "found too little", files[0].c_str(), (long long)calib_len));
  return samples;
}

void PrefillSamples(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                    const kernels::KernelTable& k, int threads, ActivationObserver* obs,
                    const char* label, bool progress,
                    const std::function<void(SequenceState&)>& after_sample) {
  int64_t max_len = 1;
  for (const auto& s : samples) max_len = std::max<int64_t>(max_len, s.size());
  Runtime rt(model, threads, k, max_len, 1);  // one chunk per sample
  rt.set_observer(obs);
  SequenceState state = model.NewState();
  Progress bar(label, static_cast<int64_t>(samples.size()), "samples");
  for (size_t i = 0; i < samples.size(); ++i) {
    state.Reset();
    rt.Prefill(&state, samples[i], nullptr, false);
    if (after_sample) after_sample(state);
    if (progress) bar.Update(static_cast<int64_t>(i) + 1);
  }
  if (progress) bar.Finish();
}

}  // namespace quamba
