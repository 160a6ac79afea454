/* SPDX-License-Identifier: MIT */
/*
 * fuzz_dump: what users write into a context (names, cause messages) comes
 * out again in cctx_dump's four formats and in the CCTX_TRACE file, two of
 * which are JSON and one HTML. The input builds a small tree on the fake
 * clock, with hostile names and messages assembled from fragments: invalid
 * and cut UTF-8, controls, quotes and backslashes, "</script>", "<!--",
 * characters outside the BMP, long runs. Every JSON dump, the JSON inside
 * every HTML page, and the trace file after every flush must be valid; DOT
 * strings must be closed on the line they open; no dump may fail.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "internal.h" /* cctx__debug_enable, cctx__trace_start */
#include "json_check.h"

enum { NNODE = 12, TEXTMAX = 1 << 16 };

static const char key;

static struct node {
    cctx_t *ctx;
    cctx_cancel_t *cancel;
} nodes[NNODE];

static char text[TEXTMAX + 1];

/* ---- hostile text -------------------------------------------------------------- */

static const char *const fragments[] = {
    "</script>", "</SCRIPT ", "<!--", "<script>", "-->", "\"", "\\", "\\u0000", "'",
    "\x01", "\x1f", "\x7f", "\n\r\t", "&amp;<b>",
    "\xc3\xa9",         /* é */
    "\xe2\x82\xac",     /* € */
    "\xf0\x9f\x98\x80", /* U+1F600, outside the BMP */
    "\xe2\x80\xa8",     /* U+2028, a line separator JavaScript once refused in strings */
    "\xef\xbb\xbf",     /* a byte order mark */
    /* invalid UTF-8: */
    "\xff", "\x80", "\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80", "\xf0\x9f\x98",
};
enum { NFRAG = sizeof fragments / sizeof *fragments };

/* Assembles a NUL-terminated text from the input: fragments, raw bytes and
 * long repetitions (so that any cut, such as the trace's at 39 bytes, lands
 * inside a character somewhere). NULL if the input says so. */
static const char *hostile(struct input *in)
{
    uint8_t pieces = in_u8(in);
    if (pieces == 0xff)
        return NULL;
    size_t n = 0;
    for (int p = 0; p < pieces % 12; p++) {
        uint8_t sel = in_u8(in);
        const char *frag;
        char raw[17];
        if (sel % 4 == 0) {
            frag = in_string(in, raw, 16); /* raw bytes */
            if (!frag)
                continue;
        } else {
            frag = fragments[(sel >> 2) % NFRAG];
        }
        size_t len = strlen(frag);
        /* Mostly once; sometimes up to thousands of times. */
        size_t times = sel & 0x80 ? 1 + (size_t)in_u16(in) % 4096 : 1;
        for (size_t t = 0; t < times && n + len <= TEXTMAX; t++, n += len)
            memcpy(text + n, frag, len);
    }
    text[n] = 0;
    return text;
}

/* ---- DOT ------------------------------------------------------------------------ */

/* Every quoted string of the DOT output closes on the line it opens (a raw
 * newline or an unescaped quote in a name would break the graph). */
static void check_dot(const char *dot, size_t len)
{
    FUZZ_CHECK(len >= 2 && strncmp(dot, "strict digraph cctx {\n", 22) == 0);
    FUZZ_CHECK(strcmp(dot + len - 2, "}\n") == 0);
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = dot[i];
        if (in_str && c == '\\') {
            FUZZ_CHECK(i + 1 < len && dot[i + 1] != '\n');
            i++;
        } else if (c == '"') {
            in_str = !in_str;
        } else if (c == '\n') {
            FUZZ_CHECK(!in_str);
        }
    }
    FUZZ_CHECK(!in_str);
}

static void dump_all_formats(cctx_t *root)
{
    for (int format = CCTX_DUMP_TEXT; format <= CCTX_DUMP_HTML; format++) {
        size_t len;
        char *out = dump_checked(root, format, &len);
        if (format == CCTX_DUMP_DOT)
            check_dot(out, len);
        free(out);
    }
}

/* ---- the trace file ---------------------------------------------------------------- */

/* The file grows with every flush: the library rewrites only its closing
 * lines. Each input reads only what its flush added, and checks the header
 * with it as one document: the file is a complete document after each flush
 * exactly when every such piece, after the header, is. */
static int trace_fd = -1; /* ours, on the file the library writes */
static char *trace_header; /* everything before the first closing lines */
static size_t header_len;
static off_t tail_at; /* where the closing lines of the last flush start */
static const char TAIL[] = "\n],\n\"otherData\":";

static char *read_from(off_t from, size_t *len)
{
    struct stat st;
    FUZZ_CHECK(fstat(trace_fd, &st) == 0 && st.st_size >= from);
    size_t n = (size_t)(st.st_size - from);
    char *buf = malloc(n + 1);
    FUZZ_CHECK(buf != NULL);
    FUZZ_CHECK(pread(trace_fd, buf, n, from) == (ssize_t)n);
    buf[n] = 0;
    *len = n;
    return buf;
}

static size_t last_tail(const char *buf, size_t len)
{
    const char *t = NULL;
    for (const char *p = buf; (p = memmem(p, len - (size_t)(p - buf), TAIL, sizeof TAIL - 1));
         p++)
        t = p;
    FUZZ_CHECK(t != NULL);
    return (size_t)(t - buf);
}

