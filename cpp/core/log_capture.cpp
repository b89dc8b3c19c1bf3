#include "log_capture.h"

#include <cstdio>
#include <deque>
#include <mutex>

#include "ggml.h"
#include "llama.h"
#include "mtmd-helper.h"

namespace a3s {
namespace {

std::mutex          g_mu;
std::deque<LogLine> g_lines;
std::string         g_partial;
int                 g_partial_level = GGML_LOG_LEVEL_INFO;
bool                g_echo          = false;
constexpr size_t    kMaxLines       = 4096;

void on_log(enum ggml_log_level level, const char * text, void * /*user*/) {
    if (text == nullptr) {
        return;
    }
    std::lock_guard<std::mutex> lock(g_mu);
    if (level != GGML_LOG_LEVEL_CONT || g_partial.empty()) {
        if (level != GGML_LOG_LEVEL_CONT) {
            g_partial_level = level;
        }
    }
    g_partial += text;
    size_t pos;
    while ((pos = g_partial.find('\n')) != std::string::npos) {
        std::string line = g_partial.substr(0, pos);
        g_partial.erase(0, pos + 1);
        if (g_echo) {
            fprintf(stderr, "%s\n", line.c_str());
        }
        if (g_lines.size() >= kMaxLines) {
            g_lines.pop_front();
        }
        g_lines.emplace_back(g_partial_level, std::move(line));
    }
}

}  // namespace

void log_install() {
    llama_log_set(on_log, nullptr);
    mtmd_helper_log_set(on_log, nullptr);  // mtmd and clip log on their own
}

std::vector<LogLine> log_drain() {
    std::lock_guard<std::mutex> lock(g_mu);
    std::vector<LogLine>        out(g_lines.begin(), g_lines.end());
    g_lines.clear();
    return out;
}

void log_set_echo(bool on) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_echo = on;
}

}  // namespace a3s
