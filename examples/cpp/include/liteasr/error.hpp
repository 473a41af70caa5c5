// liteasr::Error: the one exception type the library throws for bad input
// (a missing or wrong artifacts folder, audio it cannot use). Like the Python
// toolchain's LiteASRError, the message names the problem and the fix.
#pragma once

#include <stdexcept>
#include <string>

namespace liteasr {

class Error : public std::runtime_error {
 public:
  Error(const std::string& problem, const std::string& fix)
      : std::runtime_error(fix.empty() ? problem : problem + ". " + fix), problem_(problem), fix_(fix) {}

  const std::string& problem() const noexcept { return problem_; }
  const std::string& fix() const noexcept { return fix_; }

 private:
  std::string problem_;
  std::string fix_;
};

}  // namespace liteasr
