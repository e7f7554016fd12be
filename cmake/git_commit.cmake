# Writes OUT = `#define QM_GIT_COMMIT "<short hash>"` for the checkout at SRC, only when it
# changes (so a build after a commit recompiles the few files that print it, nothing else).
execute_process(COMMAND git rev-parse --short=10 HEAD WORKING_DIRECTORY ${SRC}
  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT commit)
  set(commit "unknown")
endif()
set(text "#define QM_GIT_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUT} "${text}")
endif()
