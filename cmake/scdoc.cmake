# Render one scdoc page: cmake -DSCDOC=... -DIN=... -DOUT=... -P scdoc.cmake
execute_process(COMMAND "${SCDOC}" INPUT_FILE "${IN}" OUTPUT_FILE "${OUT}"
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  file(REMOVE "${OUT}")
  message(FATAL_ERROR "scdoc failed on ${IN}: ${err}")
endif()
