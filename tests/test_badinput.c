/* SPDX-License-Identifier: MIT */
/*
 * Bad input at the edges of every public call of <cctx.h>: NULL for each
 * pointer (an error, never a crash), INT64_MIN and INT64_MAX for every
 * deadline, timeout and clock value, on the real clock and on a fake clock
 * parked at either end, megabyte names and cause messages (which every dump
 * and the trace must still write as valid JSON), names that are not UTF-8,
 * and thousands of done descriptors past a low RLIMIT_NOFILE. The JSON is
 * checked with the fuzz targets' strict validator.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

/* The validator is compiled into this file, so that the test runner, which
 * is built from tests/test_*.c, needs no source list of its own for it. */
#include "../fuzz/json_check.c"

static const char key;

/* ---- output checks ------------------------------------------------------------------- */

static char *dump_mem(cctx_t *root, int format, int *ret, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    CHECK(f != NULL);
    *ret = cctx_dump(root, f, format);
    CHECK_EQ(fclose(f), 0);
    if (len)
        *len = n;
    return buf;
}

static void check_json(const char *what, const char *text, size_t len)
{
    struct json_error err;
    if (!json_check(text, len, &err)) {
        json_report(what, text, len, &err);
        CHECK(!"valid JSON");
    }
}

/* The JSON inside the HTML page, up to the "</script" that ends it. */
static void check_html(const char *html, size_t len)
{
    CHECK(utf8_valid(html, len)); /* the page says it is UTF-8 */
    const char *open = strstr(html, "<script id=\"cctx-data\"");
    CHECK(open != NULL);
    const char *data = strchr(open, '>') + 1;
    const char *close = strcasestr(data, "</script");
    CHECK(close != NULL);
    check_json("the JSON inside the HTML dump", data, (size_t)(close - data));
}

/* DOT: every quoted string closes on its line. */
static void check_dot(const char *dot)
{
    bool in_str = false;
    for (const char *p = dot; *p; p++) {
        if (in_str && *p == '\\' && p[1])
            p++;
        else if (*p == '"')
            in_str = !in_str;
        else if (*p == '\n')
            CHECK(!in_str);
    }
    CHECK(!in_str);
}

/* Every format of cctx_dump(root) succeeds, and what must parse parses. */
static void check_dumps(cctx_t *root)
{
    for (int format = CCTX_DUMP_TEXT; format <= CCTX_DUMP_HTML; format++) {
        int r;
        size_t n;
        char *out = dump_mem(root, format, &r, &n);
        CHECK_EQ(r, 0);
        if (format == CCTX_DUMP_JSON)
            check_json("cctx_dump JSON", out, n);
        else if (format == CCTX_DUMP_HTML)
            check_html(out, n);
        else if (format == CCTX_DUMP_DOT)
            check_dot(out);
        free(out);
    }
}

/* ---- NULL in every call ---------------------------------------------------------------- */

static void noop(void *arg)
{
    (void)arg;
}

