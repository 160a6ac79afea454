# SPDX-License-Identifier: MIT
# cctx_add_tests(EXE PREFIX TIMEOUT SOURCES...): one CTest test per TEST(name)
# in the sources, run as `EXE name` in a process of its own, with TIMEOUT
# seconds, exit status 77 reported as not run. Names must start with PREFIX
# (empty: any). The names are re-read whenever a source changes.
#
# A test this would miss is an error, not a silence: every line that starts
# with TEST( (after blanks) must be exactly TEST(name) with a lower-case
# name of letters, digits and underscores, at the start of the line.
function(cctx_add_tests exe prefix timeout)
  foreach(src ${ARGN})
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
    file(STRINGS ${src} decls REGEX "^[ \t]*TEST[ \t]*\\(")
    foreach(decl ${decls})
      if(NOT decl MATCHES "^TEST\\((${prefix}[a-z0-9_]+)\\)")
        message(FATAL_ERROR "${src}: \"${decl}\" is not a test name this build can "
          "find: write TEST(${prefix}name) at the start of a line, name in lower case")
      endif()
      set(name ${CMAKE_MATCH_1})
      add_test(NAME ${name} COMMAND ${exe} ${name})
      set_tests_properties(${name} PROPERTIES TIMEOUT ${timeout} SKIP_RETURN_CODE 77)
    endforeach()
  endforeach()
endfunction()
