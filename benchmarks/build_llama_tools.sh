#!/usr/bin/env bash
# Builds llama.cpp's own llama-server, llama-batched-bench, llama-bench, llama-completion and
# llama-speculative-simple (benchmarks/draft_model.py) from the llama.cpp that
# the installed llama-cpp-python vendors (its sdist), so localdigest is compared with the same
# llama.cpp version, compiler and CPU flags. Cached: a second run prints the folder and returns.
#
#   benchmarks/build_llama_tools.sh            # prints the folder holding the binaries
#   LLAMA_SDIST=/mnt/usb/llama_cpp_python-0.3.36.tar.gz benchmarks/build_llama_tools.sh   # offline
#
# Without LLAMA_SDIST the sdist comes from the package index (pip download), which is the only
# network use. About 10 minutes on 2 cores. LLAMA_CMAKE_ARGS adds cmake switches, e.g.
# "-DGGML_NATIVE=OFF -DGGML_AVX2=ON" in a VM whose CPU reports AMX it cannot run (README, Notes).
set -euo pipefail
python=${PYTHON:-python}
version=$("$python" -c 'import llama_cpp; print(llama_cpp.__version__)')
cache=${LOCALDIGEST_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/localdigest/llama-tools}/$version
bin=$cache/build/bin
tools=(llama-server llama-batched-bench llama-bench llama-completion llama-speculative-simple)
missing=()
for tool in "${tools[@]}"; do [[ -x $bin/$tool ]] || missing+=("$tool"); done
if (( ${#missing[@]} == 0 )); then
    echo "$bin"; exit 0
fi
mkdir -p "$cache"
if [[ ! -d $cache/src/vendor/llama.cpp ]]; then  # a cache from before holds the sources: build only what is missing
    sdist=${LLAMA_SDIST:-}
    if [[ -z $sdist ]]; then
        "$python" -m pip download --quiet --no-deps --no-binary :all: -d "$cache" "llama-cpp-python==$version" >&2
        sdist=$cache/llama_cpp_python-$version.tar.gz
    fi
    rm -rf "$cache/src" && mkdir -p "$cache/src"
    tar -xzf "$sdist" -C "$cache/src" --strip-components=1
fi
echo "building ${missing[*]} (llama.cpp $version) into $cache (about 10 minutes for all)" >&2
# Same switches as the wheel (GGML_NATIVE on, as llama-cpp-python builds it); no curl, no TLS, no web UI:
# the tools run on 127.0.0.1 against a file on disk.
cmake -S "$cache/src/vendor/llama.cpp" -B "$cache/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
      -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_UI=OFF \
      -DLLAMA_USE_PREBUILT_UI=OFF ${LLAMA_CMAKE_ARGS:-} >&2
cmake --build "$cache/build" -j "$(nproc)" --target "${missing[@]}" >&2
echo "$bin"