static void body_null_everywhere(void)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    cctx_cancel_t *cancel;
    int x = 0;
    /* 1. References. */
    CHECK(cctx_ref(NULL) == NULL);
    cctx_release(NULL);
    cctx_release_at(NULL, NULL, 0, NULL);
    /* 2. Deriving: every form, NULL parent; NULL key. */
    CHECK_ERRNO(cctx_with_cancel_at(NULL, &cancel, NULL, 0, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_deadline_cause_at(NULL, 0, 1, NULL, NULL, NULL, 0, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_deadline_cause_at(NULL, INT64_MAX, 1, "m", &cancel, "f", 1, "g"), NULL,
                EINVAL);
    CHECK_ERRNO(cctx_with_timeout_cause_at(NULL, INT64_MIN, 0, NULL, NULL, NULL, 0, NULL), NULL,
                EINVAL);
    CHECK_ERRNO(cctx_with_value_at(NULL, &key, &x, count_destroy, NULL, 0, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_value_at(c, NULL, &x, count_destroy, NULL, 0, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_with_value_at(NULL, NULL, NULL, NULL, NULL, 0, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_without_cancel_at(NULL, NULL, 0, NULL), NULL, EINVAL);
    /* 3. Cancelling. */
    cctx_cancel_at(NULL, NULL, 0, NULL);
    cctx_cancel_cause_at(NULL, 1, NULL, NULL, 0, NULL);
    cctx_cancel_cause_at(NULL, 1, "m", "f", 1, "g");
    /* 4. Reading. */
    CHECK_EQ(cctx_err(NULL), EINVAL);
    int64_t d = 7;
    CHECK(!cctx_deadline(NULL, &d));
    CHECK(!cctx_deadline(NULL, NULL));
    CHECK_EQ(d, 7);
    CHECK(!cctx_deadline(c, NULL));
    CHECK_EQ(cctx_remaining(NULL), CCTX_NO_DEADLINE);
    CHECK_ERRNO(cctx_value(NULL, &key), NULL, EINVAL);
    CHECK_ERRNO(cctx_value(c, NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_value(NULL, NULL), NULL, EINVAL);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(NULL, &cause), EINVAL);
    CHECK_EQ(cctx_cause(c, NULL), EINVAL);
    CHECK_EQ(cctx_cause(NULL, NULL), EINVAL);
    /* 5. Waiting: errors at once, never a wait. */
    CHECK_ERRNO(cctx_done_fd(NULL), -1, EINVAL);
    const int64_t times[] = {0, -1, 1, INT64_MIN, INT64_MAX};
    cctx_t *with_null[2] = {c, NULL};
    for (size_t i = 0; i < sizeof times / sizeof *times; i++) {
        CHECK_EQ(cctx_wait_at(NULL, times[i], NULL, 0, NULL), EINVAL);
        CHECK_EQ(cctx_sleep_at(NULL, times[i], NULL, 0, NULL), EINVAL);
        CHECK_ERRNO(cctx_wait_any_at(NULL, 1, times[i], NULL, 0, NULL), -1, EINVAL);
        CHECK_ERRNO(cctx_wait_any_at(NULL, 0, times[i], NULL, 0, NULL), -1, EINVAL);
        CHECK_ERRNO(cctx_wait_any_at(with_null, 2, times[i], NULL, 0, NULL), -1, EINVAL);
        CHECK_ERRNO(cctx_wait_any_at(with_null, 0, times[i], NULL, 0, NULL), -1, EINVAL);
    }
    /* 6. After-functions. */
    cctx_after_t reg;
    memset(&reg, 0, sizeof reg);
    CHECK_EQ(cctx_after_func_at(NULL, &reg, noop, NULL, NULL, 0, NULL), EINVAL);
    CHECK_EQ(cctx_after_func_at(c, NULL, noop, NULL, NULL, 0, NULL), EINVAL);
    CHECK_EQ(cctx_after_func_at(c, &reg, NULL, NULL, NULL, 0, NULL), EINVAL);
    CHECK_EQ(cctx_after_func_at(NULL, NULL, NULL, NULL, NULL, 0, NULL), EINVAL);
    CHECK(!cctx_after_stop_at(NULL, NULL, 0, NULL));
    CHECK(!cctx_after_stop_at(&reg, NULL, 0, NULL)); /* never registered */
    /* 7. Seeing inside. */
    CHECK_EQ(cctx_trace_flush(), 0); /* tracing is off */
    CHECK_EQ(cctx_set_name(NULL, NULL), EINVAL);
    CHECK_EQ(cctx_set_name(NULL, "x"), EINVAL);
    CHECK_EQ(cctx_set_name(c, NULL), 0);
    CHECK_ERRNO(cctx_name(NULL), NULL, EINVAL);
    CHECK_ERRNO(cctx_name(c), NULL, 0); /* no name: errno tells the two apart */
    for (int format = -1; format <= CCTX_DUMP_HTML + 1; format++) {
        CHECK_EQ(cctx_dump(c, NULL, format), EINVAL);
        CHECK_EQ(cctx_dump(NULL, NULL, format), EINVAL);
    }
    CHECK_EQ(cctx_dump(NULL, stderr, CCTX_DUMP_JSON), ENOTSUP); /* no registry */
    CHECK_EQ(cctx_err(c), 0); /* nothing above touched it */
    cctx_release(c);
}

TEST(badinput_null_in_every_call_is_an_error_never_a_crash)
{
    atomic_store(&destroyed, 0);
    run_with_watchdog(body_null_everywhere, 30);
    CHECK_EQ(atomic_load(&destroyed), 0); /* EINVAL hands no value over */
}

/* The _at forms with no call site, as a binding without one calls them: the
 * cause, the dumps and their JSON must do without. */
static void body_null_sites(void)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel_at(cctx_background(), &cancel, NULL, 0, NULL);
    cctx_t *v = cctx_with_value_at(c, &key, NULL, NULL, NULL, 0, NULL);
    cctx_t *d = cctx_with_deadline_cause_at(v, cctx_now() + CCTX_SEC(3600), 1, NULL, NULL, NULL,
                                            0, NULL);
    cctx_t *t = cctx_with_timeout_cause_at(v, CCTX_SEC(3600), 2, "m", NULL, NULL, 0, NULL);
    cctx_t *w = cctx_without_cancel_at(d, NULL, 0, NULL);
    cctx_t *past = cctx_with_timeout_cause_at(c, INT64_MIN, 3, NULL, NULL, NULL, 0, NULL);
    CHECK(c && v && d && t && w && past);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func_at(d, &reg, noop, NULL, NULL, 0, NULL), 0);
    CHECK_EQ(cctx_wait_at(d, 0, NULL, 0, NULL), 0);
    CHECK_EQ(cctx_sleep_at(d, 0, NULL, 0, NULL), 0);
    cctx_t *arr[] = {d, past};
    CHECK_EQ(cctx_wait_any_at(arr, 2, 0, NULL, 0, NULL), 1);
    check_dumps(c);
    check_dumps(w);
    cctx_cancel_cause_at(cancel, 4, NULL, NULL, 0, NULL);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(d, &cause), ECANCELED);
    CHECK_STR(cause.msg, "context canceled");
    check_dumps(c);
    CHECK(!cctx_after_stop_at(&reg, NULL, 0, NULL)); /* it ran */
    cctx_release_at(past, NULL, 0, NULL);
    cctx_release_at(w, NULL, 0, NULL);
    cctx_release_at(t, NULL, 0, NULL);
    cctx_release_at(d, NULL, 0, NULL);
    cctx_release_at(v, NULL, 0, NULL);
    cctx_release_at(c, NULL, 0, NULL);
}

TEST(badinput_null_call_sites_in_every_at_form)
{
    run_with_watchdog(body_null_sites, 30);
}

/* cctx_dump(NULL) before any context exists: the registry is on and empty. */
CHILD(dump_all_with_nothing_live)
{
    for (int format = CCTX_DUMP_TEXT; format <= CCTX_DUMP_HTML; format++) {
        int r;
        size_t n;
        char *out = dump_mem(NULL, format, &r, &n);
        CHECK_EQ(r, 0);
        if (format == CCTX_DUMP_JSON)
            check_json("cctx_dump(NULL) JSON", out, n);
        if (format == CCTX_DUMP_HTML)
            check_html(out, n);
        free(out);
    }
}

TEST(badinput_dump_all_with_an_empty_registry)
{
    const char *env[] = {"CCTX_DEBUG=trees", "UBSAN_OPTIONS=halt_on_error=1", NULL};
    struct child c;
    run_child("dump_all_with_nothing_live", env, &c);
    if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0)
        fprintf(stderr, "child status %d, stderr:\n%s\n", c.status, c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    child_done(&c);
}

/* ---- INT64_MIN and INT64_MAX for every time argument ------------------------------------ */

/* Derives with each extreme deadline and timeout under `parent`, whose own
 * error and deadline the results must respect. */
static void extremes_under(cctx_t *parent)
{
    int64_t now = cctx_now();
    int perr = cctx_err(parent);
    int64_t pd;
    bool has_pd = cctx_deadline(parent, &pd);
    const int64_t vals[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        for (int form = 0; form < 4; form++) {
            int64_t v = vals[i];
            if (form >= 2 && v == 1)
                continue; /* due within a nanosecond: either state is right */
            cctx_cancel_t *cancel = NULL;
            cctx_t *c;
            int64_t deadline = form < 2 ? v : (v > 0 && now > INT64_MAX - v) ? INT64_MAX : now + v;
            if (form >= 2 && v < 0 && now < INT64_MIN - v)
                deadline = INT64_MIN;
            switch (form) {
            case 0: c = cctx_with_deadline(parent, v, &cancel); break;
            case 1: c = cctx_with_deadline_cause(parent, v, 5, "extreme", &cancel); break;
            case 2: c = cctx_with_timeout(parent, v, &cancel); break;
            default: c = cctx_with_timeout_cause(parent, v, 6, "extreme", &cancel); break;
            }
            CHECK(c != NULL && cancel != NULL);
            int e = cctx_err(c);
            int64_t d;
            bool has_d = cctx_deadline(c, &d);
            int64_t rem = cctx_remaining(c);
            if (perr) {
                CHECK_EQ(e, perr); /* born done like its parent */
            } else if (deadline <= now) {
                CHECK_EQ(e, ETIMEDOUT); /* a deadline already due: born done */
                CHECK(has_d && d <= cctx_now() && rem <= 0);
                cctx_cause_t cause;
                CHECK_EQ(cctx_cause(c, &cause), ETIMEDOUT);
                CHECK_EQ(cause.code, form % 2 ? (form == 1 ? 5 : 6) : 0);
            } else {
                CHECK_EQ(e, 0);
                CHECK(rem > 0);
                if (has_d)
                    CHECK(d > now);
                if (has_pd)
                    CHECK(has_d && d <= pd);
                if (deadline == CCTX_NO_DEADLINE && !has_pd)
                    CHECK(!has_d && rem == CCTX_NO_DEADLINE);
            }
            cctx_cancel(cancel);
            CHECK(cctx_err(c) != 0);
            cctx_release(c);
        }
    }
}

static void all_parents(void)
{
    extremes_under(cctx_background());
    cctx_t *t = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    extremes_under(t);
    cctx_t *v = cctx_with_value(t, &key, NULL, NULL);
    extremes_under(v);
    cctx_t *w = cctx_without_cancel(t);
    extremes_under(w);
    cctx_cancel_t *dc;
    cctx_t *done = cctx_with_cancel(cctx_background(), &dc);
    cctx_cancel(dc);
    extremes_under(done);
    cctx_release(done);
    cctx_release(w);
    cctx_release(v);
    cctx_release(t);
}

TEST(badinput_extreme_deadlines_and_timeouts_on_the_real_clock)
{
    run_with_watchdog(all_parents, 60);
}

/* Waits whose context is already done return at once whatever the timeout;
 * on an active context a zero timeout returns at once. */
static void body_extreme_waits(void)
{
    const int64_t vals[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX};
    cctx_cancel_t *cancel;
    cctx_t *done = cctx_with_cancel(cctx_background(), &cancel);
    cctx_cancel(cancel);
    cctx_t *expired = cctx_with_timeout(cctx_background(), INT64_MIN, NULL);
    cctx_t *active = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *value = cctx_with_value(cctx_background(), &key, NULL, NULL); /* never ends */
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        CHECK_EQ(cctx_wait(done, vals[i]), ECANCELED);
        CHECK_EQ(cctx_wait(expired, vals[i]), ETIMEDOUT);
        CHECK_EQ(cctx_sleep(done, vals[i]), ECANCELED);
        CHECK_EQ(cctx_sleep(expired, vals[i]), ETIMEDOUT);
        cctx_t *arr[] = {active, value, expired, done};
        CHECK_EQ(cctx_wait_any(arr, 4, vals[i]), 2);
        if (vals[i] <= 0)
            CHECK_EQ(cctx_sleep(active, vals[i]), 0); /* nothing to sleep */
    }
    CHECK_EQ(cctx_wait(active, 0), 0);
    CHECK_EQ(cctx_wait(value, 0), 0);
    CHECK_EQ(cctx_wait(cctx_background(), 0), 0);
    cctx_t *arr[] = {active, value};
    CHECK_ERRNO(cctx_wait_any(arr, 2, 0), -1, ETIMEDOUT);
    cctx_release(value);
    cctx_release(active);
    cctx_release(expired);
    cctx_release(done);
}