static void trace_check(void)
{
    FUZZ_CHECK(cctx_trace_flush() == 0);
    size_t n;
    char *piece = read_from(tail_at, &n);
    size_t tail = last_tail(piece, n);
    char *doc = malloc(header_len + n);
    FUZZ_CHECK(doc != NULL);
    memcpy(doc, trace_header, header_len);
    memcpy(doc + header_len, piece, n);
    struct json_error err;
    if (!json_check(doc, header_len + n, &err)) {
        json_report("CCTX_TRACE file", doc, header_len + n, &err);
        abort();
    }
    free(doc);
    free(piece);
    /* What lies before the new closing lines is never read again: give its
     * blocks back, so that a long run does not fill the disk. */
    off_t from = ((off_t)header_len + 4095) / 4096 * 4096;
    tail_at += (off_t)tail;
    off_t to = tail_at / 4096 * 4096;
    if (to > from)
        (void)fallocate(trace_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, from, to - from);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("TMPDIR");
    char path[64];
    snprintf(path, sizeof path, "%.40s/cctx-fuzz-trace-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    FUZZ_CHECK(fd >= 0);
    close(fd);
    /* As CCTX_TRACE and CCTX_DEBUG=trees would do before main. */
    FUZZ_CHECK(cctx__trace_start(path) == 0);
    /* Read through a descriptor of our own, and the name gone at once: a
     * crash, which skips atexit handlers, leaves no file behind. */
    trace_fd = open(path, O_RDWR | O_CLOEXEC);
    FUZZ_CHECK(trace_fd >= 0);
    unlink(path);
    cctx__debug_enable(CCTX__DEBUG_TRACE | CCTX__DEBUG_REGISTRY);
    size_t n;
    trace_header = read_from(0, &n);
    header_len = last_tail(trace_header, n);
    tail_at = (off_t)header_len;
    cctx_fake_clock_start(CCTX_SEC(1000));
    return 0;
}

/* ---- one input ---------------------------------------------------------------------- */

static cctx_t *pick(struct input *in, int *which)
{
    uint8_t b = in_u8(in) % (NNODE + 1);
    *which = b < NNODE && nodes[b].ctx ? b : -1;
    return *which >= 0 ? nodes[b].ctx : cctx_background();
}

static int free_node(void)
{
    for (int i = 0; i < NNODE; i++)
        if (!nodes[i].ctx)
            return i;
    return -1;
}

static void derive(struct input *in)
{
    int w, to = free_node();
    cctx_t *parent = pick(in, &w);
    uint8_t kind = in_u8(in);
    int code = (int)in_u32(in);
    int64_t t = (int64_t)in_u8(in) - 8; /* some born done, some due soon */
    const char *msg = kind % 5 == 1 || kind % 5 == 2 ? hostile(in) : NULL;
    if (to < 0)
        return;
    cctx_cancel_t *cancel = NULL;
    cctx_t *c;
    switch (kind % 5) {
    case 0: c = cctx_with_cancel(parent, &cancel); break;
    case 1: c = cctx_with_timeout_cause(parent, t, code, msg, &cancel); break;
    case 2: c = cctx_with_deadline_cause(parent, cctx_now() + t, code, msg, &cancel); break;
    case 3: c = cctx_with_value(parent, &key, NULL, NULL); break;
    default: c = cctx_without_cancel(parent); break;
    }
    FUZZ_CHECK(c != NULL);
    nodes[to] = (struct node){c, cancel};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    memset(nodes, 0, sizeof nodes);
    /* A flush costs more than the rest of an input (the library copies every
     * ring into a fresh 2 MB buffer), so a quarter of the inputs are traced,
     * as their first byte says; the others record nothing, so that every
     * event a flush writes comes from the input being checked. */
    bool traced = in_u8(&in) % 4 == 0;
    if (traced)
        atomic_fetch_or(&cctx__debug, CCTX__DEBUG_TRACE);
    else
        atomic_fetch_and(&cctx__debug, ~(unsigned)CCTX__DEBUG_TRACE);
    for (int step = 0; step < 64 && in.n > 0; step++) {
        int w;
        switch (in_u8(&in) % 6) {
        case 0:
            derive(&in);
            break;
        case 1: {
            cctx_t *c = pick(&in, &w);
            const char *name = hostile(&in);
            if (w >= 0) {
                FUZZ_CHECK(cctx_set_name(c, name) == 0);
                FUZZ_CHECK(name ? strcmp(cctx_name(c), name) == 0 : cctx_name(c) == NULL);
            }
            break;
        }
        case 2: {
            pick(&in, &w);
            int code = (int)in_u32(&in);
            const char *msg = hostile(&in);
            if (w >= 0 && nodes[w].cancel)
                cctx_cancel_cause(nodes[w].cancel, code, msg);
            break;
        }
        case 3:
            cctx_fake_clock_advance(in_u8(&in));
            break;
        case 4: {
            cctx_t *c = pick(&in, &w);
            uint8_t b = in_u8(&in);
            size_t len;
            bool all = b & 4;
            char *out = dump_checked(all ? NULL : c, b % 4, &len);
            if (b % 4 == CCTX_DUMP_DOT)
                check_dot(out, len);
            free(out);
            break;
        }
        default:
            pick(&in, &w);
            if (w >= 0) {
                cctx_release(nodes[w].ctx);
                nodes[w].ctx = NULL;
            }
        }
    }
    /* Every format of every tree, then of the whole process. */
    for (int i = 0; i < NNODE; i++)
        if (nodes[i].ctx)
            dump_all_formats(nodes[i].ctx);
    dump_all_formats(cctx_background());
    dump_all_formats(NULL);
    for (int i = 0; i < NNODE; i++)
        cctx_release(nodes[i].ctx);
    if (traced)
        trace_check();
    return 0;
}
