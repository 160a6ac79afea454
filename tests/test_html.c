/* SPDX-License-Identifier: MIT */
/*
 * Section 7: the HTML view (CCTX_DUMP_HTML). The page is checked as text:
 * self-contained, one data element that embeds the JSON dump exactly, a name
 * that cannot break out of it. Then it is loaded in headless Chromium: the DOM
 * its script builds has one row per context with the right names and states,
 * the causes with their codes labelled, the deadlines as they stood at the
 * dump (the page never counts down from its own opening); and a screenshot
 * is taken (CCTX_SCREENSHOT names the file: docs/dump-view.png is made that
 * way).
 * Without Chromium the browser tests pass with a note, except in CI (CI=true),
 * which installs it.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>

#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "internal.h" /* cctx__html_begin/end: a page with several roots */

/* ---- helpers -------------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- an example tree: a server and its requests ---------------------------- */

static const char key_request_id;

struct example {
    cctx_t *server, *health, *rid, *users, *db, *render, *rid2, *orders, *auth, *cache, *pool,
        *job1, *job2, *metrics, *evil;
    cctx_cancel_t *db_cancel;
};

static cctx_t *named(cctx_t *c, const char *name)
{
    CHECK(c != NULL);
    CHECK_EQ(cctx_set_name(c, name), 0);
    return c;
}

/* A server with requests, a worker pool and a background task, made at the
 * sites such a server would have (the _at forms take them), on the fake
 * clock so that the dump is the same every time. GET /health's deadline has
 * fired and "db query" was canceled with a cause (both stay listed until
 * released); GET /users/42 has 2.455 s left and, like GET /orders, sits under
 * a value context. With `evil`, one more context is named "</script><b>x". */
#define HTTP "src/http.c", 212, "handle_request"
#define RID "src/http.c", 205, "handle_request"
#define POOL "src/pool.c", 141, "pool_submit"
static void example_make(struct example *e, bool evil)
{
    memset(e, 0, sizeof *e);
    cctx_fake_clock_start(CCTX_SEC(5000));
    e->server = named(cctx_with_cancel_at(cctx_background(), NULL, "src/main.c", 57, "main"),
                      "server");
    e->health = named(cctx_with_timeout_cause_at(e->server, CCTX_MSEC(250), 408,
                                                 "health check timed out", NULL, HTTP),
                      "GET /health");
    cctx_fake_clock_advance(CCTX_MSEC(300));
    e->rid = named(cctx_with_value_at(e->server, &key_request_id, (void *)"7f3a", NULL, RID),
                   "request-id");
    e->users = named(cctx_with_timeout_cause_at(e->rid, CCTX_MSEC(2500), 0, NULL, NULL, HTTP),
                     "GET /users/42");
    e->db = named(cctx_with_cancel_at(e->users, &e->db_cancel, "src/db.c", 64, "db_query"),
                  "db query");
    e->render = named(cctx_with_cancel_at(e->users, NULL, "src/render.c", 31, "render_json"),
                      "render json");
    e->rid2 = named(cctx_with_value_at(e->server, &key_request_id, (void *)"7f3b", NULL, RID),
                    "request-id");
    e->orders = named(cctx_with_timeout_cause_at(e->rid2, CCTX_SEC(30), 0, NULL, NULL, HTTP),
                      "GET /orders");
    e->auth = named(cctx_with_timeout_cause_at(e->orders, CCTX_MSEC(1900), 0, NULL, NULL,
                                               "src/auth.c", 48, "auth_check"),
                    "auth check");
    e->cache = named(cctx_with_cancel_at(e->orders, NULL, "src/cache.c", 97, "cache_get"),
                     "cache lookup");
    e->pool = named(cctx_with_cancel_at(e->server, NULL, "src/pool.c", 23, "pool_start"),
                    "worker pool");
    e->job1 = named(cctx_with_timeout_cause_at(e->pool, CCTX_SEC(10), 0, NULL, NULL, POOL),
                    "job 1812: resize image");
    e->job2 = named(cctx_with_cancel_at(e->pool, NULL, POOL), "job 1813: send email");
    e->metrics = named(cctx_with_cancel_at(e->server, NULL, "src/metrics.c", 19,
                                           "metrics_start"),
                       "metrics flusher");
    cctx_ref(e->render); /* held by a second thread, say */
    cctx_fake_clock_advance(CCTX_MSEC(40));
    cctx_cancel_cause_at(e->db_cancel, 504, "upstream too slow", "src/db.c", 112, "db_wait");
    cctx_fake_clock_advance(CCTX_MSEC(5));
    if (evil)
        e->evil = named(cctx_with_cancel(e->metrics, NULL), "</script><b>x");
}

