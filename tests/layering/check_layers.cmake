# Fails when a file under allocator/ or preload/ of ROOT includes a header of
# a layer above its own. Layers, bottom up: os <- options <- core <- stack <-
# report <- pmr / preload (the public header sits with pmr; allocator/tools
# are programs on top of everything). A quoted include without a directory
# names a file of the includer's own layer.
#   cmake -DROOT=<source tree> -P check_layers.cmake
if(NOT ROOT)
  message(FATAL_ERROR "check_layers: pass -DROOT=<source tree>")
endif()

set(rank_os 0)
set(rank_options 1)
set(rank_core 2)
set(rank_stack 3)
set(rank_report 4)
set(rank_pmr 5)
set(rank_include 5)
set(rank_guardarena 5)  # "guardarena/guardarena.hpp", the public header
set(rank_preload 5)
set(rank_tools 6)

file(GLOB_RECURSE files RELATIVE ${ROOT}
  ${ROOT}/allocator/*.h ${ROOT}/allocator/*.hpp ${ROOT}/allocator/*.inc ${ROOT}/allocator/*.cpp
  ${ROOT}/preload/*.h ${ROOT}/preload/*.cpp)
if(NOT files)
  message(FATAL_ERROR "check_layers: no sources under ${ROOT}/allocator or ${ROOT}/preload")
endif()

set(violations "")
foreach(f IN LISTS files)
  if(f MATCHES "^allocator/([a-z_]+)/")
    set(layer ${CMAKE_MATCH_1})
  elseif(f MATCHES "^preload/")
    set(layer preload)
  else()
    continue()
  endif()
  if(NOT DEFINED rank_${layer})
    string(APPEND violations "  ${f}: directory of no known layer\n")
    continue()
  endif()
  file(STRINGS ${ROOT}/${f} includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line IN LISTS includes)
    if(NOT line MATCHES "\"([^\"]+)\"")
      continue()
    endif()
    set(header ${CMAKE_MATCH_1})
    if(NOT header MATCHES "^([a-z_]+)/")
      continue()  # same directory
    endif()
    set(target ${CMAKE_MATCH_1})
    if(NOT DEFINED rank_${target})
      string(APPEND violations "  ${f}: includes \"${header}\" from no known layer\n")
    elseif(rank_${target} GREATER rank_${layer})
      string(APPEND violations "  ${f} (${layer}) includes \"${header}\" (${target}): points up the stack\n")
    endif()
  endforeach()
  # The public header is installed as is: standard headers only.
  if(layer STREQUAL "include" AND includes)
    string(APPEND violations "  ${f}: the public header includes project headers\n")
  endif()
endforeach()

if(violations)
  message(FATAL_ERROR "check_layers: includes that break the layering:\n${violations}")
endif()
list(LENGTH files n)
message(STATUS "check_layers: ${n} files, every include points down or sideways")
