/* SPDX-License-Identifier: MIT */
/*
 * Strings from the outside world in what the library writes: names and cause
 * messages with bytes that are not UTF-8 (overlongs, surrogates, code points
 * above U+10FFFF, stray and missing continuation bytes), quotes, backslashes,
 * control characters and "</script>". The JSON dump, the JSON inside the
 * HTML page and a CCTX_TRACE file must parse with Python's json module
 * (strict, from bytes that must decode as UTF-8), every well-formed part of a
 * string must come back exactly and each other byte as U+FFFD; the text form
 * keeps one line per context and the DOT form quoted strings, both in UTF-8.
 * Then the lifetime of the strings cctx_name hands out, which renames by
 * another thread (a dump, say) must not cut short.
 */
#define _GNU_SOURCE
#include <cctx.h>

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cctx_config.h" /* CCTX_USE_THREAD_NAMES */
#include "harness.h"
#include "json.h"
#include "support.h"
#include "testhooks.h"

static const char *const hostile[] = {
    "plain ascii",
    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
    "\xef\xbf\xbd real U+FFFD, \xe2\x80\xa8 U+2028",
    "bad\xff\x62yte\xfe", /* \x62 is "b": a hex escape would otherwise swallow it */
    "\xc0\xaf overlong /, \xc1\xbf",
    "\xe0\x80\xaf overlong in 3",
    "\xf0\x80\x80\xaf overlong in 4",
    "lone \xed\xa0\x80 surrogate",
    "low \xed\xbf\xbf surrogate",
    "above \xf4\x90\x80\x80 max",
    "\xf5\x80\x80\x80 and \xf8\x88\x80\x80\x80",
    "stray \x80\xbf continuation",
    "cut \xe2\x82 in the middle",
    "cut at the end \xe2\x82",
    "cut at the end \xf0\x9f\x98",
    "</script><script>alert(1)</script>",
    "<!-- not a comment",
    "quote\" back\\slash end\\",
    "ctl \x01\x02\x1f\n\r\t\b\f del\x7f.",
};
#define NHOSTILE (sizeof hostile / sizeof *hostile)

/* The cause message made of hostile[i], apart from the names. */
static const char *message(size_t i)
{
    static char text[NHOSTILE][64];
    snprintf(text[i], sizeof text[i], "m: %s", hostile[i]);
    return text[i];
}

/* ---- helpers -------------------------------------------------------------- */

static char *temp_path(const char *what)
{
    char *name, *path;
    CHECK(asprintf(&name, "cctx-json-%s-XXXXXX", what) > 0);
    path = temp_path_for(name);
    free(name);
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    return path;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    CHECK(f);
    CHECK_EQ(fwrite(data, 1, len, f), len);
    CHECK_EQ(fclose(f), 0);
}

/* The checker, given the document, what it is (json, html or trace) and a
 * file of the strings it must hold, one per line in hex. Each string is
 * expected as Python decodes its bytes with every byte that starts no
 * well-formed sequence replaced by U+FFFD on its own (the handler `one`). */
static const char check_script[] =
    "import codecs, json, sys\n"
    "codecs.register_error('one', lambda e: ('\\ufffd', e.start + 1))\n"
    "def no_constant(x): raise ValueError('not JSON: ' + x)\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "text = raw.decode('utf-8')  # strict: the whole output is UTF-8\n"
    "if sys.argv[2] == 'html':\n"
    "    head = '<script id=\"cctx-data\" type=\"application/json\"'\n"
    "    assert text.count(head) == 1\n"
    "    body = text[text.index('>', text.index(head)) + 1:]\n"
    "    text = body[:body.index('</script>')]\n"
    "    assert '<' not in text, 'a < in the data element'\n"
    "doc = json.loads(text, strict=True, parse_constant=no_constant)\n"
    "strings = set()\n"
    "def walk(x):\n"
    "    if isinstance(x, dict):\n"
    "        for k, v in x.items(): strings.add(k); walk(v)\n"
    "    elif isinstance(x, list):\n"
    "        for v in x: walk(v)\n"
    "    elif isinstance(x, str): strings.add(x)\n"
    "walk(doc)\n"
    "for line in open(sys.argv[3]).read().split():\n"
    "    want = bytes.fromhex(line).decode('utf-8', 'one')\n"
    "    assert want in strings, (want, sorted(strings))\n"
    "print('ok:', sys.argv[2], len(strings), 'strings')\n";

