/* SPDX-License-Identifier: MIT */
/*
 * The report of cctx_cancel_and_wait's timeout, with and without the
 * registry: each descendant still held on its own line, under its parent,
 * with its count of children; and a report of a large tree takes time
 * about linear in its size (the counts were a scan per line).
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "support.h"

/* The line that names `name`, up to its end, copied into line. */
static void line_of(const char *text, const char *name, char *line, size_t size)
{
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", name);
    const char *p = strstr(text, quoted);
    CHECK(p);
    while (p > text && p[-1] != '\n')
        p--;
    const char *end = strchr(p, '\n');
    CHECK(end && (size_t)(end - p) < size);
    memcpy(line, p, (size_t)(end - p));
    line[end - p] = '\0';
}

static void check_line(const char *text, const char *name, int depth, int children)
{
    char line[1024], tail[32];
    line_of(text, name, line, sizeof line);
    for (int i = 0; i < 2 * depth; i++)
        CHECK(line[i] == ' ');
    CHECK(line[2 * depth] != ' ');
    snprintf(tail, sizeof tail, ", children %d", children);
    size_t n = strlen(line), t = strlen(tail);
    if (n < t || strcmp(line + n - t, tail) != 0)
        fprintf(stderr, "line of \"%s\": %s\n  wanted it to end in: %s\n", name, line, tail);
    CHECK(n >= t && strcmp(line + n - t, tail) == 0);
}

/* top: a (a1 (a11), a2), b, d (d1), all held; the report in creation order
 * under each parent. */
static void report_a_small_tree(void)
{
    const char *names[] = {"a", "a1", "a11", "a2", "b", "d", "d1"};
    const int parent[] = {-1, 0, 1, 0, -1, -1, 5};
    cctx_t *held[7];
    cctx_cancel_t *cancel;
    cctx_t *top = cctx_with_cancel(cctx_background(), &cancel);
    cctx_set_name(top, "top");
    for (int i = 0; i < 7; i++) {
        held[i] = cctx_with_cancel(parent[i] < 0 ? top : held[parent[i]], NULL);
        cctx_set_name(held[i], names[i]);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, out), ETIMEDOUT);
    fclose(out);
    printf("%s", text);
    CHECK_EQ(count_substr(text, "\n"), 8);
    check_line(text, "top", 0, 3);
    check_line(text, "a", 1, 2);
    check_line(text, "a1", 2, 1);
    check_line(text, "a11", 3, 0);
    check_line(text, "a2", 2, 0);
    check_line(text, "b", 1, 0);
    check_line(text, "d", 1, 1);
    check_line(text, "d1", 2, 0);
    CHECK(strstr(text, "\"a\"") < strstr(text, "\"a11\""));
    CHECK(strstr(text, "\"a11\"") < strstr(text, "\"a2\""));
    CHECK(strstr(text, "\"a2\"") < strstr(text, "\"b\""));
    CHECK(strstr(text, "\"b\"") < strstr(text, "\"d1\""));
    free(text);
    for (int i = 7; i-- > 0;)
        cctx_release(held[i]);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, NULL), 0);
    cctx_release(top);
}

TEST(cancel_wait_report_counts_each_line_s_children)
{
    report_a_small_tree();
}

CHILD(cancel_wait_report_of_a_small_tree)
{
    report_a_small_tree();
}

TEST(cancel_wait_report_with_the_registry_counts_each_line_s_children)
{
    const char *env[] = {"CCTX_DEBUG=trees", NULL};
    struct child c;
    run_child("cancel_wait_report_of_a_small_tree", env, &c);
    printf("%s%s", c.out, c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    child_done(&c);
}

/* A chain of `deep` contexts under top (only its foot held) and `wide`
 * children of top, all held; the report written to /dev/null. Returns how
 * long the call took. Before, the report scanned the rest of the list for
 * each line's children (without the registry) or the whole list for each
 * line (with it): minutes for such trees. */
static int64_t report_a_large_tree(int deep, int wide)
{
    cctx_cancel_t *cancel;
    cctx_t *top = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t **kids = malloc((size_t)(wide + 1) * sizeof *kids);
    CHECK(kids);
    cctx_t *foot = top;
    for (int i = 0; i < deep; i++) {
        cctx_t *next = cctx_with_cancel(foot, NULL);
        CHECK(next);
        if (foot != top)
            cctx_release(foot);
        foot = next;
    }
    for (int i = 0; i < wide; i++)
        CHECK(kids[i] = cctx_with_cancel(top, NULL));
    FILE *out = fopen("/dev/null", "w");
    CHECK(out);
    int64_t t0 = real_now();
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, out), ETIMEDOUT);
    int64_t took = real_now() - t0;
    fclose(out);
    for (int i = 0; i < wide; i++)
        cctx_release(kids[i]);
    if (foot != top)
        cctx_release(foot);
    free(kids);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, NULL), 0);
    cctx_release(top);
    return took;
}

/* Generous bounds: each report takes well under a second in a plain build,
 * and took half a minute or more before. The sanitizers' builds skip them. */
TEST(cancel_wait_report_of_a_deep_chain_takes_time_linear_in_it)
{
    if (TEST_UNDER_TSAN || TEST_UNDER_ASAN)
        SKIP_IN_THIS_BUILD("a bound on time");
    int64_t took = report_a_large_tree(300000, 0);
    printf("a chain of 300000: the report took %.3f s\n", (double)took / 1e9);
    CHECK(took < CCTX_SEC(10));
}

CHILD(cancel_wait_report_of_a_wide_tree)
{
    int64_t took = report_a_large_tree(0, 150000);
    printf("150000 children: the report took %.3f s\n", (double)took / 1e9);
    CHECK(took < CCTX_SEC(10));
}

TEST(cancel_wait_report_with_the_registry_of_a_wide_tree_takes_time_linear_in_it)
{
    if (TEST_UNDER_TSAN || TEST_UNDER_ASAN)
        SKIP_IN_THIS_BUILD("a bound on time");
    const char *env[] = {"CCTX_DEBUG=trees", NULL};
    struct child c;
    run_child("cancel_wait_report_of_a_wide_tree", env, &c);
    printf("%s%s", c.out, c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    child_done(&c);
}
