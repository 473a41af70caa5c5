// liteasr_cpp: transcribe 16 kHz mono WAV files with an artifacts folder.
//
//   liteasr_cpp [--threads N] [--batch-size N] [--no-verify] OUT audio.wav [more.wav ...]
//
// Prints one line of text per file, in order. Exit status: 0 on success, 2 on
// bad input (usage, artifacts folder, WAV format), 1 on a runtime failure.
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
  std::cerr << "usage: liteasr_cpp [--threads N] [--batch-size N] [--no-verify] OUT audio.wav [more.wav ...]\n"
               "  OUT        an artifacts folder written by liteasr-export (manifest.json, *.onnx, tokenizer.json)\n"
               "  audio.wav  16 kHz mono WAV, 16-bit PCM or 32-bit float\n";
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
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage("");
      return 0;
    }
    if (arg == "--threads" || arg == "--batch-size") {
      int& target = arg == "--threads" ? options.threads : options.batch_size;
      if (i + 1 >= argc || !parse_count(argv[i + 1], arg == "--threads" ? 0 : 1, target)) {
        return usage(arg + " needs a number (" + (arg == "--threads" ? "0 = default" : ">= 1") + ")");
      }
      ++i;
    } else if (arg == "--no-verify") {
      options.verify = false;
    } else if (arg.rfind("--", 0) == 0) {
      return usage("unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() < 2) return usage("expected an artifacts folder and at least one WAV file");

  try {
    liteasr::Transcriber transcriber(positional[0], options);
    for (size_t i = 1; i < positional.size(); ++i) {
      std::cout << transcriber.transcribe(liteasr::read_wav(positional[i])) << "\n" << std::flush;
    }
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
