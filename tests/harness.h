/* SPDX-License-Identifier: MIT */
/*
 * A tiny test harness: TEST(name) registers a test; the runner (tests/main.c)
 * runs one test by name in its own process, so CTest gives each test its own
 * process, timeout and verdict. CHECK failures print the site and abort the test.
 */
#ifndef CCTX_TEST_HARNESS_H
#define CCTX_TEST_HARNESS_H

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct test_case {
    const char *name;
    void (*fn)(void);
    struct test_case *next;
};
void test_register(struct test_case *tc);

#define TEST(name)                                                                   \
    static void test_##name(void);                                                   \
    static struct test_case test_case_##name = {#name, test_##name, NULL};           \
    __attribute__((constructor)) static void test_register_##name(void)              \
    {                                                                                \
        test_register(&test_case_##name);                                            \
    }                                                                                \
    static void test_##name(void)

/* CHILD(name) is the body of a child process that a test starts with
 * run_child (tests/support.h): `cctx-tests --child NAME` runs it. It is not a
 * test of its own (CTest lists only TEST). */
void child_register(struct test_case *tc);
#define CHILD(name)                                                                  \
    static void child_##name(void);                                                  \
    static struct test_case child_case_##name = {#name, child_##name, NULL};         \
    __attribute__((constructor)) static void child_register_##name(void)             \
    {                                                                                \
        child_register(&child_case_##name);                                          \
    }                                                                                \
    static void child_##name(void)

/* Ends the test as skipped: CTest reports exit status 77 as "Not Run", never as
 * passed. For a test whose peer (a program from another package) is missing.
 * Under CI=true, where every peer is installed, a skip is a failure instead. */
#define SKIP(...)                                                                    \
    do {                                                                             \
        const char *skip_ci_ = getenv("CI");                                         \
        bool skip_fail_ = skip_ci_ && strcmp(skip_ci_, "true") == 0;                 \
        printf("%s", skip_fail_ ? "FAILED (a skip under CI=true): " : "skipped: ");  \
        printf(__VA_ARGS__);                                                         \
        printf("\n");                                                                \
        fflush(stdout);                                                              \
        _exit(skip_fail_ ? 1 : 77);                                                  \
    } while (0)

/* Ends the test as skipped because this build cannot run it (a sanitizer that
 * forbids what it does): not run here, also under CI=true, where the other
 * builds run it. */
#define SKIP_IN_THIS_BUILD(...)                                                      \
    do {                                                                             \
        printf("skipped in this build: ");                                           \
        printf(__VA_ARGS__);                                                         \
        printf("\n");                                                                \
        fflush(stdout);                                                              \
        _exit(77);                                                                   \
    } while (0)

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                               \
    do {                                                                             \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);              \
        if (check_a_ != check_b_) {                                                  \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n",     \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_);                 \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define CHECK_STR(a, b)                                                              \
    do {                                                                             \
        const char *check_a_ = (a), *check_b_ = (b);                                 \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {             \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s == %s (\"%s\" != \"%s\")\n",\
                    __FILE__, __LINE__, #a, #b, check_a_ ? check_a_ : "(null)",      \
                    check_b_ ? check_b_ : "(null)");                                 \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* errno cleared, `call` returns `ret` and sets errno to `err`. */
#define CHECK_ERRNO(call, ret, err)                                                  \
    do {                                                                             \
        errno = 0;                                                                   \
        CHECK_EQ(call, ret);                                                         \
        CHECK_EQ(errno, err);                                                        \
    } while (0)

/* True when built with ThreadSanitizer (stress tests shrink under it), or with
 * AddressSanitizer: GCC defines __SANITIZE_*__, clang answers __has_feature. */
#if defined(__has_feature)
#define TEST_HAS_FEATURE_(f) __has_feature(f)
#else
#define TEST_HAS_FEATURE_(f) 0
#endif
#if defined(__SANITIZE_THREAD__) || TEST_HAS_FEATURE_(thread_sanitizer)
#define TEST_UNDER_TSAN 1
#else
#define TEST_UNDER_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__) || TEST_HAS_FEATURE_(address_sanitizer)
#define TEST_UNDER_ASAN 1
#else
#define TEST_UNDER_ASAN 0
#endif

/* The million of the scale tests: 1,000,000 as the header promises; smaller under the
 * sanitizers, which are here to find memory and thread errors, not to measure
 * scale (ASan makes each allocation several times dearer, and CI machines are
 * shared). */
#define TEST_MILLION (TEST_UNDER_TSAN ? 100000 : TEST_UNDER_ASAN ? 250000 : 1000000)

#endif
