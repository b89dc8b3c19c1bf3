// a3s_rpc_abort: GGML_ABORT inside ggml-rpc (see rpc_abort_guard.h). Compiled into the RPC
// backend's own library so that it links wherever that library does.
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "ggml.h"
#include "rpc.h"

namespace {
std::atomic<uint64_t> g_failures{0};
std::mutex            g_mu;
std::string           g_last;

bool starts_with(const char * s, const char * prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}
}  // namespace

extern "C" void a3s_rpc_abort(const char * file, int line, const char * fmt, ...) {
    char    msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    std::string text(msg);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    if (starts_with(msg, "Remote RPC server crashed")) {
        // a worker's connection failed mid-call: record it and let the call return (its output
        // is left unset); the engine that uses the worker sees the count change and stops
        {
            std::lock_guard<std::mutex> lock(g_mu);
            g_last = text;
        }
        if (g_failures.fetch_add(1) == 0) {
            fprintf(stderr, "a3s-power: %s (%s:%d)\n", text.c_str(), file, line);
        }
        return;
    }
    if (starts_with(msg, "Failed to connect to") || starts_with(msg, "RPC handshake failed") ||
        starts_with(msg, "Failed to parse endpoint") || starts_with(msg, "RPC transport initialization failed")) {
        // raised on the thread that is connecting (a model load): it becomes a load error
        throw a3s::RpcError(text);
    }
    ggml_abort(file, line, "%s", msg);
}

extern "C" uint64_t a3s_rpc_failure_count(void) {
    return g_failures.load();
}

extern "C" void a3s_rpc_last_failure(char * buf, size_t size) {
    std::lock_guard<std::mutex> lock(g_mu);
    snprintf(buf, size, "%s", g_last.c_str());
}
