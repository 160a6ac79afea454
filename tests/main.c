/* SPDX-License-Identifier: MIT */
/* The test runner: `cctx-tests NAME` runs one test, `cctx-tests --list` names
 * them all, `cctx-tests` with no argument runs every test in this process. */
#include "harness.h"

static struct test_case *tests, *children;

void test_register(struct test_case *tc)
{
    tc->next = tests;
    tests = tc;
}

void child_register(struct test_case *tc)
{
    tc->next = children;
    children = tc;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--child") == 0) {
        for (struct test_case *t = children; t; t = t->next) {
            if (strcmp(argv[2], t->name) == 0) {
                t->fn();
                return 0;
            }
        }
        fprintf(stderr, "no child named %s\n", argv[2]);
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (struct test_case *t = tests; t; t = t->next)
            printf("%s\n", t->name);
        return 0;
    }
    int ran = 0;
    for (struct test_case *t = tests; t; t = t->next) {
        if (argc > 1 && strcmp(argv[1], t->name) != 0)
            continue;
        t->fn();
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "(any)");
        return 2;
    }
    printf("%d passed, 0 failed\n", ran);
    return 0;
}
