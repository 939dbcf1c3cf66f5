# proteus_add_grpc_gtests(PREFIX <p> DEPS <torch-free targets...> LINK <link-only targets...>):
# like proteus_add_gtests (one test per *_test.cc, named <p>_<stem>), for tests that include
# gRPC or protobuf headers. Their sources compile in an OBJECT library that sees DEPS only;
# LINK (e.g. proteus_torch_model) joins at link time. The PyTorch wheel's include/ carries its
# own protobuf 3.13 headers, which would shadow the system's protobuf 3.21 in any translation
# unit compiled with LibTorch's include path (see server/BUILD).
function(proteus_add_grpc_gtests)
  cmake_parse_arguments(ARG "" "PREFIX" "DEPS;LINK" ${ARGN})
  file(GLOB _srcs CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/*_test.cc")
  foreach(_src IN LISTS _srcs)
    get_filename_component(_stem "${_src}" NAME_WE)
    set(_name "${ARG_PREFIX}_${_stem}")
    add_library(${_name}_objects OBJECT "${_src}")
    target_link_libraries(${_name}_objects PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock)
    add_executable(${_name} $<TARGET_OBJECTS:${_name}_objects>)
    # protobuf first: ahead of LibTorch, which exports a few protobuf symbols of its own.
    target_link_libraries(${_name} PRIVATE
      protobuf::libprotobuf ${ARG_DEPS} ${ARG_LINK} GTest::gtest_main GTest::gmock)
    add_test(NAME ${_name} COMMAND ${_name} WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
  endforeach()
endfunction()
