# Where the llama.cpp source comes from, in this order:
#   1. LLAMA_CPP_SOURCE_DIR (CMake variable or environment variable)
#   2. a populated third_party/llama.cpp submodule
#   3. provisioned from PyPI's llama-cpp-python 0.3.36 sdist into a per-user cache
if(NOT LLAMA_CPP_SOURCE_DIR AND DEFINED ENV{LLAMA_CPP_SOURCE_DIR})
  set(LLAMA_CPP_SOURCE_DIR "$ENV{LLAMA_CPP_SOURCE_DIR}")
endif()

if(LLAMA_CPP_SOURCE_DIR)
  if(NOT EXISTS "${LLAMA_CPP_SOURCE_DIR}/CMakeLists.txt")
    message(FATAL_ERROR "LLAMA_CPP_SOURCE_DIR=${LLAMA_CPP_SOURCE_DIR} is not a llama.cpp source tree")
  endif()
  set(A3S_LLAMA_CPP_DIR "${LLAMA_CPP_SOURCE_DIR}")
elseif(EXISTS "${PROJECT_SOURCE_DIR}/third_party/llama.cpp/CMakeLists.txt")
  set(A3S_LLAMA_CPP_DIR "${PROJECT_SOURCE_DIR}/third_party/llama.cpp")
else()
  message(STATUS "a3s-power: third_party/llama.cpp is empty; provisioning the pinned source from PyPI")
  execute_process(
    COMMAND "${Python_EXECUTABLE}" "${PROJECT_SOURCE_DIR}/cmake/provision_llama_cpp.py"
    OUTPUT_VARIABLE A3S_LLAMA_CPP_DIR
    OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE A3S_PROVISION_RESULT)
  if(NOT A3S_PROVISION_RESULT EQUAL 0 OR NOT EXISTS "${A3S_LLAMA_CPP_DIR}/CMakeLists.txt")
    message(FATAL_ERROR "a3s-power: provisioning llama.cpp failed (see the message above)")
  endif()
endif()
message(STATUS "a3s-power: llama.cpp source: ${A3S_LLAMA_CPP_DIR}")
# recorded for scripts that build llama.cpp's own tools against this build (tests/reference, benchmarks)
set(A3S_LLAMA_CPP_DIR "${A3S_LLAMA_CPP_DIR}" CACHE INTERNAL "llama.cpp source used by this build")
