# `cmake --install build` installs the libraries, their headers, the experiment-support library
# and the CLI, plus a package config, so that out-of-tree experiments can `find_package(attnlab)`
# and add an executable with `attnlab_add_experiment(name source.cpp)`, or a whole CLI with their
# own attention kinds with `attnlab_add_cli(name my_kinds.cpp)` (see experiments/example_external
# and docs/extending.md).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_attnlab_targets core autograd)
# The libraries of layers/ (one per folder, cmake/attnlab_layers.cmake) and attnlab::layers.
get_property(_attnlab_libraries GLOBAL PROPERTY ATTNLAB_LIBRARIES)
list(APPEND _attnlab_targets ${_attnlab_libraries})
if(TARGET experiment_support)
  list(APPEND _attnlab_targets experiment_support attnlab_commands)
  # The support headers, and those of the commands' library functions (cli_main.hpp, train.hpp,
  # sweep.hpp, ...). The external examples and baselines are not headers of the library.
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/experiments/ DESTINATION include/attnlab/experiments
          FILES_MATCHING PATTERN "*.hpp" PATTERN "example_external" EXCLUDE
          PATTERN "baselines" EXCLUDE)
endif()
install(TARGETS ${_attnlab_targets} EXPORT attnlabTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
foreach(_dir core autograd layers)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${_dir}/ DESTINATION include/attnlab/${_dir}
          FILES_MATCHING PATTERN "*.hpp")
endforeach()
install(EXPORT attnlabTargets NAMESPACE attnlab:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/attnlab)
# The package files are staged in <build>/install-package, not at the build tree's top: the build
# tree is not a package (its targets are not exported there), and an attnlabConfig.cmake at its
# top would let `-Dattnlab_DIR=<build>` half-work and fail on the missing attnlabTargets.cmake.
set(_package_stage ${CMAKE_BINARY_DIR}/install-package)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/attnlabConfig.cmake.in
  ${_package_stage}/attnlabConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/attnlab)
write_basic_package_version_file(${_package_stage}/attnlabConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${_package_stage}/attnlabConfig.cmake ${_package_stage}/attnlabConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/attnlab_helpers.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/attnlab)