TEST(badinput_extreme_wait_timeouts_on_done_contexts)
{
    run_with_watchdog(body_extreme_waits, 30);
}

/* The fake clock parked at INT64_MAX: nothing can be later than now. */
static void body_fake_clock_at_int64_max_deadlines(void)
{
    cctx_fake_clock_start(INT64_MAX);
    CHECK_EQ(cctx_now(), INT64_MAX);
    cctx_t *neg = cctx_with_timeout(cctx_background(), -1, NULL);
    cctx_t *min = cctx_with_timeout(cctx_background(), INT64_MIN, NULL);
    CHECK(neg && min);
    CHECK_EQ(cctx_err(neg), ETIMEDOUT);
    CHECK_EQ(cctx_err(min), ETIMEDOUT);
    CHECK(cctx_remaining(min) <= 0);
    /* A deadline at now, however it is written, is born done. */
    cctx_t *zero = cctx_with_timeout(cctx_background(), 0, NULL);
    cctx_t *at = cctx_with_deadline(cctx_background(), INT64_MAX, NULL);
    CHECK(at && zero);
    CHECK_EQ(cctx_err(zero), ETIMEDOUT);
    CHECK_EQ(cctx_err(at), ETIMEDOUT);
    cctx_release(at);
    cctx_release(zero);
    cctx_release(min);
    cctx_release(neg);
    cctx_fake_clock_stop();
}

