// liteasr::Transcriber on ONNX Runtime's C++ API: frontend.onnx per window,
// encoder.onnx per batch of windows (only the cross K/V outputs are fetched;
// under an audio context, the first N of the frontend's 3000 mel frames),
// decoder.onnx once per token with the self-attention KV cache carried from
// its present_* outputs to its past_* inputs (rows gathered when the
// fallback samples several candidates or decodes some windows again), the
// decoding of decoding.hpp, and byte-level BPE detokenization.
#include "liteasr/transcriber.hpp"

#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <set>

#include "audio_context.hpp"
#include "detokenizer.hpp"
#include "decoding.hpp"
#include "integrity.hpp"
#include "manifest.hpp"
#include "windows.hpp"

namespace liteasr {
namespace {

const char* const kReexport = "the graph does not match the manifest's model: re-export the artifacts folder";

Ort::Env& environment() {
  static Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "liteasr");
  return env;
}

std::vector<std::string> names(const Ort::Session& session, bool inputs) {
  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<std::string> out;
  const size_t n = inputs ? session.GetInputCount() : session.GetOutputCount();
  for (size_t i = 0; i < n; ++i) {
    out.emplace_back((inputs ? session.GetInputNameAllocated(i, allocator) : session.GetOutputNameAllocated(i, allocator)).get());
  }
  return out;
}

/// Python's exporters.artifacts.cross_names / decoder_input_names / decoder_output_names.
std::vector<std::string> kv_names(const std::string& prefix, int64_t layers) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < layers; ++i) {
    for (const char* kind : {"key", "value"}) out.push_back(prefix + "_" + kind + "." + std::to_string(i));
  }
  return out;
}

/// The graph has these inputs and outputs (`exact`: and no others), all float32
/// except int64 input_ids.
void check_io(const Ort::Session& session, const std::string& graph, const std::vector<std::string>& inputs,
              const std::vector<std::string>& outputs, bool exact) {
  for (bool is_input : {true, false}) {
    const auto have = names(session, is_input);
    const auto& want = is_input ? inputs : outputs;
    const std::set<std::string> have_set(have.begin(), have.end()), want_set(want.begin(), want.end());
    std::string missing, extra;
    for (const auto& n : want_set) if (!have_set.count(n)) missing += " " + n;
    if (exact) for (const auto& n : have_set) if (!want_set.count(n)) extra += " " + n;
    if (!missing.empty() || !extra.empty()) {
      throw Error(graph + " has unexpected " + (is_input ? "inputs" : "outputs") + " (missing:" + (missing.empty() ? " none" : missing) +
                      "; unexpected:" + (extra.empty() ? " none" : extra) + ")",
                  kReexport);
    }
    for (size_t i = 0; i < have.size(); ++i) {
      if (!want_set.count(have[i])) continue;
      const auto type = (is_input ? session.GetInputTypeInfo(i) : session.GetOutputTypeInfo(i)).GetTensorTypeAndShapeInfo().GetElementType();
      const auto expected = have[i] == "input_ids" ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
      if (type != expected) {
        throw Error(graph + " tensor " + have[i] + " has element type " + std::to_string(type) + ", expected " +
                        (expected == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 ? "int64" : "float32"),
                    "this runtime feeds float32 (fp16/int8 exports keep float32 inputs and outputs): re-export the folder");
      }
    }
  }
}

std::vector<const char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<const char*> out;
  for (const auto& s : strings) out.push_back(s.c_str());
  return out;
}

/// A float tensor's rows `rows` (along its first axis), as a new tensor.
Ort::Value gather_rows(const Ort::Value& value, const std::vector<int64_t>& rows) {
  auto shape = value.GetTensorTypeAndShapeInfo().GetShape();
  const int64_t batch = shape[0];
  size_t row_size = 1;
  for (size_t i = 1; i < shape.size(); ++i) row_size *= static_cast<size_t>(shape[i]);
  shape[0] = static_cast<int64_t>(rows.size());
  Ort::AllocatorWithDefaultOptions allocator;
  Ort::Value out = Ort::Value::CreateTensor<float>(allocator, shape.data(), shape.size());
  if (row_size) {
    const float* src = value.GetTensorData<float>();
    float* dst = out.GetTensorMutableData<float>();
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i] < 0 || rows[i] >= batch) throw Error("row index out of range while reordering", "this is a bug");
      std::memcpy(dst + i * row_size, src + static_cast<size_t>(rows[i]) * row_size, row_size * sizeof(float));
    }
  }
  return out;
}

