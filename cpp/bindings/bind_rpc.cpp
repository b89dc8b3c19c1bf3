#include "common.h"
#include "engine.h"
#include "rpc.h"

void bind_rpc(py::module_ & m) {
    using namespace a3s;
    py::register_exception<RpcError>(m, "RpcError", PyExc_RuntimeError);

    m.def("rpc_protocol_version", &rpc_protocol_version, "ggml RPC protocol (major, minor, patch) of this build");
    m.def("rpc_hello_request_size", &rpc_hello_request_size);
    m.def("rpc_failure_count", &rpc_failure_count, "RPC connection failures since the process started");
    m.def("rpc_last_failure", &rpc_last_failure);
    m.def("local_devices", [] {
        py::list out;
        for (const auto & d : local_devices()) {
            py::dict e;
            e["name"]        = d.name;
            e["description"] = d.description;
            e["free"]        = d.free;
            e["total"]       = d.total;
            out.append(e);
        }
        return out;
    });
    m.def(
        "rpc_serve",
        [](const std::string & host, int32_t port, const std::string & cache_dir, int32_t n_threads,
           const std::vector<std::string> & devices, uint64_t mem_bytes) {
            RpcServerParams p;
            p.host      = host;
            p.port      = port;
            p.cache_dir = cache_dir;
            p.n_threads = n_threads;
            p.devices   = devices;
            p.mem_bytes = mem_bytes;
            rpc_serve(p);
        },
        py::arg("host"), py::arg("port"), py::arg("cache_dir") = "", py::arg("n_threads") = 0,
        py::arg("devices") = std::vector<std::string>(), py::arg("mem_bytes") = 0,
        py::call_guard<py::gil_scoped_release>(),
        "Serve this machine's devices over ggml's RPC protocol; blocks; raises RpcError");
    m.def("engine_broken", [](Engine & e) { return e.broken(); }, py::arg("engine"),
          "Why the engine stopped after losing an RPC worker ('' while it is healthy)");
    m.def(
        "engine_memory",
        [](const Engine & e) {
            py::list out;
            for (const auto & u : e.memory()) {
                py::dict d;
                d["device"]      = u.device;
                d["description"] = u.description;
                d["buffer_type"] = u.buffer_type;
                d["model"]       = u.model;
                d["context"]     = u.context;
                d["compute"]     = u.compute;
                out.append(d);
            }
            return out;
        },
        py::arg("engine"), "Bytes the model and its context hold on each buffer type / device");
}