TEST(badinput_fake_clock_at_int64_max_deadline_at_now_is_born_done)
{
    run_with_watchdog(body_fake_clock_at_int64_max_deadlines, 30);
}

static void body_fake_clock_at_int64_max_waits(void)
{
    cctx_fake_clock_start(INT64_MAX);
    /* A zero wait returns at once, on every kind of context. */
    cctx_t *active = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *value = cctx_with_value(cctx_background(), &key, NULL, NULL);
    cctx_t *detached = cctx_without_cancel(active);
    CHECK(active && value && detached);
    CHECK_EQ(cctx_wait(active, 0), 0);
    CHECK_EQ(cctx_wait(detached, 0), 0);
    CHECK_EQ(cctx_wait(cctx_background(), 0), 0);
    cctx_t *arr[] = {active, value};
    CHECK_ERRNO(cctx_wait_any(arr, 2, 0), -1, ETIMEDOUT);
    CHECK_EQ(cctx_sleep(value, 0), 0);
    CHECK_EQ(cctx_wait(value, 0), 0);
    /* Advancing saturates; nothing overflows. */
    cctx_fake_clock_advance(INT64_MAX);
    cctx_fake_clock_advance(1);
    CHECK_EQ(cctx_now(), INT64_MAX);
    CHECK_EQ(cctx_err(active), 0);
    CHECK_EQ(cctx_remaining(active), CCTX_NO_DEADLINE);
    check_dumps(cctx_background());
    check_dumps(active);
    cctx_release(detached);
    cctx_release(value);
    cctx_release(active);
    cctx_fake_clock_stop();
}

