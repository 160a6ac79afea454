/* SPDX-License-Identifier: MIT */
/*
 * Section 7: names and cctx_dump. The dump's exact layout is the library's
 * choice; these tests check that what the contract lists is there (kind,
 * name, creation site, state, error and cause, deadline, references and
 * children), that JSON is valid JSON and DOT a digraph with edges, and that
 * bad input is refused.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

static const char key_a;

/* ---- helpers -------------------------------------------------------------- */

struct buf {
    char *data;
    size_t len;
    FILE *f;
};

static void buf_open(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->f = open_memstream(&b->data, &b->len);
    CHECK(b->f != NULL);
}

static char *buf_close(struct buf *b)
{
    CHECK_EQ(fclose(b->f), 0);
    return b->data;
}

static char *dump_text(cctx_t *root, int format)
{
    struct buf b;
    buf_open(&b);
    CHECK_EQ(cctx_dump(root, b.f, format), 0);
    return buf_close(&b);
}

/* The line of `text` that contains `needle` (a copy), or NULL. */
static char *line_with(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    if (!p)
        return NULL;
    const char *s = p, *e = p;
    while (s > text && s[-1] != '\n')
        s--;
    while (*e && *e != '\n')
        e++;
    return strndup(s, (size_t)(e - s));
}

/* Whether `word` is followed, within a few non-digit characters, by the
 * number n: accepts "refs 3", "refs: 3", "refs=3", "\"refs\":3". */
static bool has_count(const char *text, const char *word, long n)
{
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        const char *q = p + strlen(word);
        int skipped = 0;
        while (*q && !isdigit((unsigned char)*q) && *q != '\n' && skipped < 12) {
            q++;
            skipped++;
        }
        if (isdigit((unsigned char)*q) && strtol(q, NULL, 10) == n &&
            (q[-1] != '-' && !isdigit((unsigned char)q[-1])))
            return true;
    }
    return false;
}

/* The creation or cancellation site "test_dump.c:LINE" appears in text. */
#define CHECK_SITE(text, line)                                                       \
    do {                                                                             \
        char *site_ = site(line);                                                    \
        CHECK(strstr((text), site_) != NULL);                                        \
        free(site_);                                                                 \
    } while (0)

static bool contains_any(const char *text, const char *a, const char *b, const char *c)
{
    return (a && strstr(text, a)) || (b && strstr(text, b)) || (c && strstr(text, c));
}

static char *site(int line)
{
    char *s;
    CHECK(asprintf(&s, "test_dump.c:%d", line) > 0);
    return s;
}

/* A minimal strict JSON validator (RFC 8259 grammar, no semantics). */
struct json {
    const char *p;
    int depth;
};

static void json_ws(struct json *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static bool json_value(struct json *j);

static bool json_string(struct json *j)
{
    if (*j->p != '"')
        return false;
    j->p++;
    while (*j->p != '"') {
        unsigned char ch = (unsigned char)*j->p;
        if (ch == 0 || ch < 0x20)
            return false;
        if (ch == '\\') {
            j->p++;
            if (*j->p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)j->p[i]))
                        return false;
                j->p += 5;
                continue;
            }
            if (!strchr("\"\\/bfnrt", *j->p) || *j->p == 0)
                return false;
        }
        j->p++;
    }
    j->p++;
    return true;
}

static bool json_number(struct json *j)
{
    const char *s = j->p;
    if (*j->p == '-')
        j->p++;
    if (*j->p == '0')
        j->p++;
    else if (isdigit((unsigned char)*j->p))
        while (isdigit((unsigned char)*j->p))
            j->p++;
    else
        return false;
    if (*j->p == '.') {
        j->p++;
        if (!isdigit((unsigned char)*j->p))
            return false;
        while (isdigit((unsigned char)*j->p))
            j->p++;
    }
    if (*j->p == 'e' || *j->p == 'E') {
        j->p++;
        if (*j->p == '+' || *j->p == '-')
            j->p++;
        if (!isdigit((unsigned char)*j->p))
            return false;
        while (isdigit((unsigned char)*j->p))
            j->p++;
    }
    return j->p > s;
}

