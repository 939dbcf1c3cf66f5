# Sourced by tools/*.sh. The torch/ folder of the LibTorch the CMake build uses (include/, lib/);
# export PROTEUS_TORCH_DIR before sourcing to use another one. Bazel's @libtorch (WORKSPACE) is
# always the default path.
export PROTEUS_TORCH_DIR="${PROTEUS_TORCH_DIR:-/opt/proteus/torch-2.11.0/torch}"
