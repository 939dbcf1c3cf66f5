# proteus::torch: LibTorch for the CPU build, from the PyTorch wheel unpacked by
# tools/setup_debian.sh (PROTEUS_TORCH_DIR, see tools/env.sh). Same as Bazel's @libtorch//:torch:
# only libtorch_cpu.so and libc10.so are linked (libtorch.so would pull in libtorch_cuda.so).
if(PROTEUS_CUDA)
  message(FATAL_ERROR "PROTEUS_CUDA=ON: the CUDA build is not part of this tree yet")
endif()

if(DEFINED ENV{PROTEUS_TORCH_DIR})
  set(_proteus_torch_default "$ENV{PROTEUS_TORCH_DIR}")
else()
  set(_proteus_torch_default "/opt/proteus/torch-2.11.0/torch")
endif()
set(PROTEUS_TORCH_DIR "${_proteus_torch_default}" CACHE PATH
    "The torch/ folder of a PyTorch install (has include/ and lib/)")

set(_proteus_torch_libs
  "${PROTEUS_TORCH_DIR}/lib/libtorch_cpu.so"
  "${PROTEUS_TORCH_DIR}/lib/libc10.so")
foreach(_lib IN LISTS _proteus_torch_libs)
  if(NOT EXISTS "${_lib}")
    message(FATAL_ERROR "${_lib} not found: run tools/setup_debian.sh or set PROTEUS_TORCH_DIR")
  endif()
endforeach()

add_library(proteus::torch INTERFACE IMPORTED)
# SYSTEM (-isystem): the headers' warnings stay out of our builds.
target_include_directories(proteus::torch SYSTEM INTERFACE
  "${PROTEUS_TORCH_DIR}/include"
  "${PROTEUS_TORCH_DIR}/include/torch/csrc/api/include")
# Linked by full path: CMake puts their folder in the build tree's RPATH, so binaries and ctest
# run without LD_LIBRARY_PATH; installed binaries keep it through CMAKE_INSTALL_RPATH_USE_LINK_PATH.
target_link_libraries(proteus::torch INTERFACE
  ${_proteus_torch_libs} Threads::Threads)
set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)
