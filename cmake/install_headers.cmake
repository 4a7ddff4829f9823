# Install-time script (see install.cmake): copies the public header and every
# internal header it reaches through quoted includes into
# <prefix>/<includedir>/guardarena/, rewriting each quoted include to
# <guardarena/...> so the installed tree needs no -I beyond <prefix>/include.
#
# In:  GUARDARENA_HEADER_SOURCE_ROOTS  directories a quoted include is looked up
#                                      in, in order (the public header's own
#                                      directory first, then allocator/)
#      GUARDARENA_HEADER_ENTRY         the public header, relative to the first root
#      GUARDARENA_HEADER_STAGING       scratch directory in the build tree
#      GUARDARENA_HEADER_DEST          include directory, relative to the prefix
cmake_minimum_required(VERSION 3.25)

list(GET GUARDARENA_HEADER_SOURCE_ROOTS 0 _public_root)
file(REMOVE_RECURSE "${GUARDARENA_HEADER_STAGING}")

set(_queue "${GUARDARENA_HEADER_ENTRY}")
set(_done "")
while(_queue)
  list(POP_FRONT _queue _rel)
  if(_rel IN_LIST _done)
    continue()
  endif()
  list(APPEND _done "${_rel}")
  # The entry header is found in the public root, the others in allocator/.
  set(_src "")
  foreach(_root IN LISTS GUARDARENA_HEADER_SOURCE_ROOTS)
    if(EXISTS "${_root}/${_rel}")
      set(_src "${_root}/${_rel}")
      break()
    endif()
  endforeach()
  if(_src STREQUAL "")
    message(FATAL_ERROR "guardarena install: header '${_rel}' not found in ${GUARDARENA_HEADER_SOURCE_ROOTS}")
  endif()
  file(READ "${_src}" _text)
  # Every quoted include: queue it, rewrite it. "guardarena/x" already names the
  # installed path; anything else is relative to allocator/.
  string(REGEX MATCHALL "#[ \t]*include[ \t]*\"[^\"]+\"" _includes "${_text}")
  foreach(_inc IN LISTS _includes)
    string(REGEX REPLACE ".*\"([^\"]+)\"" "\\1" _target "${_inc}")
    if(_target MATCHES "^guardarena/(.*)$")
      set(_target_rel "${CMAKE_MATCH_1}")
    else()
      set(_target_rel "${_target}")
    endif()
    list(APPEND _queue "${_target_rel}")
    string(REPLACE "${_inc}" "#include <guardarena/${_target_rel}>" _text "${_text}")
  endforeach()
  file(WRITE "${GUARDARENA_HEADER_STAGING}/guardarena/${_rel}" "${_text}")
endwhile()

file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/${GUARDARENA_HEADER_DEST}" TYPE DIRECTORY
  FILES "${GUARDARENA_HEADER_STAGING}/guardarena")
