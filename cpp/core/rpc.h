// ggml's RPC backend: serving this machine's backend to remote `serve` processes (worker side)
// and using remote workers as devices for a model load (client side).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

struct ggml_backend_device;
struct llama_context;

// In rpc_abort_guard.cpp, compiled into the RPC backend's library.
extern "C" uint64_t a3s_rpc_failure_count(void);
extern "C" void     a3s_rpc_last_failure(char * buf, size_t size);

namespace a3s {

// Bad endpoint, unreachable worker, busy port, unknown device.
struct RpcError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct DeviceMemory {
    std::string name;         // ggml device name: CPU, CUDA0, RPC0, ...
    std::string description;  // for an RPC device: its endpoint
    uint64_t    free  = 0;
    uint64_t    total = 0;
};

struct RpcServerParams {
    std::string              host = "127.0.0.1";
    int32_t                  port = 50052;
    std::string              cache_dir;  // "" = no local tensor cache
    int32_t                  n_threads = 0;  // 0: half the hardware threads
    std::vector<std::string> devices;    // ggml device names; empty: accelerators, else the CPU
    uint64_t                 mem_bytes = 0;  // memory each device advertises (0: what it reports)
};

// The protocol this build speaks (major, minor, patch) and the HELLO request's payload size.
std::vector<int32_t> rpc_protocol_version();
uint64_t             rpc_hello_request_size();

// This machine's ggml devices (for --device and errors naming the choices).
std::vector<DeviceMemory> local_devices();

// Serves the chosen devices over ggml's RPC protocol; blocks for the life of the process.
// Throws RpcError for an unknown device, a bad address or a port that cannot be bound.
void rpc_serve(const RpcServerParams & params);

// The devices of a running worker (ggml_backend_rpc_add_server); throws RpcError when the
// worker cannot be reached or speaks another protocol version.
std::vector<ggml_backend_device *> rpc_worker_devices(const std::string & endpoint);

// Where a model's layers go when it is split across this machine and RPC workers.
struct RpcPlacement {
    std::vector<ggml_backend_device *> devices;  // local accelerators, then each worker's devices; null-terminated
    std::vector<float>                 split;    // llama_model_params.tensor_split (llama_max_devices() entries)
    int32_t                            n_gpu_layers = -1;
};

// `weights`: [local share, one per worker device] (local share = this machine's CPU when it has
// no accelerator, else one entry per local accelerator); empty: by each device's free memory.
// Throws ModelError naming the worker that cannot be used.
RpcPlacement rpc_placement(const std::string & model_path, const std::vector<std::string> & endpoints,
                           const std::vector<float> & weights, int32_t n_gpu_layers);

// Bytes a loaded model and its context hold on each device (llama.cpp's memory breakdown).
struct DeviceUse {
    std::string device;       // ggml device name (CPU, RPC0, ...)
    std::string description;  // an RPC device's endpoint; else the device's description
    std::string buffer_type;  // e.g. CPU_REPACK, RPC0[127.0.0.1:50052]
    uint64_t    model   = 0;  // weights
    uint64_t    context = 0;  // KV cache / recurrent state
    uint64_t    compute = 0;  // compute buffers
};
std::vector<DeviceUse> memory_breakdown(const llama_context * ctx);

// Whether host:port accepts a TCP connection within `timeout_ms` (no handshake: a worker busy
// with this process's own connection still accepts). Tells which worker of a model died.
bool rpc_endpoint_accepts(const std::string & endpoint, int32_t timeout_ms = 1000);

// Connection failures ggml-rpc reported since the process started, and the last message.
uint64_t    rpc_failure_count();
std::string rpc_last_failure();

}  // namespace a3s
