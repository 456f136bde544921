# attnlab_add_kernels(<target> [OBJECTS <name>] <source>...): SIMD kernel files (named
# *_kernels.cpp, left out of the libraries' globs), compiled once per SIMD path into <target>
# (core/simd_dispatch.hpp), as object libraries <name>_kernels_<path> (<name> defaults to <target>).
#
# Default build (ATTNLAB_NATIVE=OFF): each source is compiled three times, into objects
# <target>_kernels_{sse42,avx2,avx512} with ATTNLAB_ARCH naming the path's namespace and the
# path's -march level. The flags stay PRIVATE to these objects: the libraries and the exported
# targets carry no machine-specific flags. ATTNLAB_NATIVE=ON: once, as attnlab::native, with
# -march=native like the rest of the build.
set(ATTNLAB_KERNEL_FLAGS_sse42 -march=x86-64-v2)
set(ATTNLAB_KERNEL_FLAGS_avx2 -march=x86-64-v3)
set(ATTNLAB_KERNEL_FLAGS_avx512 -march=x86-64-v4)
set(ATTNLAB_KERNEL_FLAGS_native -march=native)
# GCC 12.2 miscompiles some vector constants under AVX-512 in its SLP (basic-block) vectorizer
# (see core/CMakeLists.txt): off for the AVX-512 objects.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND ATTNLAB_KERNEL_FLAGS_avx512 -fno-tree-slp-vectorize)
  list(APPEND ATTNLAB_KERNEL_FLAGS_native -fno-tree-slp-vectorize)
endif()

if(ATTNLAB_NATIVE)
  set(ATTNLAB_SIMD_PATHS native)
else()
  set(ATTNLAB_SIMD_PATHS sse42 avx2 avx512)
endif()

function(attnlab_add_kernels target)
  cmake_parse_arguments(PARSE_ARGV 1 _k "" "OBJECTS" "")
  if(NOT _k_OBJECTS)
    set(_k_OBJECTS ${target})
  endif()
  foreach(_path ${ATTNLAB_SIMD_PATHS})
    set(_obj ${_k_OBJECTS}_kernels_${_path})
    add_library(${_obj} OBJECT ${_k_UNPARSED_ARGUMENTS})
    # Kernel files may share file-local names; one path's objects must also never meet another's
    # in a unity batch.
    set_target_properties(${_obj} PROPERTIES POSITION_INDEPENDENT_CODE ON UNITY_BUILD OFF)
    target_include_directories(${_obj} PRIVATE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${_obj} PRIVATE xsimd)
    target_compile_definitions(${_obj} PRIVATE ATTNLAB_ARCH=${_path}
                               $<$<BOOL:${ATTNLAB_THREADS}>:ATTNLAB_THREADS=1>
                               $<$<NOT:$<BOOL:${ATTNLAB_NATIVE}>>:ATTNLAB_DISPATCH=1>)
    # Kernels are optimised even in Debug builds: at -O0 xsimd 8.1's AVX-512 code does not compile,
    # and nothing is inlined, so std::min, std::copy ... would be emitted under names shared with
    # the rest of the program (tests/simd_symbols_test.cmake).
    target_compile_options(${_obj} PRIVATE ${ATTNLAB_KERNEL_FLAGS_${_path}} $<$<CONFIG:Debug>:-O2>)
    target_sources(${target} PRIVATE $<TARGET_OBJECTS:${_obj}>)
    set_property(GLOBAL APPEND PROPERTY ATTNLAB_KERNEL_OBJECT_LIBRARIES ${_obj})
  endforeach()
endfunction()
