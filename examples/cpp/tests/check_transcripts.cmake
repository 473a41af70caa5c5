# CTest: liteasr_cpp must print exactly the Python ONNX Runtime path's texts.
# -DPROGRAM=liteasr_cpp -DARTIFACTS=folder -DDATA=folder written by make_expected.py
# (clips.txt: one WAV a line; expected.txt: one text a line, same order).
foreach(var PROGRAM ARTIFACTS DATA)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_transcripts.cmake needs -D${var}=...")
  endif()
endforeach()
file(STRINGS "${DATA}/clips.txt" clips)
list(LENGTH clips n)
if(n LESS 5)
  message(FATAL_ERROR "${DATA}/clips.txt lists ${n} clips, expected at least 5: rerun make_expected.py")
endif()
execute_process(COMMAND "${PROGRAM}" "${ARTIFACTS}" ${clips}
                OUTPUT_VARIABLE got ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "liteasr_cpp exited with ${rc}:\n${err}")
endif()
file(READ "${DATA}/expected.txt" expected)
if(NOT got STREQUAL expected)
  string(REPLACE ";" "\n" clip_lines "${clips}")
  message(FATAL_ERROR "C++ transcripts differ from the Python ONNX Runtime path\n"
                      "clips:\n${clip_lines}\n--- expected (Python OnnxTranscriber)\n${expected}--- got (liteasr_cpp)\n${got}")
endif()
message(STATUS "liteasr_cpp matches the Python ONNX Runtime path on ${n} clips:\n${got}")
