/* SPDX-License-Identifier: MIT */
/*
 * CCTX_TRACE: the trace file of a child process that builds a small tree,
 * flushes, cancels it, lets a deadline fire and exits, checked with Python's
 * json module: it parses, each thread's events are in order, and the flow
 * arrows of the cancellation lead from it to exactly the contexts of the
 * tree it reached.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

static void after_fn(void *arg)
{
    (*(int *)arg)++;
}

CHILD(traced)
{
    const char *path = getenv("CCTX_TRACE");
    CHECK(path);
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    cctx_set_name(root, "root");
    cctx_t *a = cctx_with_cancel(root, NULL);
    static int key;
    cctx_t *v = cctx_with_value(a, &key, NULL, NULL);
    cctx_t *b = cctx_with_cancel(v, NULL);
    cctx_t *c = cctx_with_timeout(root, CCTX_SEC(3600), NULL);
    cctx_t *other = cctx_with_cancel(cctx_background(), NULL);
    int ran = 0;
    cctx_after_t reg;
    cctx_after_func(b, &reg, after_fn, &ran);
    printf("ctx root %p\nctx a %p\nctx v %p\nctx b %p\nctx c %p\nctx other %p\n", (void *)root,
           (void *)a, (void *)v, (void *)b, (void *)c, (void *)other);

    /* A flush leaves a complete file: keep a copy of it as it is now. */
    CHECK_EQ(cctx_trace_flush(), 0);
    char *mid;
    CHECK(asprintf(&mid, "%s.mid", path) > 0);
    copy_file(path, mid, 0644);
    free(mid);

    cctx_cancel(cancel);
    CHECK_EQ(ran, 1);
    cctx_t *d = cctx_with_timeout(cctx_background(), CCTX_MSEC(1), NULL);
    printf("ctx d %p\n", (void *)d);
    CHECK_EQ(cctx_wait(d, CCTX_SEC(10)), ETIMEDOUT);
    cctx_release(d);
    cctx_release(other);
    cctx_release(c);
    cctx_release(b);
    cctx_release(v);
    cctx_release(a);
    cctx_release(root);
}