TEST(badinput_fake_clock_at_int64_max_zero_waits_return_at_once)
{
    run_with_watchdog(body_fake_clock_at_int64_max_waits, 10);
}

/* The fake clock parked at INT64_MIN: every deadline is far ahead. */
static void body_fake_clock_at_int64_min(void)
{
    cctx_fake_clock_start(INT64_MIN);
    CHECK_EQ(cctx_now(), INT64_MIN);
    cctx_t *at = cctx_with_deadline(cctx_background(), INT64_MIN, NULL);
    CHECK_EQ(cctx_err(at), ETIMEDOUT);
    /* 0 - INT64_MIN does not fit: the time left saturates, never wraps. */
    cctx_t *zero = cctx_with_deadline(cctx_background(), 0, NULL);
    CHECK_EQ(cctx_err(zero), 0);
    CHECK(cctx_remaining(zero) > 0);
    cctx_t *far = cctx_with_timeout(cctx_background(), INT64_MAX, NULL); /* deadline -1 */
    CHECK_EQ(cctx_err(far), 0);
    CHECK_EQ(cctx_remaining(far), INT64_MAX);
    cctx_t *huge = cctx_with_deadline_cause(cctx_background(), INT64_MAX - 1, 1, "m", NULL);
    CHECK(cctx_remaining(huge) > 0);
    check_dumps(cctx_background());
    check_dumps(zero);
    cctx_fake_clock_advance(INT64_MIN); /* ignored */
    CHECK_EQ(cctx_now(), INT64_MIN);
    cctx_fake_clock_advance(INT64_MAX); /* to -1: `far` is due */
    CHECK_EQ(cctx_now(), -1);
    CHECK_EQ(cctx_err(far), ETIMEDOUT);
    CHECK_EQ(cctx_err(zero), 0);
    cctx_fake_clock_advance(INT64_MAX); /* to INT64_MAX - 1: all due */
    CHECK_EQ(cctx_now(), INT64_MAX - 1);
    CHECK_EQ(cctx_err(zero), ETIMEDOUT);
    CHECK_EQ(cctx_err(huge), ETIMEDOUT);
    cctx_fake_clock_advance(INT64_MAX); /* saturates */
    CHECK_EQ(cctx_now(), INT64_MAX);
    cctx_release(huge);
    cctx_release(far);
    cctx_release(zero);
    cctx_release(at);
    cctx_fake_clock_stop();
}

