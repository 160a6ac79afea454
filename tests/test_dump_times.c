/* SPDX-License-Identifier: MIT */
/*
 * Section 7: the times in cctx_dump. The forms people read (text, DOT, the
 * text lines of cctx_cancel_and_wait's report) show each deadline and each
 * cause's time as a duration from the dump's moment, in a unit a person
 * reads at a glance; the JSON keeps the raw times on cctx_now()'s clock and
 * says when the dump was taken. On the fake clock every one is exact.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>

#include "harness.h"
#include "support.h"

#define T0 CCTX_SEC(5000)
#define SITE "src/http.c", 212, "handle_request"

/* The whole text line the dump gives for c (one line: no "via"). */
static char *text_line(cctx_t *c)
{
    char *text = dump_to_string(c, CCTX_DUMP_TEXT);
    CHECK_EQ(count_substr(text, "\n"), 1);
    return text;
}

/* A deadline context named `name`, made at SITE with the given timeout. */
static cctx_t *timed(cctx_t *parent, const char *name, int64_t timeout, cctx_cancel_t **cancel)
{
    cctx_t *c = cctx_with_timeout_cause_at(parent, timeout, 0, NULL, cancel, SITE);
    CHECK(c != NULL);
    CHECK_EQ(cctx_set_name(c, name), 0);
    return c;
}

TEST(dump_times_text_shows_a_deadline_as_time_left)
{
    cctx_fake_clock_start(T0);
    cctx_t *c = timed(cctx_background(), "GET /users/42", CCTX_MSEC(300), NULL);
    cctx_fake_clock_advance(CCTX_USEC(300));
    char *text = text_line(c), *want;
    CHECK(asprintf(&want,
                   "deadline %p \"GET /users/42\" made at src/http.c:212 in handle_request, "
                   "active, deadline in 299.7 ms, refs 1, children 0\n",
                   (void *)c) > 0);
    CHECK_STR(text, want);
    free(want);
    free(text);
    cctx_release(c);
    cctx_fake_clock_stop();
}

/* Each duration in the largest unit it reaches once rounded, one decimal. */
TEST(dump_times_text_picks_the_unit)
{
    static const struct {
        int64_t timeout;
        const char *shown;
    } cases[] = {
        {1, "deadline in 1 ns,"},
        {850, "deadline in 850 ns,"},
        {999, "deadline in 999 ns,"},
        {1000, "deadline in 1.0 us,"},
        {CCTX_NSEC(12345), "deadline in 12.3 us,"},
        {CCTX_NSEC(999949), "deadline in 999.9 us,"},
        {CCTX_NSEC(999950), "deadline in 1.0 ms,"}, /* not 1000.0 us */
        {CCTX_USEC(299700), "deadline in 299.7 ms,"},
        {CCTX_MSEC(1250), "deadline in 1.3 s,"},
        {CCTX_MSEC(59949), "deadline in 59.9 s,"},
        {CCTX_MSEC(59950), "deadline in 1.0 min,"},
        {CCTX_SEC(90), "deadline in 1.5 min,"},
        {CCTX_SEC(3600), "deadline in 1.0 h,"},
        {CCTX_SEC(100 * 3600), "deadline in 100.0 h,"},
    };
    cctx_fake_clock_start(T0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cctx_t *c = timed(cctx_background(), "x", cases[i].timeout, NULL);
        char *text = text_line(c);
        if (!strstr(text, cases[i].shown))
            fprintf(stderr, "%" PRId64 " ns: want \"%s\" in %s", cases[i].timeout,
                    cases[i].shown, text);
        CHECK(strstr(text, cases[i].shown) != NULL);
        free(text);
        cctx_release(c);
    }
    /* The farthest and the earliest deadlines there are. */
    cctx_t *far = cctx_with_deadline(cctx_background(), INT64_MAX - 1, NULL);
    cctx_t *min = cctx_with_deadline(cctx_background(), INT64_MIN, NULL);
    char *text = text_line(far);
    CHECK(strstr(text, ", deadline in 2562046.4 h, refs 1") != NULL);
    free(text);
    text = text_line(min);
    CHECK(strstr(text, ", deadline passed 2562047.8 h ago, refs 1") != NULL);
    free(text);
    cctx_release(min);
    cctx_release(far);
    cctx_fake_clock_stop();
}

/* A deadline that passed, and causes: when each context ended, from the
 * dump's moment. */
