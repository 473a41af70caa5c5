#include "decoding.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "liteasr/error.hpp"

namespace liteasr::detail {

namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
constexpr double kTimePrecision = 0.02;  // seconds per timestamp token
constexpr int64_t kInputStride = 2;      // mel frames per timestamp token

/// numpy's argmax: the first maximum, or the first NaN if there is one.
int64_t argmax(const float* row, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(row[i])) return i;
    if (row[i] > row[best]) best = i;
  }
  return best;
}

/// log(sum(exp(row[begin:end]))), -inf when every entry is -inf.
double logsumexp(const float* row, int64_t begin, int64_t end) {
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t i = begin; i < end; ++i) top = std::max(top, static_cast<double>(row[i]));
  if (!std::isfinite(top)) return top;
  double sum = 0.0;
  for (int64_t i = begin; i < end; ++i) sum += std::exp(static_cast<double>(row[i]) - top);
  return top + std::log(sum);
}

void fill(float* row, int64_t begin, int64_t end) {
  for (int64_t i = std::max<int64_t>(begin, 0); i < end; ++i) row[i] = kMinusInf;
}

bool off(double threshold) { return std::isnan(threshold); }

/// One token from softmax(row / temperature), by inverse CDF at `u` in [0, 1).
int64_t sample(const float* row, int64_t vocab, float temperature, double u) {
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < vocab; ++i) top = std::max(top, static_cast<double>(row[i]) / temperature);
  std::vector<double> cdf(static_cast<size_t>(vocab));
  double total = 0.0;
  for (int64_t i = 0; i < vocab; ++i) {
    total += std::exp(static_cast<double>(row[i]) / temperature - top);
    cdf[static_cast<size_t>(i)] = total;
  }
  const auto it = std::upper_bound(cdf.begin(), cdf.end(), u * total);
  return std::min<int64_t>(it - cdf.begin(), vocab - 1);
}