static bool json_container(struct json *j, char close, bool object)
{
    if (++j->depth > 200)
        return false;
    j->p++;
    json_ws(j);
    if (*j->p == close) {
        j->p++;
        j->depth--;
        return true;
    }
    for (;;) {
        json_ws(j);
        if (object) {
            if (!json_string(j))
                return false;
            json_ws(j);
            if (*j->p++ != ':')
                return false;
        }
        if (!json_value(j))
            return false;
        json_ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p++ != close)
            return false;
        j->depth--;
        return true;
    }
}

static bool json_value(struct json *j)
{
    json_ws(j);
    switch (*j->p) {
    case '{': return json_container(j, '}', true);
    case '[': return json_container(j, ']', false);
    case '"': return json_string(j);
    case 't': return strncmp(j->p, "true", 4) == 0 && (j->p += 4);
    case 'f': return strncmp(j->p, "false", 5) == 0 && (j->p += 5);
    case 'n': return strncmp(j->p, "null", 4) == 0 && (j->p += 4);
    default: return json_number(j);
    }
}

static bool json_valid(const char *text)
{
    struct json j = {text, 0};
    if (!json_value(&j))
        return false;
    json_ws(&j);
    return *j.p == 0;
}

/* Runs a python3 script over two JSON documents (sys.argv[1], sys.argv[2]).
 * 1: it passed, 0: it failed, -1: no python3 here. One interpreter start for
 * both, since starting one can take a second or more. */
static int python_check(const char *json1, const char *json2, const char *script)
{
    char *p1 = temp_path_for("cctx-dump-XXXXXX"), *p2 = temp_path_for("cctx-dump-XXXXXX");
    const char *docs[2] = {json1, json2};
    char *paths[2] = {p1, p2};
    for (int i = 0; i < 2; i++) {
        int fd = mkstemp(paths[i]);
        CHECK(fd >= 0);
        size_t len = strlen(docs[i]);
        CHECK_EQ(write(fd, docs[i], len), (long long)len);
        close(fd);
    }
    char *cmd;
    /* The script goes inside single quotes in a shell command: it has none. */
    CHECK(strchr(script, '\'') == NULL);
    CHECK(asprintf(&cmd, "python3 -c '%s' %s %s", script, p1, p2) > 0);
    int rc = system(cmd);
    free(cmd);
    unlink(p1);
    unlink(p2);
    free(p1);
    free(p2);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127)
        return -1;
    return WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

/* ---- names --------------------------------------------------------------- */

TEST(dump_set_name_copies_and_null_clears)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *v = cctx_with_value(c, &key_a, NULL, NULL);
    CHECK(cctx_name(c) == NULL); /* unnamed */

    char buf[32];
    strcpy(buf, "first");
    CHECK_EQ(cctx_set_name(c, buf), 0);
    strcpy(buf, "XXXXX");
    CHECK_STR(cctx_name(c), "first"); /* copied, not borrowed */
    CHECK(cctx_name(c) != buf);

    CHECK_EQ(cctx_set_name(c, "second"), 0);
    CHECK_STR(cctx_name(c), "second");
    CHECK_EQ(cctx_set_name(v, "value one"), 0);
    CHECK_STR(cctx_name(v), "value one");
    CHECK_STR(cctx_name(c), "second");

    CHECK_EQ(cctx_set_name(c, NULL), 0);
    CHECK(cctx_name(c) == NULL);
    CHECK_EQ(cctx_set_name(c, NULL), 0); /* clearing twice is fine */
    CHECK(cctx_name(c) == NULL);
    CHECK_EQ(cctx_set_name(c, ""), 0);
    CHECK_STR(cctx_name(c), "");

    /* Names are kept after cancellation; freeing a named context frees its
     * name (LeakSanitizer checks). */
    CHECK_EQ(cctx_set_name(c, "kept"), 0);
    cctx_t *d = cctx_with_cancel(c, NULL);
    CHECK_EQ(cctx_set_name(d, "child"), 0);
    cctx_release(d);
    CHECK_STR(cctx_name(c), "kept");
    cctx_release(v);
    cctx_release(c);
}

