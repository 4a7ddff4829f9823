# Installation: `cmake --install build --prefix P` puts into P
#
#   include/guardarena/guardarena.hpp  the public header (self-contained)
#   include/guardarena/guardarena.h    the shim's C interface (guardarena_check_heap)
#   lib/libguardarena.a               the pmr library, static (guardarena::guardarena,
#   lib/libguardarena_core.a          guardarena.pc); the core archive it needs
#   lib/libguardarena_pmr.so*         the pmr library, shared, core inside and hidden
#                                     (guardarena::guardarena_shared, guardarena-shared.pc)
#   lib/guardarena/libguardarena.so   the LD_PRELOAD library, in a directory of its
#                                     own so that `-lguardarena` can never pick it up
#   bin/guardarena                    the launcher (finds the library at ../lib/guardarena)
#   lib/cmake/guardarena/             guardarena-config.cmake, -config-version.cmake, targets
#   lib/pkgconfig/guardarena.pc, guardarena-shared.pc
#   share/man/man1/guardarena.1, share/doc/guardarena/
#
# Everything is relocatable: the CMake package, the .pc files (${pcfiledir})
# and the launcher find their files relative to where they are.
# Components: "runtime" (launcher, preload library, shared library, man page)
# and "development" (headers, static libraries, CMake package, .pc files, docs).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(GUARDARENA_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/guardarena CACHE STRING
  "Where the CMake package files go, relative to the prefix.")
set(GUARDARENA_INSTALL_PRELOADDIR ${CMAKE_INSTALL_LIBDIR}/guardarena CACHE STRING
  "Where libguardarena.so (the LD_PRELOAD library) goes, relative to the prefix.")
mark_as_advanced(GUARDARENA_INSTALL_CMAKEDIR GUARDARENA_INSTALL_PRELOADDIR)

# --- The shared pmr library -------------------------------------------------
# libguardarena_pmr.so, not libguardarena.so: that name is the preload
# library's. The core is linked in from its static, PIC archive and kept
# private (--exclude-libs); the version script exports the public C++ API and
# nothing else, in particular no malloc-family symbol.
add_library(guardarena_shared SHARED ${PROJECT_SOURCE_DIR}/allocator/pmr/guarded_resource.cpp)
add_library(guardarena::guardarena_shared ALIAS guardarena_shared)
set_target_properties(guardarena_shared PROPERTIES
  OUTPUT_NAME guardarena_pmr
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}
  LINK_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/guardarena_pmr.map)
target_include_directories(guardarena_shared PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/allocator/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(guardarena_shared PRIVATE guardarena_core guardarena_warnings)
target_link_options(guardarena_shared PRIVATE
  -Wl,--exclude-libs,ALL
  -Wl,--version-script=${PROJECT_SOURCE_DIR}/cmake/guardarena_pmr.map)
if(GUARDARENA_SANITIZER STREQUAL "")
  # Every symbol resolved at link time (sanitizer runtimes come from the executable).
  target_link_options(guardarena_shared PRIVATE -Wl,-z,defs)
endif()

# The header uses C++17 library features (<memory_resource>); say so, so a
# consumer's target gets at least that standard.
target_compile_features(guardarena INTERFACE cxx_std_17)
target_compile_features(guardarena_shared INTERFACE cxx_std_17)
target_include_directories(guardarena INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

# --- Headers ----------------------------------------------------------------
# The public headers are self-contained (standard headers only): installed as is.
install(FILES ${PROJECT_SOURCE_DIR}/allocator/include/guardarena/guardarena.hpp
  ${PROJECT_SOURCE_DIR}/allocator/include/guardarena/guardarena.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/guardarena COMPONENT development)

# --- Libraries, launcher, package -------------------------------------------
install(TARGETS guardarena guardarena_core
  EXPORT guardarena-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)
install(TARGETS guardarena_shared
  EXPORT guardarena-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT development)

set(GUARDARENA_HAVE_PRELOAD OFF)
if(TARGET guardarena_preload AND TARGET guardarena_launcher)
  set(GUARDARENA_HAVE_PRELOAD ON)
  # Consumers see guardarena::preload and guardarena::launcher.
  set_target_properties(guardarena_preload PROPERTIES EXPORT_NAME preload)
  set_target_properties(guardarena_launcher PROPERTIES EXPORT_NAME launcher)
  install(TARGETS guardarena_preload
    EXPORT guardarena-targets
    LIBRARY DESTINATION ${GUARDARENA_INSTALL_PRELOADDIR} COMPONENT runtime NAMELINK_SKIP)
  install(TARGETS guardarena_launcher
    EXPORT guardarena-targets
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
  # The launcher looks for the library at this path relative to its own
  # directory (after its own directory, for the build tree).
  file(RELATIVE_PATH _guardarena_bin_to_preload
    ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}
    ${CMAKE_INSTALL_PREFIX}/${GUARDARENA_INSTALL_PRELOADDIR})
  target_compile_definitions(guardarena_launcher PRIVATE
    GUARDARENA_INSTALL_PRELOAD_RELDIR="${_guardarena_bin_to_preload}")
endif()

install(EXPORT guardarena-targets
  NAMESPACE guardarena::
  FILE guardarena-targets.cmake
  DESTINATION ${GUARDARENA_INSTALL_CMAKEDIR}
  COMPONENT development)
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/guardarena-config.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/guardarena-config.cmake
  INSTALL_DESTINATION ${GUARDARENA_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API, so only the same minor matches.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/guardarena-config-version.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/cmake/guardarena-config.cmake
  ${PROJECT_BINARY_DIR}/cmake/guardarena-config-version.cmake
  DESTINATION ${GUARDARENA_INSTALL_CMAKEDIR}
  COMPONENT development)

# --- pkg-config ---------------------------------------------------------------
# prefix is computed from ${pcfiledir}, so a moved prefix keeps working.
file(RELATIVE_PATH GUARDARENA_PC_TO_PREFIX
  ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" GUARDARENA_PC_TO_PREFIX "${GUARDARENA_PC_TO_PREFIX}")
foreach(pc guardarena guardarena-shared)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/cmake/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/cmake/${pc}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT development)
endforeach()

# --- Documentation ------------------------------------------------------------
install(FILES ${PROJECT_SOURCE_DIR}/docs/guardarena.1
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
install(FILES
  ${PROJECT_SOURCE_DIR}/README.md
  ${PROJECT_SOURCE_DIR}/docs/user-guide.md
  ${PROJECT_SOURCE_DIR}/docs/options.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT development)