/* argv: the trace, the copy made after the first flush, the child's stdout. */
static const char check_script[] =
    "import json, sys\n"
    "t = json.load(open(sys.argv[1]))\n"
    "mid = json.load(open(sys.argv[2]))\n"
    "ids = {}\n"
    "for line in open(sys.argv[3]):\n"
    "    w = line.split()\n"
    "    if w and w[0] == \"ctx\": ids[w[1]] = w[2]\n"
    "name = {v: k for k, v in ids.items()}\n"
    "ev = t[\"traceEvents\"]\n"
    "assert t[\"otherData\"][\"dropped_events\"] == \"0\", t[\"otherData\"]\n"
    "# each thread: events in time order, B/E balanced\n"
    "last, depth = {}, {}\n"
    "for e in ev:\n"
    "    if e[\"ph\"] in \"XBE\":\n"
    "        assert e[\"ts\"] >= last.get(e[\"tid\"], 0), e\n"
    "        last[e[\"tid\"]] = e[\"ts\"]\n"
    "        depth[e[\"tid\"]] = depth.get(e[\"tid\"], 0) + {\"B\": 1, \"E\": -1, \"X\": 0}[e[\"ph\"]]\n"
    "        assert depth[e[\"tid\"]] >= 0, e\n"
    "assert all(d == 0 for d in depth.values()), depth\n"
    "# creations, with their parents\n"
    "made = {name[e[\"args\"][\"ctx\"]]: e[\"args\"][\"parent\"] for e in ev\n"
    "        if e[\"name\"].startswith(\"create \") and e[\"args\"][\"ctx\"] in name}\n"
    "assert made[\"a\"] == ids[\"root\"] and made[\"v\"] == ids[\"a\"], made\n"
    "assert made[\"b\"] == ids[\"v\"] and made[\"c\"] == ids[\"root\"], made\n"
    "assert set(made) == {\"root\", \"a\", \"v\", \"b\", \"c\", \"other\", \"d\"}, made\n"
    "# the cancellation: origin, cause, and what it reached\n"
    "i = [k for k, e in enumerate(ev) if e[\"ph\"] == \"B\" and e[\"name\"] == \"cancel\"]\n"
    "assert len(i) == 1, i\n"
    "cb = ev[i[0]]\n"
    "assert cb[\"args\"][\"ctx\"] == ids[\"root\"] and cb[\"args\"][\"origin\"] == ids[\"root\"], cb\n"
    "assert cb[\"args\"][\"err\"] == \"ECANCELED\" and cb[\"args\"][\"msg\"] == \"context canceled\", cb\n"
    "assert cb[\"args\"][\"origin_at\"].startswith(\"tests/test_trace.c:\"), cb\n"
    "inside, k = [], i[0] + 1\n"
    "while not (ev[k][\"ph\"] == \"E\" and ev[k][\"name\"] == \"cancel\" and ev[k][\"tid\"] == cb[\"tid\"]):\n"
    "    if ev[k][\"tid\"] == cb[\"tid\"]: inside.append(ev[k])\n"
    "    k += 1\n"
    "done = [e for e in inside if e[\"ph\"] == \"X\" and e[\"name\"].startswith(\"done \")]\n"
    "assert sorted(name[e[\"args\"][\"ctx\"]] for e in done) == [\"a\", \"b\", \"c\", \"root\"], done\n"
    "afters = [e for e in inside if e[\"ph\"] == \"B\" and e[\"name\"] == \"after-function\"]\n"
    "assert len(afters) == 1 and afters[0][\"args\"][\"ctx\"] == ids[\"b\"], afters\n"
    "# one arrow per context reached: tail on the cancel slice, head on its done slice\n"
    "tails = {e[\"id\"]: e for e in ev if e[\"ph\"] == \"s\"}\n"
    "heads = {e[\"id\"]: e for e in ev if e[\"ph\"] == \"f\"}\n"
    "assert set(tails) == set(heads), (tails, heads)\n"
    "mine = [f for f in heads if tails[f][\"ts\"] == cb[\"ts\"] and tails[f][\"tid\"] == cb[\"tid\"]]\n"
    "assert len(mine) == 4, mine\n"
    "assert sorted(heads[f][\"ts\"] for f in mine) == sorted(e[\"ts\"] for e in done)\n"
    "assert all(heads[f][\"bp\"] == \"e\" for f in mine)\n"
    "# the deadline fired on the timer thread, with its own arrow\n"
    "dl = [e for e in ev if e[\"ph\"] == \"B\" and e[\"name\"] == \"deadline\"]\n"
    "assert len(dl) == 1 and dl[0][\"args\"][\"ctx\"] == ids[\"d\"], dl\n"
    "assert dl[0][\"args\"][\"err\"] == \"ETIMEDOUT\" and dl[0][\"tid\"] != cb[\"tid\"], dl\n"
    "threads = {e[\"tid\"] for e in ev if e[\"ph\"] == \"M\" and e[\"name\"] == \"thread_name\"}\n"
    "assert {cb[\"tid\"], dl[0][\"tid\"]} <= threads, threads\n"
    "# every context released\n"
    "freed = {name[e[\"args\"][\"ctx\"]] for e in ev if e[\"name\"].startswith(\"release \")\n"
    "         and e[\"args\"][\"ctx\"] in name}\n"
    "assert freed == set(made), freed\n"
    "# the copy taken after the first flush: a complete document, before the cancel\n"
    "assert any(e[\"name\"] == \"create cancel\" for e in mid[\"traceEvents\"])\n"
    "assert not any(e[\"name\"] == \"cancel\" for e in mid[\"traceEvents\"])\n"
    "print(\"trace ok:\", len(ev), \"events\")\n";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    CHECK(fclose(f) == 0);
}

/* Checks the trace at path with a Python statement over `t`, the parsed
 * file (and `ev`, its events); skipped without python3, except in CI. */
static void check_trace(const char *path, const char *statement)
{
    if (!have_python())
        SKIP("trace: python3 not found, the JSON cannot be checked");
    char *cmd;
    CHECK(asprintf(&cmd,
                   "python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); "
                   "ev=t[\"traceEvents\"]; %s' %s",
                   statement, path) > 0);
    CHECK_EQ(system(cmd), 0);
    free(cmd);
}

