/* SPDX-License-Identifier: MIT */
/* A fork() while another thread makes cctx-curl's thread-specific key: the
 * child's calls must not wait for that thread, which the child does not
 * have. This file defines a pthread_key_create that holds the call of a
 * thread that asked for it until the test lets it go, and hands every
 * other call straight to the C library's (glibc's __pthread_key_create, not
 * dlsym: a sanitizer's runtime makes keys of its own before it could). Not
 * under ThreadSanitizer, whose runtime makes one before instrumented code,
 * as this would be, can run. */
#define _GNU_SOURCE
#include <cctx/curl.h>

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "peer.h"
#include "support.h"

#if defined(__GLIBC__) && !TEST_UNDER_TSAN
#define HOLD_KEY_CREATE 1
int __pthread_key_create(pthread_key_t *key, void (*destructor)(void *));

static _Thread_local bool hold_key_create; /* the thread's next one */
static struct latch entered = LATCH_INIT, let_go = LATCH_INIT;

int pthread_key_create(pthread_key_t *key, void (*destructor)(void *))
{
    if (hold_key_create) {
        hold_key_create = false;
        latch_add(&entered);
        latch_wait_open(&let_go);
    }
    return __pthread_key_create(key, destructor);
}

struct first_call {
    const char *url;
    int err;
};

/* The process's first cctx_curl_perform: the key is made in it, held. */
static void *first_call(void *arg)
{
    struct first_call *f = arg;
    CURL *e = easy_for(NULL, "%s/echo?who=thread", f->url);
    cctx_curl_result_t res;
    hold_key_create = true;
    f->err = cctx_curl_perform(cctx_background(), e, NULL, &res);
    curl_easy_cleanup(e);
    return NULL;
}
#endif

/* Forked while the first call's thread was making the key (a lock held
 * there, had one been taken to make it), the child's own first call made a
 * key of its own and ran. A lock would have been held for ever in the
 * child, by a thread it does not have, and the call would have hung. */
TEST(curl_fork_while_the_thread_key_is_made_leaves_the_child_working)
{
#ifndef HOLD_KEY_CREATE
    SKIP_IN_THIS_BUILD("holding pthread_key_create needs glibc's __pthread_key_create, and "
                       "no ThreadSanitizer (its runtime calls it before it can run ours)");
#else
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    struct first_call f = {.url = p.url, .err = -1};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, first_call, &f), 0);
    latch_wait_n(&entered, 1);

    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        CURL *e = easy_for(NULL, "%s/echo?who=child", p.url);
        cctx_curl_result_t res;
        _exit(cctx_curl_perform(cctx_background(), e, NULL, &res) == 0 ? 0 : 1);
    }
    latch_open(&let_go); /* the parent's thread; the child's copy has none */
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(f.err, 0);

    /* A call to a peer on loopback takes milliseconds: 20 s is a hang,
     * ended here rather than by the test's timeout. */
    int st = 0;
    pid_t w = 0;
    for (int i = 0; i < 2000 && (w = waitpid(pid, &st, WNOHANG)) == 0; i++)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    if (w == 0) {
        kill(pid, SIGKILL);
        (void)waitpid(pid, &st, 0);
        fprintf(stderr, "the child's call still waited after 20 s\n");
    }
    CHECK_EQ(w, pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    /* Both reached the peer, in either order. */
    bool seen[2] = {false, false};
    for (int i = 0; i < 2; i++) {
        char line[1024];
        CHECK(peer_line(&p, "req /echo?who=", 5000, line, sizeof line, NULL));
        seen[strstr(line, "who=child") != NULL] = true;
    }
    CHECK(seen[0] && seen[1]);
    peer_stop(&p);
    curl_test_end();
#endif
}
