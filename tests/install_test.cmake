# Run by CTest: installs the build into a scratch prefix, configures and builds
# experiments/example_external against it with find_package(attnlab), and runs the result.
set(_prefix ${BUILD_DIR}/install_test/prefix)
set(_ext ${BUILD_DIR}/install_test/external)
file(REMOVE_RECURSE ${BUILD_DIR}/install_test)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${_prefix})
# The exported targets of a portable build (ATTNLAB_NATIVE=OFF) must not impose this machine's
# instruction set on the experiments built against them.
if(NOT NATIVE)
  file(GLOB_RECURSE _exports ${_prefix}/*/attnlabTargets*.cmake)
  if(NOT _exports)
    message(FATAL_ERROR "no attnlabTargets*.cmake under ${_prefix}")
  endif()
  foreach(_file ${_exports})
    file(READ ${_file} _text)
    if(_text MATCHES "-march|-mtune|-mavx|-msse|-mfma|-fno-tree-slp-vectorize")
      message(FATAL_ERROR "${_file} carries a machine-specific flag (${CMAKE_MATCH_0})")
    endif()
  endforeach()
endif()
# No build type given: the example defaults to Release itself.
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/experiments/example_external -B ${_ext}
    -DCMAKE_PREFIX_PATH=${_prefix}
    "-DCMAKE_CXX_FLAGS=${EXTRA_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${EXTRA_FLAGS}")
run(${CMAKE_COMMAND} --build ${_ext} -j2)
run(${_ext}/my_study --length 40)
if(NOT last_output MATCHES "max \\|fused - reference\\|")
  message(FATAL_ERROR "unexpected output of my_study:\n${last_output}")
endif()
set(_study_output "${last_output}")
# A standalone program's --help names the executable, not "attnlab my_study".
run(${_ext}/my_study --help)
if(NOT last_output MATCHES "^usage: my_study \\[--length L\\]\n")
  message(FATAL_ERROR "my_study --help should start with 'usage: my_study [--length L]':\n"
                      "${last_output}")
endif()
# And its errors name it too: "my_study: error: ...", exit 2.
execute_process(COMMAND ${_ext}/my_study --length 0 RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "^my_study: error: --length: must be positive\n$")
  message(FATAL_ERROR "my_study --length 0 should exit 2 with 'my_study: error: ...', got (${rc}):\n"
                      "${err}")
endif()
message(STATUS "external experiment built and ran:\n${_study_output}")

# The registry from the install: a program linking only attnlab::layers sees every built-in kind
# (layers is linked whole-archive, so no kind's registrar file is dropped).
set(_kinds ${BUILD_DIR}/install_test/kinds)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install_kinds -B ${_kinds}
    -DCMAKE_PREFIX_PATH=${_prefix}
    "-DCMAKE_CXX_FLAGS=${EXTRA_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${EXTRA_FLAGS}")
run(${CMAKE_COMMAND} --build ${_kinds} -j2)
run(${_kinds}/list_kinds)
foreach(_kind "attention softmax-reference" "attention softmax-fused" "attention favor"
              "attention favor-iid" "attention favor-hyp" "attention favor-trig"
              "attention favor-relu" "attention linear-elu" "model lisa-base" "model lisa-soft"
              "model lisa-mini")
  string(FIND "${last_output}" "${_kind}\n" _at)
  if(_at EQUAL -1)
    message(FATAL_ERROR "the installed registry misses '${_kind}':\n${last_output}")
  endif()
endforeach()
message(STATUS "installed registry:\n${last_output}")