TEST(trace_records_tree_cancel_flows_deadline_and_releases)
{
    char *dir = temp_path_for("cctx-trace-XXXXXX");
    CHECK(mkdtemp(dir));
    char *env_trace, *trace, *out, *script, *cmd;
    CHECK(asprintf(&trace, "%s/trace.json", dir) > 0);
    CHECK(asprintf(&env_trace, "CCTX_TRACE=%s", trace) > 0);
    const char *env[] = {env_trace, NULL};
    struct child c;
    run_child("traced", env, &c);
    if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
        fprintf(stderr, "child failed (%#x):\n%s\n", c.status, c.err);
        abort();
    }
    CHECK(strstr(c.err, "cctx:") == NULL);
    CHECK(asprintf(&out, "%s/out.txt", dir) > 0);
    write_file(out, c.out);
    if (!have_python()) {
        SKIP("trace: python3 not found, the JSON cannot be checked");
    } else {
        CHECK(asprintf(&script, "%s/check.py", dir) > 0);
        write_file(script, check_script);
        CHECK(asprintf(&cmd, "python3 %s %s %s.mid %s", script, trace, trace, out) > 0);
        CHECK_EQ(system(cmd), 0);
        free(cmd);
        unlink(script);
        free(script);
    }
    child_done(&c);
    char *mid;
    CHECK(asprintf(&mid, "%s.mid", trace) > 0);
    unlink(mid);
    unlink(trace);
    unlink(out);
    rmdir(dir);
    free(dir);
    free(mid);
    free(out);
    free(trace);
    free(env_trace);
}

CHILD(trace_flood)
{
    for (int i = 0; i < 20000; i++)
        cctx_release(cctx_with_cancel(cctx_background(), NULL));
}

TEST(trace_memory_is_bounded_and_drops_are_counted)
{
    char *path = run_traced("trace_flood");
    /* 40,000 events on one thread, a ring of 16,384: the newest are kept. */
    check_trace(path, "n=sum(1 for e in ev if e[\"ph\"]==\"X\"); "
                      "d=int(t[\"otherData\"][\"dropped_events\"]); "
                      "assert n == 16384 and d == 40000 - 16384, (n, d)");
    unlink(path);
    free(path);
}

static void *short_lived(void *arg)
{
    cctx_release(cctx_with_cancel((cctx_t *)arg, NULL));
    return NULL;
}

CHILD(trace_threads_come_and_go)
{
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    for (int i = 0; i < 200; i++) {
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, short_lived, root), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
    }
    cctx_release(root);
}

TEST(trace_keeps_the_events_of_threads_that_exited)
{
    char *path = run_traced("trace_threads_come_and_go");
    /* Each of the 200 threads wrote its ring as it exited: its create and
     * release events are there, on a track of its own. */
    check_trace(path, "main=ev[1][\"tid\"]; "
                      "x=[e[\"tid\"] for e in ev if e[\"ph\"]==\"X\" and e[\"tid\"]!=main]; "
                      "assert len(set(x)) == 200 and len(x) == 400, (len(set(x)), len(x)); "
                      /* one ring for the main thread, one that every other reused */
                      "assert t[\"otherData\"][\"buffers\"] == \"2\", t[\"otherData\"]");
    unlink(path);
    free(path);
}

CHILD(trace_big_cancel)
{
    /* 17,000 children: more events inside one cancellation than a ring holds. */
    cctx_cancel_t *cancel;
    cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
    static cctx_t *kids[17000];
    for (int i = 0; i < 17000; i++)
        kids[i] = cctx_with_cancel(root, NULL);
    cctx_cancel(cancel);
    for (int i = 0; i < 17000; i++)
        cctx_release(kids[i]);
    cctx_release(root);
}