TEST(badinput_fake_clock_at_int64_min)
{
    run_with_watchdog(body_fake_clock_at_int64_min, 30);
}

/* ---- megabyte names and messages --------------------------------------------------------- */

enum { MEGA = 1 << 20 };

/* A megabyte of valid UTF-8 that is hard to escape: quotes, backslashes,
 * controls, "</script>" and "<!--", and characters of two, three and four
 * bytes, so that a cut at any byte count lands inside one somewhere. */
static char *mega_text(void)
{
    static const char *const parts[] = {"</script>", "\"", "\\", "\x01\x1f\t\n", "<!--",
                                        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "a"};
    char *s = malloc(MEGA + 1);
    CHECK(s != NULL);
    size_t n = 0;
    for (unsigned i = 0;; i++) {
        const char *p = parts[(i * 7 + i / 9) % (sizeof parts / sizeof *parts)];
        size_t len = strlen(p);
        if (n + len > MEGA)
            break;
        memcpy(s + n, p, len);
        n += len;
    }
    while (n < MEGA)
        s[n++] = 'z';
    s[n] = 0;
    return s;
}

TEST(badinput_megabyte_names_and_messages_round_trip_and_dump_as_valid_json)
{
    char *big = mega_text();
    cctx_fake_clock_start(CCTX_SEC(100));
    cctx_cancel_t *rc;
    cctx_t *root = cctx_with_cancel(cctx_background(), &rc);
    cctx_t *named = cctx_with_cancel(root, NULL);
    cctx_t *v = cctx_with_value(named, &key, NULL, NULL);
    cctx_t *timer = cctx_with_timeout_cause(v, 10, 7, big, NULL);
    cctx_t *born = cctx_with_deadline_cause(root, 0, 8, big, NULL);
    CHECK(root && named && v && timer && born);
    CHECK_EQ(cctx_set_name(root, big), 0);
    CHECK_EQ(cctx_set_name(v, big), 0);
    CHECK_EQ(cctx_set_name(timer, big), 0);
    CHECK_STR(cctx_name(root), big);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(born, &cause), ETIMEDOUT);
    CHECK_STR(cause.msg, big);
    check_dumps(root); /* active, with a megabyte name on the way ("via") */
    cctx_fake_clock_advance(10);
    CHECK_EQ(cctx_cause(timer, &cause), ETIMEDOUT);
    CHECK_EQ(cause.code, 7);
    CHECK_STR(cause.msg, big);
    check_dumps(named);
    cctx_cancel_cause(rc, 9, big);
    CHECK_EQ(cctx_cause(named, &cause), ECANCELED);
    CHECK_STR(cause.msg, big);
    check_dumps(root);
    check_dumps(named);
    cctx_release(born);
    cctx_release(timer);
    cctx_release(v);
    cctx_release(named);
    cctx_release(root);
    cctx_fake_clock_stop();
    free(big);
}

/* Names and messages are bytes from users: the JSON must stay valid
 * whatever they hold, UTF-8 or not. */
TEST(badinput_names_and_messages_that_are_not_utf8_dump_as_valid_json)
{
    static const char *const bad[] = {"\xff", "a\x80z", "\xc0\xaf", "\xed\xa0\x80",
                                      "\xf4\x90\x80\x80", "cut \xe2\x82", "\xfe\xfe\xff\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        CHECK_EQ(cctx_set_name(c, bad[i]), 0);
        CHECK_STR(cctx_name(c), bad[i]); /* kept as given */
        cctx_cancel_cause(cancel, 1, bad[i]);
        check_dumps(c);
        cctx_release(c);
    }
}

/* In a child process traced to `CCTX_TRACE`: megabyte names and messages,
 * whose trace events keep a cut of each. */
CHILD(trace_megabyte_texts)
{
    char *big = mega_text();
    for (int shift = 0; shift < 4; shift++) {
        /* Shifted by a byte each time, so the cut lands in every position of
         * a four-byte character. */
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        CHECK_EQ(cctx_set_name(c, big + shift), 0);
        cctx_t *t = cctx_with_timeout_cause(c, -1, 3, big + shift, NULL);
        cctx_cancel_cause(cancel, 2, big + shift);
        cctx_release(t);
        cctx_release(c);
    }
    CHECK_EQ(cctx_trace_flush(), 0);
    free(big);
}

