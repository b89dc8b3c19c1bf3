#!/usr/bin/env bash
# Build llama.cpp's own llama-server and llama-bench, once, from the exact llama.cpp source our
# extension is built from, into benchmarks/.build/ (git-ignored). Offline: no git, no web-UI download.
# Idempotent: ninja does nothing when the binaries are up to date.
#
#   benchmarks/build_llama_server.sh            # prints the bin directory on the last line
#   JOBS=2 LLAMA_CPP_SOURCE_DIR=/path benchmarks/build_llama_server.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${ROOT}/benchmarks/.build/llama.cpp"
JOBS="${JOBS:-2}"
PY="${PYTHON:-python3}"

# 1. The llama.cpp source: explicit override > our build's CMakeCache > provision (same pinned sdist).
SRC="${LLAMA_CPP_SOURCE_DIR:-}"
if [[ -z "${SRC}" ]]; then
  for cache in "${ROOT}"/build/*/CMakeCache.txt; do
    [[ -f "${cache}" ]] || continue
    SRC="$(sed -n 's/^A3S_LLAMA_CPP_DIR:INTERNAL=//p' "${cache}" | head -n1)"
    [[ -n "${SRC}" && -f "${SRC}/CMakeLists.txt" ]] && break
    SRC=""
  done
fi
if [[ -z "${SRC}" ]]; then
  SRC="$("${PY}" "${ROOT}/cmake/provision_llama_cpp.py")"
fi
if [[ ! -f "${SRC}/CMakeLists.txt" ]]; then
  echo "build_llama_server: ${SRC} is not a llama.cpp source tree" >&2
  exit 1
fi
echo "build_llama_server: llama.cpp source ${SRC}" >&2

GEN=()
if command -v ninja >/dev/null 2>&1; then GEN=(-G Ninja); fi
LAUNCHER=()
if command -v ccache >/dev/null 2>&1; then
  LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

# 2. Configure once (re-configure only when the source directory changed).
if [[ ! -f "${BUILD_DIR}/CMakeCache.txt" ]] \
   || ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=${SRC}" "${BUILD_DIR}/CMakeCache.txt"; then
  rm -rf "${BUILD_DIR}"
  # SOURCE_DATE_EPOCH would silently turn GGML_NATIVE's default off; we set it explicitly anyway.
  env -u SOURCE_DATE_EPOCH cmake -S "${SRC}" -B "${BUILD_DIR}" "${GEN[@]}" "${LAUNCHER[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_NUMBER=0 -DLLAMA_BUILD_COMMIT=0c1e570 >&2
fi

# Guard: the web-UI provisioning must never be allowed to download.
if ! grep -q "^LLAMA_USE_PREBUILT_UI:BOOL=OFF" "${BUILD_DIR}/CMakeCache.txt" \
   || ! grep -q "^LLAMA_BUILD_UI:BOOL=OFF" "${BUILD_DIR}/CMakeCache.txt"; then
  echo "build_llama_server: web-UI download is not disabled in ${BUILD_DIR}" >&2
  exit 1
fi

# 3. Build only the two tools we need (ninja/make skip up-to-date targets). The log is shown on failure.
LOG="${BUILD_DIR}/build.log"
if ! cmake --build "${BUILD_DIR}" --target llama-server llama-bench -j "${JOBS}" >"${LOG}" 2>&1; then
  tail -n 60 "${LOG}" >&2
  echo "build_llama_server: build failed (full log: ${LOG})" >&2
  exit 1
fi
if grep -qi "UI: downloading" "${LOG}"; then
  echo "build_llama_server: the web-UI step tried to download; it must stay offline" >&2
  exit 1
fi

BIN="${BUILD_DIR}/bin"
for exe in llama-server llama-bench; do
  [[ -x "${BIN}/${exe}" ]] || { echo "build_llama_server: ${BIN}/${exe} missing" >&2; exit 1; }
done
echo "${BIN}"