/// A tensor that reads `value`'s memory (which must outlive it).
Ort::Value view_of(Ort::Value& value, const Ort::MemoryInfo& cpu) {
  const auto info = value.GetTensorTypeAndShapeInfo();
  const auto shape = info.GetShape();
  return Ort::Value::CreateTensor<float>(cpu, value.GetTensorMutableData<float>(), info.GetElementCount(),
                                         shape.data(), shape.size());
}

}  // namespace

struct Transcriber::Impl {
  detail::Manifest manifest;
  TranscriberOptions options;
  AudioContext context;  // options.audio_context, resolved against the manifest
  Ort::SessionOptions session_options;
  Ort::Session frontend{nullptr};
  Ort::Session encoder{nullptr};
  Ort::Session decoder{nullptr};
  detail::Detokenizer detokenizer;
  std::vector<std::string> cross, decoder_inputs, decoder_outputs;
  Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);

  Impl(const std::string& dir, TranscriberOptions opts)
      : manifest(detail::load_manifest(dir)), options(opts), detokenizer(manifest.tokenizer) {
    if (options.batch_size < 1) throw Error("batch_size must be >= 1", "pass a positive batch size");
    if (options.threads < 0) throw Error("threads must be >= 0", "pass 0 for ONNX Runtime's default");
    if (options.best_of < 1) throw Error("best_of must be >= 1", "pass 1 or more samples per window");
    context = detail::resolve_audio_context(options.audio_context, manifest.default_audio_context);
    if (options.verify) detail::verify_files(manifest.root, manifest.sha256, manifest.loaded_files);
    if (options.threads > 0) session_options.SetIntraOpNumThreads(options.threads);
    session_options.SetInterOpNumThreads(1);
    session_options.SetExecutionMode(ExecutionMode::ORT_SEQUENTIAL);
    session_options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    frontend = open(manifest.frontend_graph);
    encoder = open(manifest.encoder_graph);
    decoder = open(manifest.decoder_graph);
    const int64_t layers = manifest.decoder_layers;
    cross = kv_names("cross", layers);
    decoder_inputs = {"input_ids"};
    for (const auto& group : {kv_names("past", layers), cross}) decoder_inputs.insert(decoder_inputs.end(), group.begin(), group.end());
    decoder_outputs = {"logits"};
    for (const auto& n : kv_names("present", layers)) decoder_outputs.push_back(n);
    check_io(frontend, "frontend.onnx", {"audio"}, {"input_features"}, true);
    check_io(encoder, "encoder.onnx", {"input_features"}, cross, false);
    check_io(decoder, "decoder.onnx", decoder_inputs, decoder_outputs, true);
    check_vocabulary();
    check_audio_context();
  }

  /// A context under 30 s needs an encoder.onnx whose frames axis is dynamic
  /// (exports from before it take 3000 mel frames only).
  void check_audio_context() const {
    const int64_t frames = detail::shortest_context_frames(context);
    const auto in = names(encoder, true);
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i] != "input_features") continue;
      const auto shape = encoder.GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetShape();
      if (frames != manifest.n_frames && !shape.empty() && shape.back() > 0) {
        throw Error("encoder.onnx takes " + std::to_string(shape.back()) + " mel frames only, not an audio context of " +
                        std::to_string(frames) + " mel frames: it was exported before the encoder's length was dynamic",
                    "re-export the folder with this liteasr-export, or use the full audio context");
      }
    }
  }

  /// The tokenizer has the vocabulary the decoder scores (a tokenizer.json
  /// copied from another model would turn every id into the wrong text).
  void check_vocabulary() const {
    int64_t logits = manifest.vocab_size;
    const auto out = names(decoder, false);
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i] != "logits") continue;
      const auto shape = decoder.GetOutputTypeInfo(i).GetTensorTypeAndShapeInfo().GetShape();
      if (!shape.empty() && shape.back() > 0) logits = shape.back();
    }
    if (detokenizer.n_vocab() != logits) {
      throw Error(manifest.tokenizer.string() + " does not belong to this model: its vocabulary has " +
                      std::to_string(detokenizer.n_vocab()) + " tokens, the decoder scores " + std::to_string(logits),
                  "copy the tokenizer.json that was exported with the folder back, or re-export it");
    }
  }

  Ort::Session open(const std::filesystem::path& path) {
    try {
      return Ort::Session(environment(), path.c_str(), session_options);
    } catch (const Ort::Exception& exc) {
      throw Error("ONNX Runtime cannot load " + path.filename().string() + ": " + exc.what(),
                  "re-export the graph; check this ONNX Runtime supports its opset");
    }
  }

  /// Normalized log-mel (n_mels x n_frames) of one window, written to `out`.
  void features(const float* audio, size_t n, float* out) {
    const int64_t shape[2] = {1, static_cast<int64_t>(n)};
    auto input = Ort::Value::CreateTensor<float>(cpu, const_cast<float*>(audio), n, shape, 2);
    const char* in_name = "audio";
    const char* out_name = "input_features";
    auto result = frontend.Run(Ort::RunOptions{nullptr}, &in_name, &input, 1, &out_name, 1);
    const auto got = result[0].GetTensorTypeAndShapeInfo().GetShape();
    const size_t count = static_cast<size_t>(manifest.n_mels * manifest.n_frames);
    if (got.size() != 3 || got[1] != manifest.n_mels || got[2] != manifest.n_frames) {
      throw Error("frontend.onnx returned features of an unexpected shape", kReexport);
    }
    std::memcpy(out, result[0].GetTensorData<float>(), count * sizeof(float));
  }

  /// Cross K/V of every decoder layer for `batch` windows of features
  /// (batch x n_mels x n_frames), encoded at their first `frames` mel frames.
  std::vector<Ort::Value> encode(const std::vector<float>& feats, int64_t batch, int64_t frames) {
    const int64_t per_window = manifest.n_mels * manifest.n_frames;
    if (batch < 1 || static_cast<int64_t>(feats.size()) != batch * per_window) {
      throw Error("features must hold batch x " + std::to_string(manifest.n_mels) + " x " + std::to_string(manifest.n_frames) +
                      " floats, got " + std::to_string(feats.size()) + " for a batch of " + std::to_string(batch),
                  "compute them with frontend.onnx");
    }
    std::vector<float> trimmed;
    const std::vector<float>* fed = &feats;
    if (frames < manifest.n_frames) {  // each mel row's first `frames` values
      trimmed.resize(static_cast<size_t>(batch * manifest.n_mels * frames));
      for (int64_t row = 0; row < batch * manifest.n_mels; ++row) {
        std::memcpy(trimmed.data() + row * frames, feats.data() + row * manifest.n_frames, static_cast<size_t>(frames) * sizeof(float));
      }
      fed = &trimmed;
    }
    const int64_t shape[3] = {batch, manifest.n_mels, std::min(frames, manifest.n_frames)};
    auto input = Ort::Value::CreateTensor<float>(cpu, const_cast<float*>(fed->data()), fed->size(), shape, 3);
    const char* in_name = "input_features";
    const auto cross_c = c_strings(cross);
    return encoder.Run(Ort::RunOptions{nullptr}, &in_name, &input, 1, cross_c.data(), cross_c.size());
  }

  /// A decoder over `cross_kv` (read, not copied): feeds are input_ids,
  /// past_* (empty at first) and cross_*; reorder() gathers rows of both.
  detail::Decoder decoder_over(std::vector<Ort::Value>& cross_kv) {
    struct State {
      std::vector<Ort::Value> feeds;
    };
    auto state = std::make_shared<State>();
    const int64_t batch = cross_kv[0].GetTensorTypeAndShapeInfo().GetShape()[0];
    const size_t n_past = cross.size();
    state->feeds.emplace_back(nullptr);
    Ort::AllocatorWithDefaultOptions allocator;
    const int64_t empty[4] = {batch, manifest.decoder_heads, 0, manifest.head_dim};
    for (size_t i = 0; i < n_past; ++i) state->feeds.push_back(Ort::Value::CreateTensor<float>(allocator, empty, 4));
    for (auto& value : cross_kv) state->feeds.push_back(view_of(value, cpu));
    detail::Decoder decoder;
    decoder.step = [this, state, n_past](const std::vector<int64_t>& tokens, int64_t b, int64_t n_tokens) {
      const auto in_c = c_strings(decoder_inputs);
      const auto out_c = c_strings(decoder_outputs);
      const int64_t ids_shape[2] = {b, n_tokens};
      auto& feeds = state->feeds;
      feeds[0] = Ort::Value::CreateTensor<int64_t>(cpu, const_cast<int64_t*>(tokens.data()), tokens.size(), ids_shape, 2);
      auto outputs = this->decoder.Run(Ort::RunOptions{nullptr}, in_c.data(), feeds.data(), feeds.size(), out_c.data(), out_c.size());
      for (size_t i = 0; i < n_past; ++i) feeds[1 + i] = std::move(outputs[1 + i]);  // present -> past
      const auto logits_shape = outputs[0].GetTensorTypeAndShapeInfo().GetShape();  // (b, n_tokens, vocab)
      if (logits_shape.size() != 3 || logits_shape[0] != b || logits_shape[1] != n_tokens) {
        throw Error("decoder.onnx returned logits of an unexpected shape", kReexport);
      }
      const int64_t vocab = logits_shape[2];
      const float* data = outputs[0].GetTensorData<float>();
      std::vector<float> last(static_cast<size_t>(b * vocab));
      for (int64_t r = 0; r < b; ++r) {
        const float* row = data + (r * n_tokens + n_tokens - 1) * vocab;
        std::copy(row, row + vocab, last.begin() + r * vocab);
      }
      return last;
    };
    decoder.reorder = [state](const std::vector<int64_t>& rows) {
      for (size_t i = 1; i < state->feeds.size(); ++i) state->feeds[i] = gather_rows(state->feeds[i], rows);
    };
    return decoder;
  }

  std::vector<std::vector<int64_t>> decode_features(const std::vector<float>& feats, int64_t batch) {
    auto cross_kv = encode(feats, batch, detail::window_frames(context));
    return detail::greedy_decode(decoder_over(cross_kv).step, batch, manifest.decoding);
  }

  detail::FallbackOptions fallback_options() const {
    if (!options.fallback) return detail::FallbackOptions::none();
    detail::FallbackOptions f;
    f.best_of = options.best_of;
    f.seed = options.seed;
    return f;
  }

  /// Decode windows whose features (batch x n_mels x n_frames) are encoded
  /// at `frames` mel frames (liteasr_export.core.windowed's _decode). On a
  /// trimmed context the first temperature alone is tried; the windows that
  /// fail it are decoded again, with the whole fallback, on the full 30 s.
  std::vector<detail::WindowDecode> decode(const std::vector<float>& feats, const std::vector<uint64_t>& keys,
                                           const detail::DecodingOptions& decoding, int64_t frames) {
    const auto batch = static_cast<int64_t>(keys.size());
    const auto fallback = fallback_options();
    auto text_of = [this](const std::vector<int64_t>& ids) { return detokenizer.decode(ids, manifest.decoding.eot); };
    auto decode_at = [&](const std::vector<float>& f, const std::vector<uint64_t>& k, int64_t n,
                         const detail::FallbackOptions& o) {
      auto cross_kv = encode(f, static_cast<int64_t>(k.size()), n);
      return detail::decode_with_fallback([&] { return decoder_over(cross_kv); }, static_cast<int64_t>(k.size()), decoding,
                                          o, text_of, k);
    };
    if (frames >= manifest.n_frames) return decode_at(feats, keys, manifest.n_frames, fallback);
    auto first = fallback;
    first.temperatures.resize(1);
    auto decoded = decode_at(feats, keys, frames, first);
    const bool checked = !std::isnan(fallback.compression_ratio_threshold) || !std::isnan(fallback.logprob_threshold);
    std::vector<int64_t> retry;  // no fallback asked for: each window decoded once, as it is
    for (int64_t i = 0; i < batch; ++i) {
      auto& d = decoded[static_cast<size_t>(i)];
      d.audio_context = frames;
      if (checked && (d.outcome == "fallback-exhausted" || d.outcome == "dropped-repetitive" ||
                      static_cast<int64_t>(d.tokens.size()) >= decoding.max_new_tokens)) {
        retry.push_back(i);
      }
    }
    if (retry.empty()) return decoded;
    const auto again = decode_at(rows_of(feats, retry), pick(keys, retry), manifest.n_frames, fallback);
    for (size_t k = 0; k < retry.size(); ++k) {
      decoded[static_cast<size_t>(retry[k])] = again[k];
      decoded[static_cast<size_t>(retry[k])].full_context_retry = true;
    }
    return decoded;
  }

  /// Windows `rows` of features laid out batch x n_mels x n_frames.
  std::vector<float> rows_of(const std::vector<float>& feats, const std::vector<int64_t>& rows) const {
    const auto per_window = static_cast<size_t>(manifest.n_mels * manifest.n_frames);
    std::vector<float> out(rows.size() * per_window);
    for (size_t k = 0; k < rows.size(); ++k) {
      std::copy_n(feats.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(rows[k]) * per_window), per_window,
                  out.begin() + static_cast<std::ptrdiff_t>(k * per_window));
    }
    return out;
  }

  template <typename T>
  static std::vector<T> pick(const std::vector<T>& values, const std::vector<int64_t>& rows) {
    std::vector<T> out;
    for (int64_t r : rows) out.push_back(values[static_cast<size_t>(r)]);
    return out;
  }

  /// Decode windows [offset, offset + length) of `audio` together; under
  /// `auto`, each group of windows of one length bucket is encoded at it
  /// (the longest first).
  std::vector<detail::WindowDecode> decode_windows(const std::vector<float>& audio,
                                                   const std::vector<std::pair<size_t, size_t>>& windows,
                                                   const detail::DecodingOptions& decoding) {
    const int64_t per_window = manifest.n_mels * manifest.n_frames;
    std::vector<float> feats(windows.size() * static_cast<size_t>(per_window));
    std::vector<uint64_t> keys;
    std::vector<int64_t> buckets;
    for (size_t w = 0; w < windows.size(); ++w) {
      features(audio.data() + windows[w].first, windows[w].second, feats.data() + w * per_window);
      keys.push_back(windows[w].first);
      buckets.push_back(context.mode == AudioContext::Mode::automatic ? detail::auto_context_frames(windows[w].second)
                                                                      : detail::window_frames(context));
    }
    const std::set<int64_t, std::greater<>> lengths(buckets.begin(), buckets.end());
    if (lengths.size() == 1) return decode(feats, keys, decoding, buckets.front());
    std::vector<detail::WindowDecode> out(windows.size());
    for (int64_t frames : lengths) {
      std::vector<int64_t> rows;
      for (size_t w = 0; w < windows.size(); ++w) if (buckets[w] == frames) rows.push_back(static_cast<int64_t>(w));
      const auto decoded = decode(rows_of(feats, rows), pick(keys, rows), decoding, frames);
      for (size_t k = 0; k < rows.size(); ++k) out[static_cast<size_t>(rows[k])] = decoded[k];
    }
    return out;
  }

  static WindowReport report(const detail::WindowDecode& d, size_t offset, size_t length) {
    WindowReport w;
    w.start = static_cast<double>(offset) / 16000.0;
    w.end = static_cast<double>(offset + length) / 16000.0;
    w.temperature = d.temperature;
    w.fallback = d.temperatures_tried.size() > 1;
    w.outcome = d.outcome;
    w.avg_logprob = d.avg_logprob;
    w.compression_ratio = d.compression_ratio;
    w.no_speech_prob = d.no_speech_prob;
    w.temperatures_tried = d.temperatures_tried;
    w.audio_context = d.audio_context;
    w.full_context_retry = d.full_context_retry;
    return w;
  }

  Transcript transcribe(const std::vector<float>& audio) {
    if (audio.empty()) throw Error("audio has no samples", "pass a non-empty recording");
    Transcript out;
    out.duration = static_cast<double>(audio.size()) / 16000.0;
    const int64_t eot = manifest.decoding.eot;
    std::vector<int64_t> tokens;
    if (!options.timestamps) {
      const auto windows = detail::split_windows(audio.data(), audio.size(),
                                                 static_cast<size_t>(detail::window_frames(context)) * 160);
      for (size_t start = 0; start < windows.size(); start += static_cast<size_t>(options.batch_size)) {
        const size_t count = std::min(windows.size() - start, static_cast<size_t>(options.batch_size));
        const std::vector<std::pair<size_t, size_t>> batch(windows.begin() + start, windows.begin() + start + count);
        const auto decoded = decode_windows(audio, batch, manifest.decoding);
        for (size_t w = 0; w < count; ++w) {
          const auto& [offset, length] = batch[w];
          out.windows.push_back(report(decoded[w], offset, length));
          if (decoded[w].tokens.empty()) continue;
          tokens.insert(tokens.end(), decoded[w].tokens.begin(), decoded[w].tokens.end());
          out.segments.push_back({out.windows.back().start, out.windows.back().end, detokenizer.decode(decoded[w].tokens, eot)});
        }
      }
    } else {
      // openai-whisper's seek: each window starts where the last complete segment ended
      const auto decoding = detail::with_timestamps(manifest.decoding);
      constexpr int64_t kHop = 160;
      const int64_t frames = (static_cast<int64_t>(audio.size()) + kHop - 1) / kHop;
      int64_t seek = 0;
      while (seek < frames) {
        const int64_t window_frames = std::min(detail::window_frames(context), frames - seek);
        const size_t offset = static_cast<size_t>(seek * kHop);
        const size_t length = std::min(static_cast<size_t>((seek + window_frames) * kHop), audio.size()) - offset;
        const auto decoded = decode_windows(audio, {{offset, length}}, decoding).front();
        out.windows.push_back(report(decoded, offset, length));
        if (decoded.tokens.empty()) {  // silence, a dropped loop, or nothing said
          seek += window_frames;
          continue;
        }
        const auto [pieces, advance] = detail::timestamp_segments(decoded.tokens, decoding.timestamp_begin,
                                                                  out.windows.back().start, window_frames);
        seek += advance;
        for (const auto& piece : pieces) {
          const std::string text = detokenizer.decode(piece.tokens, eot);
          if (piece.start == piece.end || text.empty()) continue;  // instantaneous or empty: left out
          tokens.insert(tokens.end(), piece.tokens.begin(), piece.tokens.end());
          out.segments.push_back({std::min(piece.start, out.duration), std::min(piece.end, out.duration), text});
        }
      }
    }
    out.text = detokenizer.decode(tokens, eot);
    return out;
  }
};

Transcriber::Transcriber(const std::string& artifacts_dir, TranscriberOptions options)
    : impl_(std::make_unique<Impl>(artifacts_dir, options)) {}
Transcriber::~Transcriber() = default;
Transcriber::Transcriber(Transcriber&&) noexcept = default;
Transcriber& Transcriber::operator=(Transcriber&&) noexcept = default;

std::string Transcriber::transcribe(const std::vector<float>& pcm_16k) { return impl_->transcribe(pcm_16k).text; }

Transcript Transcriber::transcribe_detailed(const std::vector<float>& pcm_16k) { return impl_->transcribe(pcm_16k); }

std::vector<std::vector<int64_t>> Transcriber::transcribe_features(const std::vector<float>& features, int64_t batch) {
  return impl_->decode_features(features, batch);
}

std::string Transcriber::detokenize(const std::vector<int64_t>& ids) const {
  return impl_->detokenizer.decode(ids, impl_->manifest.decoding.eot);
}

const std::string& Transcriber::name() const { return impl_->manifest.name; }
int64_t Transcriber::n_mels() const { return impl_->manifest.n_mels; }
const AudioContext& Transcriber::audio_context() const { return impl_->context; }

}  // namespace liteasr
