# proteus::torch: LibTorch.
# - PROTEUS_GPU=cuda or hip (the GPU build, cmake/ProteusGpu.cmake): the whole LibTorch of a CUDA
#   or ROCm PyTorch install through find_package(Torch) (CMAKE_PREFIX_PATH =
#   torch.utils.cmake_prefix_path, the same call for both).
# - Otherwise, the CPU build, from the PyTorch wheel unpacked by tools/setup_debian.sh
#   (PROTEUS_TORCH_DIR, see tools/env.sh). Same as Bazel's @libtorch//:torch: only
#   libtorch_cpu.so and libc10.so are linked (libtorch.so would pull in libtorch_cuda.so).
if(PROTEUS_CUDA OR PROTEUS_HIP)
  if(PROTEUS_HIP AND NOT DEFINED ENV{PYTORCH_ROCM_ARCH})
    # A ROCm LibTorch's CMake config (Caffe2/public/LoadHIP.cmake) wants the target
    # architectures in PYTORCH_ROCM_ARCH, else asks rocm_agent_enumerator, which fails on a
    # machine without an AMD GPU (a container build).
    set(ENV{PYTORCH_ROCM_ARCH} "${CMAKE_HIP_ARCHITECTURES}")
  endif()
  find_package(Torch REQUIRED)
  # The LibTorch must use the C++11 ABI, like everything else we link (PyTorch 2.x says so by
  # not defining the old ABI; tools/gpu_build.sh also asks torch._C._GLIBCXX_USE_CXX11_ABI).
  if(TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=0")
    message(FATAL_ERROR "LibTorch at ${Torch_DIR} does not use the C++11 ABI (${TORCH_CXX_FLAGS})")
  endif()
  if(PROTEUS_HIP AND CAFFE2_USE_CUDA)
    message(FATAL_ERROR "LibTorch at ${Torch_DIR} is a CUDA build; PROTEUS_GPU=hip needs a ROCm "
                        "PyTorch (torch.version.hip set)")
  endif()
  add_library(proteus::torch INTERFACE IMPORTED)
  if(PROTEUS_HIP)
    # What torch.utils.cpp_extension passes to every source of a ROCm extension (COMMON_HIP_FLAGS):
    # torch's headers test USE_ROCM, the HIP headers __HIP_PLATFORM_AMD__.
    target_compile_definitions(proteus::torch INTERFACE USE_ROCM=1 __HIP_PLATFORM_AMD__=1)
  endif()
  # The wheel's libtorch_cpu.so exports its own copy of std::filesystem (142 symbols). Linked
  # after it, every binary of ours that called std::filesystem segfaulted at the first call on
  # the device (Ubuntu 24.04, GCC 13; the autotuner's cache, checkpoints, three tests). Linking
  # libstdc++ explicitly ahead of LibTorch ended the crashes (32/32 tests pass on an H200).
  target_link_libraries(proteus::torch INTERFACE
    "-Wl,--push-state,--no-as-needed" stdc++ "-Wl,--pop-state"
    ${TORCH_LIBRARIES} Threads::Threads)
  target_include_directories(proteus::torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)
  # On a build machine without the NVIDIA runtime wheels (cuFile, cuSPARSELt, NVSHMEM), the link
  # can still check every symbol of ours: only unresolved symbols inside LibTorch's own shared
  # libraries are let through. Such binaries are for the link check, not for running.
  option(PROTEUS_LINK_CHECK_ONLY "Allow unresolved symbols inside shared libraries" OFF)
  if(PROTEUS_LINK_CHECK_ONLY)
    add_link_options(-Wl,--unresolved-symbols=ignore-in-shared-libs)
  endif()
  return()
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
