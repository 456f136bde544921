# attnlab_add_library(<name>): one library per top-level folder, built from every .cpp in it
# (an INTERFACE library while a folder has headers only). Headers are included as
# "core/tensor.hpp": from the repository root in the tree, from <prefix>/include/attnlab once
# installed.
function(attnlab_add_library name)
  file(GLOB _sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  # SIMD kernel files are compiled per instruction set (attnlab_add_kernels), not here.
  list(FILTER _sources EXCLUDE REGEX "_kernels\\.cpp$")
  if(_sources)
    add_library(${name} STATIC ${_sources})
    set(_scope PUBLIC)
    set_target_properties(${name} PROPERTIES OUTPUT_NAME attnlab_${name}
                                             POSITION_INDEPENDENT_CODE ON)
  else()
    add_library(${name} INTERFACE)
    set(_scope INTERFACE)
  endif()
  add_library(attnlab::${name} ALIAS ${name})
  target_include_directories(${name} ${_scope}
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:include/attnlab>)
  set(ATTNLAB_LIBRARY_SCOPE ${_scope} PARENT_SCOPE)
endfunction()

# attnlab_add_experiment(<name> <source>...): a standalone experiment executable that uses the
# same CLI conventions as the `attnlab` subcommands (see README, "Your own experiment").
function(attnlab_add_experiment name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE attnlab::experiment_support)
endfunction()