/* Checks `doc` (len bytes) with check_script: every string of want[] must be
 * among its string values. Skipped without python3, except in CI. */
static void python_check(const char *doc, size_t len, const char *kind, const char *const *want,
                         size_t nwant)
{
    if (!have_python())
        SKIP("json: python3 not found, %s cannot be checked", kind);
    char *docp = temp_path("doc"), *wantp = temp_path("want"), *script = temp_path("py");
    write_file(docp, doc, len);
    write_file(script, check_script, strlen(check_script));
    FILE *f = fopen(wantp, "w");
    CHECK(f);
    for (size_t i = 0; i < nwant; i++) {
        for (const unsigned char *p = (const unsigned char *)want[i]; *p; p++)
            fprintf(f, "%02x", *p);
        fputc('\n', f);
    }
    CHECK_EQ(fclose(f), 0);
    char *cmd;
    CHECK(asprintf(&cmd, "python3 %s %s %s %s", script, docp, kind, wantp) > 0);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    free(cmd);
    unlink(docp), unlink(wantp), unlink(script);
    free(docp), free(wantp), free(script);
}

/* text is well-formed UTF-8: checked here on its own, by RFC 3629's table
 * of byte ranges, rather than with the decoder under test. */
static bool all_utf8(const char *text)
{
    static const struct {
        unsigned char lead_lo, lead_hi, second_lo, second_hi, len;
    } rows[] = {
        {0xc2, 0xdf, 0x80, 0xbf, 2}, {0xe0, 0xe0, 0xa0, 0xbf, 3}, {0xe1, 0xec, 0x80, 0xbf, 3},
        {0xed, 0xed, 0x80, 0x9f, 3}, {0xee, 0xef, 0x80, 0xbf, 3}, {0xf0, 0xf0, 0x90, 0xbf, 4},
        {0xf1, 0xf3, 0x80, 0xbf, 4}, {0xf4, 0xf4, 0x80, 0x8f, 4},
    };
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t r = 0;
        while (r < 8 && (*p < rows[r].lead_lo || *p > rows[r].lead_hi))
            r++;
        if (r == 8 || p[1] < rows[r].second_lo || p[1] > rows[r].second_hi)
            return false;
        for (int i = 2; i < rows[r].len; i++)
            if (p[i] < 0x80 || p[i] > 0xbf)
                return false;
        p += rows[r].len;
    }
    return true;
}

/* ---- the decoder ------------------------------------------------------------ */

TEST(json_utf8_decoder_takes_well_formed_sequences_only)
{
    static const struct {
        const char *s;
        size_t len;
        uint32_t cp;
    } cases[] = {
        {"A", 1, 0x41},
        {"\x7f", 1, 0x7f},
        {"\xc2\x80", 2, 0x80},
        {"\xdf\xbf", 2, 0x7ff},
        {"\xe0\xa0\x80", 3, 0x800},
        {"\xed\x9f\xbf", 3, 0xd7ff},
        {"\xee\x80\x80", 3, 0xe000},
        {"\xef\xbf\xbf", 3, 0xffff},
        {"\xf0\x90\x80\x80", 4, 0x10000},
        {"\xf4\x8f\xbf\xbf", 4, 0x10ffff},
        {"\x80", 0, 0},             /* continuation without a lead */
        {"\xc0\x80", 0, 0},         /* overlong NUL */
        {"\xc1\xbf", 0, 0},         /* overlong */
        {"\xe0\x9f\xbf", 0, 0},     /* overlong */
        {"\xf0\x8f\xbf\xbf", 0, 0}, /* overlong */
        {"\xed\xa0\x80", 0, 0},     /* U+D800 */
        {"\xed\xbf\xbf", 0, 0},     /* U+DFFF */
        {"\xf4\x90\x80\x80", 0, 0}, /* U+110000 */
        {"\xf5\x80\x80\x80", 0, 0},
        {"\xff", 0, 0},
        {"\xc3", 0, 0}, /* cut short by the end */
        {"\xe2\x82", 0, 0},
        {"\xf0\x9f\x98", 0, 0},
        {"\xe2\x82" "A", 0, 0}, /* cut short by an ASCII byte */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint32_t cp = 0;
        size_t len = cctx__utf8_char((const unsigned char *)cases[i].s, &cp);
        if (len != cases[i].len || (len && cp != cases[i].cp)) {
            fprintf(stderr, "case %zu: len %zu cp %#x\n", i, len, (unsigned)cp);
            CHECK(0);
        }
    }
}

