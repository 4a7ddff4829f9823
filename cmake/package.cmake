# Debian packages: `cpack -G DEB` in the build directory (or
# `cmake --build build --target package`) writes, as Debian splits a library,
#   guardarena_<version>_<arch>.deb      runtime: launcher, preload library,
#                                        shared pmr library, man page
#   guardarena-dev_<version>_<arch>.deb  development: header, static libraries,
#                                        CMake package, .pc files, docs
# installed under /usr. Dependencies on libc and libstdc++ come from
# dpkg-shlibdeps.
set(CPACK_PACKAGE_NAME guardarena)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "guardarena")
set(CPACK_PACKAGE_CONTACT "guardarena maintainers <guardarena@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "guard-page heap allocator: overflows and use-after-free fault at the buggy access")
set(CPACK_PACKAGE_DESCRIPTION
  "guardarena gives every allocation its own page-rounded region against a PROT_NONE guard page, so a heap overflow faults on the overflowing instruction and a use-after-free on the first touch, with a symbolized report. It works on unmodified programs through an LD_PRELOAD malloc replacement and its launcher (guardarena -- program), and in C++ code as a std::pmr::memory_resource.")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime development)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME guardarena)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME guardarena-dev)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION libdevel)
# The static libraries need the runtime's exact version (one build) and a
# C++ toolchain to link them.
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS
  "guardarena (= ${PROJECT_VERSION}), libstdc++-12-dev | libstdc++-dev")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SUGGESTS "llvm | binutils")
include(CPack)