TEST(trace_dropped_events_leave_slices_balanced_and_arrows_bound)
{
    char *path = run_traced("trace_big_cancel");
    check_trace(path,
                "assert int(t[\"otherData\"][\"dropped_events\"]) > 0; "
                "d=0\n"
                "for e in ev:\n"
                "    d += {\"B\": 1, \"E\": -1}.get(e[\"ph\"], 0); assert d >= 0, e\n"
                "starts={(e[\"tid\"], e[\"ts\"]) for e in ev if e[\"ph\"]==\"B\"}\n"
                "tails=[e for e in ev if e[\"ph\"]==\"s\"]\n"
                "assert all((e[\"tid\"], e[\"ts\"]) in starts for e in tails)\n"
                "assert {e[\"id\"] for e in tails} == {e[\"id\"] for e in ev if e[\"ph\"]==\"f\"}");
    unlink(path);
    free(path);
}

CHILD(trace_fork)
{
    cctx_release(cctx_with_cancel(cctx_background(), NULL));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) { /* the child makes more events than the parent, then exits */
        for (int i = 0; i < 1000; i++)
            cctx_release(cctx_with_cancel(cctx_background(), NULL));
        exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cctx_release(cctx_with_cancel(cctx_background(), NULL));
}

TEST(trace_fork_child_leaves_the_file_alone)
{
    if (TEST_UNDER_TSAN) { /* TSan kills children of a threaded fork that start threads */
        SKIP_IN_THIS_BUILD("ThreadSanitizer kills children of a threaded fork that start threads");
    }
    char *path = run_traced("trace_fork");
    /* The parent's four events (two contexts), and nothing of the child's. */
    check_trace(path, "x=[e for e in ev if e[\"ph\"]==\"X\"]; "
                      "assert len(x) == 4 and len({e[\"pid\"] for e in ev}) == 1, len(x)");
    unlink(path);
    free(path);
}

/* A fork waits for a flush under way: the child's copy of the file's stdio
 * buffer must be empty, or its exit() writes the parent's half-written
 * events into the parent's file. Another thread holds the lock a flush
 * holds until the forking thread sleeps, and says when it let go. */
CHILD(trace_fork_mid_flush)
{
    cctx_release(cctx_with_cancel(cctx_background(), NULL));
    struct lock_holder holder;
    lock_holder_start(&holder, cctx__test_hold_trace_lock);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        exit(0);                     /* exit(), which flushes stdio's buffers */
    CHECK(atomic_load(&holder.let_go)); /* the fork waited for the flush */
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    lock_holder_join(&holder);
}

TEST(trace_fork_waits_for_a_flush_under_way)
{
    if (TEST_UNDER_TSAN) { /* the child's exit() reports the holder as a leaked thread */
        SKIP_IN_THIS_BUILD("ThreadSanitizer reports the forking parent's threads as leaked");
    }
    char *path = run_traced("trace_fork_mid_flush");
    check_trace(path, "x=[e for e in ev if e[\"ph\"]==\"X\"]; assert len(x) == 2, len(x)");
    unlink(path);
    free(path);
}

CHILD(trace_pid_in_path)
{
    printf("pid %ld\n", (long)getpid());
    cctx_release(cctx_with_cancel(cctx_background(), NULL));
}

TEST(trace_path_takes_the_pid_and_a_bad_path_is_said)
{
    char *pattern = temp_path_for("cctx-trace-%p.json"), *env_trace;
    CHECK(asprintf(&env_trace, "CCTX_TRACE=%s", pattern) > 0);
    const char *env[] = {env_trace, NULL};
    struct child c;
    run_child("trace_pid_in_path", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    char *name, *path;
    CHECK(asprintf(&name, "cctx-trace-%ld.json", strtol(strstr(c.out, "pid ") + 4, NULL, 10)) > 0);
    path = temp_path_for(name);
    free(name);
    free(pattern);
    free(env_trace);
    check_trace(path, "assert sum(1 for e in ev if e[\"ph\"]==\"X\") == 2");
    unlink(path);
    free(path);
    child_done(&c);

    const char *bad[] = {"CCTX_TRACE=/nonexistent-dir/trace.json", NULL};
    run_child("trace_pid_in_path", bad, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "cctx: CCTX_TRACE: cannot write /nonexistent-dir/trace.json") != NULL);
    child_done(&c);
}

/* Each write goes back over the closing lines of the last: a FIFO (or a
 * pipe, or a terminal) cannot be, and every write failed unsaid, the file
 * holding the header alone. Tracing is refused at start-up instead, with a
 * word on stderr. */
