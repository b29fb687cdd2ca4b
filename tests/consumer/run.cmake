# Builds and runs a tiny downstream project against FNet, as a user would.
#   MODE=find_package:     install FNet into an empty prefix, then find_package(FNet CONFIG REQUIRED)
#   MODE=add_subdirectory: add_subdirectory(<FNet source>)
set(work "${FNET_BINARY_DIR}/consumer-${MODE}")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")

function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message("${out}")
endfunction()

set(configure_args -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)
if(MODE STREQUAL "find_package")
  run_step(${CMAKE_COMMAND} --install "${FNET_BINARY_DIR}" --prefix "${work}/prefix")
  if(NOT EXISTS "${work}/prefix/include/fnet/fnet.hpp")
    message(FATAL_ERROR "install tree lacks include/fnet/fnet.hpp")
  endif()
  run_step(${CMAKE_COMMAND} -S "${CONSUMER_SOURCE_DIR}/find_package" -B "${work}/build" ${configure_args}
    "-DCMAKE_PREFIX_PATH=${work}/prefix")
else()
  run_step(${CMAKE_COMMAND} -S "${CONSUMER_SOURCE_DIR}/add_subdirectory" -B "${work}/build" ${configure_args}
    "-DFNET_SOURCE_DIR=${FNET_SOURCE_DIR}")
endif()
run_step(${CMAKE_COMMAND} --build "${work}/build")
run_step("${work}/build/consumer")
