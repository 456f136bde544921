# Run by CTest, once per SIMD kernel object library (cmake/attnlab_kernels.cmake).
#
# A kernel object is compiled for its path's instruction set. Every symbol it defines for the
# linker must therefore belong to that path (name its namespace attnlab::<path>, or xsimd_<path>,
# core/simd.hpp): an inline function or template instantiation shared with other code (a
# std::vector member, an error class, a header's inline helper) would be emitted by several
# objects under one name, and the linker keeps one copy for everybody, possibly the AVX-512 one
# on a CPU without AVX-512. The objects must not touch xtensor either (its types change layout
# with the instruction set).
#
# -DOBJECTS=<obj>|<obj>...  -DPATH=<path>  -DNM=<nm program>
string(REPLACE "|" ";" _objects "${OBJECTS}")
string(LENGTH "${PATH}" _len)
set(_bad "")
foreach(_obj ${_objects})
  execute_process(COMMAND ${NM} -C --defined-only ${_obj} OUTPUT_VARIABLE _out RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${_obj}")
  endif()
  string(REPLACE "\n" ";" _lines "${_out}")
  foreach(_line ${_lines})
    # "<address> <type> <name>": upper-case types and u/v/w are visible to the linker.
    if(NOT _line MATCHES "^[0-9a-f]* ([A-Zuvw]) (.*)$")
      continue()
    endif()
    set(_name "${CMAKE_MATCH_2}")
    string(FIND "${_name}" "attnlab::${PATH}::" _in_ns)
    string(FIND "${_name}" "xsimd_${PATH}" _in_xsimd)
    string(FIND "${_name}" "7attnlab${_len}${PATH}" _in_mangled)  # sanitizer-prefixed names
    if(_in_ns GREATER -1 OR _in_xsimd GREATER -1 OR _in_mangled GREATER -1)
      continue()
    endif()
    if(_name STREQUAL "DW.ref.__gxx_personality_v0")  # a pointer to the C++ runtime's routine
      continue()
    endif()
    string(APPEND _bad "  ${_obj}: ${_name}\n")
  endforeach()
  execute_process(COMMAND ${NM} -C ${_obj} OUTPUT_VARIABLE _all)
  if(_all MATCHES "xt::")
    string(APPEND _bad "  ${_obj}: uses xtensor (xt::)\n")
  endif()
endforeach()
if(_bad)
  message(FATAL_ERROR "SIMD kernel objects of path ${PATH} define symbols outside their path "
                      "(move the code into namespace attnlab::ATTNLAB_ARCH, or out of the "
                      "kernel file):\n${_bad}")
endif()
list(LENGTH _objects _n)
message(STATUS "${_n} kernel objects of path ${PATH}: every symbol belongs to the path")
