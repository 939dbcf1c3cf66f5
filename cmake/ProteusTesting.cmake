# proteus_add_gtests(PREFIX <p> DEPS <targets...>): one GoogleTest executable per *_test.cc in the
# calling folder, named <p>_<file stem> (so tests/model/foo_test.cc and tests/kernels/foo_test.cc
# do not collide), registered as one ctest test each, like Bazel's one cc_test per file.
function(proteus_add_gtests)
  cmake_parse_arguments(ARG "" "PREFIX" "DEPS" ${ARGN})
  file(GLOB _srcs CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/*_test.cc")
  foreach(_src IN LISTS _srcs)
    get_filename_component(_stem "${_src}" NAME_WE)
    set(_name "${ARG_PREFIX}_${_stem}")
    add_executable(${_name} "${_src}")
    target_link_libraries(${_name} PRIVATE ${ARG_DEPS} GTest::gtest_main GTest::gmock)
    add_test(NAME ${_name} COMMAND ${_name} WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
  endforeach()
endfunction()