/// Index of the best candidate: log-probability over length (openai-whisper's ranker).
size_t rank(const std::vector<Hypothesis>& candidates) {
  size_t best = 0;
  double best_score = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < candidates.size(); ++i) {
    const double length = static_cast<double>(candidates[i].tokens.size());
    const double lp = candidates[i].sum_logprob;
    const double score = length > 0 ? lp / length : (lp < 0 ? -std::numeric_limits<double>::infinity()
                                                             : std::numeric_limits<double>::infinity());
    if (i == 0 || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

}  // namespace

DecodingOptions with_timestamps(const DecodingOptions& options) {
  DecodingOptions out = options;
  if (out.timestamp_begin < 0 || out.no_timestamps < 0) {
    throw Error("the manifest names no timestamp tokens", "re-export the artifacts folder with liteasr-export");
  }
  if (!out.prompt.empty() && out.prompt.back() == out.no_timestamps) out.prompt.pop_back();
  out.suppress.clear();
  for (int64_t id : options.suppress) {
    if (id < options.timestamp_begin && id != options.no_timestamps) out.suppress.push_back(id);
  }
  out.timestamps = true;
  return out;
}

void apply_rules(float* row, int64_t vocab, const std::vector<int64_t>& history, int64_t last_timestamp,
                 const DecodingOptions& o) {
  const bool first = history.empty();
  if (first) {
    for (int64_t id : o.suppress_begin) if (id < vocab) row[id] = kMinusInf;
  }
  for (int64_t id : o.suppress) if (id < vocab) row[id] = kMinusInf;
  if (!o.timestamps) return;
  const int64_t begin = o.timestamp_begin;
  if (o.no_timestamps >= 0 && o.no_timestamps < vocab) row[o.no_timestamps] = kMinusInf;
  if (first) {
    fill(row, 0, begin);  // a window starts with a timestamp
    if (o.max_initial_timestamp_index >= 0) fill(row, begin + o.max_initial_timestamp_index + 1, vocab);
  } else {
    // timestamps come in pairs, except a single one right before <|endoftext|>
    const bool last_is = history.back() >= begin;
    const bool penultimate_is = history.size() < 2 || history[history.size() - 2] >= begin;
    if (last_is && penultimate_is) fill(row, begin, vocab);
    if (last_is && !penultimate_is) fill(row, 0, o.eot);
    // timestamps never decrease, and a segment has a nonzero length
    if (last_timestamp >= 0) fill(row, begin, last_timestamp + (last_is && !penultimate_is ? 0 : 1));
  }
  // when timestamps together are likelier than any text token, sample a timestamp
  float text_best = kMinusInf;
  for (int64_t i = 0; i < begin; ++i) text_best = std::max(text_best, row[i]);
  if (logsumexp(row, begin, vocab) > text_best) fill(row, 0, begin);
}

double compression_ratio(const std::string& text) {
  if (text.empty()) return 0.0;
  uLongf size = compressBound(static_cast<uLong>(text.size()));
  std::vector<Bytef> out(size);
  if (compress2(out.data(), &size, reinterpret_cast<const Bytef*>(text.data()), static_cast<uLong>(text.size()),
                Z_DEFAULT_COMPRESSION) != Z_OK) {
    throw Error("zlib could not compress a transcript", "this is a bug: report it");
  }
  return static_cast<double>(text.size()) / static_cast<double>(size);
}

std::vector<Hypothesis> search(Decoder& decoder, int64_t batch, const DecodingOptions& options, float temperature,
                               int best_of, const std::vector<std::vector<uint64_t>>& seeds) {
  const bool sampling = temperature > 0;
  const int64_t group = sampling ? best_of : 1;
  const auto& prompt = options.prompt;
  const int64_t plen = static_cast<int64_t>(prompt.size());
  auto rows_of = [&](int64_t from, int64_t to) {
    std::vector<int64_t> tokens;
    for (int64_t b = 0; b < batch; ++b) tokens.insert(tokens.end(), prompt.begin() + from, prompt.begin() + to);
    return tokens;
  };
  std::vector<double> no_speech(static_cast<size_t>(batch), 0.0 / 0.0);
  const auto sot_it = std::find(prompt.begin(), prompt.end(), options.sot);
  std::vector<float> logits;
  if (options.sot >= 0 && options.no_speech >= 0 && sot_it != prompt.end()) {
    // fed up to <|startoftranscript|> first: its logits give the no-speech probability
    const int64_t split = (sot_it - prompt.begin()) + 1;
    logits = decoder.step(rows_of(0, split), batch, split);
    const int64_t vocab = static_cast<int64_t>(logits.size()) / batch;
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = logits.data() + b * vocab;
      if (options.no_speech < vocab) no_speech[b] = std::exp(row[options.no_speech] - logsumexp(row, 0, vocab));
    }
    if (split < plen) logits = decoder.step(rows_of(split, plen), batch, plen - split);
  } else {
    logits = decoder.step(rows_of(0, plen), batch, plen);
  }
  const int64_t vocab = static_cast<int64_t>(logits.size()) / batch;
  if (vocab <= 0 || static_cast<int64_t>(logits.size()) != vocab * batch) {
    throw Error("decoder returned " + std::to_string(logits.size()) + " logits for a batch of " + std::to_string(batch),
                "the decoder graph does not match the manifest: re-export the artifacts folder");
  }
  const int64_t rows = batch * group;
  if (group > 1) {
    std::vector<int64_t> expand;
    std::vector<float> grown;
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t g = 0; g < group; ++g) {
        expand.push_back(b);
        grown.insert(grown.end(), logits.begin() + b * vocab, logits.begin() + (b + 1) * vocab);
      }
    }
    decoder.reorder(expand);
    logits.swap(grown);
  }
  std::vector<std::mt19937_64> rngs;
  if (sampling) {
    if (static_cast<int64_t>(seeds.size()) != batch) throw Error("sampling needs one seed per window", "this is a bug");
    for (const auto& seed : seeds) {
      std::seed_seq seq(seed.begin(), seed.end());
      rngs.emplace_back(seq);
    }
  }
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<std::vector<int64_t>> history(static_cast<size_t>(rows));
  std::vector<int64_t> last_timestamp(static_cast<size_t>(rows), -1);
  std::vector<double> sum_logprob(static_cast<size_t>(rows), 0.0);
  std::vector<bool> finished(static_cast<size_t>(rows), false);
  std::vector<int64_t> next(static_cast<size_t>(rows));
  for (int64_t index = 0; index < options.max_new_tokens; ++index) {
    if (index) logits = decoder.step(next, rows, 1);
    if (static_cast<int64_t>(logits.size()) != vocab * rows) {
      throw Error("decoder returned logits of an unexpected size", "re-export the artifacts folder");
    }
    std::vector<double> u;
    for (auto& rng : rngs) for (int64_t g = 0; g < group; ++g) u.push_back(uniform(rng));
    bool all_finished = true;
    for (int64_t r = 0; r < rows; ++r) {
      float* row = logits.data() + r * vocab;
      apply_rules(row, vocab, history[r], last_timestamp[r], options);
      const int64_t token = sampling ? sample(row, vocab, temperature, u[r]) : argmax(row, vocab);
      if (!finished[r]) sum_logprob[r] += row[token] - logsumexp(row, 0, vocab);
      next[r] = finished[r] ? options.eot : token;
      finished[r] = finished[r] || next[r] == options.eot;
      history[r].push_back(next[r]);
      if (next[r] >= options.timestamp_begin && options.timestamp_begin >= 0) last_timestamp[r] = next[r];
      all_finished = all_finished && finished[r];
    }
    if (all_finished) break;
  }
  std::vector<Hypothesis> out;
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<Hypothesis> candidates;
    for (int64_t g = 0; g < group; ++g) {
      const auto& h = history[b * group + g];
      Hypothesis c;
      c.tokens = std::vector<int64_t>(h.begin(), std::find(h.begin(), h.end(), options.eot));
      c.sum_logprob = sum_logprob[b * group + g];
      c.no_speech_prob = no_speech[b];
      candidates.push_back(std::move(c));
    }
    out.push_back(candidates[candidates.size() > 1 ? rank(candidates) : 0]);
  }
  return out;
}

