# The layering of attnlab, in one place: each component is one folder and one library, and may use
# (link to, include from) only the components it builds on, and theirs in turn. Nothing includes
# upward: core knows nothing of autograd, the layers nothing of the recommender, the library
# nothing of experiments/. cmake/check_layering.cmake (ctest layering_no_upward_includes) fails on
# any #include that breaks this table; the libraries are created from it (attnlab_add_layers).
#
#   core <- autograd <- layers/nn <- layers/optim
#                       layers/nn <- layers/attention <- families (softmax, favor, lisa, ...;
#                                                        each registers its own kinds)
#   families, layers/optim <- layers/recommender <- experiments/support <- experiments (commands,
#   lessons)
#
# One row per component: "<target> <folder> <builds on...>". A folder `a/*` stands for each
# subfolder of a/ that no other row names (the attention families: a new family is a new folder,
# no CMake edit), and a target `x_*` for all targets of such a row. A folder `a/**` includes its
# subfolders (experiments: one folder per command).
set(ATTNLAB_LAYERS
  # target                  folder                     builds on
  "core                     core"
  "autograd                 autograd                   core"
  "layers_nn                layers/nn                  autograd"
  "layers_optim             layers/optim               layers_nn"
  "layers_attention         layers/attention           layers_nn"
  "layers_attention_*       layers/attention/*         layers_attention"
  # cosFormer is a linear attention: it feeds its features to FAVOR+'s public prefix-sum ops
  # (favor_causal / favor_bidirectional / favor_normalize), the extension point of that class.
  "layers_attention_cosformer layers/attention/cosformer layers_attention layers_attention_favor"
  "layers_recommender       layers/recommender         layers_attention_* layers_optim"
  "experiment_support       experiments/support        layers_recommender"
  "experiments              experiments/commands/**    experiment_support experiments_lessons"
  "experiments_lessons      experiments/lessons        experiment_support"
)
# Not libraries: experiments (the attnlab CLI, experiments/CMakeLists.txt) and experiments_lessons
# (the lesson objects) are listed for the include check only.
set(ATTNLAB_LAYERS_NOT_LIBRARIES experiments experiments_lessons)