TEST(dump_static_roots_have_fixed_names_and_null_is_einval)
{
    CHECK_STR(cctx_name(cctx_background()), "background");
    CHECK_STR(cctx_name(cctx_todo()), "todo");
    CHECK_EQ(cctx_set_name(cctx_background(), "mine"), EINVAL);
    CHECK_EQ(cctx_set_name(cctx_todo(), NULL), EINVAL);
    CHECK_STR(cctx_name(cctx_background()), "background");
    CHECK_STR(cctx_name(cctx_todo()), "todo");
    CHECK_EQ(cctx_set_name(NULL, "x"), EINVAL);
    CHECK(cctx_name(NULL) == NULL);
}

/* ---- a small tree -------------------------------------------------------- */

struct tree {
    cctx_t *root, *req, *val, *worker, *idle;
    cctx_cancel_t *root_cancel, *idle_cancel;
    int root_line, req_line, val_line, worker_line, idle_line;
};

static void tree_make(struct tree *t)
{
    t->root_line = __LINE__ + 1;
    t->root = cctx_with_cancel(cctx_background(), &t->root_cancel);
    t->req_line = __LINE__ + 1;
    t->req = cctx_with_timeout(t->root, CCTX_SEC(3600), NULL);
    t->val_line = __LINE__ + 1;
    t->val = cctx_with_value(t->req, &key_a, (void *)1, NULL);
    t->worker_line = __LINE__ + 1;
    t->worker = cctx_with_cancel(t->val, NULL);
    t->idle_line = __LINE__ + 1;
    t->idle = cctx_with_cancel(t->root, &t->idle_cancel);
    CHECK(t->root && t->req && t->val && t->worker && t->idle);
    CHECK_EQ(cctx_set_name(t->root, "rootctx"), 0);
    CHECK_EQ(cctx_set_name(t->req, "reqctx"), 0);
    CHECK_EQ(cctx_set_name(t->val, "valctx"), 0);
    CHECK_EQ(cctx_set_name(t->worker, "workerctx"), 0);
    CHECK_EQ(cctx_set_name(t->idle, "idlectx"), 0);
    /* worker: 3 references (ours and two more). */
    cctx_ref(t->worker);
    cctx_ref(t->worker);
}

static void tree_free(struct tree *t)
{
    cctx_release(t->worker);
    cctx_release(t->worker);
    cctx_release(t->worker);
    cctx_release(t->idle);
    cctx_release(t->val);
    cctx_release(t->req);
    cctx_release(t->root);
}

/* Dumps a context that is done as text (echoed to stderr), which shows its
 * message `msg` and the site at `line` where it ended; returns the text. */
static char *dump_done(cctx_t *ctx, const char *msg, int line)
{
    char *text = dump_text(ctx, CCTX_DUMP_TEXT);
    fputs(text, stderr);
    CHECK(strstr(text, msg) != NULL);
    CHECK_SITE(text, line);
    return text;
}