/* The same with names and messages that are not UTF-8. */
CHILD(trace_non_utf8_texts)
{
    static const char *const bad[] = {"\xff", "a\x80z", "\xc0\xaf", "\xed\xa0\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        CHECK_EQ(cctx_set_name(c, bad[i]), 0);
        cctx_cancel_cause(cancel, 2, bad[i]);
        cctx_release(c);
    }
    CHECK_EQ(cctx_trace_flush(), 0);
}

/* Runs the child traced to a temporary file and checks the file. */
static void check_trace_of(const char *child)
{
    char *path = run_traced(child);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f); /* the whole file: it holds no NUL */
    CHECK(n > 0);
    fclose(f);
    unlink(path);
    free(path);
    check_json("CCTX_TRACE file", text, (size_t)n);
    CHECK(count_substr(text, "\"msg\":") >= 4);
    free(text);
}

TEST(badinput_megabyte_names_and_messages_in_the_trace_file)
{
    check_trace_of("trace_megabyte_texts");
}

TEST(badinput_names_and_messages_that_are_not_utf8_in_the_trace_file)
{
    check_trace_of("trace_non_utf8_texts");
}

/* ---- done descriptors past RLIMIT_NOFILE -------------------------------------------------- */

enum { MANY = 4000, LIMIT = 128 };

static void count_run(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* In a child, so that the low limit binds no other test. */
CHILD(done_fds_past_the_limit)
{
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = LIMIT;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    static cctx_t *ctxs[MANY];
    static cctx_cancel_t *cancels[MANY];
    static int fds[MANY];
    static cctx_after_t regs[MANY];
    static atomic_int runs;
    int got = 0, emfile = 0;
    for (int i = 0; i < MANY; i++) {
        ctxs[i] = i % 2 ? cctx_with_cancel(cctx_background(), &cancels[i])
                        : cctx_with_timeout(cctx_background(), CCTX_SEC(3600), &cancels[i]);
        CHECK(ctxs[i] != NULL);
        errno = 0;
        fds[i] = cctx_done_fd(ctxs[i]);
        if (fds[i] >= 0) {
            got++;
        } else {
            CHECK_EQ(fds[i], -1);
            CHECK(errno == EMFILE || errno == ENFILE);
            emfile++;
        }
        CHECK_EQ(cctx_after_func(ctxs[i], &regs[i], count_run, &runs), 0);
    }
    printf("%d descriptors, %d refused\n", got, emfile);
    CHECK(got > 0 && got < LIMIT);
    CHECK(emfile > 0);
    /* Every context still works: it can be waited on, and its end is seen
     * by its waiters, its after-functions and its descriptor if it has one. */
    for (int i = 0; i < MANY; i++) {
        CHECK_EQ(cctx_wait(ctxs[i], 0), 0);
        cctx_cancel_cause(cancels[i], 4, "limit");
        CHECK_EQ(cctx_err(ctxs[i]), ECANCELED);
        CHECK_EQ(cctx_wait(ctxs[i], -1), ECANCELED);
        if (fds[i] >= 0) {
            struct pollfd p = {.fd = fds[i], .events = POLLIN};
            CHECK_EQ(poll(&p, 1, 0), 1);
        }
    }
    CHECK_EQ(atomic_load(&runs), MANY);
    /* Freeing contexts gives their descriptors back: a context refused one
     * before now gets one. */
    int refused = -1;
    for (int i = 0; i < MANY && refused < 0; i++)
        if (fds[i] < 0)
            refused = i;
    for (int i = 0; i < MANY; i++)
        if (i != refused && fds[i] >= 0)
            cctx_release(ctxs[i]), ctxs[i] = NULL;
    int fd = cctx_done_fd(ctxs[refused]);
    CHECK(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 1); /* made after the end: readable at once */
    /* And a context that can never end still gets its shared descriptor. */
    cctx_t *never = cctx_without_cancel(ctxs[refused]);
    CHECK(cctx_done_fd(never) >= 0);
    cctx_release(never);
    for (int i = 0; i < MANY; i++)
        cctx_release(ctxs[i]);
}

TEST(badinput_thousands_of_done_fds_past_a_low_rlimit_nofile)
{
    struct child c;
    run_child("done_fds_past_the_limit", NULL, &c);
    if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0)
        fprintf(stderr, "child status %d, stdout:\n%s\nstderr:\n%s\n", c.status, c.out, c.err);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    printf("%s", c.out);
    child_done(&c);
}