TEST(trace_to_a_fifo_is_refused_at_start_up)
{
    char leaf[64];
    snprintf(leaf, sizeof leaf, "cctx-trace-fifo-%ld", (long)getpid());
    char *fifo = temp_path_for(leaf);
    unlink(fifo);
    CHECK_EQ(mkfifo(fifo, 0600), 0);
    char *env_trace;
    CHECK(asprintf(&env_trace, "CCTX_TRACE=%s", fifo) > 0);
    const char *env[] = {env_trace, NULL};
    struct child c;
    /* Without a reader, the open would wait for one: it fails at once. */
    run_child("trace_pid_in_path", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "cctx: CCTX_TRACE: cannot write") != NULL);
    child_done(&c);
    /* With one, it opens, and is refused. */
    int keep = open(fifo, O_RDWR | O_CLOEXEC);
    CHECK(keep >= 0);
    run_child("trace_pid_in_path", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "is not a regular file, tracing off") != NULL);
    child_done(&c);
    close(keep);
    unlink(fifo);
    free(env_trace);
    free(fifo);
}

/* The trace is written at exit, long after the contexts it names were
 * made: it kept the callers' pointers to their sites, which may be gone by
 * then (a module unloaded with dlclose: the exit crashed). It keeps copies. */
CHILD(traces_a_site_that_goes_away)
{
    char *file = strdup("gone-file.c"), *func = strdup("gone_func");
    CHECK(file && func);
    cctx_release(cctx_with_cancel_at(cctx_background(), NULL, file, 7, func));
    memset(file, 'X', strlen(file)); /* the site's memory, reused */
    memset(func, 'X', strlen(func));
}

TEST(trace_keeps_its_own_copy_of_each_site)
{
    char *path = run_traced("traces_a_site_that_goes_away");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    CHECK(strstr(text, "gone-file.c") != NULL);
    CHECK(strstr(text, "gone_func") != NULL);
    CHECK(strstr(text, "XXXXXXXXX") == NULL);
    unlink(path);
    free(path);
}

TEST(trace_flush_without_tracing_does_nothing)
{
    CHECK_EQ(cctx_trace_flush(), 0);
}

TEST(trace_path_of_any_length_is_the_file_written)
{
    /* A path longer than 4 KiB less a little, which the system takes: the
     * file must be written there, not at a path cut short. */
    char *dir = temp_path_for("cctx-trace-long-XXXXXX");
    CHECK(mkdtemp(dir));
    char *path = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&path, &size);
    CHECK(f);
    fputs(dir, f);
    while (ftell(f) < 3900)
        fputs("/.", f);
    fputs("/trace-", f);
    while (ftell(f) < 4085)
        fputc('x', f);
    fputs(".json", f);
    CHECK_EQ(fclose(f), 0);
    char *env_trace;
    CHECK(asprintf(&env_trace, "CCTX_TRACE=%s", path) > 0);
    const char *env[] = {env_trace, NULL};
    struct child c;
    run_child("trace_pid_in_path", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "cctx:") == NULL);
    child_done(&c);
    CHECK(access(path, R_OK) == 0);
    check_trace(path, "assert sum(1 for e in ev if e[\"ph\"]==\"X\") == 2");
    unlink(path);
    CHECK_EQ(rmdir(dir), 0); /* and nothing else was made in it */
    free(dir);
    free(env_trace);
    free(path);
}

static atomic_int recording_stop;
static atomic_long recorded;

static void *recorder(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&recording_stop, memory_order_acquire)) {
        cctx_cancel_t *cancel;
        cctx_t *p = cctx_with_cancel(cctx_background(), &cancel);
        cctx_t *kid = cctx_with_cancel(p, NULL);
        cctx_cancel(cancel);
        cctx_release(kid);
        cctx_release(p);
        atomic_fetch_add_explicit(&recorded, 8, memory_order_relaxed);
    }
    return NULL;
}

/* One thread records cancellations as fast as it can, dropping events when
 * its ring is full, while this one flushes over and over. */
CHILD(trace_flush_while_recording)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, recorder, NULL), 0);
    for (int i = 0; i < 8 || atomic_load_explicit(&recorded, memory_order_relaxed) < 2 * 16384;
         i++)
        CHECK_EQ(cctx_trace_flush(), 0);
    atomic_store_explicit(&recording_stop, 1, memory_order_release);
    CHECK_EQ(pthread_join(t, NULL), 0);
}

