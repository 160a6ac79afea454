/* SPDX-License-Identifier: MIT */
/* Helpers shared by the fuzz targets: see fuzz_common.h. */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include <string.h>

#include "json_check.h"

uint8_t in_u8(struct input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

uint16_t in_u16(struct input *in)
{
    return (uint16_t)(in_u8(in) | (unsigned)in_u8(in) << 8);
}

uint32_t in_u32(struct input *in)
{
    return in_u16(in) | (uint32_t)in_u16(in) << 16;
}

uint64_t in_u64(struct input *in)
{
    return in_u32(in) | (uint64_t)in_u32(in) << 32;
}

int64_t in_time(struct input *in)
{
    uint8_t sel = in_u8(in);
    switch (sel % 16) {
    case 0: return 0;
    case 1: return 1;
    case 2: return -1;
    case 3: return INT64_MIN;
    case 4: return INT64_MAX;
    case 5: return INT64_MIN + 1;
    case 6: return INT64_MAX - 1;
    case 7: return INT64_MAX / 2 + 1;
    case 8: return (int64_t)in_u8(in);
    case 9: return (int64_t)in_u16(in) * 1000;
    case 10: return -(int64_t)in_u16(in);
    case 11: return CCTX_SEC(1);
    case 12: return (int64_t)in_u32(in);
    default: return (int64_t)in_u64(in);
    }
}

const char *in_string(struct input *in, char *buf, size_t max)
{
    uint8_t len = in_u8(in);
    if (len == 0xff)
        return NULL;
    size_t n = len < max ? len : max;
    size_t i = 0;
    for (; i < n && in->n > 0; i++)
        buf[i] = (char)in_u8(in);
    buf[i] = 0;
    return buf;
}

/* Case-insensitive search for a lower-case ASCII needle in text[0..len);
 * by hand, as strncasecmp's interceptors cost more than the rest of a run. */
static const char *find_ci(const char *text, size_t len, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= len; i++) {
        size_t k = 0;
        while (k < m) {
            char c = text[i + k];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c != needle[k])
                break;
            k++;
        }
        if (k == m)
            return text + i;
    }
    return NULL;
}

void check_html_page(const char *html, size_t len)
{
    /* The page says it is UTF-8 (meta charset): all of it must be. */
    FUZZ_CHECK(utf8_valid(html, len));
    const char *open = find_ci(html, len, "<script id=\"cctx-data\"");
    FUZZ_CHECK(open != NULL);
    const char *gt = memchr(open, '>', len - (size_t)(open - html));
    FUZZ_CHECK(gt != NULL);
    const char *data = gt + 1;
    /* An HTML parser ends the element at the first "</script", whatever the
     * case, so that is where the JSON must end too. */
    const char *close = find_ci(data, len - (size_t)(data - html), "</script");
    FUZZ_CHECK(close != NULL);
    size_t n = (size_t)(close - data);
    /* Inside a script element "<!--" starts an escape in which "<script"
     * changes how the end is found: the JSON must hold neither. */
    FUZZ_CHECK(find_ci(data, n, "<!--") == NULL);
    FUZZ_CHECK(find_ci(data, n, "<script") == NULL);
    struct json_error err;
    if (!json_check(data, n, &err)) {
        json_report("the JSON inside the HTML dump", data, n, &err);
        abort();
    }
}

/* Dumps go to one large buffer made once: an open_memstream per dump, grown
 * by realloc, costs more than the dump under ASan. A dump too large for it
 * is written again to a memstream. */
static char *dump_to_memory(cctx_t *root, int format, size_t *len)
{
    enum { BIG = 8 << 20 };
    static char *big;
    if (!big)
        FUZZ_CHECK((big = malloc(BIG)) != NULL);
    FILE *f = fmemopen(big, BIG, "w");
    FUZZ_CHECK(f != NULL);
    int r = cctx_dump(root, f, format);
    long n = ftell(f);
    bool full = ferror(f) || n < 0 || n >= BIG - 1;
    fclose(f);
    if (!full) {
        if (r != 0)
            fprintf(stderr, "cctx_dump(%p, format %d) returned %d\n", (void *)root, format, r);
        FUZZ_CHECK(r == 0);
        char *out = malloc((size_t)n + 1);
        FUZZ_CHECK(out != NULL);
        memcpy(out, big, (size_t)n);
        out[n] = 0;
        *len = (size_t)n;
        return out;
    }
    char *buf = NULL;
    f = open_memstream(&buf, len);
    FUZZ_CHECK(f != NULL);
    r = cctx_dump(root, f, format);
    FUZZ_CHECK(fclose(f) == 0);
    if (r != 0)
        fprintf(stderr, "cctx_dump(%p, format %d) returned %d\n", (void *)root, format, r);
    FUZZ_CHECK(r == 0);
    return buf;
}

char *dump_checked(cctx_t *root, int format, size_t *len)
{
    size_t n;
    char *buf = dump_to_memory(root, format, &n);
    if (format == CCTX_DUMP_JSON) {
        struct json_error err;
        if (!json_check(buf, n, &err)) {
            json_report("cctx_dump JSON", buf, n, &err);
            abort();
        }
    } else if (format == CCTX_DUMP_HTML) {
        check_html_page(buf, n);
    }
    if (len)
        *len = n;
    return buf;
}
