// a3s_power._native: thin bindings over the C++ core in cpp/core.
#include "common.h"
#include "engine.h"
#include "log_capture.h"
#include "model.h"
#include "quantize.h"

PYBIND11_MODULE(_native, m) {
    m.doc() = "A3S Power native core (llama.cpp)";
    a3s::backend_init();

    // translators run newest first: the general runtime_error must be registered before its subclasses
    py::register_exception<std::runtime_error>(m, "EngineError", PyExc_RuntimeError);
    py::register_exception<a3s::BusyError>(m, "BusyError", PyExc_RuntimeError);
    py::register_exception<a3s::ModelError>(m, "ModelError", PyExc_ValueError);

    m.def("system_info", &a3s::system_info, "llama.cpp system info string");
    m.def("drain_logs", &a3s::log_drain, "Complete llama.cpp log lines so far as (level, text)");
    m.def("set_log_echo", &a3s::log_set_echo, py::arg("on"));
    m.def("validate_gguf", &a3s::validate_gguf, py::arg("path"), py::call_guard<py::gil_scoped_release>(),
          "Check a GGUF file's header and size; raises ModelError");
    m.def("quantize", &a3s::quantize, py::arg("src_path"), py::arg("dst_path"), py::arg("ftype"),
          py::arg("n_threads") = 0, py::call_guard<py::gil_scoped_release>(),
          "Quantize an F16/BF16/F32 GGUF to `ftype` (e.g. q4_K_M)");
    m.def("quantize_types", &a3s::quantize_types);
    m.attr("LLAMA_CPP_COMMIT") = "0c1e57098bba43ac29e6e3b677cdceebdd22334f";

    bind_model(m);
    bind_engine(m);
    bind_rpc(m);
}
