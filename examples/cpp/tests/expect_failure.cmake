# CTest: `liteasr_cpp ARTIFACTS WAV` must exit with status 2 (bad input) and
# print a message matching EXPECT on stderr.
execute_process(COMMAND "${PROGRAM}" "${ARTIFACTS}" "${WAV}"
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "expected exit status 2, got ${rc}\nstdout: ${out}\nstderr: ${err}")
endif()
if(NOT err MATCHES "${EXPECT}")
  message(FATAL_ERROR "stderr does not match '${EXPECT}':\n${err}")
endif()
if(NOT err MATCHES "^liteasr_cpp: error: ")
  message(FATAL_ERROR "stderr is not one 'liteasr_cpp: error:' line:\n${err}")
endif()
message(STATUS "rejected as expected: ${err}")
