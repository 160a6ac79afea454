/* SPDX-License-Identifier: MIT */
/*
 * A tiny program built against an *installed* cctx (see check.sh): it uses
 * only the public headers, <cctx.h> and <cctx/testing.h>, and prints a fixed
 * transcript that check.sh compares line by line.
 */
#include <cctx.h>
#include <cctx/testing.h>

#include <stdio.h>
#include <string.h>

static const char request_id_key; /* a unique address: the key */
static int after_runs;

/* Runs on one of the library's runner threads when the deadline fires; it
 * may call any cctx function, here to end another context that main waits
 * on. */
static void on_done(void *arg)
{
    after_runs++;
    cctx_cancel((cctx_cancel_t *)arg);
}

static const char *err_name(int err)
{
    switch (err) {
    case 0: return "0";
    case ECANCELED: return "ECANCELED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINVAL: return "EINVAL";
    default: return "other";
    }
}

static int failures;
#define EXPECT(cond)                                                        \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "consumer: %d: expected %s\n", __LINE__, #cond); \
            failures++;                                                     \
        }                                                                   \
    } while (0)

int main(void)
{
    /* A value, a real 20 ms deadline fired by the library's timer thread,
     * and a child that inherits both the error and the cause. */
    cctx_t *req = cctx_with_value(cctx_background(), &request_id_key, "req-42", NULL);
    cctx_t *deadline = cctx_with_timeout_cause(req, CCTX_MSEC(20), 504, "upstream too slow", NULL);
    cctx_t *child = cctx_with_cancel(deadline, NULL);
    EXPECT(req && deadline && child);
    printf("value: %s\n", (const char *)cctx_value(child, &request_id_key));

    cctx_cancel_t *notify_cancel;
    cctx_t *notified = cctx_with_cancel(cctx_background(), &notify_cancel);
    cctx_after_t reg;
    memset(&reg, 0, sizeof reg);
    EXPECT(cctx_after_func(deadline, &reg, on_done, notify_cancel) == 0);

    int err = cctx_wait(child, CCTX_SEC(10));
    cctx_cause_t why;
    cctx_cause(child, &why);
    printf("deadline: err=%s code=%d msg=%s\n", err_name(err), why.code, why.msg);
    EXPECT(why.file && strstr(why.file, "main.c"));
    EXPECT(cctx_wait(notified, CCTX_SEC(10)) == ECANCELED);
    printf("after-func runs: %d\n", after_runs);
    EXPECT(!cctx_after_stop(&reg));
    cctx_release(notified);

    cctx_release(child);
    cctx_release(deadline);
    cctx_release(req);

    /* Explicit cancellation with a cause, seen through a file descriptor. */
    cctx_cancel_t *cancel;
    cctx_t *job = cctx_with_cancel(cctx_background(), &cancel);
    int fd = cctx_done_fd(job);
    EXPECT(fd >= 0);
    printf("before cancel: err=%s\n", err_name(cctx_err(job)));
    cctx_cancel_cause(cancel, 7, "shutting down");
    cctx_cancel(cancel); /* idempotent: the first cause stays */
    cctx_cause(job, &why);
    printf("cancel: err=%s code=%d msg=%s\n", err_name(why.err), why.code, why.msg);
    cctx_release(job);

    /* The fake clock of <cctx/testing.h>: a 5 s deadline in no real time. */
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *slow = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    cctx_fake_clock_advance(CCTX_SEC(4));
    printf("fake clock +4s: err=%s remaining=%lld ms\n", err_name(cctx_err(slow)),
           (long long)(cctx_remaining(slow) / CCTX_MSEC(1)));
    cctx_fake_clock_advance(CCTX_SEC(1));
    printf("fake clock +5s: err=%s\n", err_name(cctx_err(slow)));
    cctx_release(slow);
    cctx_fake_clock_stop();

    printf("NULL: err=%s\n", err_name(cctx_err(NULL)));
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
