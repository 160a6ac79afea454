/* SPDX-License-Identifier: MIT */
/*
 * The debug route: cctx_dump of the live tree under the server's context,
 * as the self-contained HTML page, JSON with ?format=json, the text form
 * (one line per context, for a terminal) with ?format=text, or Graphviz DOT
 * with ?format=dot. It runs on a
 * worker like any handler (a dump of a big tree takes time), so it appears
 * in its own dump, as the request that asked.
 *
 * Lock order: none of the server's; cctx_dump takes the library's own.
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cctx__mhd_debug_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                             void *arg)
{
    (void)ctx;
    cctx_mhd_t *s = arg;
    static const struct {
        const char *name, *type;
        int format;
    } formats[] = {
        {"html", "text/html; charset=utf-8", CCTX_DUMP_HTML},
        {"json", "application/json", CCTX_DUMP_JSON},
        {"text", "text/plain; charset=utf-8", CCTX_DUMP_TEXT},
        {"dot", "text/vnd.graphviz", CCTX_DUMP_DOT},
    };
    const char *f = cctx_mhd_query(req, "format");
    size_t which = 0;
    if (f) {
        while (which < sizeof formats / sizeof *formats && strcmp(f, formats[which].name) != 0)
            which++;
        if (which == sizeof formats / sizeof *formats) {
            cctx__mhd_response_text(resp, 400, "format: html, json, text or dot");
            return;
        }
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out) {
        cctx__mhd_response_text(resp, 500, "out of memory");
        return;
    }
    int err = cctx_dump(s->ctx, out, formats[which].format);
    if (fclose(out) != 0 && !err)
        err = ENOMEM;
    if (err) {
        cctx__mhd_response_text(resp, 500, strerror(err));
    } else {
        cctx_mhd_set_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, formats[which].type);
        cctx_mhd_set_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        cctx_mhd_write(resp, buf, len);
    }
    free(buf);
}
