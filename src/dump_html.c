/* placeholder: the HTML viewer is being written */
#include "internal.h"

void cctx__html_begin(FILE *out, int64_t now)
{
    fprintf(out, "<!doctype html><script id=\"cctx-data\" data-now=\"%lld\" type=\"application/json\">",
            (long long)now);
}

void cctx__html_end(FILE *out)
{
    fputs("</script>\n", out);
}
