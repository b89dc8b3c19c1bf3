#include "rpc.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "ggml-backend-impl.h"  // ggml_backend_device / ggml_backend: the --mem device wrapper
#include "ggml-backend.h"
#include "ggml-rpc.h"
#include "gguf.h"
#include "llama.h"
#include "llama-ext.h"  // llama_get_memory_breakdown (llama.cpp's staging API)
#include "model.h"

namespace {

// A device that advertises `mem` bytes instead of what it reports (rpc-server --mem): ggml's RPC
// server answers GET_DEVICE_MEMORY from the backend's device, which is this wrapper.
struct MemDevice {
    ggml_backend_device dev;  // first member: a MemDevice * is a ggml_backend_dev_t
    ggml_backend_dev_t  orig;
    uint64_t            mem;
};

void memdev_get_memory(ggml_backend_dev_t d, size_t * free, size_t * total) {
    auto * m = reinterpret_cast<MemDevice *>(d);
    m->orig->iface.get_memory(m->orig, free, total);
    *total = m->mem;
    *free  = std::min<size_t>(*free, m->mem);
}

void memdev_get_props(ggml_backend_dev_t d, ggml_backend_dev_props * props) {
    auto * m = reinterpret_cast<MemDevice *>(d);
    m->orig->iface.get_props(m->orig, props);
    memdev_get_memory(d, &props->memory_free, &props->memory_total);
}

ggml_backend_t memdev_init(ggml_backend_dev_t d, const char * params) {
    auto *         m = reinterpret_cast<MemDevice *>(d);
    ggml_backend_t b = m->orig->iface.init_backend(m->orig, params);
    if (b != nullptr) b->device = d;
    return b;
}

ggml_backend_dev_t wrap_memory(ggml_backend_dev_t orig, uint64_t mem) {
    auto * m             = new MemDevice{*orig, orig, mem};  // lives as long as the server (the process)
    m->dev.iface.get_memory   = memdev_get_memory;
    m->dev.iface.get_props    = memdev_get_props;
    m->dev.iface.init_backend = memdev_init;
    return &m->dev;
}

std::string device_list() {
    std::string out;
    for (const auto & d : a3s::local_devices()) {
        out += (out.empty() ? "" : ", ") + d.name;
    }
    return out;
}

}  // namespace

namespace a3s {

std::vector<int32_t> rpc_protocol_version() {
    return {RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION, RPC_PROTO_PATCH_VERSION};
}

uint64_t rpc_hello_request_size() {
    return 24;  // rpc_msg_hello_req: uint8_t conn_caps[RPC_CONN_CAPS_SIZE] (ggml-rpc/transport.h)
}

std::vector<DeviceMemory> local_devices() {
    backend_init();
    std::vector<DeviceMemory> out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        DeviceMemory       d;
        d.name        = ggml_backend_dev_name(dev);
        d.description = ggml_backend_dev_description(dev);
        size_t free = 0, total = 0;
        ggml_backend_dev_memory(dev, &free, &total);
        d.free  = free;
        d.total = total;
        out.push_back(d);
    }
    return out;
}

