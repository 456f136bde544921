# attnlab_add_library(<name>): one library per top-level folder (core, autograd), built from
# every .cpp in it (an INTERFACE library while a folder has headers only). Headers are included as
# "core/tensor.hpp": from the repository root in the tree, from <prefix>/include/attnlab once
# installed. (The layers libraries, whose kinds register themselves from static objects and so are
# linked whole-archive, are made by cmake/attnlab_layers.cmake.)
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

# attnlab_link_commands(<target> <commands library>): links the library of attnlab's subcommands
# whole (every object, so that each command's static registration is kept; CMake >= 3.24).
function(attnlab_link_commands target commands)
  if(CMAKE_VERSION VERSION_LESS 3.24)
    message(FATAL_ERROR "attnlab_add_cli needs CMake >= 3.24 ($<LINK_LIBRARY:WHOLE_ARCHIVE>)")
  endif()
  target_link_libraries(${target} PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,${commands}>")
endfunction()

# attnlab_add_cli(<name> <source>...): an executable with the whole attnlab CLI (train, sweep,
# bench, gradcheck, approx, ...) plus the given sources, whose attention kinds and subcommands
# register themselves: `<name> train --attention my-kind` trains with the user's kind, and
# `<name> sweep` runs `<name>`'s own subcommands (docs/extending.md).
function(attnlab_add_cli name)
  set(_main ${CMAKE_CURRENT_BINARY_DIR}/${name}_attnlab_main.cpp)
  file(GENERATE OUTPUT ${_main} CONTENT
       "#include \"experiments/commands/main/cli_main.hpp\"\n\nint main(int argc, char** argv) {\n  return attnlab::cli::run_main(argc, argv);\n}\n")
  add_executable(${name} ${_main} ${ARGN})
  attnlab_link_commands(${name} attnlab::commands)
endfunction()