/* ---- the dump: JSON, HTML, text and DOT ------------------------------------ */

struct hostile_tree {
    cctx_t *root, *ctx[NHOSTILE], *val[NHOSTILE];
    char *huge; /* a megabyte long, not all UTF-8 */
};

/* Under root, for each hostile string: a value context named with it and,
 * under that, a context named with it, every other one canceled with its
 * message. */
static void hostile_make(struct hostile_tree *t)
{
    cctx_cancel_t *cancel;
    t->root = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_set_name(t->root, "root"), 0);
    for (size_t i = 0; i < NHOSTILE; i++) {
        t->val[i] = cctx_with_value(t->root, &t->val[i], NULL, NULL);
        t->ctx[i] = cctx_with_cancel(t->val[i], &cancel);
        CHECK_EQ(cctx_set_name(t->val[i], hostile[i]), 0);
        CHECK_EQ(cctx_set_name(t->ctx[i], hostile[i]), 0);
        if (i % 2 == 0)
            cctx_cancel_cause(cancel, (int)i, message(i));
    }
    size_t mb = 1 << 20;
    t->huge = malloc(mb + 1);
    CHECK(t->huge);
    static const char piece[] = "\xc3\xa9<\xff\"\xed\xa0\x80x\n";
    for (size_t i = 0; i < mb; i++)
        t->huge[i] = piece[i % (sizeof piece - 1)];
    t->huge[mb] = 0;
}

static void hostile_free(struct hostile_tree *t)
{
    for (size_t i = 0; i < NHOSTILE; i++) {
        cctx_release(t->ctx[i]);
        cctx_release(t->val[i]);
    }
    cctx_release(t->root);
    free(t->huge);
}

/* A context named and canceled with the huge string, under root. */
static cctx_t *huge_child(struct hostile_tree *t)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(t->root, &cancel);
    CHECK_EQ(cctx_set_name(c, t->huge), 0);
    cctx_cancel_cause(cancel, 1, t->huge);
    return c;
}

TEST(json_dump_and_html_page_parse_with_any_bytes_in_names_and_messages)
{
    struct hostile_tree t;
    hostile_make(&t);
    char *json = dump_to_string(t.root, CCTX_DUMP_JSON);
    char *html = dump_to_string(t.root, CCTX_DUMP_HTML);
    CHECK(all_utf8(json));
    CHECK(all_utf8(html));
    const char *want[NHOSTILE + (NHOSTILE + 1) / 2];
    size_t nwant = 0;
    for (size_t i = 0; i < NHOSTILE; i++) {
        want[nwant++] = hostile[i];
        if (i % 2 == 0)
            want[nwant++] = message(i);
    }
    python_check(json, strlen(json), "json", want, nwant);
    python_check(html, strlen(html), "html", want, nwant);
    free(html);
    free(json);

    /* A megabyte-long name and message, written whole. */
    cctx_t *big = huge_child(&t);
    json = dump_to_string(big, CCTX_DUMP_JSON);
    CHECK(strlen(json) > 2 * strlen(t.huge));
    python_check(json, strlen(json), "json", (const char *[]){t.huge}, 1);
    free(json);
    cctx_release(big);
    hostile_free(&t);
}

/* Outside quoted strings the DOT text has no newline inside a quote, and
 * every quote closes on its line. */
static bool dot_quotes_close(const char *text)
{
    bool in_str = false;
    for (const char *p = text; *p; p++) {
        if (in_str && *p == '\\' && p[1] && p[1] != '\n')
            p++;
        else if (*p == '"')
            in_str = !in_str;
        else if ((unsigned char)*p < 0x20 && (*p != '\n' || in_str))
            return false;
    }
    return !in_str;
}