std::vector<std::vector<int64_t>> greedy_decode(const DecoderStep& step, int64_t batch, const DecodingOptions& options) {
  Decoder decoder{step, nullptr};
  std::vector<std::vector<int64_t>> out;
  for (auto& h : search(decoder, batch, options, 0.0f, 1, {})) out.push_back(std::move(h.tokens));
  return out;
}

FallbackOptions FallbackOptions::none() {
  FallbackOptions o;
  o.temperatures = {0.0f};
  o.compression_ratio_threshold = o.logprob_threshold = o.no_speech_threshold = 0.0 / 0.0;
  return o;
}

std::vector<WindowDecode> decode_with_fallback(const std::function<Decoder()>& make, int64_t batch,
                                               const DecodingOptions& options, const FallbackOptions& f,
                                               const std::function<std::string(const std::vector<int64_t>&)>& text_of,
                                               const std::vector<uint64_t>& keys) {
  struct Attempt {
    Hypothesis h;
    double ratio;
    float temperature;
  };
  std::vector<std::vector<Attempt>> attempts(static_cast<size_t>(batch));
  std::vector<bool> passed(static_cast<size_t>(batch), false);
  std::vector<int64_t> pending(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) pending[i] = i;
  for (size_t t = 0; t < f.temperatures.size() && !pending.empty(); ++t) {
    const float temperature = f.temperatures[t];
    Decoder decoder = make();
    if (static_cast<int64_t>(pending.size()) != batch) decoder.reorder(pending);
    std::vector<std::vector<uint64_t>> seeds;
    for (int64_t i : pending) seeds.push_back({f.seed, keys[i] & 0xFFFFFFFFu, t});
    const auto hypotheses = search(decoder, static_cast<int64_t>(pending.size()), options, temperature, f.best_of, seeds);
    std::vector<int64_t> still;
    for (size_t k = 0; k < pending.size(); ++k) {
      const Hypothesis& h = hypotheses[k];
      const double ratio = compression_ratio(text_of(h.tokens));
      attempts[pending[k]].push_back({h, ratio, temperature});
      const bool low = !off(f.logprob_threshold) && h.avg_logprob() < f.logprob_threshold;
      const bool repetitive = !off(f.compression_ratio_threshold) && ratio > f.compression_ratio_threshold;
      const bool silent = !off(f.no_speech_threshold) && h.no_speech_prob > f.no_speech_threshold && low;
      if ((repetitive || low) && !silent) {
        still.push_back(pending[k]);
      } else {
        passed[pending[k]] = true;
      }
    }
    pending.swap(still);
  }
  std::vector<WindowDecode> out;
  for (int64_t i = 0; i < batch; ++i) {
    const auto& tried = attempts[i];
    const Attempt* chosen = &tried.back();
    std::string outcome = "ok";
    if (!passed[i]) {
      auto better = [](const Attempt* a, const Attempt& b) { return !a || b.h.avg_logprob() > a->h.avg_logprob(); };
      const Attempt* usable = nullptr;
      const Attempt* any = nullptr;
      for (const auto& a : tried) {
        if (better(any, a)) any = &a;
        if ((off(f.compression_ratio_threshold) || a.ratio <= f.compression_ratio_threshold) && better(usable, a)) usable = &a;
      }
      chosen = usable ? usable : any;
      outcome = usable ? "fallback-exhausted" : "dropped-repetitive";
    }
    const Hypothesis& h = chosen->h;
    if (outcome != "dropped-repetitive" && !off(f.no_speech_threshold) && h.no_speech_prob > f.no_speech_threshold &&
        !(!off(f.logprob_threshold) && h.avg_logprob() > f.logprob_threshold)) {
      outcome = "no-speech";
    }
    WindowDecode w;
    if (outcome == "ok" || outcome == "fallback-exhausted") w.tokens = h.tokens;
    w.temperature = chosen->temperature;
    w.avg_logprob = h.avg_logprob();
    w.compression_ratio = chosen->ratio;
    w.no_speech_prob = h.no_speech_prob;
    for (const auto& a : tried) w.temperatures_tried.push_back(a.temperature);
    w.outcome = outcome;
    out.push_back(std::move(w));
  }
  return out;
}