TEST(trace_flush_while_another_thread_drops_events)
{
    char *path = run_traced("trace_flush_while_recording");
    check_trace(path, "d=0\n"
                      "for e in ev:\n"
                      "    d += {\"B\": 1, \"E\": -1}.get(e[\"ph\"], 0); assert d >= 0, e\n"
                      "starts={(e[\"tid\"], e[\"ts\"]) for e in ev if e[\"ph\"]==\"B\"}\n"
                      "assert all((e[\"tid\"], e[\"ts\"]) in starts\n"
                      "           for e in ev if e[\"ph\"]==\"s\")");
    unlink(path);
    free(path);
}

/* The outer cancellation's after-function flushes the file, the outer
 * "cancel" and "after-function" slices then open in it, and cancels a
 * context of 17,000 children: more events than a ring holds, so that the
 * inner cancellation's start is dropped and its end is kept. */
static cctx_t *many_kids[17000];

static void cancel_many(void *arg)
{
    cctx_cancel_t *cancel;
    cctx_t *inner = cctx_with_cancel(cctx_background(), &cancel);
    for (int i = 0; i < 17000; i++)
        many_kids[i] = cctx_with_cancel(inner, NULL);
    cctx_cancel(cancel);
    *(cctx_t **)arg = inner;
}

/* What cancel_many made, then the two contexts around it. */
static void release_many(cctx_t *inner, cctx_t *outer)
{
    for (int i = 0; i < 17000; i++)
        cctx_release(many_kids[i]);
    cctx_release(inner);
    cctx_release(outer);
}

static void flush_then_cancel_many(void *arg)
{
    CHECK_EQ(cctx_trace_flush(), 0);
    cancel_many(arg);
}

CHILD(trace_drop_inside_written_slices)
{
    cctx_cancel_t *cancel;
    cctx_t *outer = cctx_with_cancel(cctx_background(), &cancel), *inner = NULL;
    cctx_after_t reg;
    cctx_after_func(outer, &reg, flush_then_cancel_many, &inner);
    cctx_cancel(cancel);
    /* Written before the releases below push the ends out of the ring. */
    CHECK_EQ(cctx_trace_flush(), 0);
    release_many(inner, outer);
}

/* Two after-functions of one context: the first to run flushes, so that
 * its "after-function" slice is open in the file, and returns; the second
 * cancels a context of 17,000 children, so that the first one's end and
 * the second's start are dropped, and the second's end and the inner
 * cancellation's are kept. */
static void flush_or_cancel_many(void *arg)
{
    static int runs;
    if (runs++ == 0)
        CHECK_EQ(cctx_trace_flush(), 0);
    else
        cancel_many(arg);
}

CHILD(trace_drop_end_of_written_slice)
{
    cctx_cancel_t *cancel;
    cctx_t *outer = cctx_with_cancel(cctx_background(), &cancel), *inner = NULL;
    cctx_after_t reg[2];
    cctx_after_func(outer, &reg[0], flush_or_cancel_many, &inner);
    cctx_after_func(outer, &reg[1], flush_or_cancel_many, &inner);
    cctx_cancel(cancel);
    CHECK_EQ(cctx_trace_flush(), 0);
    release_many(inner, outer);
}

/* Every E ends the slice its B began: a viewer pairs an E with the
 * innermost open B of its thread, whatever their names. */
static const char nested_slices_match[] =
    "assert int(t[\"otherData\"][\"dropped_events\"]) > 0\n"
    "open = {}\n"
    "for e in ev:\n"
    "    s = open.setdefault(e.get(\"tid\"), [])\n"
    "    if e[\"ph\"] == \"B\": s.append(e[\"name\"])\n"
    "    if e[\"ph\"] == \"E\": assert s and s.pop() == e[\"name\"], (s, e)\n"
    "assert not any(open.values()), open";

TEST(trace_end_whose_start_was_dropped_closes_no_other_slice)
{
    char *path = run_traced("trace_drop_inside_written_slices");
    check_trace(path, nested_slices_match);
    unlink(path);
    free(path);
}

