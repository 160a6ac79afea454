/*
 * The debug route: cctx_dump of the live tree under the server's context,
 * as the self-contained HTML page, or JSON with ?format=json. It runs on a
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

void mhd_debug_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                       void *arg)
{
    (void)ctx;
    cctx_mhd_t *s = arg;
    const char *f = cctx_mhd_query(req, "format");
    bool json = f && strcmp(f, "json") == 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out) {
        mhd_response_text(resp, 500, "out of memory");
        return;
    }
    int err = cctx_dump(s->ctx, out, json ? CCTX_DUMP_JSON : CCTX_DUMP_HTML);
    if (fclose(out) != 0 && !err)
        err = ENOMEM;
    if (err) {
        mhd_response_text(resp, 500, strerror(err));
    } else {
        cctx_mhd_set_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            json ? "application/json" : "text/html; charset=utf-8");
        cctx_mhd_set_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        cctx_mhd_write(resp, buf, len);
    }
    free(buf);
}
