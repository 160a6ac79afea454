/*
 * A tiny test harness: TEST(name) registers a test; the runner (tests/main.c)
 * runs one test by name in its own process, so CTest gives each test its own
 * process, timeout and verdict. CHECK failures print the site and abort the test.
 */
#ifndef CCTX_TEST_HARNESS_H
#define CCTX_TEST_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* True when built with ThreadSanitizer: stress tests shrink under it. */
#if defined(__SANITIZE_THREAD__)
#define TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_UNDER_TSAN 1
#endif
#endif
#ifndef TEST_UNDER_TSAN
#define TEST_UNDER_TSAN 0
#endif

#endif
