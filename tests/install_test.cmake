# Run by CTest: installs the build into a scratch prefix, configures and builds
# experiments/example_external against it with find_package(attnlab), and runs the results: the
# standalone experiment my_study, my_training (train as a library function), and my_attnlab
# (attnlab_add_cli: the whole CLI plus the user's attention kind relu-linear), which gradchecks,
# trains, compares (approx), benchmarks and sweeps that kind.
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

# my_attnlab: attnlab's CLI under the user's executable name.
run(${_ext}/my_attnlab --help)
if(NOT last_output MATCHES "^usage: my_attnlab <command>" OR NOT last_output MATCHES "\n  train ")
  message(FATAL_ERROR "my_attnlab --help should list attnlab's commands as my_attnlab's:\n"
                      "${last_output}")
endif()
# The user's kind (relu_linear_attention.cpp) is listed, and brings its gradient checks: all four
# run and pass.
run(${_ext}/my_attnlab kinds)
if(NOT last_output MATCHES "relu-linear")
  message(FATAL_ERROR "my_attnlab kinds should list relu-linear:\n${last_output}")
endif()
run(${_ext}/my_attnlab gradcheck --filter kind/relu-linear)
if(NOT last_output MATCHES "kind/relu-linear/causal_padded" OR
   NOT last_output MATCHES "4 of 4 checks passed")
  message(FATAL_ERROR "my_attnlab gradcheck should check relu-linear's four cases:\n"
                      "${last_output}")
endif()
# It trains in the recommender for an epoch (tiny synthetic data: well under a second).
set(_train_args --data synthetic --synthetic-users 40 --synthetic-items 30
    --synthetic-max-length 12 --maxlen 12 --dim 8 --blocks 1 --epochs 1 --eval-every 1 --batch 16
    --threads 1)
string(JOIN " " _train_words ${_train_args})
run(${_ext}/my_attnlab train --attention relu-linear --epsilon 0.01 ${_train_args})
if(NOT last_output MATCHES "model: [^\n]*relu-linear" OR NOT last_output MATCHES "test NDCG@10")
  message(FATAL_ERROR "my_attnlab train --attention relu-linear:\n${last_output}")
endif()
# It is timed by bench attention, beside softmax-fused for the crossover.
run(${_ext}/my_attnlab approx --study kinds --kinds relu-linear --length 8 --head-dim 4
    --samples 1 --scales 1)
if(NOT last_output MATCHES "\nrelu-linear ")
  message(FATAL_ERROR "my_attnlab approx --study kinds --kinds relu-linear:\n${last_output}")
endif()
run(${_ext}/my_attnlab bench attention --kind relu-linear --quick --thread-counts 1)
if(NOT last_output MATCHES "\n *relu-linear ")
  message(FATAL_ERROR "my_attnlab bench attention --kind relu-linear:\n${last_output}")
endif()
# sweep runs the subcommands of the executable it belongs to: my_attnlab train, which knows the
# kind (attnlab's own train would not). One axis: CMake would split a grid's ';' into arguments.
run(${_ext}/my_attnlab sweep --grid "seed=1,2" --args "--attention relu-linear ${_train_words}"
    --dir ${_ext}/sweep)
if(NOT last_output MATCHES "2 of 2 configurations finished" OR
   NOT last_output MATCHES "\n *relu-linear +2 ")
  message(FATAL_ERROR "my_attnlab sweep did not merge both seeds of relu-linear:\n${last_output}")
endif()
execute_process(COMMAND ${_ext}/my_attnlab sweep --grid "seed=1,2"
                        --args "--attention relu-linear ${_train_words}" --dir ${_ext}/sweep
                        --emit-jobs OUTPUT_QUIET)
file(READ ${_ext}/sweep/jobs.txt _jobs)
if(NOT _jobs MATCHES "/my_attnlab' train ")
  message(FATAL_ERROR "my_attnlab sweep should run my_attnlab train, its jobs are:\n${_jobs}")
endif()
# my_training: train as a library function (docs/extending.md 6, the snippet as a program).
run(${_ext}/my_training)
if(NOT last_output MATCHES "epoch 1: loss [0-9]" OR
   NOT last_output MATCHES "trained [^\n]*relu-linear[^\n]*: test NDCG@10 [0-9]")
  message(FATAL_ERROR "my_training should report its epoch and the trained model:\n${last_output}")
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
