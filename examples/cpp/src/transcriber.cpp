// liteasr::Transcriber on ONNX Runtime's C++ API: frontend.onnx per window,
// encoder.onnx per batch of windows (only the cross K/V outputs are fetched),
// decoder.onnx once per token with the self-attention KV cache carried from
// its present_* outputs to its past_* inputs, the shared greedy loop, and
// byte-level BPE detokenization.
#include "liteasr/transcriber.hpp"

#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "detokenizer.hpp"
#include "greedy.hpp"
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

}  // namespace

struct Transcriber::Impl {
  detail::Manifest manifest;
  TranscriberOptions options;
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

  std::vector<std::vector<int64_t>> decode_features(const std::vector<float>& feats, int64_t batch) {
    const int64_t per_window = manifest.n_mels * manifest.n_frames;
    if (batch < 1 || static_cast<int64_t>(feats.size()) != batch * per_window) {
      throw Error("features must hold batch x " + std::to_string(manifest.n_mels) + " x " + std::to_string(manifest.n_frames) +
                      " floats, got " + std::to_string(feats.size()) + " for a batch of " + std::to_string(batch),
                  "compute them with frontend.onnx");
    }
    const int64_t shape[3] = {batch, manifest.n_mels, manifest.n_frames};
    auto input = Ort::Value::CreateTensor<float>(cpu, const_cast<float*>(feats.data()), feats.size(), shape, 3);
    const char* in_name = "input_features";
    const auto cross_c = c_strings(cross);
    std::vector<Ort::Value> cross_kv = encoder.Run(Ort::RunOptions{nullptr}, &in_name, &input, 1, cross_c.data(), cross_c.size());

    // feeds: input_ids, past_* (start empty: past length 0), cross_* (fixed)
    const size_t n_past = cross.size();
    std::vector<Ort::Value> feeds;
    feeds.emplace_back(nullptr);
    Ort::AllocatorWithDefaultOptions allocator;
    const int64_t empty[4] = {batch, manifest.decoder_heads, 0, manifest.head_dim};
    for (size_t i = 0; i < n_past; ++i) feeds.push_back(Ort::Value::CreateTensor<float>(allocator, empty, 4));
    for (auto& value : cross_kv) feeds.push_back(std::move(value));
    const auto in_c = c_strings(decoder_inputs);
    const auto out_c = c_strings(decoder_outputs);

    detail::DecoderStep step = [&](const std::vector<int64_t>& tokens, int64_t b, int64_t n_tokens) {
      const int64_t ids_shape[2] = {b, n_tokens};
      feeds[0] = Ort::Value::CreateTensor<int64_t>(cpu, const_cast<int64_t*>(tokens.data()), tokens.size(), ids_shape, 2);
      auto outputs = decoder.Run(Ort::RunOptions{nullptr}, in_c.data(), feeds.data(), feeds.size(), out_c.data(), out_c.size());
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
    return detail::greedy_decode(step, batch, manifest.decoding);
  }

  std::string transcribe(const std::vector<float>& audio) {
    if (audio.empty()) throw Error("audio has no samples", "pass a non-empty recording");
    const auto windows = detail::split_windows(audio.data(), audio.size());
    const int64_t per_window = manifest.n_mels * manifest.n_frames;
    std::vector<int64_t> tokens;
    for (size_t start = 0; start < windows.size(); start += static_cast<size_t>(options.batch_size)) {
      const size_t count = std::min(windows.size() - start, static_cast<size_t>(options.batch_size));
      std::vector<float> feats(count * static_cast<size_t>(per_window));
      for (size_t w = 0; w < count; ++w) {
        const auto [offset, length] = windows[start + w];
        features(audio.data() + offset, length, feats.data() + w * per_window);
      }
      for (const auto& ids : decode_features(feats, static_cast<int64_t>(count))) tokens.insert(tokens.end(), ids.begin(), ids.end());
    }
    return detokenizer.decode(tokens, manifest.decoding.eot);
  }
};

Transcriber::Transcriber(const std::string& artifacts_dir, TranscriberOptions options)
    : impl_(std::make_unique<Impl>(artifacts_dir, options)) {}
Transcriber::~Transcriber() = default;
Transcriber::Transcriber(Transcriber&&) noexcept = default;
Transcriber& Transcriber::operator=(Transcriber&&) noexcept = default;

std::string Transcriber::transcribe(const std::vector<float>& pcm_16k) { return impl_->transcribe(pcm_16k); }

std::vector<std::vector<int64_t>> Transcriber::transcribe_features(const std::vector<float>& features, int64_t batch) {
  return impl_->decode_features(features, batch);
}

std::string Transcriber::detokenize(const std::vector<int64_t>& ids) const {
  return impl_->detokenizer.decode(ids, impl_->manifest.decoding.eot);
}

const std::string& Transcriber::name() const { return impl_->manifest.name; }
int64_t Transcriber::n_mels() const { return impl_->manifest.n_mels; }

}  // namespace liteasr
