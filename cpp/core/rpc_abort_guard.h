// Force-included (-include) into ggml's RPC backend sources only (see cpp/CMakeLists.txt).
// ggml-rpc aborts the process when a worker's connection fails mid-call
// (RPC_STATUS_ASSERT -> GGML_ABORT). In a server that also serves local models that is not
// acceptable, so inside those two translation units GGML_ABORT calls a3s_rpc_abort instead:
// a failed connection is recorded and the call returns (the caller gets an empty result, the
// engine that used the worker sees the failure and ends its requests); a failure to connect or
// a handshake failure throws a C++ exception to the caller that tried to connect; every other
// ggml assertion still aborts as before. The llama.cpp source itself is not modified.
#pragma once
#ifdef __cplusplus
#    include "ggml.h"
extern "C" void a3s_rpc_abort(const char * file, int line, const char * fmt, ...);
#    undef GGML_ABORT
#    define GGML_ABORT(...) a3s_rpc_abort(__FILE__, __LINE__, __VA_ARGS__)
#endif