TEST(json_text_and_dot_dumps_keep_their_shape_with_any_bytes)
{
    struct hostile_tree t;
    hostile_make(&t);
    cctx_t *big = huge_child(&t);

    /* Text: one context per line (and one per "via" line), each line starting
     * with a word, and nothing but UTF-8. */
    char *text = dump_to_string(t.root, CCTX_DUMP_TEXT);
    CHECK(all_utf8(text));
    int lines = 0;
    for (const char *ln = text; *ln; ln = strchr(ln, '\n') + 1, lines++) {
        CHECK(strchr(ln, '\n') != NULL);
        while (*ln == ' ')
            ln++;
        if (!isalnum((unsigned char)*ln)) {
            fprintf(stderr, "unexpected text line: %.60s\n", ln);
            CHECK(0);
        }
    }
    /* The root, each child with its via line (a canceled one stays listed
     * until released), and the huge one. */
    CHECK_EQ(lines, 2 + 2 * (int)NHOSTILE);
    CHECK(strstr(text, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"") != NULL);
    CHECK(strstr(text, "\"quote\\\" back\\\\slash end\\\\\"") != NULL);
    CHECK(strstr(text, "\"lone \\xed\\xa0\\x80 surrogate\"") != NULL);
    free(text);
    /* A canceled one shows its message on its line too. */
    text = dump_to_string(t.ctx[NHOSTILE - 1], CCTX_DUMP_TEXT);
    CHECK(all_utf8(text));
    CHECK_EQ(count_substr(text, "\n"), 1);
    CHECK(strstr(text, "\"m: ctl \\x01\\x02\\x1f\\n\\r\\t\\x08\\x0c del\\x7f.\"") != NULL);
    free(text);
    text = dump_to_string(big, CCTX_DUMP_TEXT);
    CHECK(all_utf8(text));
    CHECK_EQ(count_substr(text, "\n"), 1);
    CHECK(strlen(text) > 2 * strlen(t.huge));
    free(text);

    /* DOT: quoted strings that close, in UTF-8. */
    char *dot = dump_to_string(t.root, CCTX_DUMP_DOT);
    CHECK(all_utf8(dot));
    CHECK(dot_quotes_close(dot));
    CHECK(strstr(dot, "caf\xc3\xa9 \xe2\x82\xac") != NULL);
    free(dot);
    dot = dump_to_string(big, CCTX_DUMP_DOT);
    CHECK(all_utf8(dot));
    CHECK(dot_quotes_close(dot));
    free(dot);
    cctx_release(big);
    hostile_free(&t);
}

/* ---- the trace -------------------------------------------------------------- */

static void *named_thread(void *arg)
{
    CHECK(pthread_setname_np(pthread_self(), arg) == 0);
    cctx_release(cctx_with_cancel(cctx_background(), NULL));
    return NULL;
}

CHILD(trace_hostile)
{
    cctx_cancel_t *cancel;
    for (size_t i = 0; i < NHOSTILE; i++) {
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        CHECK_EQ(cctx_set_name(c, hostile[i]), 0);
        cctx_cancel_cause(cancel, (int)i, message(i));
        cctx_release(c);
    }
    /* Longer than the bytes an event keeps: cut, and still JSON. */
    char junk[100];
    memset(junk, 0x80, sizeof junk - 1);
    junk[sizeof junk - 1] = 0;
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_set_name(c, junk), 0);
    cctx_release(c);
    /* A thread name is anybody's bytes too. */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, named_thread, "thr\xff\xc3"), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
}

TEST(json_trace_file_parses_with_any_bytes_in_names_and_messages)
{
    char *path = temp_path("trace"), *env_trace;
    CHECK(asprintf(&env_trace, "CCTX_TRACE=%s", path) > 0);
    const char *env[] = {env_trace, NULL};
    struct child c;
    run_child("trace_hostile", env, &c);
    if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
        fprintf(stderr, "child failed (%#x):\n%s\n", c.status, c.err);
        abort();
    }
    child_done(&c);
    FILE *f = fopen(path, "r");
    CHECK(f);
    char *doc = NULL;
    size_t cap = 0, len = 0;
    FILE *m = open_memstream(&doc, &cap);
    CHECK(m);
    for (int ch; (ch = fgetc(f)) != EOF; len++)
        fputc(ch, m);
    fclose(f);
    CHECK_EQ(fclose(m), 0);
    CHECK(all_utf8(doc));
    /* Each name (on its release) and each message (on its cancellation),
     * the name of 99 stray bytes as the 39 an event keeps, the thread's. */
    char cut[40];
    memset(cut, 0x80, sizeof cut - 1);
    cut[sizeof cut - 1] = 0;
    const char *want[2 * NHOSTILE + 2];
    for (size_t i = 0; i < NHOSTILE; i++) {
        CHECK(strlen(message(i)) < 40); /* kept whole */
        want[2 * i] = hostile[i];
        want[2 * i + 1] = message(i);
    }
    want[2 * NHOSTILE] = cut;
    want[2 * NHOSTILE + 1] = "thr\xff\xc3";
    /* A build that reads no thread names (CCTX_PORTABLE) names the track
     * "thread N" instead. */
    python_check(doc, len, "trace", want, 2 * NHOSTILE + 1 + CCTX_USE_THREAD_NAMES);
    free(doc);
    unlink(path);
    free(path);
    free(env_trace);
}