TEST(dump_text_shows_names_kinds_sites_states_refs_children)
{
    struct tree t;
    tree_make(&t);
    char *text = dump_text(t.root, CCTX_DUMP_TEXT);
    fputs(text, stderr);

    /* Only the text form's own lines: each starts (after indentation) with a
     * word, never with stray punctuation of another format. */
    for (const char *ln = text; *ln; ln = strchr(ln, '\n') ? strchr(ln, '\n') + 1 : "") {
        const char *p = ln;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\n' && *p != 0 && !isalnum((unsigned char)*p)) {
            fprintf(stderr, "unexpected text line: %.60s\n", ln);
            CHECK(isalnum((unsigned char)*p));
        }
    }

    /* Every attached context, in tree order (parents before children). */
    const char *r = strstr(text, "rootctx"), *q = strstr(text, "reqctx"),
               *w = strstr(text, "workerctx"), *i = strstr(text, "idlectx");
    CHECK(r && q && w && i);
    CHECK(r < q && q < w);
    CHECK(r < i);

    char *rl = line_with(text, "rootctx"), *ql = line_with(text, "reqctx"),
         *wl = line_with(text, "workerctx"), *il = line_with(text, "idlectx");
    CHECK_SITE(rl, t.root_line);
    CHECK_SITE(ql, t.req_line);
    CHECK_SITE(wl, t.worker_line);
    CHECK_SITE(il, t.idle_line);
    /* The value context between req and worker is shown on the way. */
    CHECK_SITE(text, t.val_line);

    /* Kinds. */
    CHECK(strstr(rl, "cancel") != NULL);
    CHECK(contains_any(ql, "deadline", "timer", "timeout"));
    CHECK(strstr(text, "value") != NULL);
    /* State: all active; req shows its deadline. */
    CHECK(contains_any(rl, "active", "ACTIVE", NULL));
    CHECK(contains_any(wl, "active", "ACTIVE", NULL));
    CHECK(strstr(ql, "deadline") != NULL);
    /* References and children. */
    CHECK(has_count(wl, "ref", 3));
    CHECK(has_count(il, "ref", 1));
    CHECK(has_count(rl, "child", 2)); /* req and idle */
    CHECK(has_count(ql, "child", 1)); /* worker, through the value context */
    CHECK(has_count(wl, "child", 0));

    free(rl), free(ql), free(wl), free(il);
    free(text);
    tree_free(&t);
}

TEST(dump_text_shows_error_and_cause_of_done_contexts)
{
    struct tree t;
    tree_make(&t);
    int cancel_line = __LINE__ + 1;
    cctx_cancel_cause(t.idle_cancel, 42, "boom happened");
    char *text = dump_done(t.idle, "boom happened", cancel_line); /* where it started */
    CHECK(strstr(text, "idlectx") != NULL);
    CHECK(contains_any(text, "ECANCELED", "canceled", "Canceled"));
    CHECK(strstr(text, "42") != NULL);
    free(text);

    /* The parent and the sibling's subtree are untouched. (Whether a canceled
     * child still shows under its parent until released is left open.) */
    text = dump_text(t.root, CCTX_DUMP_TEXT);
    char *rl = line_with(text, "rootctx"), *wl = line_with(text, "workerctx");
    CHECK(rl && wl);
    CHECK(strstr(rl, "active") != NULL);
    CHECK(strstr(wl, "active") != NULL);
    free(wl);
    free(rl);
    free(text);
    tree_free(&t);

    /* A deadline that fired (fake clock). */
    cctx_fake_clock_start(0);
    int line = __LINE__ + 1;
    cctx_t *d = cctx_with_timeout_cause(cctx_background(), CCTX_MSEC(10), 7, "too slow", NULL);
    cctx_set_name(d, "slowctx");
    cctx_fake_clock_advance(CCTX_MSEC(10));
    text = dump_done(d, "too slow", line);
    CHECK(contains_any(text, "ETIMEDOUT", "deadline exceeded", "timed out"));
    free(text);
    cctx_release(d);
    cctx_fake_clock_stop();
}

TEST(dump_canceled_context_drops_its_children)
{
    struct tree t;
    tree_make(&t);
    int line = __LINE__ + 1;
    cctx_cancel_cause(t.root_cancel, 5, "shutting down");
    char *text = dump_done(t.root, "shutting down", line);
    CHECK(strstr(text, "rootctx") != NULL);
    CHECK(strstr(text, "reqctx") == NULL);
    CHECK(strstr(text, "workerctx") == NULL);
    CHECK(strstr(text, "idlectx") == NULL);
    CHECK(has_count(text, "child", 0));
    free(text);
    /* The children themselves still show the parent's cause. */
    text = dump_text(t.worker, CCTX_DUMP_TEXT);
    CHECK(strstr(text, "workerctx") != NULL);
    CHECK(strstr(text, "shutting down") != NULL);
    free(text);
    tree_free(&t);
}

/* ---- JSON ----------------------------------------------------------------- */

static const char tricky_name[] = "we\"ird \\ name\nwith\ttabs";

