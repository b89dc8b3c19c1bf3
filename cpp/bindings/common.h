// Shared declarations for the pybind11 layer (the only place that sees both Python and the core).
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

void bind_model(py::module_ & m);
void bind_engine(py::module_ & m);
void bind_rpc(py::module_ & m);