static void example_free(struct example *e)
{
    cctx_t *all[] = {e->evil, e->metrics, e->job2, e->job1, e->pool,  e->cache,
                     e->auth, e->orders,  e->rid2, e->render, e->render, e->db,
                     e->users, e->rid,    e->health, e->server};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            cctx_release(all[i]);
    cctx_fake_clock_stop();
}

/* ---- the page as text ------------------------------------------------------ */

TEST(html_page_is_self_contained_and_embeds_the_json)
{
    struct example e;
    example_make(&e, true);
    char *json = dump_to_string(e.server, CCTX_DUMP_JSON);
    char *page = dump_to_string(e.server, CCTX_DUMP_HTML);
    example_free(&e);

    CHECK(strncmp(page, "<!doctype html>\n", 16) == 0);
    size_t len = strlen(page);
    CHECK(len > 9 && strcmp(page + len - 8, "</html>\n") == 0);
    /* One data element, holding exactly the JSON dump (on the fake clock the
     * two dumps are the same); the evil name stays inside it, escaped. */
    CHECK_EQ(count_substr(page, "id=\"cctx-data\""), 1);
    const char *open = strstr(page, "<script id=\"cctx-data\" type=\"application/json\"");
    CHECK(open != NULL);
    const char *body = strchr(open, '>') + 1, *close = strstr(body, "</script>");
    CHECK(close != NULL);
    CHECK_EQ(close - body, (long long)strlen(json));
    CHECK(strncmp(body, json, strlen(json)) == 0);
    CHECK(strstr(json, "\\u003c/script>\\u003cb>x") != NULL);
    CHECK_EQ(count_substr(page, "<script"), 2); /* the data and the viewer */
    CHECK_EQ(count_substr(page, "</script>"), 2);
    CHECK_EQ(count_substr(page, "<b>x"), 0);
    /* Nothing fetched from anywhere. */
    const char *remote[] = {"http://", "https://", "src=", "href=", "url(", "@import", "<link",
                            "<iframe", "fetch(", "XMLHttpRequest", "innerHTML"};
    for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++) {
        if (strstr(page, remote[i]))
            fprintf(stderr, "the page contains %s\n", remote[i]);
        CHECK(strstr(page, remote[i]) == NULL);
    }
    /* Times are labelled as the dump's: the deadline column's header, the
     * footer; a cause's code is labelled as one; nothing counts time from
     * the page's opening but the age of the dump. */
    CHECK(strstr(page, ">deadline at dump time<") != NULL);
    CHECK(strstr(page, "timed from the moment of the dump") != NULL);
    CHECK(strstr(page, "'\\u21b3 code '+x.cause.code") != NULL);
    CHECK(strstr(page, "performance.now") == NULL);
    /* The template is small. */
    fprintf(stderr, "template: %zu bytes\n", len - strlen(json));
    CHECK(len - strlen(json) < 16 * 1024);
    free(page);
    free(json);
}

TEST(html_page_records_the_dump_time)
{
    cctx_fake_clock_start(CCTX_SEC(77));
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    int64_t before = wall_ms();
    char *page = dump_to_string(c, CCTX_DUMP_HTML);
    int64_t after = wall_ms();
    cctx_release(c);
    cctx_fake_clock_stop();
    /* cctx_now() of the dump (deadlines and causes are on that clock), and
     * the wall-clock time, in milliseconds since the epoch. */
    CHECK(strstr(page, "data-now=\"77000000000\"") != NULL);
    const char *w = strstr(page, "data-wall=\"");
    CHECK(w != NULL);
    long long ms = strtoll(w + strlen("data-wall=\""), NULL, 10);
    CHECK(ms >= before && ms <= after);
    free(page);
}

/* ---- headless Chromium ----------------------------------------------------- */

static const char *find_chromium(void)
{
    static char found[4096];
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *names[] = {"chromium", "chromium-browser"};
    for (size_t i = 0; i < 2; i++)
        for (const char *p = path; *p;) {
            size_t n = strcspn(p, ":");
            snprintf(found, sizeof found, "%.*s/%s", (int)n, p, names[i]);
            if (n && access(found, X_OK) == 0)
                return found;
            p += n + (p[n] == ':');
        }
    return NULL;
}