std::pair<std::vector<TimedTokens>, int64_t> timestamp_segments(const std::vector<int64_t>& tokens,
                                                                int64_t timestamp_begin, double offset,
                                                                int64_t window_frames) {
  const size_t n = tokens.size();
  auto is_ts = [&](size_t i) { return tokens[i] >= timestamp_begin; };
  const bool single_ending = n >= 2 ? (!is_ts(n - 2) && is_ts(n - 1)) : false;
  std::vector<size_t> pairs;
  for (size_t i = 1; i < n; ++i) if (is_ts(i - 1) && is_ts(i)) pairs.push_back(i);
  std::vector<TimedTokens> segments;
  int64_t advance = window_frames;
  if (!pairs.empty()) {
    if (single_ending) pairs.push_back(n);
    size_t last = 0;
    for (size_t cut : pairs) {
      TimedTokens s;
      s.tokens = std::vector<int64_t>(tokens.begin() + static_cast<std::ptrdiff_t>(last), tokens.begin() + static_cast<std::ptrdiff_t>(cut));
      s.start = offset + static_cast<double>(s.tokens.front() - timestamp_begin) * kTimePrecision;
      s.end = offset + static_cast<double>(s.tokens.back() - timestamp_begin) * kTimePrecision;
      segments.push_back(std::move(s));
      last = cut;
    }
    if (!single_ending) advance = (tokens[last - 1] - timestamp_begin) * kInputStride;
  } else {
    double duration = static_cast<double>(window_frames) * 160.0 / 16000.0;
    int64_t last_stamp = -1;
    for (int64_t t : tokens) if (t >= timestamp_begin) last_stamp = t;
    if (last_stamp >= 0 && last_stamp != timestamp_begin) duration = static_cast<double>(last_stamp - timestamp_begin) * kTimePrecision;
    segments.push_back({offset, offset + duration, tokens});
  }
  // a timestamp past the window (possible when the window is shorter than the 30 s its
  // timestamps can name: an audio context) moves on by the window
  return {segments, advance > 0 && advance <= window_frames ? advance : window_frames};
}

}  // namespace liteasr::detail
