// llama.cpp / ggml log capture. The callback runs on any thread and never touches Python:
// lines are buffered and drained by Python's logging bridge.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace a3s {

// level: 1 debug, 2 info, 3 warn, 4 error (ggml_log_level values)
using LogLine = std::pair<int, std::string>;

void                 log_install();         // once, at import
std::vector<LogLine> log_drain();           // complete lines so far
void                 log_set_echo(bool on);  // also write to stderr (debugging)

}  // namespace a3s