# attnlab_layers_expand(<root> <out>): the rows with wildcards resolved against the folders under
# <root>, as a list of "target|folder|recursive|dep;dep" entries.
function(attnlab_layers_expand root out)
  set(_named "")
  foreach(_row ${ATTNLAB_LAYERS})
    string(REGEX MATCHALL "[^ ]+" _f "${_row}")
    list(GET _f 1 _folder)
    if(NOT _folder MATCHES "\\*")
      list(APPEND _named ${_folder})
    endif()
  endforeach()
  # first pass: targets of each row
  set(_rows "")
  set(_all_targets "")
  foreach(_row ${ATTNLAB_LAYERS})
    string(REGEX MATCHALL "[^ ]+" _f "${_row}")
    list(GET _f 0 _target)
    list(GET _f 1 _folder)
    list(LENGTH _f _n)
    set(_deps "")
    if(_n GREATER 2)
      list(SUBLIST _f 2 -1 _deps)
    endif()
    string(REPLACE ";" "," _deps "${_deps}")
    if(_folder MATCHES "^(.*)/\\*$")
      set(_parent ${CMAKE_MATCH_1})
      string(REGEX REPLACE "_\\*$" "" _prefix ${_target})
      set(_wild_${_prefix} "")
      file(GLOB _subs LIST_DIRECTORIES true RELATIVE ${root}/${_parent} ${root}/${_parent}/*)
      list(SORT _subs)
      foreach(_sub ${_subs})
        if(IS_DIRECTORY ${root}/${_parent}/${_sub} AND NOT "${_parent}/${_sub}" IN_LIST _named)
          list(APPEND _rows "${_prefix}_${_sub}|${_parent}/${_sub}|0|${_deps}")
          list(APPEND _wild_${_prefix} ${_prefix}_${_sub})
        endif()
      endforeach()
      set(_wildcards ${_wildcards} ${_prefix})
    elseif(_folder MATCHES "^(.*)/\\*\\*$")
      list(APPEND _rows "${_target}|${CMAKE_MATCH_1}|1|${_deps}")
    else()
      list(APPEND _rows "${_target}|${_folder}|0|${_deps}")
    endif()
  endforeach()
  # second pass: dependencies on a wildcard row (x_*) mean all of its targets
  set(_result "")
  foreach(_r ${_rows})
    string(REPLACE "|" ";" _p "${_r}")
    list(LENGTH _p _pn)
    set(_deps "")
    if(_pn GREATER 3)
      list(GET _p 3 _deps)
    endif()
    string(REPLACE "," ";" _deps "${_deps}")
    set(_resolved "")
    foreach(_d ${_deps})
      if(_d MATCHES "^(.*)_\\*$")
        list(APPEND _resolved ${_wild_${CMAKE_MATCH_1}})
      else()
        list(APPEND _resolved ${_d})
      endif()
    endforeach()
    list(GET _p 0 _t)
    list(GET _p 1 _fo)
    list(GET _p 2 _rec)
    string(REPLACE ";" "," _resolved "${_resolved}")
    list(APPEND _result "${_t}|${_fo}|${_rec}|${_resolved}")
  endforeach()
  set(${out} ${_result} PARENT_SCOPE)
endfunction()

# attnlab_add_components(<folder>): one library per row of the table whose folder lies under
# <folder> (layers: layers_nn, layers_optim, layers_attention, one per family, ...), built from
# every .cpp in its folder (globbed: a new file needs no CMake edit) and linked to the components
# it builds on, no others. SIMD kernel files (*_kernels.cpp) of all these folders are compiled per
# instruction set into one library <folder>_kernels (cmake/attnlab_kernels.cmake; its object
# libraries keep the names <folder>_kernels_<path>). <folder> itself becomes an INTERFACE library
# of all of them (attnlab::layers: what tests, fuzz targets and external projects link).
function(attnlab_add_components folder)
  attnlab_layers_expand(${PROJECT_SOURCE_DIR} _rows)
  set(_made "")
  set(_kernel_sources "")
  set(_kernel_users "")
  foreach(_r ${_rows})
    string(REPLACE "|" ";" _p "${_r}")
    list(GET _p 0 _t)
    list(GET _p 1 _dir)
    if(_t IN_LIST ATTNLAB_LAYERS_NOT_LIBRARIES OR NOT (_dir STREQUAL folder OR _dir MATCHES "^${folder}/"))
      continue()
    endif()
    if(NOT IS_DIRECTORY ${PROJECT_SOURCE_DIR}/${_dir})
      continue()
    endif()
    file(GLOB _sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/${_dir}/*.cpp)
    set(_kernels ${_sources})
    list(FILTER _sources EXCLUDE REGEX "_kernels\\.cpp$")
    list(FILTER _kernels INCLUDE REGEX "_kernels\\.cpp$")
    list(APPEND _kernel_sources ${_kernels})
    if(_sources)
      add_library(${_t} STATIC ${_sources})
      set(_scope_${_t} PUBLIC)
      set_target_properties(${_t} PROPERTIES OUTPUT_NAME attnlab_${_t} POSITION_INDEPENDENT_CODE ON)
    else()
      add_library(${_t} INTERFACE)
      set(_scope_${_t} INTERFACE)
    endif()
    add_library(attnlab::${_t} ALIAS ${_t})
    target_include_directories(${_t} ${_scope_${_t}}
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}> $<INSTALL_INTERFACE:include/attnlab>)
    set_property(GLOBAL APPEND PROPERTY ATTNLAB_LIBRARIES ${_t})
    if(_kernels)
      list(APPEND _kernel_users ${_t})
    endif()
    list(GET _p 3 _deps)
    string(REPLACE "," ";" _deps_${_t} "${_deps}")
    list(APPEND _made ${_t})
  endforeach()
  foreach(_t ${_made})
    foreach(_d ${_deps_${_t}})
      if(_d IN_LIST _made AND _scope_${_d} STREQUAL "PUBLIC")
        attnlab_whole_archive(_link ${_d})
        target_link_libraries(${_t} ${_scope_${_t}} ${_link})
      elseif(TARGET ${_d} OR _d IN_LIST _made)
        target_link_libraries(${_t} ${_scope_${_t}} ${_d})
      endif()
    endforeach()
  endforeach()
  if(_kernel_sources)
    add_library(${folder}_kernels STATIC)
    set_target_properties(${folder}_kernels PROPERTIES OUTPUT_NAME attnlab_${folder}_kernels
                                                       POSITION_INDEPENDENT_CODE ON LINKER_LANGUAGE CXX)
    target_link_libraries(${folder}_kernels PUBLIC core)
    attnlab_add_kernels(${folder}_kernels OBJECTS ${folder} ${_kernel_sources})
    set_property(GLOBAL APPEND PROPERTY ATTNLAB_LIBRARIES ${folder}_kernels)
    foreach(_t ${_kernel_users})
      target_link_libraries(${_t} ${_scope_${_t}} ${folder}_kernels)
    endforeach()
  endif()
  add_library(${folder} INTERFACE)
  add_library(attnlab::${folder} ALIAS ${folder})
  foreach(_t ${_made})
    if(_scope_${_t} STREQUAL "PUBLIC")
      attnlab_whole_archive(_link ${_t})
      target_link_libraries(${folder} INTERFACE ${_link})
    else()
      target_link_libraries(${folder} INTERFACE ${_t})
    endif()
  endforeach()
  set_property(GLOBAL APPEND PROPERTY ATTNLAB_LIBRARIES ${folder})
endfunction()

# attnlab_whole_archive(<out> <target>): how a component library is linked: whole, because its
# files may register themselves (attention and model kinds) with static registrar objects that a
# plain static library would drop unless something references them. Every link to a component
# goes through this (CMake refuses a library linked both whole and plain), in the tree and from
# the install alike.
function(attnlab_whole_archive out target)
  set(${out} "$<BUILD_INTERFACE:$<LINK_LIBRARY:WHOLE_ARCHIVE,${target}>>"
             "$<INSTALL_INTERFACE:$<LINK_LIBRARY:WHOLE_ARCHIVE,attnlab::${target}>>" PARENT_SCOPE)
endfunction()