TEST(dump_json_is_valid_and_has_the_fields)
{
    struct tree t;
    tree_make(&t);
    CHECK_EQ(cctx_set_name(t.idle, tricky_name), 0);
    char *json = dump_text(t.root, CCTX_DUMP_JSON);
    fputs(json, stderr);
    CHECK(json_valid(json));
    CHECK(strstr(json, "\"rootctx\"") != NULL);
    CHECK(strstr(json, "\"reqctx\"") != NULL);
    CHECK(strstr(json, "\"workerctx\"") != NULL);
    CHECK(strstr(json, "test_dump.c") != NULL);
    char num[32];
    snprintf(num, sizeof num, "%d", t.worker_line);
    CHECK(strstr(json, num) != NULL);

    /* A canceled context's cause in JSON. */
    cctx_cancel_cause(t.idle_cancel, 42, "json \"boom\"");
    char *cjson = dump_text(t.idle, CCTX_DUMP_JSON);
    fputs(cjson, stderr);
    CHECK(json_valid(cjson));
    CHECK(strstr(cjson, "json \\\"boom\\\"") != NULL);
    CHECK(strstr(cjson, "42") != NULL);

    /* Semantic checks by a real parser: every expected name appears as a
     * string value (the tricky one decoded exactly), every creation line as a
     * number, and the tree is nested: workerctx's object lies inside reqctx's,
     * inside rootctx's. The canceled one carries its message and code. */
    char *script;
    CHECK(asprintf(&script,
                   "import json,sys\n"
                   "d=json.load(open(sys.argv[1]))\n"
                   "vals=[]\n"
                   "def walk(x,path):\n"
                   "  if isinstance(x,dict):\n"
                   "    for v in x.values(): walk(v,path+[x])\n"
                   "  elif isinstance(x,list):\n"
                   "    for v in x: walk(v,path)\n"
                   "  else: vals.append((x,path))\n"
                   "walk(d,[])\n"
                   "s=[v for v,p in vals]\n"
                   "for n in [\"rootctx\",\"reqctx\",\"workerctx\",%s]:\n"
                   "  assert n in s, n\n"
                   "for l in [%d,%d,%d]: assert l in s, l\n"
                   "def holder(n): return [p for v,p in vals if v==n][0]\n"
                   "w=holder(\"workerctx\")\n"
                   "ids=lambda p:[id(o) for o in p]\n"
                   "assert id(holder(\"reqctx\")[-1]) in ids(w)\n"
                   "assert id(holder(\"rootctx\")[-1]) in ids(w)\n"
                   "c=json.dumps(json.load(open(sys.argv[2])))\n"
                   "assert \"boom\" in c and \"42\" in c\n",
                   "\"we\\\"ird \\\\ name\\nwith\\ttabs\"", t.root_line, t.req_line,
                   t.worker_line) > 0);
    int py = python_check(json, cjson, script);
    if (py < 0)
        SKIP("python3 not found: the JSON cannot be checked with a parser");
    CHECK(py == 1);
    free(script);
    free(cjson);
    free(json);
    tree_free(&t);
}

/* ---- DOT ------------------------------------------------------------------ */

/* Outside quoted strings, braces balance; quotes are closed on every line. */
static bool dot_well_formed(const char *text)
{
    int depth = 0;
    bool in_str = false;
    for (const char *p = text; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_str = false;
            else if (*p == '\n')
                return false;
        } else if (*p == '"') {
            in_str = true;
        } else if (*p == '{') {
            depth++;
        } else if (*p == '}') {
            if (--depth < 0)
                return false;
        }
    }
    return !in_str && depth == 0;
}

