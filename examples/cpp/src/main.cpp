// liteasr_cpp: transcribe 16 kHz mono WAV files with an artifacts folder.
//
//   liteasr_cpp [--threads N] [--batch-size N] [--no-verify] [--format txt|json|srt]
//               [--no-timestamps] [--no-fallback] [--seed N] [--audio-context full|auto|N]
//               OUT audio.wav [more.wav ...]
//
// txt: one line of text per file, in order; json: an array with one object
// per file (text, segments, windows); srt: subtitles of one file. Exit
// status: 0 on success, 2 on bad input (usage, artifacts folder, WAV
// format), 1 on a runtime failure.
#include <onnxruntime_cxx_api.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "liteasr/transcriber.hpp"

namespace {

constexpr int kBadInput = 2;
constexpr int kFailure = 1;

int usage(const std::string& problem) {
  if (!problem.empty()) std::cerr << "liteasr_cpp: error: " << problem << "\n";
  std::cerr << "usage: liteasr_cpp [--threads N] [--batch-size N] [--no-verify] [--format txt|json|srt]\n"
               "                   [--no-timestamps] [--no-fallback] [--seed N] [--audio-context full|auto|N]\n"
               "                   OUT audio.wav [more.wav ...]\n"
               "  OUT        an artifacts folder written by liteasr-export (manifest.json, *.onnx, tokenizer.json)\n"
               "  audio.wav  16 kHz mono WAV, 16-bit PCM or 32-bit float\n"
               "  --audio-context  audio per window the encoder sees: full (30 s), auto (each window's audio\n"
               "             plus 1 s, in length buckets), seconds (10, 7.5s) or mel frames (1000f); default:\n"
               "             the artifacts' manifest (auto for an export tuned for it, else full)\n";
  return kBadInput;
}

bool parse_count(const std::string& text, int minimum, int& out) {
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < minimum || value > 1024) return false;
  out = static_cast<int>(value);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  liteasr::TranscriberOptions options;
  std::string format = "txt";
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage("");
      return 0;
    }
    if (arg == "--threads" || arg == "--batch-size" || arg == "--seed") {
      int value = 0;
      const int minimum = arg == "--batch-size" ? 1 : 0;
      if (i + 1 >= argc || !parse_count(argv[i + 1], minimum, value)) {
        return usage(arg + " needs a number (" + (arg == "--threads" ? "0 = default" : minimum ? ">= 1" : ">= 0") + ")");
      }
      if (arg == "--threads") options.threads = value;
      else if (arg == "--batch-size") options.batch_size = value;
      else options.seed = static_cast<uint64_t>(value);
      ++i;
    } else if (arg == "--format" || arg == "--output-format") {
      if (i + 1 >= argc) return usage(arg + " needs txt, json or srt");
      format = argv[++i];
      if (format != "txt" && format != "json" && format != "srt") return usage("unknown " + arg + " " + format + ": use txt, json or srt");
    } else if (arg == "--audio-context") {
      if (i + 1 >= argc) return usage(arg + " needs full, auto, seconds (10, 7.5s) or mel frames (1000f)");
      try {
        options.audio_context = liteasr::parse_audio_context(argv[++i]);
      } catch (const liteasr::Error& exc) {
        return usage("--audio-context" + std::string(exc.what()).substr(std::string("audio_context").size()));
      }
    } else if (arg == "--no-verify") {
      options.verify = false;
    } else if (arg == "--no-timestamps") {
      options.timestamps = false;
    } else if (arg == "--no-fallback") {
      options.fallback = false;
    } else if (arg.rfind("--", 0) == 0) {
      return usage("unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() < 2) return usage("expected an artifacts folder and at least one WAV file");
  if (format == "srt" && !options.timestamps) return usage("--format srt needs timestamps: drop --no-timestamps");
  if (format == "srt" && positional.size() > 2) return usage("--format srt takes one WAV file");

  try {
    liteasr::Transcriber transcriber(positional[0], options);
    if (format == "json") std::cout << "[";
    for (size_t i = 1; i < positional.size(); ++i) {
      const auto transcript = transcriber.transcribe_detailed(liteasr::read_wav(positional[i]));
      if (format == "txt") {
        std::cout << transcript.text << "\n" << std::flush;
      } else if (format == "json") {
        std::cout << (i > 1 ? ",\n" : "\n") << liteasr::to_json(transcript, positional[i]) << std::flush;
      } else {
        std::cout << liteasr::to_srt(transcript) << std::flush;
      }
    }
    if (format == "json") std::cout << "\n]\n";
  } catch (const liteasr::Error& exc) {
    std::cerr << "liteasr_cpp: error: " << exc.what() << "\n";
    return kBadInput;
  } catch (const Ort::Exception& exc) {
    std::cerr << "liteasr_cpp: ONNX Runtime error: " << exc.what() << "\n";
    return kFailure;
  } catch (const std::exception& exc) {
    std::cerr << "liteasr_cpp: error: " << exc.what() << "\n";
    return kFailure;
  }
  return 0;
}