/* ---- what cctx_name hands out ------------------------------------------------ */

TEST(json_name_stays_valid_until_the_context_is_freed)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_set_name(c, "first"), 0);
    const char *first = cctx_name(c);
    /* Renamed and cleared: the string handed out still reads the same (a
     * freed one would be reused by the next name of the same size). */
    CHECK_EQ(cctx_set_name(c, "other"), 0);
    CHECK_STR(first, "first");
    CHECK_STR(cctx_name(c), "other");
    const char *other = cctx_name(c);
    CHECK_EQ(cctx_set_name(c, NULL), 0);
    CHECK(cctx_name(c) == NULL);
    CHECK_STR(first, "first");
    CHECK_STR(other, "other");
    /* An earlier name comes back as the same string, with no new copy: a
     * loop that sets a few names over and over does not grow. */
    CHECK_EQ(cctx_set_name(c, "first"), 0);
    CHECK(cctx_name(c) == first);
    long after = cctx__test_live_allocs();
    for (int i = 0; i < 10000; i++) {
        CHECK_EQ(cctx_set_name(c, i % 3 == 0 ? "first" : i % 3 == 1 ? "other" : NULL), 0);
        CHECK_EQ(cctx__test_live_allocs(), after);
    }
    CHECK(cctx_name(c) == first);
    cctx_release(c); /* every name goes with it */
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
}

struct renaming {
    cctx_t *ctx, *val;
    atomic_int stop;
    atomic_long renames;
    char names[4][2048];
};

static void *renamer(void *arg)
{
    struct renaming *r = arg;
    for (long i = 0; !atomic_load_explicit(&r->stop, memory_order_acquire); i++) {
        CHECK_EQ(cctx_set_name(r->ctx, i % 5 == 4 ? NULL : r->names[i % 4]), 0);
        CHECK_EQ(cctx_set_name(r->val, r->names[(i + 1) % 4]), 0);
        atomic_fetch_add_explicit(&r->renames, 1, memory_order_release);
    }
    return NULL;
}

/* One thread renames a context (and the value context above it) while this
 * one dumps it, as JSON and as text, and reads its name. */
TEST(json_dump_while_another_thread_renames)
{
    struct renaming r = {.stop = 0};
    for (int i = 0; i < 4; i++) {
        memset(r.names[i], 'a' + i, sizeof r.names[i] - 1);
        r.names[i][sizeof r.names[i] - 1] = 0;
    }
    cctx_t *root = cctx_with_cancel(cctx_background(), NULL);
    r.val = cctx_with_value(root, &r, NULL, NULL);
    r.ctx = cctx_with_cancel(r.val, NULL);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, renamer, &r), 0);
    int rounds = TEST_UNDER_TSAN ? 100 : 300;
    for (int i = 0; i < rounds || atomic_load_explicit(&r.renames, memory_order_acquire) < 1000;
         i++) {
        char *json = dump_to_string(root, CCTX_DUMP_JSON);
        char *text = dump_to_string(root, CCTX_DUMP_TEXT);
        CHECK(strlen(json) > 0 && strlen(text) > 0);
        free(text);
        free(json);
        const char *name = cctx_name(r.ctx);
        CHECK(name == NULL || strlen(name) == sizeof r.names[0] - 1);
    }
    atomic_store_explicit(&r.stop, 1, memory_order_release);
    CHECK_EQ(pthread_join(t, NULL), 0);
    cctx_release(r.ctx);
    cctx_release(r.val);
    cctx_release(root);
}
