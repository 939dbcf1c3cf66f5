# The GPU backend of the build: PROTEUS_GPU = none | cuda | hip.
# - none (default): the Debian/CI CPU build; kernels/cuda builds a stub (cmake/ProteusTorch.cmake
#   takes LibTorch's CPU libraries from PROTEUS_TORCH_DIR).
# - cuda: the CUDA language (CUDA Toolkit) for kernels/cuda, built for PROTEUS_CUDA_ARCHITECTURES
#   (sm_80, sm_90, sm_90 PTX), against a CUDA PyTorch's LibTorch. -DPROTEUS_CUDA=ON means the same
#   (kept for existing scripts).
# - hip: the same kernels/cuda sources compiled as HIP (CMake's HIP language, ROCm's clang) for
#   CMAKE_HIP_ARCHITECTURES (gfx90a, gfx1100), against a ROCm PyTorch's LibTorch.
# After this file: PROTEUS_GPU is one of the three, PROTEUS_CUDA is true only for cuda and
# PROTEUS_HIP only for hip (plain variables; `if(PROTEUS_CUDA)` keeps meaning "CUDA build").
set(PROTEUS_GPU "" CACHE STRING "GPU backend: none, cuda or hip (empty: cuda if PROTEUS_CUDA, else none)")
set_property(CACHE PROTEUS_GPU PROPERTY STRINGS "" none cuda hip)

if(PROTEUS_GPU STREQUAL "")
  if(PROTEUS_CUDA)
    set(PROTEUS_GPU cuda)
  else()
    set(PROTEUS_GPU none)
  endif()
elseif(NOT PROTEUS_GPU MATCHES "^(none|cuda|hip)$")
  message(FATAL_ERROR "PROTEUS_GPU=${PROTEUS_GPU}: must be none, cuda or hip")
elseif(PROTEUS_CUDA AND NOT PROTEUS_GPU STREQUAL "cuda")
  message(FATAL_ERROR "PROTEUS_CUDA=ON contradicts PROTEUS_GPU=${PROTEUS_GPU}")
endif()
set(PROTEUS_CUDA FALSE)
set(PROTEUS_HIP FALSE)

if(PROTEUS_GPU STREQUAL "cuda")
  set(PROTEUS_CUDA TRUE)
  # sm_80, sm_90, and sm_90 PTX for newer cards. Torch's CMake resets
  # CMAKE_CUDA_ARCHITECTURES (it wants TORCH_CUDA_ARCH_LIST), so kernels/cuda sets the
  # architectures on its target from PROTEUS_CUDA_ARCHITECTURES.
  set(PROTEUS_CUDA_ARCHITECTURES "80-real;90-real;90-virtual" CACHE STRING "CUDA architectures")
  set(CMAKE_CUDA_ARCHITECTURES ${PROTEUS_CUDA_ARCHITECTURES})
  if(NOT TORCH_CUDA_ARCH_LIST)
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0+PTX")
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
elseif(PROTEUS_GPU STREQUAL "hip")
  set(PROTEUS_HIP TRUE)
  if(CMAKE_VERSION VERSION_LESS 3.21)
    message(FATAL_ERROR "PROTEUS_GPU=hip needs CMake >= 3.21 (the HIP language)")
  endif()
  # gfx90a (MI200) and gfx1100 (Radeon RX 7900/7800, RDNA3). Set before enable_language(HIP),
  # which would otherwise take the compiler's default. kernels/cuda sets it on its targets too.
  set(CMAKE_HIP_ARCHITECTURES "gfx90a;gfx1100" CACHE STRING "HIP (AMD GPU) architectures")
  # Compile-check only: these architectures' kernels are compiled to ISA assembly with no device
  # libraries and no device link (-nogpulib --cuda-device-only -S), as targets
  # proteus_flux_isa_<arch>. For toolchains that lack an architecture's device libraries
  # (Debian's ROCm 5.2 has none for gfx1100: tools/hip_check.sh). Empty in real builds.
  set(PROTEUS_HIP_ISA_CHECK_ARCHITECTURES "" CACHE STRING
      "HIP architectures compiled to assembly only, as a compile check")
  enable_language(HIP)
  set(CMAKE_HIP_STANDARD 17)
  set(CMAKE_HIP_STANDARD_REQUIRED ON)
  set(CMAKE_HIP_EXTENSIONS OFF)
  # Executables that link the HIP kernel library are linked by the C++ compiler, as in the CUDA
  # build (and as torch links ROCm extensions), not by ROCm's clang: HIP's linker preference
  # (90, above C++'s 30) would otherwise pass from the static library to every one of them. The
  # kernels need no device link (no -fgpu-rdc); the HIP runtime comes with proteus_flux_kernels.
  set(CMAKE_HIP_LINKER_PREFERENCE_PROPAGATES 0)
endif()
message(STATUS "proteus: GPU backend ${PROTEUS_GPU}")