void rpc_serve(const RpcServerParams & p) {
    backend_init();
    if (p.port <= 0 || p.port > 65535) {
        throw RpcError("invalid port " + std::to_string(p.port) + " (must be 1-65535)");
    }
    in_addr addr{};
    if (inet_pton(AF_INET, p.host.c_str(), &addr) != 1) {
        throw RpcError("invalid host address '" + p.host + "': ggml's RPC server binds an IPv4 address");
    }
    std::vector<ggml_backend_dev_t> devices;
    for (const auto & name : p.devices) {
        ggml_backend_dev_t dev = ggml_backend_dev_by_name(name.c_str());
        if (dev == nullptr) {
            throw RpcError("unknown device '" + name + "'; available: " + device_list());
        }
        devices.push_back(dev);
    }
    if (devices.empty()) {
        for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
            ggml_backend_dev_t dev = ggml_backend_dev_get(i);
            auto               t   = ggml_backend_dev_type(dev);
            if (t != GGML_BACKEND_DEVICE_TYPE_CPU && t != GGML_BACKEND_DEVICE_TYPE_ACCEL) devices.push_back(dev);
        }
    }
    if (devices.empty()) {
        ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        if (cpu == nullptr) throw RpcError("no device to serve");
        devices.push_back(cpu);
    }
    if (p.mem_bytes > 0) {
        for (auto & dev : devices) dev = wrap_memory(dev, p.mem_bytes);
    }
    std::string cache_dir;
    if (!p.cache_dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(p.cache_dir, ec);
        if (ec) throw RpcError("cannot create cache directory " + p.cache_dir + ": " + ec.message());
        cache_dir = p.cache_dir;
    }
    // bind once ourselves so that a busy port is an error naming it (ggml only says it failed)
    {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) throw RpcError(std::string("socket: ") + strerror(errno));
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr   = addr;
        sa.sin_port   = htons((uint16_t) p.port);
        const int rc  = bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa));
        const int err = errno;
        close(fd);
        if (rc != 0) {
            const std::string where = p.host + ":" + std::to_string(p.port);
            if (err == EADDRINUSE) {
                throw RpcError("cannot listen on " + where + ": address already in use (another rpc-server?)");
            }
            throw RpcError("cannot listen on " + where + ": " + strerror(err));
        }
    }
    const int32_t     n_threads = p.n_threads > 0 ? p.n_threads : (int32_t) std::max(1u, std::thread::hardware_concurrency() / 2);
    const std::string endpoint  = p.host + ":" + std::to_string(p.port);
    ggml_backend_rpc_start_server(endpoint.c_str(), cache_dir.empty() ? nullptr : cache_dir.c_str(),
                                  (size_t) n_threads, devices.size(), devices.data());
    // returns only when it could not create or accept on its socket
    throw RpcError("RPC server on " + endpoint + " stopped: it could not listen or accept connections");
}

std::vector<ggml_backend_dev_t> rpc_worker_devices(const std::string & endpoint) {
    backend_init();
    ggml_backend_reg_t reg = nullptr;
    try {
        reg = ggml_backend_rpc_add_server(endpoint.c_str());
    } catch (const RpcError & e) {
        throw RpcError("RPC worker " + endpoint + " is not reachable: " + e.what());
    }
    if (reg == nullptr || ggml_backend_reg_dev_count(reg) == 0) {
        throw RpcError("RPC worker " + endpoint + " has no devices");
    }
    std::vector<ggml_backend_dev_t> out;
    for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i) out.push_back(ggml_backend_reg_dev_get(reg, i));
    return out;
}

static int32_t gguf_block_count(const std::string & path) {
    gguf_init_params gp = {/*no_alloc=*/true, /*ctx=*/nullptr};
    gguf_context *   g  = gguf_init_from_file(path.c_str(), gp);
    if (g == nullptr) throw ModelError("corrupt or truncated GGUF header: " + path);
    int32_t       n    = -1;
    const int64_t karch = gguf_find_key(g, "general.architecture");
    if (karch >= 0 && gguf_get_kv_type(g, karch) == GGUF_TYPE_STRING) {
        const std::string key = std::string(gguf_get_val_str(g, karch)) + ".block_count";
        const int64_t     k   = gguf_find_key(g, key.c_str());
        if (k >= 0) {
            switch (gguf_get_kv_type(g, k)) {
                case GGUF_TYPE_UINT32: n = (int32_t) gguf_get_val_u32(g, k); break;
                case GGUF_TYPE_INT32: n = gguf_get_val_i32(g, k); break;
                case GGUF_TYPE_UINT64: n = (int32_t) gguf_get_val_u64(g, k); break;
                default: break;
            }
        }
    }
    gguf_free(g);
    if (n <= 0) throw ModelError("cannot split " + path + " across RPC workers: it has no block_count");
    return n;
}