/* The browser; without one the test is skipped (a failure under CI=true). */
static const char *chromium_or_skip(void)
{
    const char *chromium = find_chromium();
    if (chromium)
        return chromium;
    SKIP("html: chromium not found");
}

/* A scratch directory for a page, the browser's profile and a screenshot. */
struct scratch {
    char dir[1024], page[1100], profile[1100], shot[1100];
};

static void scratch_make(struct scratch *s)
{
    char *dir = temp_path_for("cctx-html-XXXXXX");
    CHECK(strlen(dir) < sizeof s->dir);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    free(dir);
    CHECK(mkdtemp(s->dir) != NULL);
    snprintf(s->page, sizeof s->page, "%s/page.html", s->dir);
    snprintf(s->profile, sizeof s->profile, "%s/profile", s->dir);
    snprintf(s->shot, sizeof s->shot, "%s/shot.png", s->dir);
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static void scratch_remove(struct scratch *s)
{
    nftw(s->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_page(const char *path, cctx_t *root)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK_EQ(cctx_dump(root, f, CCTX_DUMP_HTML), 0);
    CHECK_EQ(fclose(f), 0);
}

enum { BROWSER_SECONDS = 45 };

/* Runs chromium headless on file://page with the extra flags, in a process
 * group of its own; returns what it printed on stdout (stderr, which it fills
 * with noise, goes to /dev/null). Fails the test if it does not exit within
 * BROWSER_SECONDS or exits non-zero. Its helper processes are killed after. */
static char *run_chromium(const char *chromium, const struct scratch *s, const char *extra)
{
    char profile[1200], url[1200];
    snprintf(profile, sizeof profile, "--user-data-dir=%s", s->profile);
    snprintf(url, sizeof url, "file://%s", s->page);
    const char *argv[] = {chromium, "--headless", "--no-sandbox", "--disable-gpu",
                          "--no-first-run", "--no-default-browser-check",
                          "--disable-extensions", "--disable-dev-shm-usage",
                          "--hide-scrollbars", "--force-device-scale-factor=1",
                          "--window-size=1100,700", "--virtual-time-budget=1000",
                          profile, extra, url, NULL};
    int fds[2];
    CHECK_EQ(pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(fds[1], 1);
        dup2(null, 2);
        execv(chromium, (char *const *)argv);
        _exit(127);
    }
    setpgid(pid, pid); /* either side may win the race; both ask the same */
    close(fds[1]);
    CHECK_EQ(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);

    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);
    CHECK(mem != NULL);
    struct timespec start, t;
    clock_gettime(CLOCK_MONOTONIC, &start);
    bool exited = false, eof = false, late = false;
    for (;;) {
        char buf[65536];
        ssize_t n;
        while ((n = read(fds[0], buf, sizeof buf)) > 0)
            fwrite(buf, 1, (size_t)n, mem);
        if (n == 0)
            eof = true;
        /* Helpers may hold the pipe open after it exited: once it has, what
         * it wrote is in the pipe and was read above. */
        if (exited)
            break;
        /* Has it exited? Not reaped yet (WNOWAIT): its process group id
         * stays reserved until the helpers are killed below. */
        siginfo_t info = {0};
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == pid) {
            exited = true;
            continue; /* read once more */
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - start.tv_sec >= BROWSER_SECONDS) {
            late = true;
            break;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        if (!eof)
            poll(&p, 1, 100);
        else
            usleep(20000);
    }
    kill(-pid, SIGKILL);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    close(fds[0]);
    CHECK_EQ(fclose(mem), 0);
    if (late)
        fprintf(stderr, "chromium did not finish within %d s\n", BROWSER_SECONDS);
    CHECK(!late);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "chromium failed (status %#x): %s\n", status, out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return out;
}

/* The serialized DOM of the page after its script ran. */
static char *rendered_dom(const char *chromium, const struct scratch *s)
{
    char *dom = run_chromium(chromium, s, "--dump-dom");
    CHECK(strstr(dom, "id=\"tree\"") != NULL);
    return dom;
}

/* The text of the element that follows `marker` in `from` (up to its '<'). */
static char *text_after(const char *from, const char *marker)
{
    const char *p = strstr(from, marker);
    CHECK(p != NULL);
    p = strchr(p, '>');
    CHECK(p != NULL);
    p++;
    return strndup(p, strcspn(p, "<"));
}

/* The row (one element per context) whose name is `name`, as a copy. */
static char *row_of(const char *dom, const char *name)
{
    char *span;
    CHECK(asprintf(&span, "<span class=\"name\">%s</span>", name) > 0);
    const char *p = strstr(dom, span);
    if (!p)
        fprintf(stderr, "no row named %s\n", name);
    CHECK(p != NULL);
    CHECK(strstr(p + 1, span) == NULL); /* just one */
    free(span);
    const char *s = p;
    while (s > dom && strncmp(s, "<div class=\"node ", 17) != 0)
        s--;
    const char *e = strstr(p, "<div class=\"node ");
    return strndup(s, e ? (size_t)(e - s) : strlen(s));
}

TEST(html_renders_in_headless_chromium)
{
    const char *chromium = chromium_or_skip();
    if (!chromium)
        return;
    struct scratch s;
    scratch_make(&s);
    struct example e;
    example_make(&e, true);
    write_page(s.page, e.server);
    example_free(&e);
    char *dom = rendered_dom(chromium, &s);

    /* One element per context (the value contexts are shown on the way). */
    CHECK_EQ(count_substr(dom, "<div class=\"node "), 13);
    CHECK_EQ(count_substr(dom, "<div class=\"node active\""), 11);
    CHECK_EQ(count_substr(dom, "<div class=\"node canceled\""), 1);
    CHECK_EQ(count_substr(dom, "<div class=\"node expired\""), 1);
    CHECK(strstr(dom, "<b>13</b> contexts") != NULL);

    char *server = row_of(dom, "server"), *health = row_of(dom, "GET /health"),
         *users = row_of(dom, "GET /users/42"), *db = row_of(dom, "db query"),
         *render = row_of(dom, "render json"), *orders = row_of(dom, "GET /orders"),
         *metrics = row_of(dom, "metrics flusher"),
         *evil = row_of(dom, "&lt;/script&gt;&lt;b&gt;x");
    /* Tree order, depth and state. */
    CHECK(strstr(dom, server) < strstr(dom, health) && strstr(dom, health) < strstr(dom, users));
    CHECK(strstr(dom, users) < strstr(dom, db) && strstr(dom, db) < strstr(dom, render));
    CHECK(strstr(dom, render) < strstr(dom, orders) && strstr(dom, orders) < strstr(dom, metrics));
    CHECK(strstr(dom, metrics) < strstr(dom, evil));
    CHECK(strstr(server, "class=\"node active\"") && strstr(server, "data-depth=\"0\""));
    CHECK(strstr(users, "class=\"node active\"") && strstr(users, "data-depth=\"1\""));
    CHECK(strstr(db, "class=\"node canceled\"") && strstr(db, "data-depth=\"2\""));
    CHECK(strstr(health, "class=\"node expired\"") && strstr(health, "data-depth=\"1\""));
    CHECK(strstr(evil, "class=\"node active\"") && strstr(evil, "data-depth=\"2\""));
    /* The user's name is text, never markup. */
    CHECK_EQ(count_substr(dom, "<b>x"), 0);
    /* Kind, creation site, refs and children, the value context on the way. */
    CHECK(strstr(users, ">deadline<") && strstr(users, ">src/http.c:212 handle_request()<"));
    CHECK(strstr(evil, "test_html.c:") != NULL);
    CHECK(strstr(users, ">via request-id<") != NULL);
    CHECK(strstr(server, ">cancel<") != NULL);
    /* server: its own reference and one per child or value context below it. */
    CHECK(strstr(server, "<span class=\"col num\">6</span><span class=\"col num\">5</span>"));
    CHECK(strstr(render, "<span class=\"col num\">2</span><span class=\"col num\">0</span>"));

    /* The cause: inline and in a tooltip, with its origin. */
    CHECK(strstr(db, ">\xe2\x86\xb3 code 504: upstream too slow<") != NULL);
    CHECK(strstr(db, "title=\"ECANCELED: code 504, upstream too slow") != NULL);
    CHECK(strstr(db, "at src/db.c:112 db_wait()") != NULL);
    CHECK(strstr(db, "ended 5.0 ms before the dump") != NULL);
    CHECK(strstr(health, "code 408: health check timed out") != NULL);
    CHECK(strstr(health, "ETIMEDOUT") != NULL);
    CHECK(strstr(render, "class=\"cause\"") == NULL);

    /* Deadlines as they stood at the dump, under a header that says so, the
     * same after the (virtual) second the page has been open: 2.455 s and
     * 29.955 s were left, and GET /health's had passed 95 ms before. */
    CHECK(strstr(dom, "<span class=\"col dl\">deadline at dump time</span>") != NULL);
    char *left = text_after(users, "class=\"col dl");
    fprintf(stderr, "GET /users/42: %s\n", left);
    CHECK_STR(left, "in 2.5 s");
    free(left);
    left = text_after(orders, "class=\"col dl");
    CHECK_STR(left, "in 30.0 s");
    free(left);
    left = text_after(health, "class=\"col dl");
    CHECK_STR(left, "passed 95.0 ms ago");
    CHECK(strstr(health, "class=\"col dl late\"") != NULL);
    free(left);
    left = text_after(server, "class=\"col dl");
    CHECK_STR(left, "\xe2\x80\x94"); /* no deadline: a dash */
    free(left);
    CHECK(strstr(dom, "+2 value contexts on the way") != NULL);
    CHECK(strstr(dom, "dumped <span id=\"when\">20") != NULL);

    free(server), free(health), free(users), free(db), free(render), free(orders);
    free(metrics), free(evil);
    free(dom);
    scratch_remove(&s);
}

/* The page's controls, driven by a script appended to it: "Collapse all"
 * leaves the roots, a toggle opens one level, "Expand all" everything; a
 * mouse move over a row shows its hover card, with the cause. */
TEST(html_collapses_and_shows_hover_card_in_chromium)
{
    const char *chromium = chromium_or_skip();
    if (!chromium)
        return;
    struct scratch s;
    scratch_make(&s);
    struct example e;
    example_make(&e, false);
    write_page(s.page, e.server);
    example_free(&e);
    FILE *f = fopen(s.page, "a");
    CHECK(f != NULL);
    fputs("<script>\n"
          "function shown(){return [].map.call(document.querySelectorAll('.node'),\n"
          "  function(e){return e.hidden?0:1}).join('')}\n"
          "var t=document.getElementById('tree');\n"
          "document.getElementById('shut').click();t.dataset.shut=shown();\n"
          "document.querySelector('.node button.tg').click();t.dataset.one=shown();\n"
          "document.getElementById('open').click();t.dataset.open=shown();\n"
          "var db=[].filter.call(document.querySelectorAll('.node'),\n"
          "  function(e){return e.querySelector('.name').textContent==='db query'})[0];\n"
          "db.querySelector('.site').dispatchEvent(new MouseEvent('mousemove',\n"
          "  {bubbles:true,clientX:200,clientY:120}));\n"
          "</script>\n",
          f);
    CHECK_EQ(fclose(f), 0);
    char *dom = rendered_dom(chromium, &s);
    /* server, GET /health, GET /users/42, db query, render json, GET /orders,
     * auth check, cache lookup, worker pool, its two jobs, metrics flusher. */
    CHECK(strstr(dom, "data-shut=\"100000000000\"") != NULL);
    CHECK(strstr(dom, "data-one=\"111001001001\"") != NULL);
    CHECK(strstr(dom, "data-open=\"111111111111\"") != NULL);

    const char *card = strstr(dom, "<div id=\"card\"");
    CHECK(card != NULL);
    const char *end = strstr(card, "<script");
    CHECK(end != NULL);
    char *text = strndup(card, (size_t)(end - card));
    fprintf(stderr, "card: %s\n", text);
    CHECK(strncmp(text, "<div id=\"card\" class=\"canceled\" style=\"left: ", 45) == 0);
    CHECK(strstr(text, "hidden") == NULL);
    CHECK(strstr(text, ">db query<") != NULL);
    CHECK(strstr(text, ">504<") != NULL);
    CHECK(strstr(text, ">upstream too slow<") != NULL);
    CHECK(strstr(text, ">src/db.c:112 db_wait()<") != NULL);
    CHECK(strstr(text, ">src/db.c:64 db_query()<") != NULL);
    CHECK(strstr(text, ">5.0 ms before the dump<") != NULL);
    CHECK(strstr(text, ">in 2.5 s at dump time<") != NULL);
    free(text);
    free(dom);
    scratch_remove(&s);
}

/* cctx_dump(NULL, ...) writes every live tree: an array of several roots. The
 * page is assembled here the way dump.c does it. One root is a chain deep
 * enough that a recursive renderer would be at risk; an empty array says so. */
TEST(html_renders_several_roots_in_chromium)
{
    const char *chromium = chromium_or_skip();
    if (!chromium)
        return;
    enum { DEPTH = 1000 };
    cctx_t *a = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *a1 = cctx_with_cancel(a, NULL);
    cctx_t **chain = malloc(DEPTH * sizeof *chain);
    CHECK(chain != NULL);
    for (int i = 0; i < DEPTH; i++) {
        chain[i] = cctx_with_cancel(i ? chain[i - 1] : cctx_background(), NULL);
        CHECK(chain[i] != NULL);
    }
    CHECK_EQ(cctx_set_name(a, "first root"), 0);
    CHECK_EQ(cctx_set_name(a1, "under first"), 0);
    CHECK_EQ(cctx_set_name(chain[0], "second root"), 0);
    CHECK_EQ(cctx_set_name(chain[DEPTH - 1], "deepest"), 0);
    char *ja = dump_to_string(a, CCTX_DUMP_JSON), *jb = dump_to_string(chain[0], CCTX_DUMP_JSON);
    struct scratch s;
    scratch_make(&s);
    FILE *f = fopen(s.page, "w");
    CHECK(f != NULL);
    cctx__html_begin(f, cctx_now());
    /* "[{...}]\n" each: their elements, comma-separated, in one array. */
    fprintf(f, "[%.*s,%.*s]\n", (int)strlen(ja) - 3, ja + 1, (int)strlen(jb) - 3, jb + 1);
    cctx__html_end(f);
    CHECK_EQ(fclose(f), 0);

    char *dom = rendered_dom(chromium, &s);
    CHECK_EQ(count_substr(dom, "<div class=\"node active\""), 2 + DEPTH);
    CHECK(strstr(dom, "<b>1002</b> contexts") != NULL);
    char *first = row_of(dom, "first root"), *second = row_of(dom, "second root"),
         *deepest = row_of(dom, "deepest");
    CHECK(strstr(first, "data-depth=\"0\"") && strstr(second, "data-depth=\"0\""));
    CHECK(strstr(deepest, "data-depth=\"999\"") != NULL);
    free(first), free(second), free(deepest), free(dom);

    /* No live context at all. */
    f = fopen(s.page, "w");
    CHECK(f != NULL);
    cctx__html_begin(f, cctx_now());
    fputs("[]\n", f);
    cctx__html_end(f);
    CHECK_EQ(fclose(f), 0);
    dom = rendered_dom(chromium, &s);
    CHECK_EQ(count_substr(dom, "<div class=\"node "), 0);
    CHECK(strstr(dom, "<div id=\"msg\">No live contexts.</div>") != NULL);
    free(dom);

    scratch_remove(&s);
    free(ja), free(jb);
    for (int i = DEPTH - 1; i >= 0; i--)
        cctx_release(chain[i]);
    free(chain);
    cctx_release(a1);
    cctx_release(a);
}

/* A screenshot of the example: a PNG of the window's size. The README's
 * docs/dump-view.png is made with CCTX_SCREENSHOT=docs/dump-view.png. */
TEST(html_screenshot_in_headless_chromium)
{
    const char *chromium = chromium_or_skip();
    if (!chromium)
        return;
    struct scratch s;
    scratch_make(&s);
    struct example e;
    example_make(&e, false);
    write_page(s.page, e.server);
    example_free(&e);
    const char *shot = getenv("CCTX_SCREENSHOT");
    if (!shot || !*shot)
        shot = s.shot;
    unlink(shot);
    char flag[1200];
    snprintf(flag, sizeof flag, "--screenshot=%s", shot);
    char *out = run_chromium(chromium, &s, flag);
    free(out);

    FILE *f = fopen(shot, "rb");
    if (!f)
        fprintf(stderr, "no screenshot at %s\n", shot);
    CHECK(f != NULL);
    unsigned char head[24];
    CHECK_EQ(fread(head, 1, sizeof head, f), sizeof head);
    CHECK(memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0);
    CHECK(memcmp(head + 12, "IHDR", 4) == 0);
    long width = (long)head[16] << 24 | head[17] << 16 | head[18] << 8 | head[19];
    long height = (long)head[20] << 24 | head[21] << 16 | head[22] << 8 | head[23];
    CHECK_EQ(width, 1100);
    CHECK_EQ(height, 700);
    CHECK_EQ(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    fclose(f);
    fprintf(stderr, "screenshot: %s, %ld bytes\n", shot, size);
    CHECK(size > 10000); /* a blank page compresses to far less */
    scratch_remove(&s);
}