TEST(dump_dot_is_a_digraph_with_edges)
{
    struct tree t;
    tree_make(&t);
    CHECK_EQ(cctx_set_name(t.idle, tricky_name), 0);
    char *dot = dump_text(t.root, CCTX_DUMP_DOT);
    fputs(dot, stderr);
    CHECK(strstr(dot, "digraph") != NULL);
    CHECK(dot_well_formed(dot));
    /* root->req, root->idle, req->worker; or req->val->worker when the value
     * context on the way is drawn as a node of its own. */
    int edges = count_substr(dot, "->");
    CHECK(edges == 3 || (edges == 4 && strstr(dot, "valctx") != NULL));
    CHECK(strstr(dot, "rootctx") != NULL);
    CHECK(strstr(dot, "workerctx") != NULL);
    CHECK(strstr(dot, "test_dump.c") != NULL);
    free(dot);

    /* A lone context: a digraph with no edge. */
    dot = dump_text(t.worker, CCTX_DUMP_DOT);
    CHECK(strstr(dot, "digraph") != NULL);
    CHECK(dot_well_formed(dot));
    CHECK_EQ(count_substr(dot, "->"), 0);
    free(dot);
    tree_free(&t);
}

/* ---- value contexts on the way, under a value context, deep trees ------- */

TEST(dump_shows_value_context_on_the_way_with_name_and_site)
{
    struct tree t;
    tree_make(&t);
    char *s = site(t.val_line);
    char *text = dump_text(t.root, CCTX_DUMP_TEXT);
    fputs(text, stderr);
    CHECK(strstr(text, s) != NULL);
    CHECK(strstr(text, "valctx") != NULL);
    char *vl = line_with(text, s);
    CHECK(strstr(vl, "value") != NULL);
    free(vl);
    free(text);

    char *json = dump_text(t.root, CCTX_DUMP_JSON);
    fputs(json, stderr);
    CHECK(json_valid(json));
    CHECK(strstr(json, "\"valctx\"") != NULL);
    char num[32];
    snprintf(num, sizeof num, "%d", t.val_line);
    CHECK(strstr(json, num) != NULL);
    free(json);

    char *dot = dump_text(t.root, CCTX_DUMP_DOT);
    CHECK(strstr(dot, "valctx") != NULL);
    free(dot);
    free(s);
    tree_free(&t);
}

TEST(dump_under_value_context_shows_its_descendants)
{
    cctx_t *p = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *v = cctx_with_value(p, &key_a, NULL, NULL);
    cctx_t *kid = cctx_with_cancel(v, NULL);
    cctx_t *other = cctx_with_cancel(p, NULL); /* not under v */
    CHECK_EQ(cctx_set_name(v, "valroot"), 0);
    CHECK_EQ(cctx_set_name(kid, "kidctx"), 0);
    CHECK_EQ(cctx_set_name(other, "otherctx"), 0);
    char *text = dump_text(v, CCTX_DUMP_TEXT);
    fputs(text, stderr);
    CHECK(strstr(text, "valroot") != NULL);
    CHECK(strstr(text, "kidctx") != NULL);
    CHECK(strstr(text, "otherctx") == NULL);
    free(text);
    cctx_release(other);
    cctx_release(kid);
    cctx_release(v);
    cctx_release(p);
}

struct deep_dump {
    cctx_t *root;
    int format;
    char *out;
    int rc;
};

static void *deep_dump_main(void *arg)
{
    struct deep_dump *d = arg;
    struct buf b;
    buf_open(&b);
    d->rc = cctx_dump(d->root, b.f, d->format);
    d->out = buf_close(&b);
    return NULL;
}

