/*
 * Library bugs that are known and being fixed on other branches. Each
 * switch, while 1, keeps the fuzzers away from one of them, so that a run
 * finds new bugs instead of the same crash again; the reproducers of each are
 * under fuzz/regressions/. Setting a switch to 0 (FUZZ_KNOWN_BUGS_FILTERED=0
 * turns them all off) checks that bug again.
 */
#ifndef CCTX_FUZZ_KNOWN_BUGS_H
#define CCTX_FUZZ_KNOWN_BUGS_H

#ifndef FUZZ_KNOWN_BUGS_FILTERED
#define FUZZ_KNOWN_BUGS_FILTERED 1
#endif

/* Names and cause messages that are not UTF-8 are written into JSON as they
 * are, which makes it invalid: while on, the fuzzers give only valid UTF-8. */
#ifndef FUZZ_AVOID_NON_UTF8_NAMES
#define FUZZ_AVOID_NON_UTF8_NAMES FUZZ_KNOWN_BUGS_FILTERED
#endif
/* cctx_dump(NULL) with nothing in the registry passes NULL to qsort. */
#ifndef FUZZ_AVOID_DUMP_ALL_EMPTY
#define FUZZ_AVOID_DUMP_ALL_EMPTY FUZZ_KNOWN_BUGS_FILTERED
#endif
/* cctx_remaining with the fake clock at INT64_MIN negates INT64_MIN. */
#ifndef FUZZ_AVOID_CLOCK_AT_INT64_MIN
#define FUZZ_AVOID_CLOCK_AT_INT64_MIN FUZZ_KNOWN_BUGS_FILTERED
#endif
/* cctx_wait(ctx, 0) never returns with the fake clock at INT64_MAX. */
#ifndef FUZZ_AVOID_WAIT_AT_INT64_MAX
#define FUZZ_AVOID_WAIT_AT_INT64_MAX FUZZ_KNOWN_BUGS_FILTERED
#endif
/* A deadline equal to now, both INT64_MAX, is not born done. */
#ifndef FUZZ_AVOID_DEADLINE_NOW_AT_INT64_MAX
#define FUZZ_AVOID_DEADLINE_NOW_AT_INT64_MAX FUZZ_KNOWN_BUGS_FILTERED
#endif

#endif
