/* SPDX-License-Identifier: MIT */
/*
 * Responses: what a handler builds (status, headers, body) and how it
 * becomes libmicrohttpd's response, which the worker hands back to
 * libmicrohttpd's thread with the request.
 *
 * Lock order: none taken here (a response belongs to its handler's thread).
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void cctx__mhd_response_init(cctx_mhd_response_t *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->status = 200;
    resp->tail = &resp->headers;
}

int cctx_mhd_status(cctx_mhd_response_t *resp, int status)
{
    /* Not 1xx: libmicrohttpd 0.9.75 would send one as the final response
     * on HTTP/1.1 (a client then waits for another) and refuse it on 1.0. */
    if (!resp || status < 200 || status > 599)
        return EINVAL;
    resp->status = status;
    resp->status_set = true;
    return 0;
}

/* A field name is an HTTP token (RFC 9110, 5.6.2). */
bool cctx__mhd_is_token(const char *s, size_t len)
{
    static const char others[] = "!#$%&'*+-.^_`|~";
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c != '\0' && strchr(others, c))))
            return false;
    }
    return true;
}

/* A field value has no control character but tab (RFC 9110, 5.5). */
static bool is_field_value(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

int cctx_mhd_set_header(cctx_mhd_response_t *resp, const char *name, const char *value)
{
    if (!resp || !name || !value || !cctx__mhd_is_token(name, strlen(name)) ||
        !is_field_value(value))
        return EINVAL;
    struct mhd_header *h = malloc(sizeof *h);
    char *n = strdup(name), *v = strdup(value);
    if (!h || !n || !v) {
        free(h);
        free(n);
        free(v);
        return resp->err = ENOMEM;
    }
    h->name = n;
    h->value = v;
    h->next = NULL;
    *resp->tail = h;
    resp->tail = &h->next;
    return 0;
}

int cctx_mhd_write(cctx_mhd_response_t *resp, const void *data, size_t len)
{
    /* No object is longer than PTRDIFF_MAX: such a len is a caller's
     * mistake, told as one, and leaves what was written so far alone. */
    if (!resp || (!data && len) || len > (size_t)PTRDIFF_MAX - resp->len)
        return EINVAL;
    if (resp->cap - resp->len < len) {
        size_t cap = resp->cap ? resp->cap : 256;
        while (cap - resp->len < len) {
            if (cap > SIZE_MAX / 2)
                return resp->err = ENOMEM;
            cap *= 2;
        }
        char *b = realloc(resp->body, cap);
        if (!b)
            return resp->err = ENOMEM;
        resp->body = b;
        resp->cap = cap;
    }
    if (len)
        memcpy(resp->body + resp->len, data, len);
    resp->len += len;
    return 0;
}

int cctx_mhd_printf(cctx_mhd_response_t *resp, const char *fmt, ...)
{
    if (!resp || !fmt)
        return EINVAL;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return resp->err = ENOMEM;
    int err = cctx_mhd_write(resp, s, (size_t)n);
    free(s);
    return err;
}

static void response_clear(cctx_mhd_response_t *resp)
{
    for (struct mhd_header *h = resp->headers, *next; h; h = next) {
        next = h->next;
        free(h->name);
        free(h->value);
        free(h);
    }
    free(resp->body);
    cctx__mhd_response_init(resp);
}

void cctx__mhd_response_text(cctx_mhd_response_t *resp, int status, const char *msg)
{
    response_clear(resp);
    resp->status = status;
    cctx_mhd_set_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (msg && *msg) {
        cctx_mhd_write(resp, msg, strlen(msg));
        cctx_mhd_write(resp, "\n", 1);
    }
}

/* Whether h is the "Transfer-Encoding: chunked" libmicrohttpd takes (it
 * compares both without case). */
static bool is_chunked_header(const struct mhd_header *h)
{
    return strcasecmp(h->name, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0 &&
           strcasecmp(h->value, "chunked") == 0;
}

/* resp as a libmicrohttpd response (its body handed over); NULL when out
 * of memory, or with *refused naming a header libmicrohttpd would not take
 * (Content-Length, a Transfer-Encoding other than chunked...: it frames the
 * body itself). An answer without a body (bodiless) leaves out a
 * "Transfer-Encoding: chunked": libmicrohttpd 0.9.75 sends the last chunk
 * of one even to HEAD and in a 304, where HTTP has the answer end with its
 * headers (RFC 9112, 6.3), so a client read those five bytes as the start
 * of the next answer on the connection (1.0.0 no longer does; a 204 lost
 * the header in libmicrohttpd already). Without it, the answer has the
 * Content-Length of the body that is not sent, as a HEAD answer may. */
static struct MHD_Response *build(cctx_mhd_response_t *resp, bool bodiless, const char **refused)
{
    *refused = NULL;
    struct MHD_Response *r;
    if (resp->len) {
        r = MHD_create_response_from_buffer(resp->len, resp->body, MHD_RESPMEM_MUST_FREE);
        if (r)
            resp->body = NULL; /* libmicrohttpd frees it */
    } else {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!r)
        return NULL;
    for (struct mhd_header *h = resp->headers; h; h = h->next) {
        if (bodiless && is_chunked_header(h))
            continue;
        if (MHD_add_response_header(r, h->name, h->value) != MHD_YES) {
            *refused = h->name;
            return r;
        }
    }
    return r;
}

void cctx__mhd_response_finish(struct cctx_mhd_request *req, cctx_mhd_response_t *resp)
{
    if (resp->err)
        cctx__mhd_response_text(resp, 500, "out of memory");
    /* 1xx is refused by cctx_mhd_status. */
    bool bodiless = strcmp(req->method, MHD_HTTP_METHOD_HEAD) == 0 ||
                    resp->status == MHD_HTTP_NO_CONTENT || resp->status == MHD_HTTP_NOT_MODIFIED;
    const char *refused;
    struct MHD_Response *r = build(resp, bodiless, &refused);
    if (r && refused) {
        /* A header silently dropped would be a different response than the
         * handler wrote: say which one instead. */
        MHD_destroy_response(r);
        char msg[160];
        snprintf(msg, sizeof msg, "response header refused: %.100s", refused);
        cctx__mhd_response_text(resp, 500, msg); /* frees refused: msg holds a copy */
        r = build(resp, bodiless, &refused);
        if (r && refused) { /* not expected for our own content-type */
            MHD_destroy_response(r);
            r = NULL;
        }
    }
    req->response = r; /* NULL: the connection is closed without an answer */
    req->status = (unsigned)resp->status;
    response_clear(resp);
}
