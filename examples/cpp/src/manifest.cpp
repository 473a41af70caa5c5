#include "manifest.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

#include "liteasr/error.hpp"
#include "liteasr/wav.hpp"

namespace liteasr::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kReexport = "re-export the artifacts folder with liteasr-export";
constexpr const char* kFormat = "liteasr-export/1";  // major version this runtime reads

const json& section(const json& data, const char* key, const fs::path& path) {
  auto it = data.find(key);
  if (it == data.end()) throw Error(path.string() + " lacks the '" + key + "' section", kReexport);
  return *it;
}

fs::path graph_file(const json& graphs, const char* name, const fs::path& root, bool required,
                    std::vector<std::string>& loaded) {
  auto it = graphs.find(name);
  if (it == graphs.end()) {
    if (!required) return {};
    throw Error((root / "manifest.json").string() + " lists no " + name + " graph", kReexport);
  }
  for (const char* key : {"file", "data"}) {
    if (it->contains(key)) loaded.push_back(it->at(key).get<std::string>());
  }
  fs::path file = root / it->at("file").get<std::string>();
  if (!fs::is_regular_file(file)) {
    throw Error(root.string() + " is missing the " + name + " graph " + file.filename().string(),
                "copy the whole folder or re-export it with liteasr-export");
  }
  return file;
}

}  // namespace

Manifest load_manifest(const fs::path& artifacts_dir) {
  const fs::path root = artifacts_dir;
  if (!fs::is_directory(root)) throw Error("artifacts folder not found: " + root.string(), "export one with liteasr-export --output DIR");
  const fs::path path = root / "manifest.json";
  if (!fs::is_regular_file(path)) {
    throw Error(root.string() + " has no manifest.json", "it is not an artifacts folder: re-export it with liteasr-export");
  }
  json data;
  try {
    std::ifstream in(path);
    data = json::parse(in);
  } catch (const json::exception& exc) {
    throw Error("cannot read " + path.string() + ": " + exc.what(), kReexport);
  }
  if (!data.is_object()) throw Error(path.string() + " is not a JSON object", kReexport);

  Manifest m;
  m.root = root;
  try {
    const std::string format = data.value("format", "");
    if (format != kFormat && format.rfind(std::string(kFormat) + ".", 0) != 0) {
      throw Error(path.string() + " has format '" + format + "', this runtime reads " + kFormat,
                  "re-export the folder with a matching liteasr-export, or update this program");
    }
    m.name = data.value("name", root.filename().string());
    const json& model = section(data, "model", path);
    m.n_mels = model.at("n_mels").get<int64_t>();
    m.decoder_layers = model.at("decoder_layers").get<int64_t>();
    m.decoder_heads = model.at("decoder_heads").get<int64_t>();
    m.head_dim = model.at("head_dim").get<int64_t>();
    m.vocab_size = model.at("vocab_size").get<int64_t>();

    const json& frontend = section(data, "frontend", path);
    const int64_t rate = frontend.value("sample_rate", int64_t{kSampleRate});
    if (rate != kSampleRate) {
      throw Error(path.string() + " expects " + std::to_string(rate) + " Hz audio, this runtime feeds 16000 Hz", kReexport);
    }
    m.n_frames = frontend.value("n_frames", int64_t{3000});

    const json& graphs = section(data, "graphs", path);
    m.frontend_graph = graph_file(graphs, "frontend", root, false, m.loaded_files);
    m.encoder_graph = graph_file(graphs, "encoder", root, true, m.loaded_files);
    m.decoder_graph = graph_file(graphs, "decoder", root, true, m.loaded_files);
    if (m.frontend_graph.empty()) {
      throw Error(root.string() + " has no frontend graph (frontend.onnx): the C++ runtime computes log-mel with it",
                  "re-export with the frontend graph (export_artifacts(..., frontend=True), the default)");
    }

    m.loaded_files.push_back(section(data, "tokenizer", path).get<std::string>());
    m.tokenizer = root / m.loaded_files.back();
    if (data.contains("sha256")) m.sha256 = data.at("sha256").get<std::map<std::string, std::string>>();
    if (!fs::is_regular_file(m.tokenizer)) {
      throw Error(root.string() + " is missing " + m.tokenizer.filename().string(), "copy the whole folder or re-export it");
    }

    const json& decoding = section(data, "decoding", path);
    m.decoding.prompt = decoding.at("prompt").get<std::vector<int64_t>>();
    m.decoding.eot = decoding.at("eot").get<int64_t>();
    m.decoding.suppress = decoding.value("suppress", std::vector<int64_t>{});
    m.decoding.suppress_begin = decoding.value("suppress_begin", std::vector<int64_t>{});
    m.decoding.max_new_tokens = decoding.value("max_new_tokens", int64_t{224});
    // manifests before timestamps: the prompt is sot ... <|notimestamps|>, and <|0.00|> follows it
    const auto& prompt = m.decoding.prompt;
    auto id_or = [&](const char* key, int64_t fallback) {
      return decoding.contains(key) && !decoding.at(key).is_null() ? decoding.at(key).get<int64_t>() : fallback;
    };
    m.decoding.sot = id_or("sot", prompt.empty() ? -1 : prompt.front());
    m.decoding.no_speech = id_or("no_speech", -1);
    m.decoding.no_timestamps = id_or("no_timestamps", prompt.empty() ? -1 : prompt.back());
    m.decoding.timestamp_begin = id_or("timestamp_begin", m.decoding.no_timestamps + 1);
    m.decoding.max_initial_timestamp_index = id_or("max_initial_timestamp_index", 50);

    // manifests before audio contexts have no section: full
    if (data.contains("audio_context") && !data.at("audio_context").is_null()) {
      const json& context = data.at("audio_context");
      const json fallback = "full";
      const json& chosen = context.is_object() ? context.value("default", fallback) : context;
      if (!context.is_object() || !chosen.is_string() || (chosen != "full" && chosen != "auto")) {
        throw Error(path.string() + " has \"audio_context\": " + context.dump() +
                        ", expected a JSON object whose \"default\" is \"full\" or \"auto\"",
                    kReexport);
      }
      m.default_audio_context = chosen.get<std::string>();
    }
  } catch (const json::exception& exc) {
    throw Error(path.string() + " does not have the expected layout (" + exc.what() + ")", kReexport);
  }
  auto in_vocab = [&](int64_t id) { return id >= 0 && id < m.vocab_size; };
  for (const auto* ids : {&m.decoding.prompt, &m.decoding.suppress, &m.decoding.suppress_begin}) {
    for (int64_t id : *ids) {
      if (!in_vocab(id)) throw Error(path.string() + " names token id " + std::to_string(id) + " outside the vocabulary", kReexport);
    }
  }
  if (m.decoding.prompt.empty() || !in_vocab(m.decoding.eot)) throw Error(path.string() + " has no valid decoding prompt/eot", kReexport);
  if (m.n_mels <= 0 || m.decoder_layers <= 0 || m.decoder_heads <= 0 || m.head_dim <= 0) {
    throw Error(path.string() + " has invalid model dimensions", kReexport);
  }
  return m;
}

}  // namespace liteasr::detail