TEST(dump_times_text_shows_passed_deadlines_and_causes_ago)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *cancel;
    cctx_t *server = cctx_with_cancel_at(cctx_background(), NULL, "src/main.c", 57, "main");
    CHECK_EQ(cctx_set_name(server, "server"), 0);
    cctx_t *health = cctx_with_timeout_cause_at(server, CCTX_MSEC(10), 408,
                                                "health check timed out", NULL, SITE);
    CHECK_EQ(cctx_set_name(health, "GET /health"), 0);
    cctx_t *db = timed(server, "db query", CCTX_MSEC(50), &cancel);
    cctx_fake_clock_advance(CCTX_MSEC(10)); /* health's deadline: it ends now */
    cctx_fake_clock_advance(CCTX_MSEC(10));
    cctx_cancel_cause_at(cancel, 504, "upstream too slow", "src/db.c", 112, "db_wait");
    cctx_fake_clock_advance(CCTX_USEC(3400));

    char *text = dump_to_string(server, CCTX_DUMP_TEXT), *want;
    fputs(text, stderr);
    CHECK(asprintf(&want,
                   "cancel %p \"server\" made at src/main.c:57 in main, active, refs 3, "
                   "children 2\n"
                   "  deadline %p \"GET /health\" made at src/http.c:212 in handle_request, "
                   "ETIMEDOUT (code 408, \"health check timed out\", at src/http.c:212 in "
                   "handle_request, ended 13.4 ms ago), deadline passed 13.4 ms ago, refs 1, "
                   "children 0\n"
                   "  deadline %p \"db query\" made at src/http.c:212 in handle_request, "
                   "ECANCELED (code 504, \"upstream too slow\", at src/db.c:112 in db_wait, "
                   "ended 3.4 ms ago), deadline in 26.6 ms, refs 1, children 0\n",
                   (void *)server, (void *)health, (void *)db) > 0);
    CHECK_STR(text, want);
    free(want);
    free(text);

    /* DOT labels say the same. */
    text = dump_to_string(server, CCTX_DUMP_DOT);
    CHECK(strstr(text, "\\nETIMEDOUT (code 408), ended 13.4 ms ago\\ndeadline passed 13.4 ms "
                       "ago\"") != NULL);
    CHECK(strstr(text, "\\nECANCELED (code 504), ended 3.4 ms ago\\ndeadline in 26.6 ms\"") !=
          NULL);
    free(text);
    cctx_release(db);
    cctx_release(health);
    cctx_release(server);
    cctx_fake_clock_stop();
}

/* The JSON keeps the raw times, all on cctx_now()'s clock, and the dump's
 * moment closes each tree's top object. */
TEST(dump_times_json_keeps_raw_times_and_the_dump_time)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *cancel;
    cctx_t *server = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *db = timed(server, "db query", CCTX_MSEC(50), &cancel);
    cctx_fake_clock_advance(CCTX_MSEC(20));
    cctx_cancel_cause(cancel, 504, "upstream too slow");
    cctx_fake_clock_advance(CCTX_USEC(3400));
    char *json = dump_to_string(server, CCTX_DUMP_JSON);
    fputs(json, stderr);
    CHECK(strstr(json, "\"cause\":{\"code\":504,") != NULL);
    CHECK(strstr(json, ",\"when\":5000020000000}") != NULL);
    CHECK(strstr(json, ",\"deadline\":5000050000000,\"remaining\":26600000,") != NULL);
    const char *tail = "\"children\":[]}],\"dump_time\":5000023400000}]\n";
    size_t len = strlen(json);
    CHECK(len > strlen(tail) && strcmp(json + len - strlen(tail), tail) == 0);
    CHECK_EQ(count_substr(json, "\"dump_time\""), 1);
    CHECK(strstr(json, " ago") == NULL && strstr(json, " ms") == NULL);
    free(json);

    /* The page records the same moment, the JSON in it too. */
    char *page = dump_to_string(db, CCTX_DUMP_HTML);
    CHECK(strstr(page, "data-now=\"5000023400000\"") != NULL);
    CHECK(strstr(page, ",\"dump_time\":5000023400000}]\n</script>") != NULL);
    free(page);
    cctx_release(db);
    cctx_release(server);
    cctx_fake_clock_stop();
}

/* cctx_cancel_and_wait's report is in the text form: its times too. */
TEST(dump_times_cancel_and_wait_report_shows_durations)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *cancel;
    cctx_t *server = cctx_with_cancel(cctx_background(), &cancel);
    CHECK_EQ(cctx_set_name(server, "server"), 0);
    cctx_t *conn = timed(server, "conn A", CCTX_SEC(90), NULL);
    cctx_fake_clock_advance(CCTX_MSEC(1));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    CHECK_EQ(cctx_cancel_and_wait(cancel, 0, f), ETIMEDOUT);
    CHECK_EQ(fclose(f), 0);
    fputs(text, stderr);
    /* Canceled just now; conn A's deadline was 90 s after it was made. */
    CHECK(strstr(text, "\"server\" made at ") != NULL);
    CHECK(strstr(text, "ended 0 ns ago)") != NULL);
    CHECK(strstr(text, "\"conn A\" made at src/http.c:212 in handle_request, ECANCELED") !=
          NULL);
    CHECK(strstr(text, "ended 0 ns ago), deadline in 1.5 min, refs 1, children 0\n") != NULL);
    free(text);
    cctx_release(conn);
    cctx_release(server);
    cctx_fake_clock_stop();
}
