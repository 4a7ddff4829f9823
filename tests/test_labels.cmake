# Labels of the guardarena_tests cases, given by name once gtest_discover_tests
# has listed them (CTest includes this file after the discovered tests).
# CTest names a typed or parametrized case "Suite.Test<Suite/param ...>", so
# each pattern matches "Suite.Test" followed by the end or "<".
#
#   threads     the case starts threads: the TSan run selects it (-L threads).
#               Found by running every case under
#               `strace -f -e trace=clone,clone3` and keeping those with a
#               CLONE_THREAD clone; a new case that starts threads belongs here.
#               RacingDoubleFreeIsReported and the fault handler's concurrency
#               cases are in: under TSAN_OPTIONS=handle_segv=0 guardarena's
#               handler gets the faults (see tests/tsan_suppressions.txt).
#   unit        every case of guardarena_tests.
set(guardarena_threads_tests
    "FastModeDeathTest\\.RacingDoubleFreeIsReported"
    "FastModeTest\\.(ThreadsReuseTheirOwnSlots|StatsBalanceAfterThreadsExit)"
    "GuardedResourceTest\\.ThreadsAllocateAndFreeAcrossThreads"
    "FaultHandlerTest\\.(FaultInOneThreadWhileOthersAllocateGivesOneCompleteReport|ConcurrentFaultsInTwoThreadsStillGiveOneCompleteReport)"
    "StackCacheTest\\.(SameStackFromTwoThreadsGetsOneId|ConcurrentThreadsNeverGetAnotherStacksId|ThreadExitGivesTheBlockBack|ThreadsGetBlocksOnSeparateCacheLines|CaptureAndStoreMakeNoMallocCall)"
    "StackDepotTest\\.(ConcurrentStoresDeduplicateAcrossThreads|LoadsRunConcurrentlyWithStores)"
    "StackTraceTest\\.WorksOnOtherThreads"
    "WorldStopTest\\.[A-Za-z]+"
    "ArenaStressTest\\.[A-Za-z]+"
    "MemoryBudgetTest\\.ThreadsPastTheBudgetKeepEveryBlockAndBalance"
    "FastModeStressTest\\.[A-Za-z]+")
function(guardarena_label_pattern out)
  list(JOIN ARGN "|" alternatives)
  set(${out} "^(${alternatives})($|<)" PARENT_SCOPE)
endfunction()
guardarena_label_pattern(threads_pattern ${guardarena_threads_tests})

foreach(test IN LISTS guardarena_tests_TESTS)
  set(labels unit)
  if(test MATCHES "${threads_pattern}")
    list(APPEND labels threads)
  endif()
  set_tests_properties("${test}" PROPERTIES LABELS "${labels}")
endforeach()
