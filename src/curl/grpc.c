/* SPDX-License-Identifier: MIT */
/* Helpers for calling gRPC over libcurl: the status from headers or
 * trailers, and the message framing. */
#include "curl_internal.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

void cctx_curl_grpc_status_init(cctx_curl_grpc_status_t *st)
{
    if (!st)
        return;
    st->status = -1;
    st->message[0] = '\0';
}

/* The value of "name: value\r\n" in line, trimmed, or NULL. */
static const char *value_of(const char *line, size_t len, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *vlen = (size_t)(end - v);
    return v;
}

size_t cctx_curl_grpc_header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
    size_t len = size * nitems;
    cctx_curl_grpc_status_t *st = userdata;
    size_t vlen;
    const char *v;
    if (!st || !buffer)
        return len;
    /* A status line begins a response's headers: what an earlier one (a
     * redirect, a 100 Continue) said is not this call's status. Trailers
     * come after the final response's headers, with no line of their own. */
    if (len >= 5 && memcmp(buffer, "HTTP/", 5) == 0) {
        cctx_curl_grpc_status_init(st);
        return len;
    }
    if ((v = value_of(buffer, len, "grpc-status", &vlen)) != NULL) {
        /* A decimal number that fits 32 bits, a '+' and leading zeros
         * allowed (grpc-go parses it with strconv.ParseInt(v, 10, 32));
         * anything else is malformed, which grpc-go fails as INTERNAL. A
         * negative one too, where grpc-go takes it as a code of its own: -1
         * here means "none seen". */
        if (vlen > 1 && v[0] == '+')
            v++, vlen--;
        int64_t s = 0;
        bool ok = vlen > 0;
        for (size_t i = 0; ok && i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                ok = false;
            else
                ok = (s = s * 10 + (v[i] - '0')) <= INT32_MAX;
        }
        st->status = ok ? (int)s : 13; /* INTERNAL */
    } else if ((v = value_of(buffer, len, "grpc-message", &vlen)) != NULL) {
        if (vlen >= sizeof st->message)
            vlen = sizeof st->message - 1;
        memcpy(st->message, v, vlen);
        st->message[vlen] = '\0';
    }
    return len;
}

size_t cctx_curl_grpc_frame(const void *msg, size_t len, void *out, size_t out_size)
{
    if ((!msg && len) || !out) {
        errno = EINVAL;
        return 0;
    }
    if (len > UINT32_MAX || out_size < 5 || out_size - 5 < len) {
        errno = ENOBUFS;
        return 0;
    }
    unsigned char *p = out;
    p[0] = 0; /* not compressed */
    p[1] = (unsigned char)(len >> 24);
    p[2] = (unsigned char)(len >> 16);
    p[3] = (unsigned char)(len >> 8);
    p[4] = (unsigned char)len;
    if (len)
        memcpy(p + 5, msg, len);
    return len + 5;
}