TEST(dump_deep_tree_needs_no_deep_stack)
{
    int depth = TEST_UNDER_TSAN ? 5000 : 20000;
    cctx_t **chain = malloc((size_t)depth * sizeof *chain);
    CHECK(chain != NULL);
    chain[0] = cctx_with_cancel(cctx_background(), NULL);
    for (int i = 1; i < depth; i++) {
        chain[i] = i % 3 ? cctx_with_cancel(chain[i - 1], NULL)
                         : cctx_with_value(chain[i - 1], &key_a, NULL, NULL);
        CHECK(chain[i] != NULL);
    }
    int cancelables = 0;
    for (int i = 0; i < depth; i++)
        cancelables += i == 0 || i % 3 != 0;

    /* A small stack: a recursion over 20,000 levels could not fit in it. */
    for (int format = CCTX_DUMP_TEXT; format <= CCTX_DUMP_DOT; format++) {
        struct deep_dump d = {.root = chain[0], .format = format};
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 512 * 1024);
        pthread_t t;
        CHECK_EQ(pthread_create(&t, &attr, deep_dump_main, &d), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
        pthread_attr_destroy(&attr);
        CHECK_EQ(d.rc, 0);
        if (format == CCTX_DUMP_DOT) {
            CHECK(dot_well_formed(d.out));
            /* One edge per context below the root, or per cancelable one
             * when value contexts are not drawn as nodes. */
            int edges = count_substr(d.out, "->");
            CHECK(edges == depth - 1 || edges == cancelables - 1);
        } else if (format == CCTX_DUMP_TEXT) {
            /* A line per context (value contexts as "via" lines), and a
             * size linear in the depth: indented all the way down, the
             * lines took 400 MB. */
            CHECK_EQ(count_substr(d.out, "\n"), depth);
            CHECK(strlen(d.out) < (size_t)depth * 300);
            char deepest[128], too_far[128];
            snprintf(deepest, sizeof deepest, "\n%80s[%d] cancel ", "", cancelables - 1);
            CHECK(strstr(d.out, deepest) != NULL);
            snprintf(too_far, sizeof too_far, "\n%82s", "");
            CHECK(strstr(d.out, too_far) == NULL);
        } else {
            CHECK_EQ(count_substr(d.out, "{") >= cancelables, 1);
            CHECK_EQ(count_substr(d.out, "{"), count_substr(d.out, "}"));
            CHECK_EQ(count_substr(d.out, "["), count_substr(d.out, "]"));
        }
        free(d.out);
    }
    for (int i = depth - 1; i >= 0; i--)
        cctx_release(chain[i]);
    free(chain);
}

TEST(dump_bad_input_is_einval)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    struct buf b;
    buf_open(&b);
    /* The whole process needs the registry (CCTX_DEBUG), off here. */
    CHECK_EQ(cctx_dump(NULL, b.f, CCTX_DUMP_TEXT), ENOTSUP);
    CHECK_EQ(cctx_dump(c, NULL, CCTX_DUMP_TEXT), EINVAL);
    CHECK_EQ(cctx_dump(c, b.f, -1), EINVAL);
    CHECK_EQ(cctx_dump(c, b.f, CCTX_DUMP_HTML + 1), EINVAL);
    char *out = buf_close(&b);
    CHECK_EQ(strlen(out), 0); /* nothing written on bad input */
    free(out);

    /* The static roots dump fine. */
    FILE *devnull = fopen("/dev/null", "w");
    CHECK(devnull != NULL);
    for (int f = CCTX_DUMP_TEXT; f <= CCTX_DUMP_DOT; f++) {
        CHECK_EQ(cctx_dump(cctx_background(), devnull, f), 0);
        CHECK_EQ(cctx_dump(cctx_todo(), devnull, f), 0);
    }
    fclose(devnull);
    cctx_release(c);
}

TEST(dump_write_error_is_eio)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    FILE *ro = fopen("/dev/null", "r"); /* writes to it fail */
    CHECK(ro != NULL);
    CHECK_EQ(cctx_dump(c, ro, CCTX_DUMP_TEXT), EIO);
    fclose(ro);
    cctx_release(c);
}

/* cctx_dump(NULL) before the program made any context: the registry is on
 * and empty. */
CHILD(dump_null_of_an_empty_registry)
{
    for (int f = CCTX_DUMP_TEXT; f <= CCTX_DUMP_HTML; f++) {
        char *out = dump_text(NULL, f);
        CHECK(strstr(out, "background") != NULL);
        free(out);
    }
    printf("dumped\n");
}

TEST(dump_null_with_an_empty_registry)
{
    const char *env[] = {"CCTX_DEBUG=trees", NULL};
    struct child c;
    run_child("dump_null_of_an_empty_registry", env, &c);
    if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0 || !strstr(c.out, "dumped\n")) {
        fprintf(stderr, "child status %#x, stderr:\n%s\n", c.status, c.err);
        abort();
    }
    child_done(&c);
}