RpcPlacement rpc_placement(const std::string & model_path, const std::vector<std::string> & endpoints,
                           const std::vector<float> & weights, int32_t n_gpu_layers) {
    backend_init();
    RpcPlacement out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        auto               t   = ggml_backend_dev_type(dev);
        if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) out.devices.push_back(dev);
    }
    const size_t n_local = out.devices.size();
    for (const auto & ep : endpoints) {
        try {
            for (auto * dev : rpc_worker_devices(ep)) out.devices.push_back(dev);
        } catch (const RpcError & e) {
            throw ModelError(e.what());
        }
    }
    const size_t n_rpc = out.devices.size() - n_local;
    if (out.devices.size() > llama_max_devices()) {
        throw ModelError("too many devices: " + std::to_string(out.devices.size()) + " (this build handles " +
                         std::to_string(llama_max_devices()) + ")");
    }
    const size_t       want = (n_local ? n_local : 1) + n_rpc;
    std::vector<float> w    = weights;
    if (!w.empty() && w.size() != want) {
        throw ModelError("tensor_split has " + std::to_string(w.size()) + " values but this load has " +
                         std::to_string(want) + " devices (the local one" + (n_local > 1 ? "s" : "") +
                         " first, then each RPC worker in --rpc order)");
    }
    float sum = 0.0f;
    for (float x : w) {
        if (!(x >= 0.0f) || x > 1e9f) throw ModelError("tensor_split values must be finite and not negative");
        sum += x;
    }
    if (!w.empty() && sum <= 0.0f) throw ModelError("tensor_split must give some device a share");
    out.split.assign(llama_max_devices(), 0.0f);
    out.n_gpu_layers = n_gpu_layers;
    if (n_local == 0) {
        if (w.empty()) {  // by free memory: this machine's RAM, then what each worker advertises
            size_t free = 0, total = 0;
            ggml_backend_dev_memory(ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU), &free, &total);
            w.push_back((float) (free >> 20));
            for (size_t i = 0; i < n_rpc; ++i) {
                ggml_backend_dev_memory(out.devices[i], &free, &total);
                w.push_back((float) (free >> 20));
            }
            sum = 0.0f;
            for (float x : w) sum += x;
            if (sum <= 0.0f) w.assign(w.size(), 1.0f), sum = (float) w.size();
        }
        // llama.cpp offloads the last n_gpu_layers of n_layer + 1 (the output layer counts) to
        // the device list and keeps the rest on the CPU: the CPU's share is the first layers
        const int32_t total_layers = gguf_block_count(model_path) + 1;
        const int32_t on_cpu       = (int32_t) std::lround(total_layers * (double) w[0] / sum);
        out.n_gpu_layers           = total_layers - std::clamp(on_cpu, 0, total_layers);
        for (size_t i = 0; i < n_rpc; ++i) out.split[i] = w[1 + i];
    } else if (!w.empty()) {
        for (size_t i = 0; i < w.size(); ++i) out.split[i] = w[i];
    }
    out.devices.push_back(nullptr);
    return out;
}

std::vector<DeviceUse> memory_breakdown(const llama_context * ctx) {
    std::vector<DeviceUse> out;
    if (ctx == nullptr) return out;
    for (const auto & [buft, data] : llama_get_memory_breakdown(ctx)) {
        DeviceUse          u;
        ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
        u.buffer_type          = ggml_backend_buft_name(buft);
        u.device               = dev ? ggml_backend_dev_name(dev) : "CPU";
        u.description          = dev ? ggml_backend_dev_description(dev) : "";
        u.model                = data.model;
        u.context              = data.context;
        u.compute              = data.compute;
        out.push_back(u);
    }
    return out;
}

bool rpc_endpoint_accepts(const std::string & endpoint, int32_t timeout_ms) {
    const auto colon = endpoint.rfind(':');
    if (colon == std::string::npos) return false;
    const std::string host = endpoint.substr(0, colon), port = endpoint.substr(colon + 1);
    addrinfo hints{};
    hints.ai_family   = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo * res    = nullptr;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return false;
    bool      ok = false;
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
        int rc = connect(fd, res->ai_addr, res->ai_addrlen);
        if (rc == 0) {
            ok = true;
        } else if (errno == EINPROGRESS) {
            pollfd p{fd, POLLOUT, 0};
            if (poll(&p, 1, timeout_ms) == 1) {
                int       err = 0;
                socklen_t len = sizeof(err);
                ok            = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
            }
        }
        close(fd);
    }
    freeaddrinfo(res);
    return ok;
}

uint64_t rpc_failure_count() {
    return a3s_rpc_failure_count();
}

std::string rpc_last_failure() {
    char buf[2048] = {0};
    a3s_rpc_last_failure(buf, sizeof(buf));
    return buf;
}

}  // namespace a3s