TEST(trace_slice_whose_end_was_dropped_takes_no_other_end)
{
    char *path = run_traced("trace_drop_end_of_written_slice");
    check_trace(path, nested_slices_match);
    unlink(path);
    free(path);
}

/* Every E ends the slice its B began, in time order, and a slice that
 * ended is not left open: the two slices of last_cancellation, the
 * trace's last, begin with none open. */
static const char ended_slices_closed[] =
    "assert int(t[\"otherData\"][\"dropped_events\"]) > 0\n"
    "open, last = {}, {}\n"
    "for e in ev:\n"
    "    if e[\"ph\"] not in \"BEX\": continue\n"
    "    assert e[\"ts\"] >= last.get(e[\"tid\"], 0), e\n"
    "    last[e[\"tid\"]] = e[\"ts\"]\n"
    "    s = open.setdefault(e[\"tid\"], [])\n"
    "    if e[\"ph\"] == \"B\": s.append(e)\n"
    "    if e[\"ph\"] == \"E\": assert s and s.pop()[\"name\"] == e[\"name\"], (s, e)\n"
    "assert not any(open.values()), open\n"
    "last = [e for e in ev if e[\"ph\"] == \"B\" and e[\"args\"][\"func\"] == "
    "\"last_cancellation\"]\n"
    "assert [e[\"name\"] for e in last] == [\"cancel\", \"after-function\"], last\n"
    "open = []\n"
    "for e in ev:\n"
    "    if e is last[0]: assert not open, open\n"
    "    if e[\"ph\"] == \"B\": open.append(e)\n"
    "    if e[\"ph\"] == \"E\": open.pop()\n";

static void do_nothing(void *arg)
{
    (void)arg;
}

/* A cancellation whose after-function runs nothing: two slices, the last
 * ones of the trace, on the calling thread. */
static void last_cancellation(void)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_after_t reg;
    cctx_after_func(c, &reg, do_nothing, NULL);
    cctx_cancel(cancel);
    cctx_release(c);
}

static void flood_ring(void)
{
    for (int i = 0; i < 17000; i++)
        cctx_release(cctx_with_cancel(cctx_background(), NULL));
}

static void flush_and_return(void *arg)
{
    (void)arg;
    CHECK_EQ(cctx_trace_flush(), 0);
}

/* An after-function flushes, its "cancel" and "after-function" slices then
 * open in the file, and returns; more events than a ring holds follow, so
 * both ends are dropped, with no slice around them. */
CHILD(trace_drop_end_of_outermost_slice)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_after_t reg;
    cctx_after_func(c, &reg, flush_and_return, NULL);
    cctx_cancel(cancel);
    cctx_release(c);
    flood_ring();
    last_cancellation();
}

TEST(trace_slice_whose_end_was_dropped_with_none_around_it_is_ended)
{
    char *path = run_traced("trace_drop_end_of_outermost_slice");
    check_trace(path, ended_slices_closed);
    unlink(path);
    free(path);
}

/* 40 cancellations, each in the after-function of the one before: 80
 * slices, of which the 32 outermost are followed. The innermost
 * after-function flushes, so that 32 are open in the file, and every end
 * is then dropped. */
static void cancel_nested(void *arg)
{
    int level = (int)(intptr_t)arg;
    if (level == 40) {
        CHECK_EQ(cctx_trace_flush(), 0);
        return;
    }
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_after_t reg;
    cctx_after_func(c, &reg, cancel_nested, (void *)(intptr_t)(level + 1));
    cctx_cancel(cancel);
    cctx_release(c);
}

CHILD(trace_drop_ends_of_deep_slices)
{
    cancel_nested((void *)(intptr_t)0);
    flood_ring();
    last_cancellation();
}

TEST(trace_deep_slices_whose_ends_were_dropped_leave_later_ones_in)
{
    char *path = run_traced("trace_drop_ends_of_deep_slices");
    check_trace(path, ended_slices_closed);
    check_trace(path, "n = sum(1 for e in ev if e[\"ph\"] == \"B\" and "
                      "e[\"args\"][\"func\"] == \"cancel_nested\"); assert n == 32, n");
    unlink(path);
    free(path);
}
